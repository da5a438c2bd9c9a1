//! The trust policy a quorum approved and this store applied, as the substituter and the node use it.

use anyhow::Context as _;
use guixie_govern::TrustPolicy;
use guixie_node::policy::Policy;
use guixie_store::LocalStore;

use super::journal::Journal;

/// A policy file's text (as `guixie node --policy` reads it) as a proposal carries it. It
/// must parse as a node's policy too: a quorum never signs one the node would refuse.
pub fn from_file(text: &str) -> anyhow::Result<TrustPolicy> {
    Policy::parse(text)?;
    let policy: TrustPolicy = serde_json::from_str(text).context("trust policy")?;
    policy.check()?;
    Ok(policy)
}

/// The node's policy for an approved one; refused (naming why) if the node cannot use it.
pub fn to_node(policy: &TrustPolicy) -> anyhow::Result<Policy> {
    let text = serde_json::to_string(policy).expect("policies serialise");
    Ok(Policy::parse(&text)?)
}

/// The trust policy this store's quorum approved and applied, if it has governance and one.
pub fn governed(store: &LocalStore) -> anyhow::Result<Option<Policy>> {
    let Some(instance) = Journal::read(store)? else {
        return Ok(None);
    };
    instance
        .trust_policy
        .as_ref()
        .map(|p| to_node(p).context("the trust policy this instance's quorum applied"))
        .transpose()
}
