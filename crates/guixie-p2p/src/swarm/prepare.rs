//! The first `Have` or `Range` of a NAR this node serves writes its blob (the whole NAR) and
//! outboard: seconds for a large one. That happens on a blocking thread; the requests for it
//! wait, and every other request is answered meanwhile.

use guixie_node::Request;
use libp2p::request_response::{Event, Message, ResponseChannel};
use libp2p::{PeerId, Swarm};

use super::Driver;
use crate::transport::Behaviour;

/// Requests waiting for blobs, at most; past this they are answered on the event loop.
const MAX_WAITING: usize = 256;

type RrEvent = Event<Request, guixie_node::Response>;

/// Requests waiting for the blob of one root.
pub(super) type Waiting = Vec<(PeerId, Request, ResponseChannel<guixie_node::Response>)>;

impl Driver {
    /// Holds back a request for a blob not ready yet, starting its preparation; any other
    /// event is given back.
    pub(super) fn defer_unready(&mut self, event: RrEvent) -> Option<RrEvent> {
        let root = match &event {
            Event::Message {
                message:
                    Message::Request {
                        request: Request::Have { root } | Request::Range { root, .. },
                        ..
                    },
                ..
            } => *root,
            _ => return Some(event),
        };
        let waiting: usize = self.preparing.values().map(Vec::len).sum();
        if waiting >= MAX_WAITING || self.node.local().is_ready(&root) {
            return Some(event);
        }
        let Event::Message {
            peer,
            message: Message::Request {
                request, channel, ..
            },
            ..
        } = event
        else {
            unreachable!("matched above")
        };
        let queue = self.preparing.entry(root).or_default();
        if queue.is_empty() {
            let local = self.node.local().clone();
            let done = self.prepared_tx.clone();
            tokio::task::spawn_blocking(move || {
                let _ = done.send((root, local.prepare(&root)));
            });
        }
        queue.push((peer, request, channel));
        None
    }

    /// A blob is ready (or could not be made): the requests that waited for it are answered.
    pub(super) fn on_prepared(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        root: [u8; 32],
        result: Result<(), String>,
    ) {
        for (peer, request, channel) in self.preparing.remove(&root).unwrap_or_default() {
            let response = match &result {
                Ok(()) => {
                    let now = self.now_ms();
                    self.node.handle_request(&peer.to_string(), request, now)
                }
                // Not made again on the event loop.
                Err(_) if matches!(request, Request::Have { .. }) => {
                    guixie_node::Response::Have { size: None }
                }
                Err(e) => guixie_node::Response::Refused { reason: e.clone() },
            };
            self.wire.respond(swarm, channel, response);
        }
    }
}
