//! From an accepted NAR to a valid path. When the fetch starts, a download file is created
//! and a thread stages the import from it as its verified prefix grows ([`Incoming`]); when
//! both the download is complete and the staging done, the path is registered once its
//! references are valid (fetched the same way first), and whoever waited is answered.

use std::collections::BTreeSet;

use guixie_formats::hash::Hash;
use guixie_formats::StorePath;
use guixie_node::node::Accepted;
use guixie_store::{PathInfo, PathInfoQuery, StagedImport};

use super::Driver;
use crate::incoming::Incoming;

impl Driver {
    /// Whether the path was fetched and its import is under way (staging, or waiting for its
    /// references): asked for again meanwhile, it must not be fetched again.
    pub(super) fn importing(&self, hash_part: &str) -> bool {
        self.parked.contains_key(hash_part) || self.fetched.contains_key(hash_part)
    }

    /// What the store is to register for an accepted output.
    fn path_info(&self, output: &Accepted) -> Result<PathInfo, String> {
        let path = self
            .sd
            .parse_path(&output.path)
            .map_err(|e| e.to_string())?;
        if !output.path.contains(&format!("/{}", path.hash_part())) {
            return Err("the attested path is malformed".into());
        }
        Ok(PathInfo {
            path,
            nar_hash: Hash::parse(&output.nar_hash, None).map_err(|e| e.to_string())?,
            nar_size: output.nar_size,
            references: output
                .references
                .iter()
                .map(|r| StorePath::from_base_name(r).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
            deriver: None,
            signatures: vec![],
            registration_time: self.clock.unix_seconds(),
            ca: None,
        })
    }

    pub(super) fn on_fetching(&mut self, hash_part: &str, output: Accepted) {
        let started = self.path_info(&output).and_then(|info| {
            let id = self.next_download;
            self.next_download += 1;
            let tx = self.staged_tx.clone();
            let h = hash_part.to_owned();
            let file = self.incoming_dir.join(format!("{hash_part}.nar"));
            Incoming::start(self.store.clone(), &file, info, move |result| {
                let _ = tx.send((h, id, result));
            })
            .map(|incoming| (id, incoming))
            .map_err(|e| format!("{}: {e}", file.display()))
        });
        self.staged.remove(hash_part);
        self.fetched.remove(hash_part);
        match started {
            Ok(download) => {
                self.downloads.insert(hash_part.to_owned(), download);
            }
            // The fetch goes on; its end finds no staged import and says why.
            Err(e) => {
                eprintln!("guixie node: {hash_part}: not staged: {e}");
                self.staged.insert(hash_part.to_owned(), Err(e));
            }
        }
    }

    pub(super) fn on_write(&mut self, hash_part: &str, offset: u64, data: &[u8]) {
        if let Some((_, incoming)) = self.downloads.get_mut(hash_part) {
            if let Err(e) = incoming.write(offset, data) {
                eprintln!("guixie node: {hash_part}: writing the download: {e}");
                let _ = std::fs::remove_file(incoming.path());
                // Dropped: the staging thread stops with an error.
                self.downloads.remove(hash_part);
                self.staged.insert(
                    hash_part.to_owned(),
                    Err(format!("writing the download: {e}")),
                );
            }
        }
    }

    pub(super) fn on_failed(&mut self, hash_part: &str) {
        if let Some((_, incoming)) = self.downloads.remove(hash_part) {
            let _ = std::fs::remove_file(incoming.path());
        }
        self.staged.remove(hash_part);
        self.fetched.remove(hash_part);
        self.settle(hash_part, false);
    }

    pub(super) fn on_fetched(&mut self, hash_part: &str, output: Accepted) {
        match self.staged.remove(hash_part) {
            Some(result) => self.finish(hash_part, output, result),
            None => {
                self.fetched.insert(hash_part.to_owned(), output);
            }
        }
    }

    /// A staging thread is done; an outcome for a download given up since is dropped.
    pub(super) fn on_staged(
        &mut self,
        hash_part: &str,
        download: u64,
        result: Result<StagedImport, String>,
    ) {
        if self.downloads.get(hash_part).map(|(id, _)| *id) != Some(download) {
            return;
        }
        match self.fetched.remove(hash_part) {
            Some(output) => self.finish(hash_part, output, result),
            None => {
                self.staged.insert(hash_part.to_owned(), result);
            }
        }
    }

    /// Downloaded and staged: registered now, or once its references are.
    fn finish(&mut self, hash_part: &str, output: Accepted, staged: Result<StagedImport, String>) {
        let file = self
            .downloads
            .remove(hash_part)
            .map(|(_, i)| i.path().to_owned());
        let checked = staged.and_then(|staged| self.same_as_held(&output).map(|()| staged));
        let staged = match checked {
            Ok(staged) => staged,
            Err(e) => {
                eprintln!("guixie node: {}: not imported: {e}", output.path);
                if let Some(f) = file {
                    let _ = std::fs::remove_file(f);
                }
                return self.settle(hash_part, false);
            }
        };
        let missing: BTreeSet<String> = output
            .references
            .iter()
            .filter(|r| !r.starts_with(hash_part))
            .filter(|r| {
                StorePath::from_base_name(r)
                    .map(|p| !self.store.is_valid(&p).unwrap_or(false))
                    .unwrap_or(true)
            })
            .cloned()
            .collect();
        if missing.is_empty() {
            return self.register(hash_part, output, staged);
        }
        let now = self.now_ms();
        for r in &missing {
            if let Some((h, _)) = r.split_once('-') {
                if !self.importing(h) {
                    self.node.want(h, now);
                }
            }
        }
        self.parked
            .insert(hash_part.to_owned(), (output, staged, missing));
    }

    /// A path this store holds already (built here, say) is what the quorum accepted only if
    /// it is the same: the store would not read the NAR again.
    fn same_as_held(&self, output: &Accepted) -> Result<(), String> {
        let info = self.path_info(output)?;
        match self
            .store
            .path_info(&info.path)
            .map_err(|e| e.to_string())?
        {
            Some(held) if held.nar_hash != info.nar_hash || held.references != info.references => {
                Err(format!(
                    "this store holds another {} than the one accepted",
                    output.path
                ))
            }
            _ => Ok(()),
        }
    }

    fn register(&mut self, hash_part: &str, output: Accepted, staged: StagedImport) {
        let path = staged.info().path.clone();
        let file = self.incoming_dir.join(format!("{hash_part}.nar"));
        match self.store.register_staged(staged) {
            Ok(()) => {
                eprintln!("guixie node: {} accepted and imported", output.path);
                self.node
                    .local()
                    .add_fetched(output.blob.root, path.clone(), &file);
                self.accepted
                    .write()
                    .expect("not poisoned")
                    .insert(path.clone());
                self.accepted_set
                    .paths
                    .insert(path.to_string(), output.attesting.clone());
                // Saved at the next tick: losing it in a crash only means fetching again.
                self.unsaved = true;
                self.settle(hash_part, true);
            }
            Err(e) => {
                eprintln!("guixie node: {}: not imported: {e}", output.path);
                let _ = std::fs::remove_file(&file);
                self.settle(hash_part, false);
            }
        }
    }

    /// Answers whoever waited for `hash_part`, then registers what waited for it.
    pub(super) fn settle(&mut self, hash_part: &str, ok: bool) {
        for w in self.waiters.remove(hash_part).unwrap_or_default() {
            let _ = w.send(ok);
        }
        let waiting: Vec<String> = self
            .parked
            .iter()
            .filter(|(_, (_, _, missing))| missing.iter().any(|r| r.starts_with(hash_part)))
            .map(|(h, _)| h.clone())
            .collect();
        for h in waiting {
            let Some((output, staged, mut missing)) = self.parked.remove(&h) else {
                continue;
            };
            if !ok {
                eprintln!("guixie node: {}: a reference could not be had", output.path);
                let _ = std::fs::remove_file(self.incoming_dir.join(format!("{h}.nar")));
                self.settle(&h, false);
                continue;
            }
            missing.retain(|r| !r.starts_with(hash_part));
            if missing.is_empty() {
                self.register(&h, output, staged);
            } else {
                self.parked.insert(h, (output, staged, missing));
            }
        }
    }
}
