//! Direct consensus streams (`/synchronicity/consensus/1`) over libp2p-stream.
//!
//! Outbound: one writer task per member owns one stream and writes frames in order; on a
//! write error it reopens the stream once and retries the frame, else drops it (counted).
//! Inbound: one reader task per accepted stream; streams from non-members are dropped at
//! once (counted); an oversized frame closes its stream; empty or truncated frames are
//! counted as malformed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::PeerId;
use tokio::sync::mpsc;

use crate::handle::{NetError, NetEvent};
use crate::metrics::NetMetrics;
use crate::protocol::{CONSENSUS_PROTOCOL, FrameError, read_frame, write_frame};

/// Frames queued per member before `send_frame` reports backpressure.
const QUEUE: usize = 4096;
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Routes frames to per-member writer tasks, starting them on first use.
#[derive(Clone)]
pub(crate) struct FrameSender {
    control: libp2p_stream::Control,
    writers: Arc<Mutex<HashMap<PeerId, mpsc::Sender<Vec<u8>>>>>,
    max_frame: usize,
    metrics: NetMetrics,
}

impl FrameSender {
    pub(crate) fn new(
        control: libp2p_stream::Control,
        max_frame: usize,
        metrics: NetMetrics,
    ) -> Self {
        Self {
            control,
            writers: Arc::default(),
            max_frame,
            metrics,
        }
    }

    pub(crate) async fn open_raw(&self, peer: PeerId) -> Result<libp2p::Stream, NetError> {
        let mut control = self.control.clone();
        control
            .open_stream(peer, CONSENSUS_PROTOCOL)
            .await
            .map_err(|e| NetError::Request(e.to_string()))
    }

    fn queue(&self, peer: PeerId, len: usize) -> Result<mpsc::Sender<Vec<u8>>, NetError> {
        if len > self.max_frame || len == 0 {
            return Err(NetError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        let mut writers = self.writers.lock().expect("lock");
        Ok(writers
            .entry(peer)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(writer(self.control.clone(), peer, rx, self.metrics.clone()));
                tx
            })
            .clone())
    }

    /// Never waits: a full queue is an error.
    pub(crate) fn send(&self, peer: PeerId, data: Vec<u8>) -> Result<(), NetError> {
        self.queue(peer, data.len())?
            .try_send(data)
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => NetError::QueueFull(peer),
                mpsc::error::TrySendError::Closed(_) => NetError::Stopped,
            })
    }

    /// Waits for room in the member's queue (backpressure).
    pub(crate) async fn send_wait(&self, peer: PeerId, data: Vec<u8>) -> Result<(), NetError> {
        let tx = self.queue(peer, data.len())?;
        tx.send(data).await.map_err(|_| NetError::Stopped)
    }
}

async fn writer(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    mut rx: mpsc::Receiver<Vec<u8>>,
    m: NetMetrics,
) {
    let mut stream = None;
    while let Some(frame) = rx.recv().await {
        let mut sent = false;
        for _attempt in 0..2 {
            if stream.is_none() {
                match tokio::time::timeout(
                    OPEN_TIMEOUT,
                    control.open_stream(peer, CONSENSUS_PROTOCOL),
                )
                .await
                {
                    Ok(Ok(s)) => stream = Some(s),
                    Ok(Err(e)) => tracing::debug!(%peer, "open consensus stream: {e}"),
                    Err(_) => tracing::debug!(%peer, "open consensus stream: timeout"),
                }
            }
            if let Some(s) = stream.as_mut() {
                match write_frame(s, &frame).await {
                    Ok(()) => {
                        sent = true;
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(%peer, "write frame: {e}");
                        stream = None;
                    }
                }
            }
        }
        if sent {
            m.frames_sent.inc();
        } else {
            m.frames_dropped.inc();
        }
    }
}

/// Accepts inbound consensus streams until the network stops.
pub(crate) async fn accept_loop(
    mut incoming: libp2p_stream::IncomingStreams,
    members: Arc<HashSet<PeerId>>,
    events: mpsc::Sender<NetEvent>,
    max_frame: usize,
    m: NetMetrics,
) {
    while let Some((peer, stream)) = incoming.next().await {
        if !members.contains(&peer) {
            m.streams_rejected.inc();
            tracing::debug!(%peer, "consensus stream from a non-member dropped");
            drop(stream);
            continue;
        }
        tokio::spawn(reader(peer, stream, events.clone(), max_frame, m.clone()));
    }
}

async fn reader(
    peer: PeerId,
    mut stream: libp2p::Stream,
    events: mpsc::Sender<NetEvent>,
    max: usize,
    m: NetMetrics,
) {
    loop {
        match read_frame(&mut stream, max).await {
            Ok(data) => {
                m.frames_received.inc();
                if events
                    .send(NetEvent::Frame { from: peer, data })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(FrameError::Empty) => {
                m.frames_malformed.inc();
            }
            Err(FrameError::Truncated) => {
                m.frames_malformed.inc();
                return;
            }
            Err(FrameError::Oversized { len, .. }) => {
                m.frames_oversized.inc();
                tracing::debug!(%peer, len, "oversized frame: stream closed");
                return;
            }
            Err(FrameError::Closed) | Err(FrameError::Io(_)) => return,
        }
    }
}
