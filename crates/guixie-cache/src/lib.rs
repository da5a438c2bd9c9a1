//! Serving a store as a binary cache that Nix's clients substitute from, over any
//! [`Store`](guixie_store::Store): `GET|HEAD /nix-cache-info`, `/<hash>.narinfo` (signed on the
//! fly) and `/nar/<narhash>.nar` (streamed with bounded memory, `Range` answered).
//!
//! Requests are parsed by [`request::parse`] (pure: a path in, a typed request or a refusal
//! out), so every rule about hostile input is tested without a socket. Every response carries
//! `Content-Length` (Guix pipelines hundreds of requests on one connection and needs to know
//! where each ends) and never names a file-system path.

mod cache_url;
pub mod copy;
pub mod evidence;
mod listing;
mod nar_stream;
pub mod request;
pub mod substitute;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use guixie_formats::narinfo::{NarFile, NarInfo};
use guixie_formats::signing::SecretKey;
use guixie_store::Store;

pub use nar_stream::Compression;
use request::{ByteRange, Request};

/// What a cache serves and how.
pub struct Cache {
    pub store: Arc<dyn Store>,
    /// Signs every narinfo served (besides the signatures the store holds).
    pub key: Option<SecretKey>,
    /// `Priority` in `nix-cache-info` (lower is preferred; cache.nixos.org is 40).
    pub priority: u32,
    /// How narinfos offer NARs.
    pub compression: Compression,
    /// Where compressed NARs are kept once made (needed to offer them compressed).
    pub compressed_dir: Option<std::path::PathBuf>,
    /// Where build logs are, as `<drv base name>.log.gz` (`/log/…`).
    pub logs_dir: Option<std::path::PathBuf>,
    /// The transparency log behind `/checkpoint` and `/attestations/…`.
    pub evidence: Option<evidence::Evidence>,
    /// How narinfos are written and signed.
    pub dialect: Dialect,
    /// Asked to make a path valid before its narinfo is answered "not found".
    pub resolve: Option<Resolve>,
}

/// Makes a path valid from elsewhere (a node asks the network), answering whether it did.
pub trait Resolver: Send + Sync {
    fn resolve(&self, hash_part: &str) -> tokio::sync::oneshot::Receiver<bool>;
}

/// A resolver and how long a narinfo request waits for it. Nix keeps a "not found" for an
/// hour, so a path still being decided when the wait ends is a 503 (try again), not a 404.
pub struct Resolve {
    pub resolver: Arc<dyn Resolver>,
    pub wait: std::time::Duration,
}

/// Whose clients the narinfos are written for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `Sig:` lines over Nix's fingerprint.
    Nix,
    /// `Signature: 1;<host>;…` over the text above it, then the downloads (see
    /// [`NarInfo::to_guix_text`]).
    Guix { host: String },
}

impl Dialect {
    /// Guix's for a store under `/gnu/store`, else Nix's.
    pub fn for_store_dir(sd: &guixie_formats::StoreDir, host: &str) -> Dialect {
        if sd.as_str() == "/gnu/store" {
            Dialect::Guix {
                host: host.to_owned(),
            }
        } else {
            Dialect::Nix
        }
    }
}

/// Seconds clients may keep a narinfo that was found, and one that was not.
const HIT_MAX_AGE: u32 = 3600;
const MISS_MAX_AGE: u32 = 60;

/// The cache as an axum application.
pub fn router(cache: Arc<Cache>) -> axum::Router {
    axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
        let cache = cache.clone();
        async move { respond(&cache, &method, &uri, &headers).await }
    })
}

/// Serves `router(cache)` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, cache: Arc<Cache>) -> std::io::Result<()> {
    serve_router(listener, router(cache)).await
}

/// Serves `app` (the cache's router with others merged in) on `listener`.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY, a small answer written as headers then body waits for the client's
    // delayed ACK (40 ms) whenever requests follow each other on one connection.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}

async fn respond(cache: &Arc<Cache>, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    let head = match *method {
        Method::GET => false,
        Method::HEAD => true,
        _ => return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n", None),
    };
    let range = headers
        .get(header::RANGE)
        .map(|v| ByteRange::parse(v.to_str().unwrap_or("")));
    let response = match request::parse(uri.path()) {
        Err(refusal) => text(refusal.status(), refusal.message(), None),
        Ok(Request::CacheInfo) => {
            let body = format!(
                "StoreDir: {}\nWantMassQuery: 1\nPriority: {}\n",
                cache.store.store_dir().as_str(),
                cache.priority
            );
            text(StatusCode::OK, &body, Some(HIT_MAX_AGE))
        }
        Ok(Request::NarInfo { hash_part }) => {
            // A narinfo is two indexed queries and a signature: cheaper done here than handed
            // to the blocking pool.
            let found = narinfo(cache, &hash_part);
            match &cache.resolve {
                Some(r) if found.status() == StatusCode::NOT_FOUND => {
                    let answer = r.resolver.resolve(&hash_part);
                    match tokio::time::timeout(r.wait, answer).await {
                        Ok(Ok(true)) => narinfo(cache, &hash_part),
                        Ok(_) => found,
                        Err(_) => text(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "still being decided; ask again\n",
                            None,
                        ),
                    }
                }
                _ => found,
            }
        }
        Ok(Request::Nar {
            nar_hash,
            compression,
        }) => nar_stream::respond(cache.clone(), nar_hash, compression, range).await,
        Ok(Request::Checkpoint) => match &cache.evidence {
            Some(_) => {
                let cache = cache.clone();
                tokio::task::spawn_blocking(move || {
                    evidence::checkpoint(cache.evidence.as_ref().expect("checked"))
                })
                .await
                .unwrap_or_else(|_| {
                    text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n", None)
                })
            }
            None => text(StatusCode::NOT_FOUND, "no log\n", Some(MISS_MAX_AGE)),
        },
        Ok(Request::Attestations { hash_part }) => match &cache.evidence {
            Some(_) => {
                let cache = cache.clone();
                tokio::task::spawn_blocking(move || {
                    evidence::attestations(cache.evidence.as_ref().expect("checked"), &hash_part)
                })
                .await
                .unwrap_or_else(|_| {
                    text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n", None)
                })
            }
            None => text(StatusCode::NOT_FOUND, "no log\n", Some(MISS_MAX_AGE)),
        },
        Ok(Request::SigningKey) => match &cache.key {
            // What each client's tools read: `guix archive --authorize` an S-expression,
            // Nix's `trusted-public-keys` a `name:base64` line.
            Some(key) => text(
                StatusCode::OK,
                &match cache.dialect {
                    Dialect::Guix { .. } => {
                        guixie_formats::guix_signature::public_key_sexp(&key.public()).to_advanced()
                    }
                    Dialect::Nix => format!("{}\n", key.public()),
                },
                Some(HIT_MAX_AGE),
            ),
            None => text(
                StatusCode::NOT_FOUND,
                "no signing key\n",
                Some(MISS_MAX_AGE),
            ),
        },
        Ok(Request::Listing { hash_part }) => {
            let cache = cache.clone();
            tokio::task::spawn_blocking(move || listing_of(&cache, &hash_part))
                .await
                .unwrap_or_else(|_| {
                    text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n", None)
                })
        }
        Ok(Request::Log { drv }) => {
            let gzip_ok = headers
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
            nar_stream::build_log(cache, &drv, gzip_ok).await
        }
    };
    if head {
        // The same headers, Content-Length included, without the body.
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    response
}

fn narinfo(cache: &Cache, hash_part: &str) -> Response {
    let store = cache.store.as_ref();
    let sd = store.store_dir().clone();
    let info = match store
        .path_by_hash_part(hash_part)
        .and_then(|p| p.map(|p| store.path_info(&p)).transpose())
    {
        Ok(Some(Some(info))) => info,
        Ok(_) => return text(StatusCode::NOT_FOUND, "no such path\n", Some(MISS_MAX_AGE)),
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "store error\n", None),
    };
    let offered = match (&cache.compressed_dir, cache.compression) {
        (Some(_), Compression::None) | (None, _) => vec![Compression::None],
        (Some(_), c) => match cache.dialect {
            // Guix clients pick among several downloads; Nix reads one.
            Dialect::Guix { .. } => vec![c, Compression::None],
            Dialect::Nix => vec![c],
        },
    };
    let files = offered
        .into_iter()
        .map(|c| {
            // A compressed file's hash and size are known only once it is made; clients do not
            // need them (the NAR hash is what they check).
            let plain = c == Compression::None;
            nar_file(
                &info,
                c,
                plain.then(|| info.nar_hash.clone()),
                plain.then_some(info.nar_size),
            )
        })
        .collect();
    let mut ni = narinfo_of(&info, files);
    let body = match &cache.dialect {
        Dialect::Nix => {
            if let Some(key) = &cache.key {
                if ni.sign(&sd, key).is_err() {
                    return text(StatusCode::INTERNAL_SERVER_ERROR, "signing failed\n", None);
                }
            }
            ni.to_text(&sd)
        }
        Dialect::Guix { host } => {
            match ni.to_guix_text(&sd, cache.key.as_ref().map(|k| (k, host.as_str()))) {
                Ok(t) => t,
                Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "signing failed\n", None),
            }
        }
    };
    let mut r = text(StatusCode::OK, &body, Some(HIT_MAX_AGE));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/x-nix-narinfo"),
    );
    r
}

/// A download of `info`'s NAR, named by its NAR hash (as `/nar/…` serves it).
pub(crate) fn nar_file(
    info: &guixie_store::PathInfo,
    c: Compression,
    file_hash: Option<guixie_formats::Hash>,
    file_size: Option<u64>,
) -> NarFile {
    let (name, suffix) = c.name_and_suffix();
    NarFile {
        url: format!("nar/{}.nar{suffix}", info.nar_hash.to_nix32()),
        compression: Some(name.into()),
        file_hash,
        file_size,
    }
}

/// The narinfo of a valid path, with the signatures the store holds.
pub(crate) fn narinfo_of(info: &guixie_store::PathInfo, files: Vec<NarFile>) -> NarInfo {
    NarInfo {
        store_path: info.path.clone(),
        files,
        nar_hash: info.nar_hash.clone(),
        nar_size: info.nar_size,
        references: info.references.iter().cloned().collect(),
        deriver: info.deriver.clone(),
        system: None,
        signatures: info.signatures.clone(),
        guix_signature: None,
        ca: info.ca.clone(),
    }
}

fn listing_of(cache: &Cache, hash_part: &str) -> Response {
    let store = cache.store.as_ref();
    let path = match store.path_by_hash_part(hash_part) {
        Ok(Some(p)) => p,
        Ok(None) => return text(StatusCode::NOT_FOUND, "no such path\n", Some(MISS_MAX_AGE)),
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "store error\n", None),
    };
    match listing::listing(store, &path) {
        Ok(v) => {
            let mut r = text(StatusCode::OK, &v.to_string(), Some(HIT_MAX_AGE));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "listing failed\n", None),
    }
}

/// A small text response with its length and, when given, how long it may be cached.
pub(crate) fn text(status: StatusCode, body: &str, max_age: Option<u32>) -> Response {
    let mut r = Response::new(Body::from(body.to_owned()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    if let Some(age) = max_age {
        if let Ok(v) = HeaderValue::from_str(&format!("max-age={age}")) {
            h.insert(header::CACHE_CONTROL, v);
        }
    }
    r
}

#[cfg(test)]
mod tests;
