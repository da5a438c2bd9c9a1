//! Advisory file locks (flock): released when the lock value is dropped or the process dies,
//! so a killed guixie never leaves a lock held.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{io_err, StoreError};

pub struct FileLock {
    _file: File,
}

impl FileLock {
    pub fn exclusive(path: &Path) -> Result<Self, StoreError> {
        let file = open(path)?;
        file.lock().map_err(io_err(path))?;
        Ok(FileLock { _file: file })
    }

    pub fn shared(path: &Path) -> Result<Self, StoreError> {
        let file = open(path)?;
        file.lock_shared().map_err(io_err(path))?;
        Ok(FileLock { _file: file })
    }
}

fn open(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err(path))
}
