//! `POST /recipe` (issue 28): a user whose `cook` met a proven miss asks this member to
//! order the recipe, where its operator allows it (`[light] accept_recipes = true` in
//! node.toml; off by default, and then answered `403`).
//!
//! The body is the recipe's canonical CBOR (`recipe --out`), at most [`MAX_RECIPE_SIZE`].
//! Cheap checks first: one order at a time, upload included (else `503`, nothing spent),
//! the client address's order rate ([`RecipeOrders::new`], beside the server's own request
//! rate), the body's size and a 10-second upload, then the decoding, `check_contents` and
//! the committee's rules (toolchain, target) on a blocking thread — everything a member
//! checks before it orders a request, so a refused recipe costs no build — and last the
//! member's own hourly bound, whoever asks. Many addresses can keep the one slot busy
//! (each for at most 10 s): that denies orders, never the node's other work. The order is handed to the node
//! with `try_send`: a full command queue answers `503`, the handler never waits on it.
//! Answers: `200` with the request id in hex, or a 4xx/5xx with one line naming the problem.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Incoming;
use synchronicity_net::AddressBucket;
use synchronicity_verify::recipe::{MAX_RECIPE_SIZE, Recipe};
use tokio::sync::{Semaphore, mpsc};

use super::Answer;
use super::limits::{MAX_CLIENTS, RateTable};
use crate::committee::Committee;
use crate::node::run;
use crate::request::PinnedRequest;

/// How long one recipe's upload may take.
const UPLOAD_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// What accepting recipe orders needs: the node's command queue, the committee's rules and
/// the order rates.
pub(crate) struct RecipeOrders {
    commands: mpsc::Sender<run::Command>,
    committee: Committee,
    /// The member's own bound, whoever asks: what really limits the builds orders cost
    /// the group (a client can change its address; an IPv6 /48 holds 65,536 /64s).
    member: Mutex<Bucket>,
    /// One client address's share: one order at once, a third of the member's rate.
    per_address: Mutex<RateTable>,
    /// One recipe checked at a time (decoding up to 1 MiB, parsing its manifests), off the
    /// server's async threads.
    checking: Arc<Semaphore>,
}

/// A token bucket.
struct Bucket {
    tokens: f64,
    at: Instant,
    burst: f64,
    per_second: f64,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl RecipeOrders {
    /// Orders through `commands` under `committee`'s rules: at most `per_hour` orders an
    /// hour from everyone (two at once), and a third of that from one client address (IPv4
    /// address or IPv6 /64, one at once).
    pub(crate) fn new(
        commands: mpsc::Sender<run::Command>,
        committee: Committee,
        per_hour: u32,
    ) -> Self {
        let per_second = f64::from(per_hour) / 3600.0;
        Self {
            commands,
            committee,
            member: Mutex::new(Bucket {
                tokens: 2.0,
                at: Instant::now(),
                burst: 2.0,
                per_second,
            }),
            per_address: Mutex::new(RateTable::new(1.0, per_second / 3.0, MAX_CLIENTS)),
            checking: Arc::new(Semaphore::new(1)),
        }
    }

    /// Answers one `POST /recipe` from `client`.
    pub(crate) async fn order(&self, body: Incoming, client: AddressBucket) -> Answer {
        // One order at a time, upload included; a busy answer spends no token.
        let Ok(permit) = self.checking.clone().try_acquire_owned() else {
            return Answer::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "another recipe order is being taken; try again in a moment",
            );
        };
        let address_ok = self
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(client, Instant::now());
        if !address_ok {
            return Answer::text(
                StatusCode::TOO_MANY_REQUESTS,
                "too many recipe orders from your address; try later",
            );
        }
        // The upload within UPLOAD_TIME: a slow client holds the one permit no longer.
        let upload = Limited::new(body, MAX_RECIPE_SIZE).collect();
        let bytes = match tokio::time::timeout(UPLOAD_TIME, upload).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => {
                return Answer::text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "a recipe is at most 1 MiB (or the body was cut off)",
                );
            }
            Err(_) => {
                return Answer::text(
                    StatusCode::REQUEST_TIMEOUT,
                    "the recipe took too long to arrive",
                );
            }
        };
        let committee = self.committee.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pinned(&bytes, &committee)
        })
        .await;
        let pinned = match checked {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Answer::text(StatusCode::UNPROCESSABLE_ENTITY, e),
            Err(_) => return Answer::text(StatusCode::INTERNAL_SERVER_ERROR, "the check failed"),
        };
        // The member's bound last: a refused recipe does not spend it.
        let member_ok = self
            .member
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(Instant::now());
        if !member_ok {
            return Answer::text(
                StatusCode::TOO_MANY_REQUESTS,
                "this member takes no more recipe orders this hour; try later",
            );
        }
        match run::try_submit(&self.commands, pinned) {
            Ok(rx) => match rx.await {
                Ok(Ok(id)) => Answer::text(StatusCode::OK, hex::encode(id)),
                Ok(Err(e)) => Answer::text(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
                Err(_) => Answer::text(StatusCode::SERVICE_UNAVAILABLE, "the node has stopped"),
            },
            Err(why) => Answer::text(StatusCode::SERVICE_UNAVAILABLE, why),
        }
    }
}

/// The first attempt's request for the recipe `bytes`, if the committee would order it.
fn pinned(bytes: &[u8], committee: &Committee) -> Result<PinnedRequest, String> {
    let recipe = Recipe::from_cbor(bytes).map_err(|e| e.to_string())?;
    recipe.check_contents().map_err(|e| e.to_string())?;
    let pinned = PinnedRequest::for_recipe(&recipe, 1);
    crate::protocol::check_request(&pinned, committee).map_err(str::to_string)?;
    Ok(pinned)
}
