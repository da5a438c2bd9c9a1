//! `guixie copy --to`: paths and their closures written to a binary cache in the layout `nix
//! copy --to file://` writes (`nix-cache-info`, `<hash>.narinfo`, `nar/<file hash>.nar.xz`),
//! into a directory or by HTTP `PUT`, so an air-gapped transfer needs no server. Each NAR is
//! compressed into a temporary file (bounded memory) while it is checked against its recorded
//! hash; the narinfo goes up last, so a reader never sees a narinfo whose NAR is missing.

use std::collections::BTreeSet;
use std::io::Seek;

use guixie_formats::hash::{HashAlgo, Hasher};
use guixie_formats::signing::SecretKey;
use guixie_formats::StorePath;
use guixie_store::Store;

use crate::cache_url::CacheUrl;
use crate::nar_stream::{write_compressed_nar, Compression};

/// What was done: paths written, paths the cache already had.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub written: Vec<StorePath>,
    pub present: usize,
}

/// Writes `paths` and their closures to `dest`, references first, skipping what it has.
pub fn copy_to(
    store: &dyn Store,
    dest: &CacheUrl,
    paths: &[StorePath],
    key: Option<&SecretKey>,
    compression: Compression,
) -> Result<Copied, String> {
    let sd = store.store_dir();
    let agent = crate::cache_url::http_agent();
    let scratch = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let closure = store.closure(paths).map_err(|e| e.to_string())?;
    let mut order = Vec::new();
    let mut placed = BTreeSet::new();
    for p in &closure {
        place(store, p, &mut placed, &mut order)?;
    }
    if let Some(mut existing) = dest.open(&agent, "nix-cache-info")? {
        // A cache holds one store directory's paths; never mix another's in.
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(&mut existing, 64 << 10), &mut text)
            .map_err(|e| format!("{}/nix-cache-info: {e}", dest.shown()))?;
        let theirs = text
            .lines()
            .find_map(|l| l.strip_prefix("StoreDir:"))
            .map(str::trim);
        if theirs.is_some_and(|d| d != sd.as_str()) {
            return Err(format!(
                "{}: its nix-cache-info says StoreDir {}, this store's is {}",
                dest.shown(),
                theirs.unwrap_or(""),
                sd.as_str()
            ));
        }
    } else {
        let info = scratch.path().join("nix-cache-info");
        std::fs::write(&info, format!("StoreDir: {}\n", sd.as_str()))
            .map_err(|e| format!("{}: {e}", info.display()))?;
        dest.put(&agent, "nix-cache-info", &info, "text/x-nix-cache-info")?;
    }
    let mut copied = Copied::default();
    for info in order {
        let narinfo_name = format!("{}.narinfo", info.path.hash_part());
        if dest.open(&agent, &narinfo_name)?.is_some() {
            copied.present += 1;
            continue;
        }
        let shown = sd.display(&info.path);
        let temp = scratch.path().join("nar");
        let made = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .and_then(|f| {
                write_compressed_nar(
                    store,
                    &info.path,
                    (&info.nar_hash, info.nar_size),
                    f,
                    compression,
                )
            })
            .and_then(|mut f| {
                f.rewind()?;
                let mut h = Hasher::new(HashAlgo::Sha256);
                let size = std::io::copy(&mut f, &mut h)?;
                Ok((h.finish(), size))
            })
            .map_err(|e| format!("{shown}: {e}"))?;
        let (file_hash, file_size) = made;
        let (_, suffix) = compression.name_and_suffix();
        let mut file =
            crate::nar_file(&info, compression, Some(file_hash.clone()), Some(file_size));
        // Named by the file's hash, as Nix names them.
        file.url = format!("nar/{}.nar{suffix}", file_hash.to_nix32());
        let url = file.url.clone();
        let mut ni = crate::narinfo_of(&info, vec![file]);
        if let Some(key) = key {
            ni.sign(sd, key).map_err(|e| format!("{shown}: {e}"))?;
        }
        dest.put(&agent, &url, &temp, "application/x-nix-nar")?;
        let text = scratch.path().join("narinfo");
        std::fs::write(&text, ni.to_text(sd)).map_err(|e| format!("{}: {e}", text.display()))?;
        dest.put(&agent, &narinfo_name, &text, "text/x-nix-narinfo")?;
        copied.written.push(info.path.clone());
    }
    Ok(copied)
}

/// Appends `path`'s info to `order` after those of its references.
fn place(
    store: &dyn Store,
    path: &StorePath,
    placed: &mut BTreeSet<StorePath>,
    order: &mut Vec<guixie_store::PathInfo>,
) -> Result<(), String> {
    if !placed.insert(path.clone()) {
        return Ok(());
    }
    let info = store
        .path_info(path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} is not valid", store.store_dir().display(path)))?;
    for r in &info.references {
        if r != path {
            place(store, r, placed, order)?;
        }
    }
    order.push(info);
    Ok(())
}
