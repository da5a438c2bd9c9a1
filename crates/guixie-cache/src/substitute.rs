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

/// Narinfos larger than this are refused (real ones are well under 10 KiB).
const MAX_NARINFO: u64 = 1 << 20;

/// One binary cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheUrl {
    Http(String),
    File(PathBuf),
}

impl CacheUrl {
    pub fn parse(url: &str) -> Result<CacheUrl, String> {
        let url = url.trim_end_matches('/');
        if let Some(dir) = url.strip_prefix("file://") {
            return Ok(CacheUrl::File(PathBuf::from(dir)));
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(CacheUrl::Http(url.to_owned()));
        }
        Err(format!(
            "substitute URL {url:?}: only http://, https:// and file:// are supported"
        ))
    }

    fn shown(&self) -> String {
        match self {
            CacheUrl::Http(u) => u.clone(),
            CacheUrl::File(d) => format!("file://{}", d.display()),
        }
    }

    /// `name` under the cache (a narinfo, a NAR), or `None` when the cache has no such file.
    fn open(
        &self,
        agent: &ureq::Agent,
        name: &str,
    ) -> Result<Option<Box<dyn Read + Send>>, String> {
        // Names come from narinfos the caller checked; a URL field may still try to climb.
        if name.split('/').any(|c| c == ".." || c.is_empty()) || name.starts_with('/') {
            return Err(format!("{}: refusing the file name {name:?}", self.shown()));
        }
        match self {
            CacheUrl::File(dir) => match std::fs::File::open(dir.join(name)) {
                Ok(f) => Ok(Some(Box::new(f))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("{}/{name}: {e}", self.shown())),
            },
            CacheUrl::Http(base) => match agent.get(&format!("{base}/{name}")).call() {
                Ok(r) => Ok(Some(Box::new(r.into_reader()))),
                Err(ureq::Error::Status(404 | 403, _)) => Ok(None),
                Err(e) => Err(format!("{base}/{name}: {e}")),
            },
        }
    }
}

/// Where substitutes come from and whom they must be signed by.
pub struct Substituter {
    caches: Vec<CacheUrl>,
    trusted: Vec<PublicKey>,
    /// One HTTP agent, so requests to a cache reuse its connections.
    agent: ureq::Agent,
}

impl guixie_store::Substituter for Substituter {
    fn substitute(&self, store: &dyn Store, path: &StorePath) -> Result<bool, String> {
        Substituter::substitute(self, store, path)
    }
}

impl Substituter {
    pub fn new(caches: Vec<CacheUrl>, trusted: Vec<PublicKey>) -> Self {
        Substituter {
            caches,
            trusted,
            agent: ureq::AgentBuilder::new().build(),
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
            let Some(reader) = cache.open(&self.agent, &name)? else {
                continue;
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

    /// Makes `path` and its closure valid in `store` from the caches. `Ok(false)`: no cache
    /// has it. An error names the URL and the path; nothing half-fetched becomes valid.
    pub fn substitute(&self, store: &dyn Store, path: &StorePath) -> Result<bool, String> {
        let mut done = BTreeSet::new();
        self.substitute_closure(store, path, &mut done)
    }

    fn substitute_closure(
        &self,
        store: &dyn Store,
        path: &StorePath,
        done: &mut BTreeSet<StorePath>,
    ) -> Result<bool, String> {
        if done.contains(path) || store.is_valid(path).map_err(|e| e.to_string())? {
            return Ok(true);
        }
        let Some((cache, ni)) = self.query(store, path)? else {
            return Ok(false);
        };
        for r in &ni.references {
            if r != path && !self.substitute_closure(store, r, done)? {
                return Err(format!(
                    "{}: its reference {} is in no cache",
                    store.store_dir().display(path),
                    store.store_dir().display(r)
                ));
            }
        }
        self.fetch_nar(store, &cache, &ni)?;
        done.insert(path.clone());
        Ok(true)
    }

    fn fetch_nar(&self, store: &dyn Store, cache: &CacheUrl, ni: &NarInfo) -> Result<(), String> {
        let sd = store.store_dir();
        let shown = sd.display(&ni.store_path);
        let url = ni
            .url
            .as_deref()
            .ok_or_else(|| format!("{}: the narinfo of {shown} has no URL", cache.shown()))?;
        let raw = cache
            .open(&self.agent, url)?
            .ok_or_else(|| format!("{}/{url}: not found (for {shown})", cache.shown()))?;
        let mut nar = decompress(ni.compression.as_deref().unwrap_or("bzip2"), raw)
            .map_err(|e| format!("{}/{url}: {e}", cache.shown()))?;
        let info = PathInfo {
            path: ni.store_path.clone(),
            nar_hash: ni.nar_hash.clone(),
            nar_size: ni.nar_size,
            references: ni.references.iter().cloned().collect(),
            deriver: ni.deriver.clone(),
            signatures: ni.signatures.clone(),
            registration_time: 0,
            ca: ni.ca.clone(),
        };
        store
            .import_nar(&info, &mut nar)
            .map_err(|e| format!("{}/{url} (for {shown}): {e}", cache.shown()))
    }
}

/// A reader of the NAR inside a compressed download.
fn decompress(
    compression: &str,
    raw: Box<dyn Read + Send>,
) -> Result<Box<dyn Read + Send>, String> {
    Ok(match compression {
        "none" | "" => raw,
        "xz" => Box::new(xz2::read::XzDecoder::new(raw)),
        "zstd" => Box::new(zstd::stream::read::Decoder::new(raw).map_err(|e| e.to_string())?),
        "gzip" => Box::new(flate2::read::GzDecoder::new(raw)),
        "bzip2" => Box::new(bzip2::read::BzDecoder::new(raw)),
        other => return Err(format!("unsupported compression {other:?}")),
    })
}
