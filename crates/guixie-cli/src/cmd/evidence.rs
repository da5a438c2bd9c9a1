//! Where the CLI finds its evidence: the store's log and builder key (see `guixie-evidence`).

use std::path::PathBuf;

use guixie_formats::signing::SecretKey;
use guixie_store::LocalStore;

use crate::Context;

pub fn log_dir(store: &LocalStore) -> PathBuf {
    guixie_evidence::log_dir(store.state_dir())
}

/// The builder's key, named `$GUIXIE_BUILDER_NAME` when it is made.
pub fn builder_key(ctx: &Context, store: &LocalStore) -> anyhow::Result<SecretKey> {
    let name = std::env::var("GUIXIE_BUILDER_NAME").unwrap_or_else(|_| "guixie-builder-1".into());
    Ok(guixie_evidence::keys::builder_key(
        store.state_dir(),
        &name,
        ctx.rng(),
    )?)
}
