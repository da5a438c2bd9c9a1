//! Text files (`.drv`s, `builtins.toFile` contents) added in batches: written and made
//! durable together, then renamed into place inside one database transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use guixie_formats::hash::HashAlgo;
use guixie_formats::nar;
use guixie_formats::{Hash, StorePath};

use super::LocalStore;
use crate::canonical::sync_dir;
use crate::error::{io_err, StoreError};
use crate::PathInfo;

/// One text file of a batch (a `.drv`, usually).
pub struct TextItem {
    pub name: String,
    pub contents: Vec<u8>,
    pub references: BTreeSet<StorePath>,
    /// For a `.drv`, the outputs it declares, recorded beside it (see `derivation_outputs`);
    /// set only by [`TextItem::derivation`], from the derivation the contents are written
    /// from, since builds trust the record.
    pub(crate) derivation_outputs: BTreeMap<String, StorePath>,
}

impl TextItem {
    /// A text file that is not a derivation.
    pub fn text(name: &str, contents: Vec<u8>, references: BTreeSet<StorePath>) -> Self {
        TextItem {
            name: name.to_owned(),
            contents,
            references,
            derivation_outputs: BTreeMap::new(),
        }
    }

    /// The outputs recorded with this item (a `.drv`'s), empty for other text.
    pub fn derivation_outputs(&self) -> &BTreeMap<String, StorePath> {
        &self.derivation_outputs
    }

    /// The `.drv` file of `drv` (whose output paths are filled in) and its store path.
    pub fn derivation(
        drv_name: &str,
        drv: &guixie_formats::derivation::Derivation,
        store_dir: &guixie_formats::StoreDir,
    ) -> Result<(StorePath, TextItem), guixie_formats::derivation::DerivationError> {
        let derivation_outputs = drv.output_paths()?;
        let (path, contents) = drv.drv_path_and_aterm(store_dir, drv_name)?;
        Ok((
            path,
            TextItem {
                name: format!("{drv_name}.drv"),
                contents,
                references: drv.references(),
                derivation_outputs,
            },
        ))
    }
}

impl LocalStore {
    /// Adds many text files at once. Paths already valid are skipped. This is for
    /// content-addressed text only: any two writers of a path write identical bytes, so instead
    /// of one lock per path, the batch is renamed into place while holding the database's
    /// write transaction, and one `syncfs` makes all contents durable before any rename. Items
    /// may reference earlier items of the same batch.
    pub fn add_texts(&self, items: &[TextItem]) -> Result<Vec<StorePath>, StoreError> {
        let mut paths = Vec::with_capacity(items.len());
        for item in items {
            let h = Hash::digest_of(HashAlgo::Sha256, &item.contents);
            paths.push(
                self.store_dir
                    .make_text_path(&item.name, &h, &item.references)?,
            );
        }
        let todo: Vec<usize> = {
            let db = self.db()?;
            let mut v = Vec::new();
            for (i, p) in paths.iter().enumerate() {
                if !db.is_valid(&self.store_dir, p)? {
                    v.push(i);
                }
            }
            v
        };
        if todo.is_empty() {
            return Ok(paths);
        }
        let _gc = self.gc_lock_shared()?;
        let mut temps = Vec::with_capacity(todo.len());
        for &i in &todo {
            let temp = self.temp_entry()?;
            write_canonical_text(temp.path(), &items[i].contents)?;
            temps.push(temp);
        }
        sync_filesystem(&self.real_store)?;
        let now = self.now();
        let infos: Vec<PathInfo> = todo
            .iter()
            .map(|&i| {
                let item = &items[i];
                let content_hash = Hash::digest_of(HashAlgo::Sha256, &item.contents);
                let (nar_hash, nar_size) = nar::hash_regular_file(&item.contents, false);
                PathInfo {
                    path: paths[i].clone(),
                    nar_hash,
                    nar_size,
                    references: item.references.clone(),
                    deriver: None,
                    signatures: Vec::new(),
                    registration_time: now,
                    ca: Some(format!(
                        "text:{}",
                        content_hash.to_typed_string(guixie_formats::Encoding::Nix32)
                    )),
                }
            })
            .collect();
        let drv_outputs: Vec<&BTreeMap<String, StorePath>> =
            todo.iter().map(|&i| &items[i].derivation_outputs).collect();
        let real_store = self.real_store.clone();
        let store_dir = self.store_dir.clone();
        self.db()?.register_batch(
            &store_dir,
            &infos,
            &drv_outputs,
            |info, idx| {
                let src = temps[idx].keep();
                let dest = real_store.join(info.path.to_string());
                std::fs::rename(&src, &dest).map_err(io_err(&dest))?;
                Ok(())
            },
            || sync_dir(&real_store),
        )?;
        Ok(paths)
    }
}

fn write_canonical_text(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
        .map_err(io_err(path))?;
    std::io::Write::write_all(&mut f, contents).map_err(io_err(path))?;
    drop(f);
    crate::canonical::set_mtime_one(path)
}

/// `syncfs` on the file system holding `dir`: one call makes every write on it durable.
pub(super) fn sync_filesystem(dir: &Path) -> Result<(), StoreError> {
    let f = std::fs::File::open(dir).map_err(io_err(dir))?;
    // SAFETY: `f` is an open descriptor for the duration of the call.
    let rc = unsafe { libc::syncfs(std::os::unix::io::AsRawFd::as_raw_fd(&f)) };
    if rc != 0 {
        return Err(io_err(dir)(io::Error::last_os_error()));
    }
    Ok(())
}
