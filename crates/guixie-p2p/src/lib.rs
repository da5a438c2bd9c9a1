//! A running node. [`guixie_node::Node`] decides what to say and do; this crate carries it
//! out: libp2p for the wire ([`codec`], [`swarm`]), the local store and log for what the node
//! serves ([`local`]), a file per download that only verified bytes reach, imports through the
//! store's `NarSink` (which checks the SHA-256 NAR hash again), and the record of what the
//! quorum accepted, which is all the node's loopback binary cache shows ([`accepted`]).

pub mod accepted;
pub mod codec;
pub mod incoming;
pub mod local;
pub mod survey;
pub mod swarm;
pub mod transport;
pub mod witness;

pub use libp2p::Multiaddr;
pub use swarm::{private_node_dir, run, NodeOptions, Started};
pub use transport::P2pError;
