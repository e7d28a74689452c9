//! A bare light client (its own libp2p swarm, the light-client protocol only) whose TCP
//! connections leave from a chosen local IPv4 address: all of 127/8 is loopback, so a test
//! can open real connections from several addresses on one host.

use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent};
use libp2p::core::upgrade::Version;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, noise, yamux};
use synchronicity_net::{Keypair, LIGHT_PROTOCOL, Request, Response};

/// Dials TCP from `source` (the OS picks the port); listens nowhere.
struct FromAddress {
    source: Ipv4Addr,
}

impl Transport for FromAddress {
    type Output = libp2p::tcp::tokio::TcpStream;
    type Error = std::io::Error;
    type ListenerUpgrade = futures::future::Pending<Result<Self::Output, Self::Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn listen_on(
        &mut self,
        _: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn remove_listener(&mut self, _: ListenerId) -> bool {
        false
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let mut parts = addr.iter();
        let (Some(Protocol::Ip4(ip)), Some(Protocol::Tcp(port))) = (parts.next(), parts.next())
        else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let source = self.source;
        Ok(async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source.into(), 0))?;
            let stream = socket.connect(SocketAddr::new(ip.into(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(libp2p::tcp::tokio::TcpStream(stream))
        }
        .boxed())
    }

    fn poll(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Poll::Pending
    }
}

/// What a running client saw.
#[derive(Default)]
pub struct ClientState {
    /// Connections established.
    pub established: AtomicUsize,
    /// Connections closed (by either side).
    pub closed: AtomicUsize,
    /// Dials that failed (refused before the connection was established on our side).
    pub failed: AtomicUsize,
    /// The answer to its request, if it sent one and got one.
    pub answer: Mutex<Option<Result<Response, String>>>,
}

/// Starts a client with a fresh key that dials `target` from `source`, keeps its
/// connection open (idle) for as long as the server does, and, if `request` is given,
/// sends it once connected.
pub fn spawn_light_client(
    source: Ipv4Addr,
    target: Multiaddr,
    request: Option<Vec<u8>>,
) -> Arc<ClientState> {
    let state = Arc::new(ClientState::default());
    let key = Keypair::generate_ed25519();
    let codec = request_response::cbor::codec::Codec::<Request, Response>::default();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            FromAddress { source }
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise keys"))
                .multiplex(yamux::Config::default())
        })
        .expect("transport")
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                codec,
                [(LIGHT_PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default(),
            )
        })
        .expect("behaviour")
        // Idle on our side for longer than any test: only the server closes it.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    let peer = target
        .iter()
        .find_map(|p| match p {
            Protocol::P2p(id) => Some(id),
            _ => None,
        })
        .expect("target names its peer");
    swarm.dial(target).expect("dial");
    let s = state.clone();
    tokio::spawn(async move {
        let mut request = request;
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => {
                    s.established.fetch_add(1, Ordering::SeqCst);
                    if let Some(r) = request.take() {
                        swarm.behaviour_mut().send_request(&peer, Request(r));
                    }
                }
                SwarmEvent::ConnectionClosed { .. } => {
                    s.closed.fetch_add(1, Ordering::SeqCst);
                }
                SwarmEvent::OutgoingConnectionError { .. } => {
                    s.failed.fetch_add(1, Ordering::SeqCst);
                }
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => *s.answer.lock().unwrap() = Some(Ok(response)),
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    error, ..
                }) => *s.answer.lock().unwrap() = Some(Err(error.to_string())),
                _ => {}
            }
        }
    });
    state
}
