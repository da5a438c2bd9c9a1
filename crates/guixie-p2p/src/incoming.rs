//! A download being written and imported at once. Verified ranges come in any order (from
//! several peers) and are written where they belong in `node/incoming/<hash>.nar`; a thread
//! of its own reads the file in order, as far as it is contiguous, and stages the import
//! through the store (restored, SHA-256 NAR hash and size checked, made durable). The import
//! then ends nearly with the download instead of after it, and never on the event loop. Only
//! verified bytes are ever written, so only they are read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use guixie_store::{LocalStore, PathInfo, StagedImport};

pub struct Incoming {
    file: Arc<File>,
    path: PathBuf,
    flow: Arc<Flow>,
    /// Verified ranges past the contiguous prefix: start → end.
    ahead: BTreeMap<u64, u64>,
    prefix: u64,
}

/// How far the file is written contiguously, and whether the download was given up.
#[derive(Default)]
struct Flow {
    state: Mutex<(u64, bool)>,
    more: Condvar,
}

impl Incoming {
    /// Creates the download file at `path` and starts staging `info`'s import from it;
    /// `staged` is called, on that thread, with the outcome.
    pub fn start(
        store: Arc<LocalStore>,
        path: &Path,
        info: PathInfo,
        staged: impl FnOnce(Result<StagedImport, String>) + Send + 'static,
    ) -> io::Result<Self> {
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(path)?,
        );
        let flow = Arc::new(Flow::default());
        let mut reader = InOrder {
            file: file.clone(),
            flow: flow.clone(),
            pos: 0,
        };
        std::thread::Builder::new()
            .name(format!("import {}", info.path))
            .spawn(move || {
                staged(
                    store
                        .stage_import(&info, &mut reader)
                        .map_err(|e| e.to_string()),
                )
            })?;
        Ok(Incoming {
            file,
            path: path.to_owned(),
            flow,
            ahead: BTreeMap::new(),
            prefix: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes verified bytes at `offset`, and lets the import read whatever became contiguous.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)?;
        self.ahead.insert(offset, offset + data.len() as u64);
        let before = self.prefix;
        while let Some(end) = self.ahead.remove(&self.prefix) {
            self.prefix = end;
        }
        if self.prefix != before {
            self.flow.state.lock().expect("not poisoned").0 = self.prefix;
            self.flow.more.notify_all();
        }
        Ok(())
    }
}

impl Drop for Incoming {
    /// A download given up: the import stops reading, with an error.
    fn drop(&mut self) {
        self.flow.state.lock().expect("not poisoned").1 = true;
        self.flow.more.notify_all();
    }
}

/// The download file, read in order, waiting for bytes not written yet.
struct InOrder {
    file: Arc<File>,
    flow: Arc<Flow>,
    pos: u64,
}

impl Read for InOrder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut state = self.flow.state.lock().expect("not poisoned");
        while state.0 <= self.pos && !state.1 {
            state = self.flow.more.wait(state).expect("not poisoned");
        }
        if state.0 <= self.pos {
            return Err(io::Error::other("the download was given up"));
        }
        let available = (state.0 - self.pos).min(buf.len() as u64) as usize;
        drop(state);
        let n = self.file.read_at(&mut buf[..available], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guixie_formats::StoreDir;
    use guixie_store::{NarSource, PathInfoQuery, StoreConfig};

    fn store(root: &Path) -> Arc<LocalStore> {
        let clock = Arc::new(guixie_env::FakeClock::new(1_700_000_000));
        Arc::new(LocalStore::open(StoreConfig::new(root, StoreDir::gnu(), clock)).unwrap())
    }

    /// A path of `from` with a file of `len` bytes, its info and NAR.
    fn nar_of(from: &LocalStore, dir: &Path, len: usize) -> (PathInfo, Vec<u8>) {
        let src = dir.join("src");
        std::fs::write(
            &src,
            (0..len).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
        let info = from.add_path(&src, "x", false).unwrap();
        let mut nar = Vec::new();
        from.write_nar(&info.path, &mut nar).unwrap();
        (info, nar)
    }

    #[test]
    fn ranges_in_any_order_are_imported_in_order_as_they_join() {
        let dir = tempfile::tempdir().unwrap();
        let (info, nar) = nar_of(&store(&dir.path().join("a")), dir.path(), 200_000);
        let b = store(&dir.path().join("b"));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut incoming =
            Incoming::start(b.clone(), &dir.path().join("dl"), info.clone(), move |r| {
                tx.send(r).unwrap()
            })
            .unwrap();
        // Backwards, in 16 KiB pieces: nothing can be read until the first piece comes.
        let pieces: Vec<(usize, &[u8])> = nar.chunks(16 << 10).enumerate().collect();
        for (i, piece) in pieces.iter().rev() {
            assert!(rx.try_recv().is_err(), "staged before byte 0 came");
            incoming.write((i * (16 << 10)) as u64, piece).unwrap();
        }
        let staged = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap()
            .unwrap();
        assert!(!b.is_valid(&info.path).unwrap());
        b.register_staged(staged).unwrap();
        assert_eq!(
            b.path_info(&info.path).unwrap().unwrap().nar_hash,
            info.nar_hash
        );
    }

    #[test]
    fn a_download_given_up_stops_its_import_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (info, nar) = nar_of(&store(&dir.path().join("a")), dir.path(), 100_000);
        let b = store(&dir.path().join("b"));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut incoming =
            Incoming::start(b.clone(), &dir.path().join("dl"), info.clone(), move |r| {
                tx.send(r).unwrap()
            })
            .unwrap();
        incoming.write(0, &nar[..50_000]).unwrap();
        drop(incoming);
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap()
            .err()
            .expect("refused");
        assert!(e.contains("given up"), "{e}");
        assert!(!b.is_valid(&info.path).unwrap());
        let leftovers = std::fs::read_dir(b.real_store_dir()).unwrap().count();
        assert_eq!(leftovers, 0);
    }
}
