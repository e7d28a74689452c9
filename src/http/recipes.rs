//! `POST /recipe` (issue 28): a user whose `cook` met a proven miss asks this member to
//! order the recipe, where its operator allows it (`[light] accept_recipes = true` in
//! node.toml; off by default, and then answered `403`).
//!
//! The body is the recipe's canonical CBOR (`recipe --out`), at most [`MAX_RECIPE_SIZE`].
//! Cheap checks first: the per-address order rate ([`RecipeOrders::new`], beside the
//! server's own request rate), the body's size, then the decoding, `check_contents` and the
//! committee's rules (toolchain, target) — everything a member checks before it orders a
//! request, so a refused recipe costs this member no build. The order is handed to the node
//! with `try_send`: a full command queue answers `503`, the handler never waits on it.
//! Answers: `200` with the request id in hex, or a 4xx/5xx with one line naming the problem.

use std::sync::Mutex;
use std::time::Instant;

use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Incoming;
use synchronicity_net::AddressBucket;
use synchronicity_verify::recipe::{MAX_RECIPE_SIZE, Recipe};
use tokio::sync::mpsc;

use super::Answer;
use super::limits::{MAX_CLIENTS, RateTable};
use crate::committee::Committee;
use crate::node::run;
use crate::request::PinnedRequest;

/// What accepting recipe orders needs: the node's command queue, the committee's rules and
/// the per-address order rate.
pub(crate) struct RecipeOrders {
    commands: mpsc::Sender<run::Command>,
    committee: Committee,
    rate: Mutex<RateTable>,
}

impl RecipeOrders {
    /// Orders through `commands` under `committee`'s rules, at most `per_hour` from one
    /// client address (IPv4 address or IPv6 /64), two at once.
    pub(crate) fn new(
        commands: mpsc::Sender<run::Command>,
        committee: Committee,
        per_hour: u32,
    ) -> Self {
        Self {
            commands,
            committee,
            rate: Mutex::new(RateTable::new(
                2.0,
                f64::from(per_hour) / 3600.0,
                MAX_CLIENTS,
            )),
        }
    }

    /// Answers one `POST /recipe` from `client`.
    pub(crate) async fn order(&self, body: Incoming, client: AddressBucket) -> Answer {
        let allowed = self
            .rate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(client, Instant::now());
        if !allowed {
            return Answer::text(
                StatusCode::TOO_MANY_REQUESTS,
                "too many recipe orders from your address; try later",
            );
        }
        let bytes = match Limited::new(body, MAX_RECIPE_SIZE).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Answer::text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "a recipe is at most 1 MiB (or the body was cut off)",
                );
            }
        };
        let pinned = match pinned(&bytes, &self.committee) {
            Ok(p) => p,
            Err(e) => return Answer::text(StatusCode::UNPROCESSABLE_ENTITY, e),
        };
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
