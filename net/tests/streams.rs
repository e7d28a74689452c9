//! Consensus streams opened by many members at once: every frame arrives, in order, and
//! none is counted dropped. libp2p-stream hands inbound streams to the accept loop through
//! one slot and drops a stream that finds it taken; since `/synchronicity/consensus/2` the
//! opener waits for the accepting side's byte before its first frame, so such a stream is
//! a failed open, tried again, instead of frames written into nothing. (The drop itself is a
//! race this test may or may not meet on a given run.)

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_members_open_streams_to_each_other_at_once_and_lose_no_frame() {
    const N: usize = 6;
    const FRAMES: u32 = 50;
    let ks = keys(N);
    let ms = members(&ks);
    let n0 = spawn(config(&ks[0], ms.clone(), vec![], 4096), ks[0].clone()).await;
    let boot = listen_addr(&n0).await;
    let mut nodes = vec![n0];
    for k in &ks[1..] {
        nodes.push(spawn(config(k, ms.clone(), vec![boot.clone()], 4096), k.clone()).await);
    }
    for (i, n) in nodes.iter().enumerate() {
        eventually(30, &format!("node {i} to see {} members", N - 1), || {
            n.handle.connected_members().len() == N - 1
        })
        .await;
    }

    // Every member queues frames to every other before any stream is open: each receiver
    // gets five streams opened at the same moment.
    for (i, from) in nodes.iter().enumerate() {
        for (j, to) in nodes.iter().enumerate().filter(|(j, _)| *j != i) {
            for k in 0..FRAMES {
                let frame = [i as u8, j as u8, (k >> 8) as u8, k as u8];
                from.handle
                    .send_frame(to.handle.local_peer_id(), frame.to_vec())
                    .unwrap();
            }
        }
    }
    let want = (N - 1) * FRAMES as usize;
    for (j, n) in nodes.iter().enumerate() {
        eventually(20, &format!("node {j} to receive {want} frames"), || {
            n.seen.lock().unwrap().frames.len() >= want
        })
        .await;
    }
    for (j, n) in nodes.iter().enumerate() {
        let seen = n.seen.lock().unwrap();
        assert_eq!(seen.frames.len(), want, "node {j} got extra frames");
        for (i, from) in nodes.iter().enumerate().filter(|(i, _)| *i != j) {
            let got: Vec<u32> = seen
                .frames
                .iter()
                .filter(|(p, _)| *p == from.handle.local_peer_id())
                .map(|(_, d)| {
                    assert_eq!((d[0], d[1]), (i as u8, j as u8), "frame from {i} to {j}");
                    u32::from(d[2]) << 8 | u32::from(d[3])
                })
                .collect();
            assert_eq!(
                got,
                (0..FRAMES).collect::<Vec<_>>(),
                "frames from {i} at {j}"
            );
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        let m = n.handle.metrics();
        assert_eq!(m.frames_dropped.get(), 0, "node {i} dropped frames");
        assert_eq!(m.frames_sent.get(), want as u64, "node {i} frames sent");
    }
}
