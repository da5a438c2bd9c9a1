//! Substitution: making a path valid from binary caches (`http(s)://` or `file://`, Nix's
//! layout) that this store does not trust. A narinfo counts only when one of its signatures
//! verifies with a trusted key and it names exactly the path asked for, in this store's
//! directory. The NAR is decompressed while it streams into the store's [`NarSink`], which
//! hashes it and refuses it unless hash and size are the narinfo's; references come first, so
//! nothing becomes valid without its closure.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;

use guixie_formats::narinfo::NarInfo;
use guixie_formats::signing::PublicKey;
use guixie_formats::StorePath;
use guixie_store::{PathInfo, Store};

pub use crate::cache_url::CacheUrl;

/// Answers to narinfo queries made ahead of need.
type Prefetched =
    std::collections::BTreeMap<StorePath, Result<Option<(CacheUrl, NarInfo)>, String>>;

/// Narinfos larger than this are refused (real ones are well under 10 KiB).
const MAX_NARINFO: u64 = 1 << 20;

/// What a substitution is doing, for progress displays.
#[derive(Debug)]
pub enum Progress<'a> {
    /// The paths to fetch (their closures' missing paths) and their NAR bytes in all.
    Planned { paths: usize, nar_bytes: u64 },
    /// One path's NAR starts streaming from `url`.
    Fetching {
        path: &'a StorePath,
        url: &'a str,
        nar_size: u64,
    },
    /// This many more NAR bytes were imported.
    Bytes(u64),
    /// A cache did not answer a query; it is passed over (as if it lacked the path).
    Unreachable { error: &'a str },
}

type ProgressFn = dyn Fn(Progress<'_>) + Send + Sync;

/// Where substitutes come from and whom they must be signed by.
pub struct Substituter {
    caches: Vec<CacheUrl>,
    trusted: Vec<PublicKey>,
    /// One HTTP agent, so requests to a cache reuse its connections.
    agent: ureq::Agent,
    progress: Option<std::sync::Arc<ProgressFn>>,
}

impl guixie_store::Substituter for Substituter {
    fn substitute(&self, store: &dyn Store, paths: &[StorePath]) -> Result<bool, String> {
        Substituter::substitute(self, store, paths)
    }
}

impl Substituter {
    pub fn new(caches: Vec<CacheUrl>, trusted: Vec<PublicKey>) -> Self {
        Substituter {
            caches,
            trusted,
            agent: crate::cache_url::http_agent(),
            progress: None,
        }
    }

    /// Reports what is fetched to `progress` as it happens.
    pub fn with_progress(
        mut self,
        progress: impl Fn(Progress<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(std::sync::Arc::new(progress));
        self
    }

    fn report(&self, event: Progress<'_>) {
        if let Some(p) = &self.progress {
            p(event);
        }
    }

    /// The first cache's narinfo for `path` that is signed by a trusted key and names `path`.
    /// Caches that do not have it, or whose narinfo is unsigned or forged, are skipped; the
    /// reasons are returned if none has a good one.
    pub fn query(
        &self,
        store: &dyn Store,
        path: &StorePath,
    ) -> Result<Option<(CacheUrl, NarInfo)>, String> {
        let sd = store.store_dir();
        let mut refused = Vec::new();
        for cache in &self.caches {
            let name = format!("{}.narinfo", path.hash_part());
            // A cache that cannot be reached is passed over; the next may have the path.
            let reader = match cache.open(&self.agent, &name) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    self.report(Progress::Unreachable { error: &e });
                    continue;
                }
            };
            let mut text = String::new();
            let read = reader.take(MAX_NARINFO + 1).read_to_string(&mut text);
            let shown = format!("{}/{name}", cache.shown());
            if let Err(e) = read {
                refused.push(format!("{shown}: {e}"));
                continue;
            }
            let ni = match NarInfo::parse(&text, sd) {
                Ok(ni) => ni,
                Err(e) => {
                    refused.push(format!("{shown}: {e}"));
                    continue;
                }
            };
            if ni.store_path != *path {
                refused.push(format!(
                    "{shown}: it describes {}, not {}",
                    sd.display(&ni.store_path),
                    sd.display(path)
                ));
                continue;
            }
            let signed = self
                .trusted
                .iter()
                .any(|k| ni.verify(sd, k).unwrap_or(false));
            if !signed {
                refused.push(format!("{shown}: not signed by a trusted key"));
                continue;
            }
            return Ok(Some((cache.clone(), ni)));
        }
        if refused.is_empty() {
            Ok(None)
        } else {
            Err(refused.join("; "))
        }
    }

    /// Makes `paths` and their closure valid in `store` from the caches. `Ok(false)`: no
    /// cache has one of them. The closure's narinfos are all fetched and checked first, then the NARs are
    /// imported as one batch, references first; an error names the URL and the path, and
    /// nothing half-fetched becomes valid.
    pub fn substitute(&self, store: &dyn Store, paths: &[StorePath]) -> Result<bool, String> {
        let mut known = self.prefetch(store, paths);
        let mut seen = BTreeSet::new();
        let mut order = Vec::new();
        for path in paths {
            if !self.plan(store, path, &mut known, &mut seen, &mut order)? {
                return Ok(false);
            }
        }
        if order.is_empty() {
            return Ok(true);
        }
        let sd = store.store_dir();
        let infos: Vec<PathInfo> = order.iter().map(|(_, ni)| path_info(sd, ni)).collect();
        self.report(Progress::Planned {
            paths: infos.len(),
            nar_bytes: infos.iter().map(|i| i.nar_size).sum(),
        });
        let mut next = 0;
        let mut failure = None;
        let imported = store.import_nars(&infos, &mut |info| {
            // `import_nars` asks in order, skipping paths that became valid meanwhile.
            while order[next].1.store_path != info.path {
                next += 1;
            }
            let (cache, ni) = &order[next];
            self.open_nar(store, cache, ni).map_err(|message| {
                failure = Some(message.clone());
                guixie_store::StoreError::Io {
                    path: PathBuf::from(store.store_dir().display(&ni.store_path)),
                    source: std::io::Error::other(message),
                }
            })
        });
        match (imported, failure) {
            (Ok(()), _) => Ok(true),
            (Err(_), Some(message)) => Err(message),
            (Err(e), None) => {
                let (cache, ni) = &order[next.min(order.len() - 1)];
                Err(format!(
                    "{}/{} (for {}): {e}",
                    cache.shown(),
                    ni.file_in(DECOMPRESSES).map_or("", |f| f.url.as_str()),
                    store.store_dir().display(&ni.store_path)
                ))
            }
        }
    }

    /// Appends to `order`, references first, the checked narinfo of every path of `path`'s
    /// closure that is not valid yet. `Ok(false)`: `path` itself is in no cache.
    fn plan(
        &self,
        store: &dyn Store,
        path: &StorePath,
        known: &mut Prefetched,
        seen: &mut BTreeSet<StorePath>,
        order: &mut Vec<(CacheUrl, NarInfo)>,
    ) -> Result<bool, String> {
        if !seen.insert(path.clone()) || store.is_valid(path).map_err(|e| e.to_string())? {
            return Ok(true);
        }
        let queried = match known.remove(path) {
            Some(answer) => answer,
            None => self.query(store, path),
        };
        let Some((cache, ni)) = queried? else {
            return Ok(false);
        };
        for r in &ni.references {
            if r != path && !self.plan(store, r, known, seen, order)? {
                return Err(format!(
                    "{}: its reference {} is in no cache",
                    store.store_dir().display(path),
                    store.store_dir().display(r)
                ));
            }
        }
        order.push((cache, ni));
        Ok(true)
    }

    /// The narinfos of those of `paths` that are not valid, asked a few at a time: the
    /// answers to many small requests come back sooner together than one after another.
    fn prefetch(&self, store: &dyn Store, paths: &[StorePath]) -> Prefetched {
        const AT_ONCE: usize = 4;
        let valid = store.are_valid(paths).unwrap_or_default();
        let wanted: Vec<&StorePath> = paths
            .iter()
            .enumerate()
            .filter(|(i, _)| !valid.get(*i).copied().unwrap_or(false))
            .map(|(_, p)| p)
            .collect();
        if wanted.len() < 2 {
            return Prefetched::new();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let answers = std::sync::Mutex::new(Prefetched::new());
        std::thread::scope(|scope| {
            for _ in 0..AT_ONCE.min(wanted.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(path) = wanted.get(i) else { return };
                    let answer = self.query(store, path);
                    answers
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert((*path).clone(), answer);
                });
            }
        });
        answers.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    /// The decompressed NAR stream of `ni` from `cache`.
    fn open_nar(
        &self,
        store: &dyn Store,
        cache: &CacheUrl,
        ni: &NarInfo,
    ) -> Result<Box<dyn Read + Send>, String> {
        let shown = store.store_dir().display(&ni.store_path);
        let file = ni.file_in(DECOMPRESSES).ok_or_else(|| {
            format!(
                "{}: the narinfo of {shown} offers no download in {}",
                cache.shown(),
                DECOMPRESSES.join(", ")
            )
        })?;
        let url = &file.url;
        let raw = cache
            .open(&self.agent, url)?
            .ok_or_else(|| format!("{}/{url}: not found (for {shown})", cache.shown()))?;
        let nar = decompress(file.compression.as_deref().unwrap_or("bzip2"), raw)
            .map_err(|e| format!("{}/{url}: {e}", cache.shown()))?;
        self.report(Progress::Fetching {
            path: &ni.store_path,
            url: &format!("{}/{url}", cache.shown()),
            nar_size: ni.nar_size,
        });
        Ok(Box::new(Exactly {
            inner: nar,
            left: ni.nar_size,
            progress: self.progress.clone(),
        }))
    }
}

fn path_info(sd: &guixie_formats::StoreDir, ni: &NarInfo) -> PathInfo {
    PathInfo {
        path: ni.store_path.clone(),
        nar_hash: ni.nar_hash.clone(),
        nar_size: ni.nar_size,
        references: ni.references.iter().cloned().collect(),
        deriver: ni.deriver.clone(),
        signatures: ni.signatures.clone(),
        registration_time: 0,
        ca: ni
            .ca
            .as_deref()
            .filter(|ca| ca_names_path(sd, ni, ca))
            .map(str::to_owned),
    }
}

/// Whether `ca` is the content address `ni`'s path was computed from. No signature covers
/// `CA` in Nix's dialect, so a claim that does not recompute to the path is not kept.
fn ca_names_path(sd: &guixie_formats::StoreDir, ni: &NarInfo, ca: &str) -> bool {
    use guixie_formats::{Hash, HashAlgo};
    let path = &ni.store_path;
    let name = path.name();
    let others: Vec<&StorePath> = ni.references.iter().filter(|r| *r != path).collect();
    let self_ref = ni.references.contains(path);
    let computed = if let Some(h) = ca.strip_prefix("text:") {
        Hash::parse(h, None)
            .ok()
            .and_then(|h| sd.make_text_path(name, &h, others.iter().copied()).ok())
    } else if let Some(rest) = ca.strip_prefix("fixed:") {
        let (recursive, h) = match rest.strip_prefix("r:") {
            Some(h) => (true, h),
            None => (false, rest),
        };
        Hash::parse(h, None).ok().and_then(|h| {
            if recursive && h.algo() == HashAlgo::Sha256 {
                sd.make_source_path(name, &h, others.iter().copied(), self_ref)
                    .ok()
            } else if ni.references.is_empty() {
                sd.make_fixed_output_path(name, recursive, &h).ok()
            } else {
                None
            }
        })
    } else {
        None
    };
    computed.as_ref() == Some(path)
}

/// A NAR stream that must end at its declared size: a longer one is an error, even though the
/// store reads no further than that size.
struct Exactly {
    inner: Box<dyn Read + Send>,
    left: u64,
    progress: Option<std::sync::Arc<ProgressFn>>,
}

impl Read for Exactly {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        if let Some(p) = &self.progress {
            p(Progress::Bytes(n as u64));
        }
        if self.left == 0 && n > 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? > 0 {
                return Err(std::io::Error::other("the NAR is longer than its NarSize"));
            }
        }
        Ok(n)
    }
}

/// The `Compression`s [`decompress`] reads.
const DECOMPRESSES: &[&str] = &["none", "zstd", "gzip", "xz", "bzip2"];

/// A reader of the NAR inside a compressed download.
fn decompress(
    compression: &str,
    raw: Box<dyn Read + Send>,
) -> Result<Box<dyn Read + Send>, String> {
    Ok(match compression {
        "none" => raw,
        "xz" => Box::new(xz2::read::XzDecoder::new(raw)),
        "zstd" => Box::new(zstd::stream::read::Decoder::new(raw).map_err(|e| e.to_string())?),
        "gzip" => Box::new(flate2::read::GzDecoder::new(raw)),
        "bzip2" => Box::new(bzip2::read::BzDecoder::new(raw)),
        other => return Err(format!("unsupported compression {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use guixie_formats::{Hash, HashAlgo, StoreDir};

    fn info_for(path: StorePath, refs: Vec<StorePath>) -> NarInfo {
        NarInfo {
            store_path: path,
            files: vec![],
            nar_hash: Hash::digest_of(HashAlgo::Sha256, b"nar"),
            nar_size: 1,
            references: refs,
            deriver: None,
            system: None,
            signatures: vec![],
            guix_signature: None,
            ca: None,
        }
    }

    #[test]
    fn a_ca_is_kept_only_when_it_computes_the_path() {
        let sd = StoreDir::nix();
        let h = Hash::digest_of(HashAlgo::Sha256, b"contents");
        let other = Hash::digest_of(HashAlgo::Sha256, b"other");
        let h32 = h.to_typed_string(guixie_formats::Encoding::Nix32);
        let src = sd.make_source_path("src", &h, [], false).unwrap();
        assert!(ca_names_path(
            &sd,
            &info_for(src.clone(), vec![]),
            &format!("fixed:r:{h32}")
        ));
        let o32 = other.to_typed_string(guixie_formats::Encoding::Nix32);
        assert!(!ca_names_path(
            &sd,
            &info_for(src.clone(), vec![]),
            &format!("fixed:r:{o32}")
        ));
        let text = sd.make_text_path("t.drv", &h, [&src]).unwrap();
        assert!(ca_names_path(
            &sd,
            &info_for(text.clone(), vec![src.clone()]),
            &format!("text:{h32}")
        ));
        assert!(!ca_names_path(
            &sd,
            &info_for(text, vec![]),
            &format!("text:{h32}")
        ));
        let flat = sd.make_fixed_output_path("f", false, &h).unwrap();
        assert!(ca_names_path(
            &sd,
            &info_for(flat.clone(), vec![]),
            &format!("fixed:{h32}")
        ));
        assert!(!ca_names_path(&sd, &info_for(flat, vec![]), "nonsense"));
    }
}
