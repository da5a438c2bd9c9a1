//! The cache over a real loopback socket, driven by a plain HTTP/1.1 client that pipelines.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;

use guixie_env::FakeClock;
use guixie_formats::hash::{HashAlgo, Hasher};
use guixie_formats::narinfo::NarInfo;
use guixie_formats::signing::SecretKey;
use guixie_formats::StoreDir;
use guixie_store::{MemoryStore, NarSink, PathInfo};

use super::*;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response; `head` when it answers a HEAD (no body follows).
fn read_reply(r: &mut impl BufRead, head: bool) -> Reply {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = reply
        .header("content-length")
        .expect("every response has a Content-Length")
        .parse()
        .unwrap();
    if !head {
        reply.body = vec![0; len];
        r.read_exact(&mut reply.body).unwrap();
    }
    reply
}

/// A store with one path and its NAR, served on a loopback port.
fn serving() -> (
    std::net::SocketAddr,
    PathInfo,
    Vec<u8>,
    SecretKey,
    tokio::runtime::Runtime,
) {
    let sd = StoreDir::nix();
    let store = MemoryStore::new(sd.clone(), Arc::new(FakeClock::new(0)));
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("big"), vec![7u8; 300_000]).unwrap();
    let mut nar = Vec::new();
    guixie_formats::nar::dump_path(&tree, &mut nar).unwrap();
    let mut h = Hasher::new(HashAlgo::Sha256);
    h.update(&nar);
    let nar_hash = h.finish();
    let info = PathInfo {
        path: sd.make_source_path("t", &nar_hash, [], false).unwrap(),
        nar_hash,
        nar_size: nar.len() as u64,
        references: BTreeSet::new(),
        deriver: None,
        signatures: vec![],
        registration_time: 0,
        ca: None,
    };
    store.import_nar(&info, &mut nar.as_slice()).unwrap();
    let key = SecretKey::from_seed("cache.test-1", &[5; 32]).unwrap();
    let cache = Arc::new(Cache {
        store: Arc::new(store),
        key: Some(key.clone()),
        priority: 30,
        compression: Compression::None,
        compressed_dir: None,
        logs_dir: None,
        evidence: None,
        dialect: crate::Dialect::Nix,
        resolve: None,
    });
    let (addr, rt) = on_loopback(cache);
    (addr, info, nar, key, rt)
}

/// Serves `cache` on a free loopback port, for as long as the runtime lives.
fn on_loopback(cache: Arc<Cache>) -> (std::net::SocketAddr, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(serve(listener, cache));
    (addr, rt)
}

fn get(addr: std::net::SocketAddr, request: &str) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let head = request.starts_with("HEAD");
    read_reply(&mut BufReader::new(s), head)
}

#[test]
fn narinfos_are_signed_and_nars_stream_with_ranges() {
    let (addr, info, nar, key, _rt) = serving();
    let sd = StoreDir::nix();
    let r = get(addr, "GET /nix-cache-info HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n"
    );

    let hash_part = info.path.hash_part().to_owned();
    let r = get(
        addr,
        &format!("GET /{hash_part}.narinfo HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("max-age=3600"));
    let ni = NarInfo::parse(std::str::from_utf8(&r.body).unwrap(), &sd).unwrap();
    assert_eq!(ni.store_path, info.path);
    assert_eq!(ni.nar_hash, info.nar_hash);
    assert!(
        ni.verify(&sd, &key.public()).unwrap(),
        "signed by the cache key"
    );
    let url = ni.files[0].url.clone();

    let r = get(addr, &format!("GET /{url} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, nar, "the NAR, byte for byte");
    let r = get(
        addr,
        &format!("GET /{url} HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-\r\n\r\n"),
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, nar[1000..]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1000-{}/{}", nar.len() - 1, nar.len()).as_str())
    );
    let r = get(
        addr,
        &format!("GET /{url} HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n"),
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &nar[10..20]));
    let past = nar.len();
    let r = get(
        addr,
        &format!("GET /{url} HTTP/1.1\r\nHost: x\r\nRange: bytes={past}-\r\n\r\n"),
    );
    assert_eq!(r.status, 416);
    let r = get(
        addr,
        &format!("GET /{hash_part}.ls HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    assert_eq!(r.status, 200);
    let ls: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(ls["version"], 1);
    assert_eq!(ls["root"]["type"], "directory");
    assert_eq!(ls["root"]["entries"]["big"]["type"], "regular");
    assert_eq!(ls["root"]["entries"]["big"]["size"], 300_000);
    let r = get(addr, &format!("HEAD /{url} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(nar.len().to_string().as_str())
    );
}

#[test]
fn hostile_requests_get_4xx_without_paths() {
    let (addr, _info, _nar, _key, _rt) = serving();
    for (path, status) in [
        ("/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo", 400),
        ("/00000000000000000000000000000000.narinfo", 404),
        (
            "/nar/1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9lg.nar",
            404,
        ),
        ("/../../../etc/passwd", 404),
        ("/nar/%2e%2e/etc/passwd.nar", 400),
    ] {
        let r = get(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(r.status, status, "{path}");
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("etc") && !body.contains('/'),
            "{path}: {body}"
        );
    }
    let long = "/a".repeat(300);
    let r = get(addr, &format!("GET {long} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(r.status, 414);
    let r = get(
        addr,
        "POST /nix-cache-info HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 405);
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (addr, info, _nar, _key, _rt) = serving();
    let hit = info.path.hash_part().to_owned();
    let miss = "0".repeat(32);
    let mut s = TcpStream::connect(addr).unwrap();
    let mut all = String::new();
    for i in 0..1000 {
        let h = if i % 3 == 0 { &hit } else { &miss };
        all.push_str(&format!("GET /{h}.narinfo HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    s.write_all(all.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    for i in 0..1000 {
        let reply = read_reply(&mut r, false);
        assert_eq!(
            reply.status,
            if i % 3 == 0 { 200 } else { 404 },
            "reply {i}"
        );
    }
}

/// A local store holding one tree, whose copy the test then damages, served uncompressed and
/// with zstd.
#[test]
fn a_damaged_copy_is_refused_before_any_header() {
    let dir = tempfile::tempdir().unwrap();
    let sd = StoreDir::nix();
    let store = guixie_store::LocalStore::open(guixie_store::StoreConfig::new(
        dir.path().join("root"),
        sd.clone(),
        Arc::new(FakeClock::new(0)),
    ))
    .unwrap();
    let tree = dir.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("a"), vec![1u8; 200_000]).unwrap();
    std::fs::write(tree.join("b"), vec![2u8; 1000]).unwrap();
    let info = store.add_path(&tree, "t", false).unwrap();
    let real = store.real_path(&info.path);
    let store = Arc::new(store);
    let (addr, _rt) = on_loopback(Arc::new(Cache {
        store: store.clone(),
        key: None,
        priority: 30,
        compression: Compression::Zstd,
        compressed_dir: Some(dir.path().join("compressed")),
        logs_dir: None,
        evidence: None,
        dialect: crate::Dialect::Nix,
        resolve: None,
    }));
    let nar = |suffix: &str| {
        get(
            addr,
            &format!(
                "GET /nar/{}.nar{suffix} HTTP/1.1\r\nHost: x\r\n\r\n",
                info.nar_hash.to_nix32()
            ),
        )
    };
    // Positive control: intact, it is served.
    assert_eq!(nar("").status, 200);
    assert_eq!(nar("").body.len() as u64, info.nar_size);

    // The store's copy loses bytes (a disk error, a hand edit): 503 before any byte of it.
    make_writable(&real);
    std::fs::write(real.join("a"), vec![1u8; 100]).unwrap();
    let r = nar("");
    assert_eq!(r.status, 503);
    assert!(!String::from_utf8_lossy(&r.body).contains(dir.path().to_str().unwrap()));
    // Same size, other bytes: the compressed copy is made from a hashed NAR, so it is refused.
    std::fs::write(real.join("a"), vec![9u8; 200_000]).unwrap();
    assert_eq!(nar(".zst").status, 503);
    assert!(!dir.path().join("compressed").read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".zst")));
}

fn make_writable(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for p in [dir.to_path_buf(), dir.join("a")] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode | 0o200)).unwrap();
    }
}
