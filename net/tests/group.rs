//! Real nodes on loopback: discovery from one bootstrap address, gossip on every topic,
//! ordered frames with authenticated origin, rejoin after restart; a non-member served on
//! the light-client protocol and rejected everywhere else; oversized and malformed input
//! dropped and counted.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use futures::AsyncWriteExt;
use synchronicity_net::{NetError, Refusal, RequestKind};

fn gossip_count(n: &TestNode, topic: &str, data: &[u8]) -> usize {
    n.seen
        .lock()
        .unwrap()
        .gossip
        .iter()
        .filter(|(t, _, d)| t == topic && d == data)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_members_discover_gossip_stream_and_rejoin() {
    let ks = keys(4);
    let ms = members(&ks);
    let n0 = spawn(config(&ks[0], ms.clone(), vec![], 4096), ks[0].clone()).await;
    let boot = listen_addr(&n0).await;
    let mut nodes = vec![n0];
    for k in &ks[1..] {
        nodes.push(spawn(config(k, ms.clone(), vec![boot.clone()], 4096), k.clone()).await);
    }
    // Discovery: every member connects to every other, from one bootstrap address.
    for (i, n) in nodes.iter().enumerate() {
        eventually(30, &format!("node {i} to see 3 members"), || {
            n.handle.connected_members().len() == 3
        })
        .await;
    }

    // Gossip on every topic reaches every member, with the signed author as source.
    for (i, n) in nodes.iter().enumerate() {
        for t in TOPICS {
            publish(n, t, format!("hello from {i} on {t}").as_bytes()).await;
        }
    }
    for (j, n) in nodes.iter().enumerate() {
        for (i, from) in nodes.iter().enumerate().filter(|(i, _)| *i != j) {
            for t in TOPICS {
                let data = format!("hello from {i} on {t}").into_bytes();
                eventually(10, "gossip delivery", || gossip_count(n, t, &data) == 1).await;
                let seen = n.seen.lock().unwrap();
                let (_, src, _) = seen
                    .gossip
                    .iter()
                    .find(|(tt, _, d)| tt == t && d == &data)
                    .unwrap();
                assert_eq!(*src, from.handle.local_peer_id());
            }
        }
    }

    // Frames arrive in order with the right origin.
    let to = nodes[2].handle.local_peer_id();
    for k in 0..200u32 {
        nodes[1]
            .handle
            .send_frame(to, k.to_be_bytes().to_vec())
            .unwrap();
        nodes[3]
            .handle
            .send_frame(to, (1_000_000 + k).to_be_bytes().to_vec())
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while nodes[2].seen.lock().unwrap().frames.len() < 400 {
        if tokio::time::Instant::now() > deadline {
            let (m1, m2, m3) = (
                nodes[1].handle.metrics(),
                nodes[2].handle.metrics(),
                nodes[3].handle.metrics(),
            );
            panic!(
                "node 2 got {} of 400 frames: node 1 sent {} dropped {}, node 3 sent {} \
                 dropped {}, node 2 received {} malformed {}",
                nodes[2].seen.lock().unwrap().frames.len(),
                m1.frames_sent.get(),
                m1.frames_dropped.get(),
                m3.frames_sent.get(),
                m3.frames_dropped.get(),
                m2.frames_received.get(),
                m2.frames_malformed.get(),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(nodes[2].seen.lock().unwrap().frames.len(), 400);
    {
        let seen = nodes[2].seen.lock().unwrap();
        for (origin, base) in [
            (nodes[1].handle.local_peer_id(), 0u32),
            (nodes[3].handle.local_peer_id(), 1_000_000),
        ] {
            let got: Vec<u32> = seen
                .frames
                .iter()
                .filter(|(p, _)| *p == origin)
                .map(|(_, d)| u32::from_be_bytes(d[..4].try_into().unwrap()))
                .collect();
            assert_eq!(got, (base..base + 200).collect::<Vec<_>>());
        }
    }
    // Frames to a non-member are refused locally.
    assert!(matches!(
        nodes[1]
            .handle
            .send_frame(synchronicity_net::PeerId::random(), vec![1]),
        Err(NetError::NotMember(_))
    ));

    // Node 3 restarts (same key, new port) and rejoins.
    let old = nodes.pop().unwrap();
    let id3 = old.handle.local_peer_id();
    old.handle.shutdown().await;
    drop(old);
    for n in &nodes {
        eventually(15, "members to see node 3 leave", || {
            !n.handle.connected_members().contains(&id3)
        })
        .await;
    }
    nodes.push(
        spawn(
            config(&ks[3], ms.clone(), vec![boot.clone()], 4096),
            ks[3].clone(),
        )
        .await,
    );
    for n in &nodes {
        eventually(30, "rejoin", || n.handle.connected_members().len() == 3).await;
    }
    publish(&nodes[0], TOPICS[0], b"after restart").await;
    eventually(10, "gossip to the restarted node", || {
        gossip_count(&nodes[3], TOPICS[0], b"after restart") == 1
    })
    .await;
    let members: HashSet<_> = nodes.iter().map(|n| n.handle.local_peer_id()).collect();
    assert_eq!(members.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_member_gets_light_answers_and_nothing_else() {
    let ks = keys(2);
    let ms = members(&ks);
    let m0 = spawn(
        config(&ks[0], ms.clone(), vec![], 4096).with_light_rate(5, 1),
        ks[0].clone(),
    )
    .await;
    let boot = listen_addr(&m0).await;
    let m1 = spawn(
        config(&ks[1], ms.clone(), vec![boot.clone()], 4096),
        ks[1].clone(),
    )
    .await;
    eventually(20, "members connected", || {
        m0.handle.connected_members().len() == 1
    })
    .await;

    let outsider_key = keys(1).remove(0);
    let outsider = spawn(
        config(&outsider_key, ms.clone(), vec![boot.clone()], 4096),
        outsider_key.clone(),
    )
    .await;
    let id0 = m0.handle.local_peer_id();

    // Light-client protocol: answered.
    let mut answer = None;
    for _ in 0..50 {
        if let Ok(a) = outsider
            .handle
            .request(id0, RequestKind::Light, b"proof?".to_vec())
            .await
        {
            answer = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer.unwrap(), b"pong:proof?");
    // Members-only sync protocol: refused.
    let r = outsider
        .handle
        .request(id0, RequestKind::Sync, b"height 1".to_vec())
        .await;
    assert_eq!(r, Err(NetError::Refused(Refusal::NotMember)));
    assert!(m0.handle.metrics().requests_not_member.get() >= 1);
    // A member may use it.
    assert_eq!(
        m1.handle
            .request(id0, RequestKind::Sync, b"h".to_vec())
            .await
            .unwrap(),
        b"pong:h"
    );

    // Gossip from the non-member never reaches members, and is counted.
    let _ = outsider.handle.publish(TOPICS[0], b"forged".to_vec()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = outsider.handle.publish(TOPICS[0], b"forged".to_vec()).await;
    eventually(10, "non-member gossip counted", || {
        m0.handle.metrics().gossip_rejected_non_member.get() >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(gossip_count(&m0, TOPICS[0], b"forged"), 0);
    assert_eq!(gossip_count(&m1, TOPICS[0], b"forged"), 0);

    // Consensus streams from the non-member are dropped and counted.
    let _ = outsider.handle.send_frame(id0, b"vote".to_vec());
    eventually(10, "stream rejection counted", || {
        m0.handle.metrics().streams_rejected.get() >= 1
    })
    .await;
    assert!(m0.seen.lock().unwrap().frames.is_empty());

    // Rate limit: burst 5 at 1/s (one request already spent): some of 10 quick ones refused.
    let mut refused = 0;
    for i in 0..10 {
        if let Err(NetError::Refused(Refusal::RateLimited)) = outsider
            .handle
            .request(id0, RequestKind::Light, vec![i])
            .await
        {
            refused += 1;
        }
    }
    assert!(refused >= 4, "{refused} refused");
    assert_eq!(m0.handle.metrics().requests_rate_limited.get(), refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_input_is_dropped_and_counted() {
    let ks = keys(2);
    let ms = members(&ks);
    // The receiver accepts 1 KiB gossip and 64 KiB frames; the sender is configured larger.
    let rx = spawn(
        config(&ks[0], ms.clone(), vec![], 1024).with_max_frame(64 * 1024),
        ks[0].clone(),
    )
    .await;
    let boot = listen_addr(&rx).await;
    let tx = spawn(
        config(&ks[1], ms.clone(), vec![boot], 100_000).with_max_frame(1 << 20),
        ks[1].clone(),
    )
    .await;
    eventually(20, "connected", || rx.handle.connected_members().len() == 1).await;
    let to = rx.handle.local_peer_id();

    publish(&tx, TOPICS[0], &[7u8; 50_000]).await;
    eventually(10, "oversized gossip counted", || {
        rx.handle.metrics().gossip_rejected_oversized.get() >= 1
    })
    .await;
    assert_eq!(rx.seen.lock().unwrap().gossip.len(), 0);

    tx.handle.send_frame(to, vec![1u8; 200_000]).unwrap();
    eventually(10, "oversized frame counted", || {
        rx.handle.metrics().frames_oversized.get() >= 1
    })
    .await;

    // Malformed: an empty frame, then a frame cut short.
    let mut raw = tx.handle.raw_consensus_stream(to).await.unwrap();
    raw.write_all(&[0, 0, 0, 0]).await.unwrap();
    raw.write_all(&[0, 0, 0, 10, 1, 2, 3]).await.unwrap();
    raw.close().await.unwrap();
    eventually(10, "malformed frames counted", || {
        rx.handle.metrics().frames_malformed.get() >= 2
    })
    .await;

    // The receiver still works: a normal frame is delivered.
    tx.handle.send_frame(to, b"still alive".to_vec()).unwrap();
    eventually(10, "normal frame after bad ones", || {
        rx.seen
            .lock()
            .unwrap()
            .frames
            .iter()
            .any(|(_, d)| d == b"still alive")
    })
    .await;
    let text = rx.handle.metrics_text();
    assert!(
        text.contains("synchronicity_net_frames_oversized_total "),
        "{text}"
    );
    assert!(
        text.contains("synchronicity_net_libp2p_gossipsub_messages_total "),
        "{text}"
    );
}

/// A member whose node stops reading its events (busy, or a peer flooding it) must not stall
/// its own network: the swarm hands gossip and requests over with `try_send`, each author's
/// gossip within its share of the event queue (4,096 / members), so the rest are ignored and
/// counted, and the swarm keeps serving the node's commands (publish here) and the peers'
/// requests (refused, busy, once frames filled the queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_reading_does_not_stall_its_network() {
    let ks = keys(2);
    let ms = members(&ks);
    let tx = spawn(config(&ks[0], ms.clone(), vec![], 4096), ks[0].clone()).await;
    let boot = listen_addr(&tx).await;
    // The stalled member: its events are never read.
    let (stalled, _events) = synchronicity_net::start(config(&ks[1], ms.clone(), vec![boot], 4096))
        .await
        .unwrap();
    eventually(20, "connected", || stalled.connected_members().len() == 1).await;

    // More gossip than the author's share (each message distinct).
    publish(&tx, TOPICS[0], b"flood 0").await;
    let mut sent = 1u32;
    while stalled.metrics().gossip_dropped_author_share.get() == 0 {
        assert!(sent < 50_000, "6,000+ messages and nothing dropped");
        for _ in 0..500 {
            let _ = tx
                .handle
                .publish(TOPICS[0], format!("flood {sent}").into_bytes())
                .await;
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What was handed over is the author's share: the queue never filled with gossip.
    assert_eq!(stalled.metrics().gossip_received.get(), 4096 / 2);
    assert_eq!(stalled.metrics().gossip_dropped_node_busy.get(), 0);

    // Its swarm still answers commands: it publishes, and the other member receives it.
    tokio::time::timeout(Duration::from_secs(10), async {
        while stalled
            .publish(TOPICS[1], b"still serving".to_vec())
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the stalled member's swarm no longer serves commands");
    eventually(10, "gossip from the stalled member", || {
        gossip_count(&tx, TOPICS[1], b"still serving") == 1
    })
    .await;
    // Frames fill the rest of its queue (each stream's reader waits for room).
    let to = stalled.local_peer_id();
    let sender = tx.handle.clone();
    let frames = tokio::spawn(async move {
        for k in 0..4096u32 {
            if sender
                .send_frame_wait(to, k.to_be_bytes().to_vec())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    eventually(30, "the event queue full", || {
        let m = stalled.metrics();
        m.frames_received.get() + m.gossip_received.get() >= 4096
    })
    .await;
    // A request to it is refused at once (busy), not left to time out.
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        tx.handle
            .request(stalled.local_peer_id(), RequestKind::Sync, b"x".to_vec()),
    )
    .await
    .expect("a request to the stalled member was not answered");
    assert!(
        matches!(r, Err(NetError::Refused(Refusal::Unavailable(_)))),
        "{r:?}"
    );
    assert_eq!(stalled.metrics().requests_dropped_node_busy.get(), 1);
    frames.abort();
}

/// One member's flood of gossip does not take another member's place in a node's event
/// queue: the flooder fills its own share (4,096 / 3 here) and is ignored past it, and the
/// other member's message, sent after the flood while the node still reads nothing, is
/// handed over. (With one queue for all, the flood filled it and that message was dropped
/// as "node busy": an honest reveal lost to a flood.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_members_gossip_flood_leaves_room_for_the_others() {
    let ks = keys(3);
    let ms = members(&ks);
    let flooder = spawn(config(&ks[0], ms.clone(), vec![], 4096), ks[0].clone()).await;
    let boot = listen_addr(&flooder).await;
    let honest = spawn(
        config(&ks[1], ms.clone(), vec![boot.clone()], 4096),
        ks[1].clone(),
    )
    .await;
    let (node, mut events) = synchronicity_net::start(config(&ks[2], ms.clone(), vec![boot], 4096))
        .await
        .unwrap();
    eventually(20, "connected", || node.connected_members().len() == 2).await;
    eventually(20, "meshed", || {
        honest.handle.connected_members().len() == 2
    })
    .await;

    let mut sent = 0u32;
    while node.metrics().gossip_dropped_author_share.get() == 0 {
        assert!(sent < 50_000, "50,000 messages and nothing dropped");
        for _ in 0..500 {
            let _ = flooder
                .handle
                .publish(TOPICS[0], format!("flood {sent}").into_bytes())
                .await;
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(node.metrics().gossip_received.get(), 4096 / 3);
    publish(&honest, TOPICS[0], b"a reveal").await;
    eventually(10, "the honest message handed over", || {
        node.metrics().gossip_received.get() == 4096 / 3 + 1
    })
    .await;
    assert_eq!(node.metrics().gossip_dropped_node_busy.get(), 0);
    // The node reads its queue now: the honest member's message is there, by its author.
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.recv().await {
            if let synchronicity_net::NetEvent::Gossip(g) = e
                && g.data == b"a reveal"
            {
                return Some(g.source);
            }
        }
        None
    })
    .await
    .expect("not in the queue");
    assert_eq!(found, Some(honest.handle.local_peer_id()));
}
