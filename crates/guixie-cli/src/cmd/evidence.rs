//! Wiring between the builder and the evidence layer: every output `guixie build` registers
//! is stated in a signed attestation appended to the local transparency log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use guixie_attest::{BuildPredicate, DerivationRef, Envelope, EvidenceRef, OutputRef, Statement};
use guixie_formats::derivation::{Derivation, DerivationError, InputCollision, ModuloHasher};
use guixie_formats::hash::{Hash, HashAlgo};
use guixie_formats::signing::SecretKey;
use guixie_formats::{Encoding, StorePath};
use guixie_log::FileLog;
use guixie_store::{LocalStore, Store};

/// The local log's directory and the builder's signing key (made on first use).
pub fn log_dir(store: &LocalStore) -> PathBuf {
    store.state_dir().join("log")
}

pub fn builder_key(store: &LocalStore) -> anyhow::Result<SecretKey> {
    let path = store.state_dir().join("builder.key");
    let text = super::read_or_create_secret(&path, || {
        let name =
            std::env::var("GUIXIE_BUILDER_NAME").unwrap_or_else(|_| "guixie-builder-1".into());
        Ok(SecretKey::generate(&name)?.to_string())
    })?;
    SecretKey::parse(&text).with_context(|| path.display().to_string())
}

fn load_drv(store: &LocalStore, path: &str) -> Result<Derivation, DerivationError> {
    let err = |message: String| DerivationError::Input {
        path: path.to_owned(),
        message,
    };
    let p = store
        .store_dir()
        .parse_path(path)
        .map_err(|e| err(e.to_string()))?;
    let bytes = std::fs::read(store.real_path(&p)).map_err(|e| err(e.to_string()))?;
    Derivation::parse(&bytes).map_err(|e| err(e.to_string()))
}

/// Signs a statement about the outputs of `drv_path` and appends it to the local log.
pub fn attest(
    store: &LocalStore,
    key: &SecretKey,
    drv_path: &StorePath,
    outputs: &BTreeMap<String, StorePath>,
    log_file: &Path,
    now: i64,
) -> anyhow::Result<u64> {
    let sd = store.store_dir();
    let drv = load_drv(store, &sd.display(drv_path))?;
    let mut hasher = ModuloHasher::new(|p: &str| load_drv(store, p), InputCollision::default());
    let hash_modulo = hasher.hash_drv(&drv, false)?;
    let mut outs = BTreeMap::new();
    for (name, p) in outputs {
        let info = store
            .path_info(p)?
            .with_context(|| format!("{} is not valid", sd.display(p)))?;
        outs.insert(
            name.clone(),
            OutputRef {
                path: sd.display(p),
                nar_hash: info.nar_hash.to_typed_string(Encoding::Nix32),
                nar_size: info.nar_size,
            },
        );
    }
    let log_bytes = std::fs::read(log_file).unwrap_or_default();
    let statement = Statement::build(BuildPredicate {
        derivation: DerivationRef {
            path: sd.display(drv_path),
            hash_modulo: hash_modulo.to_hex(),
        },
        outputs: outs,
        builder: key.public().to_string(),
        time: now,
        sandbox: "full".into(),
        evidence: vec![EvidenceRef {
            kind: "build-log".into(),
            sha256: Hash::digest_of(HashAlgo::Sha256, &log_bytes).to_hex(),
        }],
    })?;
    let envelope = Envelope::sign(&statement, key);
    let mut log = FileLog::open(&log_dir(store))?;
    Ok(log.append_batch(&[envelope.to_json()])?)
}
