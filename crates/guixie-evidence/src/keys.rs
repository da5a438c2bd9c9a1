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
    SecretKey::parse(&text).map_err(|e| key_err(&path, e))
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
    SignerKey::parse(&text).map_err(|e| key_err(&path, e))
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

/// Secret key files are a line of text; anything longer is not one.
const MAX_SECRET_FILE: u64 = 4096;

/// A secret file's text. Refused unless it is a regular file (not a link), owned by us, and
/// private (no access for group or others); read from one descriptor, at most 4 KiB.
pub fn read_secret_file(path: &Path) -> Result<String, EvidenceError> {
    use std::io::Read;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| key_err(path, format!("cannot open it without following links: {e}")))?;
    let meta = f.metadata().map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(key_err(path, "is not a regular file"));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(key_err(
            path,
            format!("is owned by uid {}, not by us (uid {me})", meta.uid()),
        ));
    }
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
    let mut text = String::new();
    f.take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut text)
        .map_err(io_err(path))?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(key_err(path, "is larger than a key file can be"));
    }
    Ok(text.trim().to_owned())
}

/// The text of the secret file at `path`, made with `make` if there is none. Whatever wins
/// a race to create it, what is returned is what the file holds.
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
    static UNIQUE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    write_secret_file(&temp, &text)?;
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {}
        // Another process made it first: theirs is the key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    read_secret_file(path)
}

/// Writes a secret file readable only by its owner, durably; refuses to overwrite one.
pub fn write_secret_file(path: &Path, text: &str) -> Result<(), EvidenceError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn sync_dir(dir: &Path) -> Result<(), EvidenceError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
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
    fn a_key_reached_through_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.key");
        new_secret_key(&real, "k", &SeededRandomness::new(5)).unwrap();
        assert!(read_secret_file(&real).is_ok());
        let link = dir.path().join("builder.key");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let Err(e) = builder_key(dir.path(), "k", &SeededRandomness::new(6)) else {
            panic!("a key behind a symlink was used")
        };
        assert!(e.to_string().contains("without following links"), "{e}");
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
