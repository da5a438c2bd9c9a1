//! Evidence for a vote: the voter builds the proposed source in its own sandbox, from the
//! source's own recipe (`guixie.scm` at its root, as Guix's `build-self` lets the new source
//! decide how it is built), and reports the NAR hash it got with the attestation it logged.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use guixie_formats::hash::Encoding;
use guixie_store::{LocalStore, PathInfoQuery};

use crate::cmd::build::{BuildArgs, BuildFlags};
use crate::Context;

pub struct Rebuilt {
    /// `sha256:<nix32>` of the source tree's NAR (of the copy that was built).
    pub source: String,
    /// The output, a logical store path.
    pub output: String,
    /// `sha256:<nix32>` of its NAR.
    pub nar_hash: String,
    /// SHA-256 (hex) of the attestation envelope in this store's log, and its index.
    pub attestation: String,
    pub log_index: u64,
}

/// Builds `source` (whose NAR hash must be `expected_source`, when given) in this store's
/// sandbox. An output already in the store is rebuilt and compared bit for bit, so the
/// answer is always this machine's own build.
pub fn rebuild(
    ctx: &Context,
    store: &Arc<LocalStore>,
    source: &Path,
    expected_source: Option<&str>,
    flags: &BuildFlags,
) -> anyhow::Result<Rebuilt> {
    // The recipe is evaluated from a copy in the store (immutable, named by the hash that
    // was checked), with no load path and no extensions, reading no file outside that copy:
    // a proposal's recipe is untrusted code.
    let copy = store
        .add_path(source, "guixie-proposed-source", false)
        .with_context(|| format!("copying {} into the store", source.display()))?;
    let hash = copy.nar_hash.to_typed_string(Encoding::Nix32);
    if let Some(expected) = expected_source {
        if hash != expected {
            bail!(
                "{} has NAR hash {hash}, but the proposal names the source {expected}: this is not the source proposed",
                source.display()
            );
        }
    }
    let tree = store.real_path(&copy.path);
    let package = crate::cmd::self_build::evaluate_recipe(ctx, store, &tree, source)?;
    let output = package
        .outputs
        .get("out")
        .with_context(|| {
            format!(
                "{}: the package has no `out' output",
                source.join(crate::cmd::self_build::RECIPE).display()
            )
        })?
        .clone();
    let out_path = store.parse_user_path(&output)?;
    let args = BuildArgs {
        targets: vec![package.drv_path.clone()],
        attr: None,
        check: false,
        trace: None,
        quiet: true,
        flags: flags.for_evidence(),
    };
    if store.is_valid(&out_path)? {
        for r in crate::cmd::build::check_targets(ctx, store, &args)? {
            if !r.differences.is_empty() {
                bail!(
                    "rebuilding {} here gave a different output than the store's copy ({}): it is not reproducible, so no vote can vouch for it",
                    output,
                    r.differences.join(", ")
                );
            }
        }
    } else {
        crate::cmd::build::build_targets(ctx, store, &args)?;
    }
    let info = store
        .path_info(&out_path)?
        .with_context(|| format!("{output} is not valid after its build"))?;
    let nar_hash = info.nar_hash.to_typed_string(Encoding::Nix32);
    let (log_index, entry) = own_attestation(ctx, store, &output, &nar_hash)?;
    Ok(Rebuilt {
        source: hash,
        nar_hash,
        attestation: guixie_govern::sha256_hex(&entry),
        log_index,
        output,
    })
}

/// The newest entry of this store's log that is an attestation, signed by this store's
/// builder key, of `output` with `nar_hash`.
fn own_attestation(
    ctx: &Context,
    store: &LocalStore,
    output: &str,
    nar_hash: &str,
) -> anyhow::Result<(u64, Vec<u8>)> {
    let key = crate::cmd::evidence::builder_key(ctx, store)?.public();
    let log = guixie_log::FileLog::open(&crate::cmd::evidence::log_dir(store))?;
    let hash_part = output
        .rsplit('/')
        .next()
        .and_then(|b| b.split_once('-'))
        .map(|(h, _)| h)
        .unwrap_or_default();
    for index in guixie_evidence::entries_about(&log, hash_part)?
        .into_iter()
        .rev()
    {
        let entry = log.entry(index)?;
        let Ok(envelope) = guixie_attest::Envelope::parse(&entry) else {
            continue;
        };
        let Ok((statement, _)) = envelope.verify(std::slice::from_ref(&key), 1) else {
            continue;
        };
        let attests = statement
            .predicate
            .outputs
            .values()
            .any(|o| o.path == output && o.nar_hash == nar_hash);
        if attests {
            return Ok((index, entry));
        }
    }
    bail!("this store's log has no attestation by its builder key {} of {output} with NAR hash {nar_hash}", key.name())
}
