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
    /// More evidence about the run (a traced run's report), referenced by hash.
    pub evidence: &'a [EvidenceRef],
}

/// Signs a statement about each of `builds` at `time` (seconds since the epoch, from the
/// caller's clock) and appends them to `log` in one durable batch; returns the index of the
/// first.
pub fn attest_builds<S>(
    store: &S,
    key: &SecretKey,
    builds: &[BuildRecord<'_>],
    time: i64,
    log: &mut FileLog,
) -> Result<u64, EvidenceError>
where
    S: PathInfoQuery + NarSource + ?Sized,
{
    let entries: Vec<String> = statements_for(store, key, builds, time)?
        .iter()
        .map(Envelope::to_json)
        .collect();
    Ok(log.append_batch(&entries)?)
}

/// The signed statements, without appending them anywhere. Input derivations are read and
/// hashed once for all of `builds`.
pub fn statements_for<S>(
    store: &S,
    key: &SecretKey,
    builds: &[BuildRecord<'_>],
    time: i64,
) -> Result<Vec<Envelope>, EvidenceError>
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
    let mut envelopes = Vec::with_capacity(builds.len());
    for build in builds {
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
                    blake3: Some(blake3_root(store, p, &info)?),
                    references: Some(info.references.iter().map(|r| r.to_string()).collect()),
                },
            );
        }
        let statement = Statement::build(BuildPredicate {
            derivation: DerivationRef {
                path: sd.display(build.drv_path),
                hash_modulo: hash_modulo.to_hex(),
            },
            outputs,
            builder: key.public().to_string(),
            time,
            sandbox: "full".into(),
            evidence: std::iter::once(EvidenceRef {
                kind: "build-log".into(),
                sha256: hash_file(build.log_file)?.to_hex(),
            })
            .chain(build.evidence.iter().cloned())
            .collect(),
        })?;
        envelopes.push(Envelope::sign(&statement, key));
    }
    Ok(envelopes)
}

/// The BLAKE3 root of a path's NAR, read once from the store. The same bytes are hashed with
/// SHA-256 and must give the recorded NAR hash: a statement never pairs a root with a NAR
/// hash of other bytes.
fn blake3_root<S>(
    store: &S,
    path: &StorePath,
    info: &guixie_store::PathInfo,
) -> Result<String, EvidenceError>
where
    S: PathInfoQuery + NarSource + ?Sized,
{
    struct Both {
        sha: guixie_formats::hash::Hasher,
        blake: blake3::Hasher,
        len: u64,
    }
    impl std::io::Write for Both {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.sha.update(buf);
            self.blake.update(buf);
            self.len += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut both = Both {
        sha: guixie_formats::hash::Hasher::new(HashAlgo::Sha256),
        blake: blake3::Hasher::new(),
        len: 0,
    };
    store.write_nar(path, &mut both)?;
    if both.sha.finish() != info.nar_hash || both.len != info.nar_size {
        return Err(EvidenceError::NotValid(format!(
            "{}: its NAR no longer matches the recorded hash and size",
            store.store_dir().display(path)
        )));
    }
    Ok(format!("blake3:{}", both.blake.finalize().to_hex()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use guixie_formats::derivation::Output;
    use guixie_formats::nar::NarEncoder;
    use guixie_formats::StoreDir;
    use guixie_store::{MemoryStore, NarSink, PathInfo};

    /// The NAR of a regular file, and the info to import it as `path`.
    fn file_nar(path: StorePath, contents: &[u8]) -> (PathInfo, Vec<u8>) {
        let mut nar = Vec::new();
        let mut enc = NarEncoder::new(&mut nar).unwrap();
        enc.begin_file(false, contents.len() as u64).unwrap();
        std::io::Write::write_all(enc.contents_mut(), contents).unwrap();
        enc.end_file(contents.len() as u64).unwrap();
        let (nar_hash, nar_size) = guixie_formats::nar::hash_regular_file(contents, false);
        let info = PathInfo {
            path,
            nar_hash,
            nar_size,
            references: Default::default(),
            deriver: None,
            signatures: vec![],
            registration_time: 0,
            ca: None,
        };
        (info, nar)
    }

    #[test]
    fn a_build_in_any_store_is_attested_with_its_nar_hashes() {
        let sd = StoreDir::gnu();
        let store = MemoryStore::new(
            sd.clone(),
            std::sync::Arc::new(guixie_env::FakeClock::new(0)),
        );
        let mut drv = Derivation::default();
        drv.env.insert(b"name".to_vec(), b"x".to_vec());
        drv.outputs.insert("out".into(), Output::default());
        drv.fill_output_paths(&sd, InputCollision::Merge, &mut |_| unreachable!())
            .unwrap();
        let (drv_path, aterm) = drv.drv_path_and_aterm(&sd, "x").unwrap();
        let outputs = drv.output_paths().unwrap();
        for (path, contents) in [
            (drv_path.clone(), aterm),
            (outputs["out"].clone(), b"built".to_vec()),
        ] {
            let (info, nar) = file_nar(path, &contents);
            store.import_nar(&info, &mut nar.as_slice()).unwrap();
        }
        let key = SecretKey::from_seed("builder", &[9; 32]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let record = BuildRecord {
            drv_path: &drv_path,
            derivation: &drv,
            outputs: &outputs,
            log_file: &dir.path().join("no-log"),
            evidence: &[],
        };
        let env = statements_for(&store, &key, std::slice::from_ref(&record), 1_750_000_000)
            .unwrap()
            .remove(0);
        env.verify(&[key.public()], 1).unwrap();
        let st = env.statement().unwrap();
        let out = &st.predicate.outputs["out"];
        let (expected, size) = guixie_formats::nar::hash_regular_file(b"built", false);
        assert_eq!(out.nar_hash, expected.to_typed_string(Encoding::Nix32));
        assert_eq!(out.nar_size, size);
        // The BLAKE3 root peers fetch it by is of the same NAR bytes.
        let (_, nar) = file_nar(outputs["out"].clone(), b"built");
        assert_eq!(
            out.blake3.as_deref(),
            Some(format!("blake3:{}", blake3::hash(&nar).to_hex()).as_str())
        );
        assert_eq!(out.references.as_deref(), Some(&[][..]));
        assert_eq!(st.predicate.derivation.path, sd.display(&drv_path));
        assert_eq!(st.predicate.time, 1_750_000_000);
        // An output the store does not hold is not attested.
        let mut missing = outputs.clone();
        missing.insert("dev".into(), drv_path.clone());
        missing.insert(
            "doc".into(),
            StorePath::from_base_name("00000000000000000000000000000000-doc").unwrap(),
        );
        let record = BuildRecord {
            outputs: &missing,
            ..record
        };
        assert!(matches!(
            statements_for(&store, &key, &[record], 0),
            Err(EvidenceError::NotValid(_))
        ));
    }
}
