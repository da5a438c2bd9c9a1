//! libp2p as guixie's transport: the swarm (TCP, Noise, Yamux; identify, ping, and guixie's
//! request-response protocol) and the glue that feeds its requests and responses to a
//! [`Node`] and sends what the node asks to.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use guixie_node::node::RequestId;
use guixie_node::{Local, Node};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, identity, noise, ping, tcp, yamux, PeerId, Swarm};
use tokio::time::Instant;

use crate::codec::{protocol, Codec};

/// At most this many connections, and two per peer: a peer cannot hold more of the node's
/// memory than its streams allow.
const MAX_CONNECTIONS: u32 = 256;
/// Requests one connection may have open at once (each answer is at most
/// `MAX_RESPONSE_BYTES`).
const MAX_STREAMS: usize = 32;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    limits: libp2p::connection_limits::Behaviour,
    rr: request_response::Behaviour<Codec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    /// Peers found on the local network, only when asked (`--mdns`).
    pub(crate) mdns: libp2p::swarm::behaviour::toggle::Toggle<libp2p::mdns::tokio::Behaviour>,
}

#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("libp2p: {0}")]
    Libp2p(String),
}

pub(crate) fn p2p(e: impl std::fmt::Display) -> P2pError {
    P2pError::Libp2p(e.to_string())
}

/// A swarm with this node identity (an Ed25519 secret), not yet listening; with mDNS
/// discovery of peers on the local network when `mdns`.
pub(crate) fn build_swarm(identity: [u8; 32], mdns: bool) -> Result<Swarm<Behaviour>, P2pError> {
    let keypair = identity::Keypair::ed25519_from_bytes(identity).map_err(p2p)?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(p2p)?
        .with_behaviour(
            |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                Ok(Behaviour {
                    limits: libp2p::connection_limits::Behaviour::new(
                        libp2p::connection_limits::ConnectionLimits::default()
                            .with_max_established(Some(MAX_CONNECTIONS))
                            .with_max_established_per_peer(Some(2)),
                    ),
                    rr: request_response::Behaviour::with_codec(
                        Codec,
                        [(protocol(), ProtocolSupport::Full)],
                        request_response::Config::default()
                            .with_request_timeout(Duration::from_secs(30))
                            .with_max_concurrent_streams(MAX_STREAMS),
                    ),
                    identify: identify::Behaviour::new(identify::Config::new(
                        guixie_node::message::PROTOCOL.to_owned(),
                        key.public(),
                    )),
                    ping: ping::Behaviour::default(),
                    mdns: mdns
                        .then(|| {
                            libp2p::mdns::tokio::Behaviour::new(
                                libp2p::mdns::Config::default(),
                                key.public().to_peer_id(),
                            )
                        })
                        .transpose()?
                        .into(),
                })
            },
        )
        .map_err(p2p)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

/// Which libp2p request carries which of the node's; and, when the node's upload is
/// limited, the NAR ranges waiting for their turn.
#[derive(Default)]
pub(crate) struct Wire {
    outbound: HashMap<OutboundRequestId, RequestId>,
    upload: Option<UploadLimit>,
    /// In the order asked; each is sent once the upload budget allows it.
    paced: VecDeque<(
        ResponseChannel<guixie_node::Response>,
        guixie_node::Response,
        usize,
    )>,
    paced_bytes: usize,
}

/// Ranges waiting for the upload budget, at most (more are refused as busy): a few seconds
/// at any sensible rate, well inside an asker's timeout, and a bound on memory.
const MAX_PACED_BYTES: usize = 32 << 20;

/// Paces the NAR ranges a node serves to at most `bytes_per_second` on average: a range goes
/// once the ranges sent before it would have gone out at that rate. Only what is sent is
/// charged (an asker that left costs nothing).
struct UploadLimit {
    bytes_per_second: u64,
    next_free: Instant,
}

impl UploadLimit {
    /// Charges `len` bytes sent at `now` (not before `next_free`).
    fn charge(&mut self, len: usize, now: Instant) {
        let start = self.next_free.max(now);
        self.next_free = start + Duration::from_secs_f64(len as f64 / self.bytes_per_second as f64);
    }
}

impl Wire {
    /// Serves NAR ranges at no more than `bytes_per_second` on average (`None`: as fast as
    /// they are asked for).
    pub(crate) fn with_upload_limit(bytes_per_second: Option<u64>) -> Self {
        Wire {
            upload: bytes_per_second.filter(|b| *b > 0).map(|b| UploadLimit {
                bytes_per_second: b,
                next_free: Instant::now(),
            }),
            ..Wire::default()
        }
    }

    /// When the next paced range is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let limit = self.upload.as_ref()?;
        (!self.paced.is_empty()).then_some(limit.next_free)
    }

    /// Sends the paced ranges that are due; those whose asker went are dropped uncharged.
    pub(crate) fn send_due(&mut self, swarm: &mut Swarm<Behaviour>) {
        let now = Instant::now();
        let Some(limit) = self.upload.as_mut() else {
            return;
        };
        while limit.next_free <= now {
            let Some((channel, response, len)) = self.paced.pop_front() else {
                break;
            };
            self.paced_bytes -= len;
            if channel.is_open() {
                limit.charge(len, now);
                let _ = swarm.behaviour_mut().rr.send_response(channel, response);
            }
        }
    }

    pub(crate) fn respond(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        channel: ResponseChannel<guixie_node::Response>,
        response: guixie_node::Response,
    ) {
        let len = match &response {
            guixie_node::Response::Range { bytes } => bytes.len(),
            _ => 0,
        };
        let response = match &mut self.upload {
            Some(limit) if len > 0 => {
                let now = Instant::now();
                if self.paced.is_empty() && limit.next_free <= now {
                    limit.charge(len, now);
                    response
                } else if self.paced_bytes + len > MAX_PACED_BYTES {
                    guixie_node::Response::Refused {
                        reason: format!(
                            "{} this node's upload limit is reached; ask again later",
                            guixie_node::message::BUSY
                        ),
                    }
                } else {
                    self.paced_bytes += len;
                    self.paced.push_back((channel, response, len));
                    return;
                }
            }
            _ => response,
        };
        let _ = swarm.behaviour_mut().rr.send_response(channel, response);
    }

    /// Sends a request the node asked to send; a peer id that does not parse fails it.
    pub(crate) fn send<L: Local>(
        &mut self,
        node: &mut Node<L>,
        swarm: &mut Swarm<Behaviour>,
        to: &str,
        id: RequestId,
        request: guixie_node::Request,
        now: u64,
    ) {
        match to.parse::<PeerId>() {
            Ok(peer) => {
                let rid = swarm.behaviour_mut().rr.send_request(&peer, request);
                self.outbound.insert(rid, id);
            }
            Err(_) => node.handle_response(to, id, Err("not a peer id".into()), now),
        }
    }

    /// Feeds a connection's coming or going, or a request-response event, to the node; any
    /// other event is given back.
    pub(crate) fn on_swarm_event<L: Local>(
        &mut self,
        node: &mut Node<L>,
        swarm: &mut Swarm<Behaviour>,
        event: libp2p::swarm::SwarmEvent<BehaviourEvent>,
        now: u64,
    ) -> Option<libp2p::swarm::SwarmEvent<BehaviourEvent>> {
        use libp2p::swarm::SwarmEvent;
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if num_established.get() == 1 => node.connected(&peer_id.to_string(), now),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => node.disconnected(&peer_id.to_string(), now),
            SwarmEvent::Behaviour(BehaviourEvent::Rr(event)) => {
                self.on_event(node, swarm, event, now)
            }
            other => return Some(other),
        }
        None
    }

    /// A request to answer, or the answer (or failure) of one the node sent.
    pub(crate) fn on_event<L: Local>(
        &mut self,
        node: &mut Node<L>,
        swarm: &mut Swarm<Behaviour>,
        event: request_response::Event<guixie_node::Request, guixie_node::Response>,
        now: u64,
    ) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let response = node.handle_request(&peer.to_string(), request, now);
                self.respond(swarm, channel, response);
            }
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(id) = self.outbound.remove(&request_id) {
                    node.handle_response(&peer.to_string(), id, Ok(response), now);
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(id) = self.outbound.remove(&request_id) {
                    node.handle_response(&peer.to_string(), id, Err(error.to_string()), now);
                }
            }
            _ => {}
        }
    }
}

/// Runs `node` on a swarm with this identity, listening on `listen`, until the future is
/// dropped: it answers requests, follows connections and ticks the node's deadlines (its other
/// outputs are dropped). `ready` gets the address, `/p2p/` id included. For nodes whose
/// [`Local`] is not a store: a test's adversaries, a simulator's peers.
pub async fn serve<L: Local>(
    identity: [u8; 32],
    listen: libp2p::Multiaddr,
    mut node: Node<L>,
    clock: std::sync::Arc<dyn guixie_env::Clock>,
    ready: tokio::sync::oneshot::Sender<libp2p::Multiaddr>,
) -> Result<(), P2pError> {
    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;
    let mut swarm = build_swarm(identity, false)?;
    swarm.listen_on(listen).map_err(p2p)?;
    let me = *swarm.local_peer_id();
    let mut ready = Some(ready);
    let mut wire = Wire::default();
    let now = || clock.monotonic().as_millis() as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            event = swarm.select_next_some() => {
                if let Some(SwarmEvent::NewListenAddr { address, .. }) =
                    wire.on_swarm_event(&mut node, &mut swarm, event, now())
                {
                    if let Some(r) = ready.take() {
                        let _ = r.send(address.with(libp2p::multiaddr::Protocol::P2p(me)));
                    }
                }
            }
            _ = tick.tick() => node.tick(now()),
        }
        while let Some(output) = node.poll() {
            if let guixie_node::Output::Send { to, id, request } = output {
                wire.send(&mut node, &mut swarm, &to, id, request, now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_limit_charges_each_range_its_time_at_the_rate() {
        let t0 = Instant::now();
        let mut limit = UploadLimit {
            bytes_per_second: 1_000_000,
            next_free: t0,
        };
        // 250 KB at 1 MB/s: the next may go 250 ms after the one before.
        limit.charge(250_000, t0);
        assert_eq!(limit.next_free, t0 + Duration::from_millis(250));
        limit.charge(250_000, t0 + Duration::from_millis(250));
        assert_eq!(limit.next_free, t0 + Duration::from_millis(500));
        // After a pause, nothing is owed and nothing is saved up.
        let later = t0 + Duration::from_secs(10);
        limit.charge(250_000, later);
        assert_eq!(limit.next_free, later + Duration::from_millis(250));
    }
}
