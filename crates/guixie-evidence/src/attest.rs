//! Attesting a build: which derivation (by path and `hashDerivationModulo`) produced which
//! outputs (by NAR hash), signed by the builder and appended to the local log.

use std::collections::BTreeMap;
use std::path::Path;

use guixie_attest::{BuildPredicate, DerivationRef, Envelope, EvidenceRef, OutputRef, Statement};
use guixie_formats::derivation::{Derivation, InputCollision, ModuloHasher};
use guixie_formats::hash::{Hash, HashAlgo};
use guixie_formats::signing::SecretKey;
use guixie_formats::{Encoding, StorePath};
use guixie_log::FileLog;
use guixie_store::{NarSource, PathInfoQuery};

use crate::{io_err, EvidenceError};

/// What a build produced, as the builder reports it.
pub struct BuildRecord<'a> {
    pub drv_path: &'a StorePath,
    pub derivation: &'a Derivation,
    pub outputs: &'a BTreeMap<String, StorePath>,
    /// The build's log, hashed into the statement.
    pub log_file: &'a Path,
}

/// Signs a statement about `build` at `time` (seconds since the epoch, from the caller's
/// clock) and appends it to `log`; returns the entry's index.
pub fn attest_build<S>(
    store: &S,
    key: &SecretKey,
    build: &BuildRecord<'_>,
    time: i64,
    log: &mut FileLog,
) -> Result<u64, EvidenceError>
where
    S: PathInfoQuery + NarSource + ?Sized,
{
    let envelope = statement_for(store, key, build, time)?;
    Ok(log.append_batch(&[envelope.to_json()])?)
}

/// The signed statement, without appending it anywhere.
pub fn statement_for<S>(
    store: &S,
    key: &SecretKey,
    build: &BuildRecord<'_>,
    time: i64,
) -> Result<Envelope, EvidenceError>
where
    S: PathInfoQuery + NarSource + ?Sized,
{
    let sd = store.store_dir().clone();
    let mut hasher = ModuloHasher::new(
        sd.clone(),
        |p: &StorePath| {
            guixie_store::read_derivation(store, p).map_err(|e| {
                guixie_formats::derivation::DerivationError::Input {
                    path: sd.display(p),
                    message: e.to_string(),
                }
            })
        },
        InputCollision::default(),
    );
    let hash_modulo = hasher.hash_drv(build.derivation, false)?;
    let mut outputs = BTreeMap::new();
    for (name, p) in build.outputs {
        let info = store
            .path_info(p)?
            .ok_or_else(|| EvidenceError::NotValid(sd.display(p)))?;
        outputs.insert(
            name.clone(),
            OutputRef {
                path: sd.display(p),
                nar_hash: info.nar_hash.to_typed_string(Encoding::Nix32),
                nar_size: info.nar_size,
            },
        );
    }
    let log_hash = hash_file(build.log_file)?;
    let statement = Statement::build(BuildPredicate {
        derivation: DerivationRef {
            path: sd.display(build.drv_path),
            hash_modulo: hash_modulo.to_hex(),
        },
        outputs,
        builder: key.public().to_string(),
        time,
        sandbox: "full".into(),
        evidence: vec![EvidenceRef {
            kind: "build-log".into(),
            sha256: log_hash.to_hex(),
        }],
    })?;
    Ok(Envelope::sign(&statement, key))
}

/// The sha256 of a file, read in chunks (a log may be large); a missing log hashes as empty.
fn hash_file(path: &Path) -> Result<Hash, EvidenceError> {
    let mut hasher = guixie_formats::hash::Hasher::new(HashAlgo::Sha256);
    match std::fs::File::open(path) {
        Ok(mut f) => {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = std::io::Read::read(&mut f, &mut buf).map_err(io_err(path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    Ok(hasher.finish())
}
