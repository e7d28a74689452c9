//! Loopback figures for the network layer (real libp2p, TCP + Noise + Yamux):
//! direct-stream round-trip latency, direct-stream throughput (10,000 frames of 1 KiB), and
//! gossip delivery time to the other 3 of 4 members. Prints a summary; run with
//! `cargo bench -p synchronicity-net --bench net`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use synchronicity_net::{
    Keypair, MemberAddr, Multiaddr, NetConfig, NetEvent, NetworkHandle, TopicConfig, Validation,
    multiaddr::Protocol,
};
use tokio::sync::mpsc;

const TOPIC: &str = "/synchronicity/bench/1";

async fn node(
    key: &Keypair,
    members: &[MemberAddr],
    boot: Vec<Multiaddr>,
) -> (NetworkHandle, mpsc::Receiver<NetEvent>) {
    let cfg = NetConfig::new(key.clone(), members.to_vec())
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()])
        .with_bootstrap(boot)
        .with_topics(vec![TopicConfig {
            name: TOPIC.into(),
            max_size: 64 * 1024,
        }]);
    synchronicity_net::start(cfg).await.unwrap()
}

async fn addr(h: &NetworkHandle) -> Multiaddr {
    loop {
        if let Some(a) = h.listen_addrs().await.unwrap().first() {
            return a.clone().with(Protocol::P2p(h.local_peer_id()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_connected(hs: &[&NetworkHandle], n: usize) {
    while hs.iter().any(|h| h.connected_members().len() < n) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// `n` fresh member keys and the member list (no addresses: found through Kademlia).
fn group(n: usize) -> (Vec<Keypair>, Vec<MemberAddr>) {
    let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate_ed25519()).collect();
    let ms = keys
        .iter()
        .map(|k| MemberAddr {
            peer_id: k.public().to_peer_id(),
            addrs: vec![],
        })
        .collect();
    (keys, ms)
}

async fn streams() {
    let (keys, ms) = group(2);
    let (a, mut a_events) = node(&keys[0], &ms, vec![]).await;
    let (b, mut b_events) = node(&keys[1], &ms, vec![addr(&a).await]).await;
    wait_connected(&[&a, &b], 1).await;
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());

    // B echoes every frame back to A; B also counts frames for the throughput run.
    let (count_tx, mut count_rx) = mpsc::unbounded_channel();
    let b2 = b.clone();
    tokio::spawn(async move {
        while let Some(e) = b_events.recv().await {
            if let NetEvent::Frame { data, .. } = e {
                if data[0] == 1 {
                    b2.send_frame(a_id, data).unwrap();
                } else {
                    let _ = count_tx.send(());
                }
            }
        }
    });
    let mut rtts = Vec::new();
    for i in 0..2000u32 {
        let mut frame = vec![1u8; 64];
        frame[1..5].copy_from_slice(&i.to_be_bytes());
        let t = Instant::now();
        a.send_frame(b_id, frame).unwrap();
        loop {
            if let Some(NetEvent::Frame { .. }) = a_events.recv().await {
                break;
            }
        }
        if i >= 200 {
            rtts.push(t.elapsed());
        }
    }
    println!(
        "direct stream round trip (64 B, 1,800 samples): median {:?}, p99 {:?}",
        percentile(&mut rtts, 0.5),
        percentile(&mut rtts, 0.99)
    );

    let n = 10_000;
    let t = Instant::now();
    for _ in 0..n {
        a.send_frame_wait(b_id, vec![2u8; 1024]).await.unwrap();
    }
    for _ in 0..n {
        count_rx.recv().await.unwrap();
    }
    let el = t.elapsed();
    println!(
        "direct stream throughput: {n} frames of 1 KiB in {el:?} = {:.0} frames/s, {:.1} MiB/s",
        n as f64 / el.as_secs_f64(),
        n as f64 / 1024.0 / el.as_secs_f64()
    );
}

async fn gossip() {
    let (keys, ms) = group(4);
    let (h0, mut e0) = node(&keys[0], &ms, vec![]).await;
    let boot = addr(&h0).await;
    let (arrive_tx, mut arrive_rx) = mpsc::unbounded_channel::<(usize, Vec<u8>)>();
    let mut handles = vec![h0.clone()];
    for (i, k) in keys.iter().enumerate().skip(1) {
        let (h, mut ev) = node(k, &ms, vec![boot.clone()]).await;
        let (h2, tx) = (h.clone(), arrive_tx.clone());
        tokio::spawn(async move {
            while let Some(e) = ev.recv().await {
                if let NetEvent::Gossip(m) = e {
                    h2.validate(&m, Validation::Accept);
                    let _ = tx.send((i, m.data.clone()));
                }
            }
        });
        handles.push(h);
    }
    tokio::spawn(async move { while e0.recv().await.is_some() {} });
    let refs: Vec<&NetworkHandle> = handles.iter().collect();
    wait_connected(&refs, 3).await;
    // Let the mesh form.
    while h0.publish(TOPIC, b"warmup".to_vec()).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    while arrive_rx.try_recv().is_ok() {}
    let mut times = Vec::new();
    for round in 0..100u32 {
        let payload = format!("round {round}").into_bytes();
        let t = Instant::now();
        h0.publish(TOPIC, payload.clone()).await.unwrap();
        let mut got = 0;
        while got < 3 {
            let (_, data) = arrive_rx.recv().await.unwrap();
            if data == payload {
                got += 1;
            }
        }
        times.push(t.elapsed());
    }
    println!(
        "gossip delivery to all 3 other members of 4 (100 rounds): median {:?}, p95 {:?}",
        percentile(&mut times, 0.5),
        percentile(&mut times, 0.95)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        streams().await;
        gossip().await;
    });
}
