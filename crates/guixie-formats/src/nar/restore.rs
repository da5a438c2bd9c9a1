use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::reader::{parse_to_end, NarError, NarHandler};
use super::COPY_BUFFER;

#[derive(Debug, Error)]
pub enum RestoreError {
    #[error("restore target {0} already exists")]
    TargetExists(PathBuf),
    #[error(transparent)]
    Nar(#[from] NarError),
}

/// Restores the archive read from `r` to `dest`, which must not exist. Every node is created
/// fresh (`O_EXCL`, no symlink followed) below `dest`; on any error whatever was written is
/// removed again. Returns the archive's size.
pub fn restore(r: impl Read, dest: &Path) -> Result<u64, RestoreError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(RestoreError::TargetExists(dest.to_owned()));
    }
    let mut restorer = Restorer {
        dest,
        buf: vec![0u8; COPY_BUFFER],
    };
    match parse_to_end(r, &mut restorer) {
        Ok(n) => Ok(n),
        Err(e) => {
            remove_tree(dest);
            Err(e.into())
        }
    }
}

/// Removes a file, symlink or directory tree, making read-only directories writable first.
pub(crate) fn remove_tree(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                remove_tree(&e.path());
            }
        }
        let _ = fs::remove_dir(path);
    } else {
        let _ = fs::remove_file(path);
    }
}

struct Restorer<'a> {
    dest: &'a Path,
    buf: Vec<u8>,
}

impl Restorer<'_> {
    fn target(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.dest.to_owned()
        } else {
            self.dest.join(std::ffi::OsStr::from_bytes(rel))
        }
    }
}

impl NarHandler for Restorer<'_> {
    fn directory(&mut self, path: &[u8]) -> io::Result<()> {
        let t = self.target(path);
        fs::create_dir(&t).map_err(|e| with_path(e, &t))
    }

    fn symlink(&mut self, path: &[u8], target: &[u8]) -> io::Result<()> {
        let t = self.target(path);
        symlink(std::ffi::OsStr::from_bytes(target), &t).map_err(|e| with_path(e, &t))
    }

    fn file(
        &mut self,
        path: &[u8],
        executable: bool,
        size: u64,
        contents: &mut dyn Read,
    ) -> io::Result<()> {
        let t = self.target(path);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(if executable { 0o755 } else { 0o644 })
            .open(&t)
            .map_err(|e| with_path(e, &t))?;
        let mut remaining = size;
        while remaining > 0 {
            let want = remaining.min(self.buf.len() as u64) as usize;
            let n = contents.read(&mut self.buf[..want])?;
            f.write_all(&self.buf[..n]).map_err(|e| with_path(e, &t))?;
            remaining -= n as u64;
        }
        Ok(())
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
