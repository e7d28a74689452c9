//! Four consensus actors over real libp2p on loopback (one process, separate tasks): they
//! decide the same blocks; with one member down from the start the other three keep
//! deciding.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_malachitebft_core_types::{CommitCertificate, LinearTimeouts, Round, Validity, Value as _};
use arc_malachitebft_signing_ed25519::PrivateKey;
use support::peers::listening_addr;
use synchronicity::consensus::actor::{self, ActorConfig, ActorInput, App};
use synchronicity::consensus::{Core, Ctx, Height, ValidatorSet, Value, ValueId};
use synchronicity::testing::TestCommittee;
use synchronicity_net::{MemberAddr, Multiaddr, NetConfig, NetEvent, PeerId};

/// How often an idle actor re-checks for work.
const IDLE: Duration = Duration::from_millis(500);

#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<Vec<(u64, ValueId)>>>);

struct TestApp {
    me: usize,
    ledger: Ledger,
    /// Whether there is something to order (the test turns it on and off).
    work: Arc<std::sync::atomic::AtomicBool>,
}

impl App for TestApp {
    fn build_value(&mut self, height: Height, round: Round) -> Value {
        Value::new(format!("block {height} round {round:?} by {}", self.me).into_bytes())
    }
    fn validate(&mut self, _height: Height, value: &Value) -> Validity {
        Validity::from_bool(value.bytes().starts_with(b"block "))
    }
    fn commit(
        &mut self,
        height: Height,
        value: &Value,
        _c: &CommitCertificate<Ctx>,
    ) -> Result<(), String> {
        self.ledger.0.lock().unwrap().push((height.0, value.id()));
        Ok(())
    }
    fn has_work(&mut self) -> bool {
        self.work.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn start_group(
    alive: &[usize],
    work: Arc<std::sync::atomic::AtomicBool>,
    timeouts: LinearTimeouts,
) -> Vec<(usize, Ledger)> {
    let tc = TestCommittee::new(4, 21);
    let ctx = Ctx::new(tc.committee.signing_domain());
    let vs = ValidatorSet::from_committee(&tc.committee);
    let members: Vec<MemberAddr> = tc
        .committee
        .members()
        .iter()
        .map(|m| MemberAddr {
            peer_id: m.peer_id,
            addrs: vec![],
        })
        .collect();
    let peer_ids: Vec<PeerId> = members.iter().map(|m| m.peer_id).collect();
    let mut handles = Vec::new();
    let mut boot: Option<Multiaddr> = None;
    for &i in alive {
        let cfg = NetConfig::new(tc.identities[i].keypair(), members.clone())
            .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()])
            .with_bootstrap(boot.iter().cloned().collect());
        let (net, events) = synchronicity_net::start(cfg).await.unwrap();
        if boot.is_none() {
            boot = Some(listening_addr(&net).await);
        }
        handles.push((i, net, events));
    }
    // Wait until the live members see each other.
    for (_, net, _) in &handles {
        while net.connected_members().len() < alive.len() - 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut out = Vec::new();
    for (i, net, mut events) in handles {
        let ledger = Ledger::default();
        let core = Core::new(
            ctx.clone(),
            vs.clone(),
            PrivateKey::from(tc.identities[i].secret_bytes()),
            timeouts,
        );
        let peers = peer_ids
            .iter()
            .copied()
            .filter(|p| *p != net.local_peer_id())
            .collect();
        let app = TestApp {
            me: i,
            ledger: ledger.clone(),
            work: work.clone(),
        };
        let config = ActorConfig {
            peers,
            first_height: Height(1),
            idle_interval: IDLE,
            wal: None,
            outgoing: std::sync::Arc::new(synchronicity::consensus::HonestFrames),
        };
        let (tx, _task) = actor::spawn(core, app, net.clone(), config);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if let NetEvent::Frame { from, data } = e {
                    let _ = tx.send(ActorInput::Frame { from, data }).await;
                }
            }
        });
        out.push((i, ledger));
    }
    out
}

async fn wait_for(ledgers: &[(usize, Ledger)], heights: usize, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while ledgers
        .iter()
        .any(|(_, l)| l.0.lock().unwrap().len() < heights)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not decided in {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first: Vec<_> = ledgers[0].1.0.lock().unwrap()[..heights].to_vec();
    for (i, l) in ledgers {
        assert_eq!(
            l.0.lock().unwrap()[..heights],
            first[..],
            "member {i} decided differently"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_members_decide_over_libp2p() {
    let group = start_group(
        &[0, 1, 2, 3],
        Arc::new(true.into()),
        LinearTimeouts::default(),
    )
    .await;
    wait_for(&group, 5, 60).await;
}

/// Work → heights; no work → no height at all over many re-check intervals (the first
/// height waits too: it also starts only with work); work again → heights again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_group_decides_no_empty_heights() {
    // Short timeouts, so that a height under way when the work stops ends within the quiet
    // window below even if it needs a round or two (a member that began it while the
    // others had gone idle waits out a propose timeout before they hear of it).
    let timeouts = LinearTimeouts {
        propose: Duration::from_millis(400),
        propose_delta: Duration::from_millis(100),
        prevote: Duration::from_millis(200),
        prevote_delta: Duration::from_millis(100),
        precommit: Duration::from_millis(200),
        precommit_delta: Duration::from_millis(100),
        ..LinearTimeouts::default()
    };
    // Three rounds' worth of timeouts (the third round's timeouts are the longest).
    let round = |r: u32| {
        timeouts.propose
            + timeouts.prevote
            + timeouts.precommit
            + (timeouts.propose_delta + timeouts.prevote_delta + timeouts.precommit_delta) * r
    };
    let quiet = round(0) + round(1) + round(2);
    let work = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let group = start_group(&[0, 1, 2, 3], work.clone(), timeouts).await;
    wait_for(&group, 2, 30).await;
    work.store(false, std::sync::atomic::Ordering::SeqCst);
    // Let a height already under way finish: until every member has decided the same
    // number of heights and none more for `quiet` (at most 60 s). Then count over 6
    // re-check intervals.
    let lens = || -> Vec<usize> {
        group
            .iter()
            .map(|(_, l)| l.0.lock().unwrap().len())
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut settled = (lens(), tokio::time::Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = lens();
        if now != settled.0 {
            settled = (now, tokio::time::Instant::now());
        } else if settled.0.iter().all(|&n| n == settled.0[0]) && settled.1.elapsed() >= quiet {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the height under way did not settle: {:?}",
            settled.0
        );
    }
    let before = lens();
    tokio::time::sleep(IDLE * 6).await;
    assert_eq!(before, lens(), "heights decided while idle");
    work.store(true, std::sync::atomic::Ordering::SeqCst);
    let n = before.iter().max().copied().unwrap_or(0);
    wait_for(&group, n + 2, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_keep_deciding_with_one_down() {
    let group = start_group(&[0, 2, 3], Arc::new(true.into()), LinearTimeouts::default()).await;
    // Height 2's round-0 proposer (member 1) is down: that height waits for the propose timeout.
    wait_for(&group, 4, 90).await;
}
