//! Signing keys in files. A new key's secret bytes come from the injected randomness; the file
//! is written whole under a temporary name and linked into place (of two processes making it
//! at once, one file wins and both use it), mode 0600. A secret file that others can read or
//! write is refused, as ssh refuses such a private key.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use guixie_env::Randomness;
use guixie_formats::signing::SecretKey;
use guixie_log::note::{SignerKey, ALG_COSIGNATURE_V1, ALG_ED25519};

use crate::{io_err, EvidenceError};

fn key_err(path: &Path, message: impl std::fmt::Display) -> EvidenceError {
    EvidenceError::Key {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// The builder's key (Nix's `name:base64` format), `<state>/builder.key`, made on first use.
pub fn builder_key(
    state_dir: &Path,
    name: &str,
    rng: &dyn Randomness,
) -> Result<SecretKey, EvidenceError> {
    let path = state_dir.join("builder.key");
    let text = read_or_create_secret(&path, || {
        SecretKey::from_seed(name, &rng.bytes32())
            .map(|k| k.to_string())
            .map_err(|e| key_err(&path, e))
    })?;
    SecretKey::parse(text.trim()).map_err(|e| key_err(&path, e))
}

/// The log's note-signing key, `<log>/log.key`, named for the log's origin; made on first use.
pub fn log_key(
    log_dir: &Path,
    origin: &str,
    rng: &dyn Randomness,
) -> Result<SignerKey, EvidenceError> {
    std::fs::create_dir_all(log_dir).map_err(io_err(log_dir))?;
    let path = log_dir.join("log.key");
    let text = read_or_create_secret(&path, || {
        SignerKey::from_seed(origin, ALG_ED25519, &rng.bytes32())
            .map(|k| k.to_string())
            .map_err(|e| key_err(&path, e))
    })?;
    SignerKey::parse(text.trim()).map_err(|e| key_err(&path, e))
}

/// A new witness key (`tlog-cosignature/v1`), written to `path`, which must not exist.
pub fn new_witness_key(
    path: &Path,
    name: &str,
    rng: &dyn Randomness,
) -> Result<SignerKey, EvidenceError> {
    let key = SignerKey::from_seed(name, ALG_COSIGNATURE_V1, &rng.bytes32())
        .map_err(|e| key_err(path, e))?;
    write_secret_file(path, &key.to_string())?;
    Ok(key)
}

/// A new Nix-style signing key, written to `path`, which must not exist.
pub fn new_secret_key(
    path: &Path,
    name: &str,
    rng: &dyn Randomness,
) -> Result<SecretKey, EvidenceError> {
    let key = SecretKey::from_seed(name, &rng.bytes32()).map_err(|e| key_err(path, e))?;
    write_secret_file(path, &key.to_string())?;
    Ok(key)
}

/// A secret file's text, refused if anyone but its owner may read or write it.
pub fn read_secret_file(path: &Path) -> Result<String, EvidenceError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if meta.mode() & 0o077 != 0 {
        return Err(key_err(
            path,
            format!(
                "is accessible to others (mode {:04o}); make it private: chmod 600 {}",
                meta.mode() & 0o7777,
                path.display()
            ),
        ));
    }
    std::fs::read_to_string(path).map_err(io_err(path))
}

/// The text of the secret file at `path`, made with `make` if there is none.
pub fn read_or_create_secret(
    path: &Path,
    make: impl FnOnce() -> Result<String, EvidenceError>,
) -> Result<String, EvidenceError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => return read_secret_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    let text = make()?;
    let temp = path.with_extension(format!("{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    write_secret_file(&temp, &text)?;
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_secret_file(path),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Writes a secret file readable only by its owner; refuses to overwrite one.
pub fn write_secret_file(path: &Path, text: &str) -> Result<(), EvidenceError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use guixie_env::SeededRandomness;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_made_once_privately_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let rng = SeededRandomness::new(1);
        let a = builder_key(dir.path(), "b-1", &rng).unwrap();
        let mode = std::fs::metadata(dir.path().join("builder.key"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Loaded, not made again: another randomness gives the same key.
        let b = builder_key(dir.path(), "b-1", &SeededRandomness::new(2)).unwrap();
        assert_eq!(a.public(), b.public());
        // The same seed makes the same key in another store: keys come from the source.
        let other = tempfile::tempdir().unwrap();
        let c = builder_key(other.path(), "b-1", &SeededRandomness::new(1)).unwrap();
        assert_eq!(a.public(), c.public());
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rng = SeededRandomness::new(3);
        log_key(dir.path(), "example.org/log", &rng).unwrap();
        let path = dir.path().join("log.key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let Err(e) = log_key(dir.path(), "example.org/log", &rng) else {
            panic!("a world-readable key was used")
        };
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }

    #[test]
    fn new_keys_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.key");
        let rng = SeededRandomness::new(4);
        new_witness_key(&path, "witness.example", &rng).unwrap();
        assert!(new_witness_key(&path, "witness.example", &rng).is_err());
    }
}
