//! Direct consensus streams (`/synchronicity/consensus/2`) over libp2p-stream.
//!
//! Outbound: one writer task per member owns one stream and writes frames in order; on a
//! write error it reopens the stream once and retries the frame, else drops it (counted).
//! Inbound: one reader task per accepted stream; streams from non-members are dropped at
//! once (counted); an oversized frame closes its stream; empty or truncated frames are
//! counted as malformed.
//!
//! The accepting side writes one byte, [`STREAM_ACCEPTED`], before it reads any frame, and
//! the writer waits for it before it writes one. libp2p-stream hands inbound streams to the
//! accept loop through a channel of one slot and DROPS a stream that finds it taken (two
//! members opening at once). Without the byte, the writer's first frames would go into a
//! stream nobody reads, and `write` would still succeed (the bytes sit in yamux's buffer):
//! frames lost while the stream counted them as sent. With it, a dropped stream is seen
//! as an error before any frame is written to it, and the frame goes on a new one.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::PeerId;
use tokio::sync::mpsc;

use futures::{AsyncReadExt, AsyncWriteExt};

use crate::error::NetError;
use crate::metrics::NetMetrics;
use crate::protocol::{CONSENSUS_PROTOCOL, FrameError, read_frame, write_frame};

/// Frames queued per member before `send_frame` reports backpressure.
const QUEUE: usize = 4096;
/// How long opening a stream (negotiation and the accepting side's byte) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// The byte the accepting side writes once its reader runs: frames may follow.
pub(crate) const STREAM_ACCEPTED: u8 = 0x01;

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

    /// A stream the accepting side has taken (its byte read), for tests that write raw bytes.
    pub(crate) async fn open_raw(&self, peer: PeerId) -> Result<libp2p::Stream, NetError> {
        let mut control = self.control.clone();
        open_accepted(&mut control, peer)
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
                match tokio::time::timeout(OPEN_TIMEOUT, open_accepted(&mut control, peer)).await {
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

/// Opens a stream to `peer` and waits for the accepting side's [`STREAM_ACCEPTED`].
async fn open_accepted(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
) -> std::io::Result<libp2p::Stream> {
    let mut s = control
        .open_stream(peer, CONSENSUS_PROTOCOL)
        .await
        .map_err(std::io::Error::other)?;
    let mut byte = [0u8; 1];
    s.read_exact(&mut byte).await?;
    if byte[0] != STREAM_ACCEPTED {
        return Err(std::io::Error::other(format!(
            "stream answered {:#04x}, not the accepted byte",
            byte[0]
        )));
    }
    Ok(s)
}

/// Accepts inbound consensus streams until the network stops; each frame goes to the node
/// as `frame(from, data)`.
pub(crate) async fn accept_loop<E: Send + 'static>(
    mut incoming: libp2p_stream::IncomingStreams,
    members: Arc<HashSet<PeerId>>,
    events: mpsc::Sender<E>,
    frame: fn(PeerId, Vec<u8>) -> E,
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
        tokio::spawn(reader(
            peer,
            stream,
            events.clone(),
            frame,
            max_frame,
            m.clone(),
        ));
    }
}

async fn reader<E>(
    peer: PeerId,
    mut stream: libp2p::Stream,
    events: mpsc::Sender<E>,
    frame: fn(PeerId, Vec<u8>) -> E,
    max: usize,
    m: NetMetrics,
) {
    // The writer waits for this byte before its first frame (see the module's doc).
    if stream.write_all(&[STREAM_ACCEPTED]).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    loop {
        match read_frame(&mut stream, max).await {
            Ok(data) => {
                m.frames_received.inc();
                if events.send(frame(peer, data)).await.is_err() {
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
