//! Wire formats: versioned protocol names and their size limits side by side, the
//! length-prefixed frames of the consensus stream, and the request/response envelope.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};

/// Direct member-to-member stream for consensus messages.
pub const CONSENSUS_PROTOCOL: StreamProtocol = StreamProtocol::new("/synchronicity/consensus/2");
/// Default largest consensus frame (a proposal carries its value).
pub const DEFAULT_MAX_FRAME: usize = 4 * 1024 * 1024;

/// Light-client requests (proofs, checkpoints, consistency proofs, artifacts): open to anyone,
/// rate limited. Its messages and their bounds are the `synchronicity-light` crate's.
pub const LIGHT_PROTOCOL: StreamProtocol = StreamProtocol::new("/synchronicity/proof/2");
/// Catch-up of decided values with their certificates: members only.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/synchronicity/sync/1");
/// Largest request body.
pub const MAX_REQUEST_SIZE: u64 = 64 * 1024;
/// Largest response body.
pub const MAX_RESPONSE_SIZE: u64 = 16 * 1024 * 1024;

/// Kademlia protocol name (our own DHT, not the public IPFS one).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/synchronicity/kad/1");
/// Identify protocol version string.
pub const IDENTIFY_VERSION: &str = "/synchronicity/id/1";

/// An opaque request body; its meaning belongs to the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// The response envelope: the node's answer, or the network layer's refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The node's answer.
    Ok(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Refused before reaching the node.
    Refused(Refusal),
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The peer exceeded its request rate.
    #[error("rate limit exceeded")]
    RateLimited,
    /// The protocol is for committee members only.
    #[error("members only")]
    NotMember,
    /// The node could not answer (shutting down, overloaded, or it said so).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The declared length exceeds the maximum: the stream is closed.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    Oversized {
        /// Declared length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A zero-length frame (never sent by a correct peer).
    #[error("empty frame")]
    Empty,
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// The stream ended cleanly between frames.
    #[error("stream closed")]
    Closed,
    /// Other I/O failure.
    #[error(transparent)]
    Io(std::io::Error),
}

/// Writes one frame: 4-byte big-endian length, then the bytes. Callers check the size.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(data.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(data).await?;
    w.flush().await
}

/// Reads one frame of at most `max` bytes. The length is checked BEFORE any allocation.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]).await {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::Oversized { len, max });
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;

    use super::*;

    #[tokio::test]
    async fn frames_roundtrip_and_bad_frames_are_named() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").await.unwrap();
        write_frame(&mut buf, &[7; 300]).await.unwrap();
        let mut r = Cursor::new(buf.clone());
        assert_eq!(read_frame(&mut r, 1024).await.unwrap(), b"hello");
        assert_eq!(read_frame(&mut r, 1024).await.unwrap(), vec![7; 300]);
        assert!(matches!(
            read_frame(&mut r, 1024).await,
            Err(FrameError::Closed)
        ));
        // Oversized: refused from the header alone.
        let mut r = Cursor::new(buf.clone());
        read_frame(&mut r, 1024).await.unwrap();
        assert!(matches!(
            read_frame(&mut r, 100).await,
            Err(FrameError::Oversized { len: 300, max: 100 })
        ));
        // Truncated inside the body and inside the header.
        let mut r = Cursor::new(buf[..7].to_vec());
        assert!(matches!(
            read_frame(&mut r, 1024).await,
            Err(FrameError::Truncated)
        ));
        let mut r = Cursor::new(buf[..2].to_vec());
        assert!(matches!(
            read_frame(&mut r, 1024).await,
            Err(FrameError::Truncated)
        ));
        let mut r = Cursor::new(vec![0, 0, 0, 0]);
        assert!(matches!(
            read_frame(&mut r, 1024).await,
            Err(FrameError::Empty)
        ));
        // A header claiming 4 GiB allocates nothing.
        let mut r = Cursor::new(vec![0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            read_frame(&mut r, DEFAULT_MAX_FRAME).await,
            Err(FrameError::Oversized { .. })
        ));
    }
}
