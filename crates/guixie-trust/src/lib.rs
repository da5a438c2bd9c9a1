//! Whether to accept a binary: the k-of-n rule ([`rule`]), a pure function of a policy and
//! the votes; and where the votes come from ([`votes`]): attestations signed by a configured
//! builder, included in a checkpoint of that builder's log that the caller's log view has
//! accepted. See `docs/trust.md`.

pub mod rule;
pub mod votes;

pub use rule::{decide, Case, Decision, PolicyError, Verdict, Vote};
