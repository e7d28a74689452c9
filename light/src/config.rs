//! [`ClientConfig`]: what a [`crate::Client`] trusts, whom it asks, and where its notices go.

use std::sync::Arc;
use std::time::Duration;

use synchronicity_net::Multiaddr;
use synchronicity_verify::{Committee, CommitteeChain};

use crate::Notice;

/// Receives the client's [`Notice`]s.
pub(crate) type NoticeSink = Arc<dyn Fn(&Notice) + Send + Sync>;

/// Everything a [`crate::Client`] needs: the trusted committee and the members to ask.
#[derive(Clone)]
pub struct ClientConfig {
    pub(crate) committee: Committee,
    pub(crate) chain: Option<CommitteeChain>,
    pub(crate) peers: Vec<Multiaddr>,
    pub(crate) request_timeout: Duration,
    pub(crate) notices: Option<NoticeSink>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("origin", &self.committee.origin())
            .field("peers", &self.peers)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// A client trusting `committee` (a validated committee file: the trust root) that asks
    /// `peers` in order: members' addresses, with their `/p2p/` peer id or one a committee
    /// member lists.
    pub fn new(committee: Committee, peers: Vec<Multiaddr>) -> Self {
        Self {
            committee,
            chain: None,
            peers,
            request_timeout: Duration::from_secs(10),
            notices: None,
        }
    }

    /// Trust the committee chain `chain` (verified from the genesis `committee`, e.g. by
    /// `committee chain`): proofs and checkpoints of any epoch it holds are accepted, each
    /// signed within its epoch's sizes, and the latest committee is asked.
    pub fn with_chain(mut self, chain: CommitteeChain) -> Self {
        self.committee = chain.latest().clone();
        self.chain = Some(chain);
        self
    }

    /// How long one request may take. Default: 10 s.
    pub fn with_request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Where [`Notice`]s go (a member refused, a download restarted, a weaker answer
    /// kept). Default: nowhere.
    pub fn with_notices(mut self, sink: impl Fn(&Notice) + Send + Sync + 'static) -> Self {
        self.notices = Some(Arc::new(sink));
        self
    }
}
