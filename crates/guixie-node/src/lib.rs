//! guixie nodes talk to each other in request/response pairs ([`message`]); what a node does
//! with them is [`node::Node`], a state machine with no I/O of its own: the transport feeds it
//! connections, requests, responses and the time from the injected clock, and carries out the
//! [`node::Output`]s it returns. Its local data (its own log, the NARs it can serve) sits behind
//! [`node::Local`]. libp2p is one transport; the simulator is another.

pub mod message;
pub mod node;
pub mod policy;

pub use message::{decode_request, decode_response, encode, MessageError, Request, Response};
pub use node::{Local, Node, Output};
pub use policy::Policy;
