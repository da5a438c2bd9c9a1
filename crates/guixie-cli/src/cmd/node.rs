//! `guixie node`: a long-running peer (see `guixie-p2p`, `guixie-node`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use guixie_node::Policy;
use guixie_store::LocalStore;

use super::substitutes::StoreConf;
use crate::Context;

/// Larger policy files are refused.
const MAX_POLICY_BYTES: u64 = 1 << 20;

#[derive(Args)]
pub struct NodeArgs {
    /// Multiaddr to listen on (port 0: any free port; the address is printed); repeatable.
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0", value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// A peer to connect to (and reconnect to when it goes); repeatable. Also the store
    /// configuration's `peers`.
    #[arg(long = "peer", value_name = "MULTIADDR")]
    peers: Vec<String>,
    /// Serve, on this loopback address, a binary cache (as `guixie publish`) of the paths
    /// the trust policy accepted; it asks the network for any other path it is asked for.
    #[arg(long, value_name = "127.0.0.1:PORT")]
    http: Option<SocketAddr>,
    /// The trust policy (JSON; see docs/trust.md), read when the node starts. Default: the
    /// one this store's quorum applied, else the store configuration's `trust-policy`. Without one, the node
    /// serves but accepts nothing.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// How long a narinfo request waits for the network before a 503, in seconds.
    #[arg(long, default_value_t = 60)]
    wait: u64,
    /// How long a lookup waits for trusted builders that have not answered before it decides
    /// with the attestations it has, in seconds.
    #[arg(long, default_value_t = 5)]
    decide_within: u64,
    /// Serve NAR ranges at no more than this many bytes per second on average (suffixes K,
    /// M, G: powers of 1000); by default as fast as they are asked for.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    max_upload: Option<u64>,
    /// Witness the trust policy's builders' logs: cosign each checkpoint this node accepted
    /// (consistent with the last one) with this key (`guixie log checkpoint witness-key`).
    #[arg(long, value_name = "FILE")]
    witness_key: Option<PathBuf>,
    /// A witness whose cosignatures of this store's log the node takes and serves (its
    /// verifier key); repeatable.
    #[arg(long = "witness", value_name = "KEY")]
    witnesses: Vec<String>,
    /// Also find peers on the local network by mDNS, and connect to them.
    #[arg(long)]
    mdns: bool,
}

/// `50M` → 50,000,000.
fn parse_rate(s: &str) -> Result<u64, String> {
    let (digits, scale) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1_000),
        Some((i, 'M' | 'm')) => (&s[..i], 1_000_000),
        Some((i, 'G' | 'g')) => (&s[..i], 1_000_000_000),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} is not a rate in bytes per second (e.g. 50M)"))
}

pub fn run(ctx: &Context, args: NodeArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(ctx.open_store()?);
    let conf = StoreConf::read(&ctx.store_root()?)?;
    let policy = chosen_policy(&store, args.policy.as_deref(), conf.trust_policy.as_deref())?
        .unwrap_or(Policy {
            k: 1,
            builders: vec![],
        });
    if let Some(http) = args.http {
        anyhow::ensure!(
            http.ip().is_loopback(),
            "--http {http}: the node's cache is for this machine; listen on a loopback address"
        );
    }
    let listen = parse_multiaddrs(&args.listen)?;
    let peers = parse_multiaddrs(args.peers.iter().chain(&conf.peers))?;
    let state = store.state_dir().to_owned();
    let identity_file = state.join("node").join("node.key");
    std::fs::create_dir_all(identity_file.parent().expect("has a parent"))?;
    let identity_hex = guixie_evidence::keys::read_or_create_secret(&identity_file, || {
        Ok(data_encoding::HEXLOWER.encode(&ctx.rng().bytes32()))
    })?;
    let identity: [u8; 32] = data_encoding::HEXLOWER
        .decode(identity_hex.as_bytes())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{}: not 32 hex bytes", identity_file.display()))?;
    // A node whose store keeps a log serves it; it never makes one.
    let log_key_file = guixie_evidence::log_dir(&state).join("log.key");
    let log_key = if log_key_file.exists() {
        let text = guixie_evidence::keys::read_secret_file(&log_key_file)?;
        Some(
            guixie_log::note::SignerKey::parse(&text)
                .with_context(|| log_key_file.display().to_string())?,
        )
    } else {
        None
    };
    let witness_key = match &args.witness_key {
        Some(file) => {
            let text = guixie_evidence::keys::read_secret_file(file)?;
            let key = guixie_log::note::SignerKey::parse(&text)
                .with_context(|| file.display().to_string())?;
            anyhow::ensure!(
                key.alg == guixie_log::note::ALG_COSIGNATURE_V1,
                "{}: not a witness key (make one with `guixie checkpoint witness-key`)",
                file.display()
            );
            Some(key)
        }
        None => None,
    };
    let witnesses = args
        .witnesses
        .iter()
        .map(|w| {
            guixie_log::note::VerifierKey::parse(w)
                .with_context(|| format!("--witness {w:?}: not a verifier key"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(
        witnesses.is_empty() || log_key.is_some(),
        "--witness: this store keeps no log to be witnessed"
    );
    let cache_key = super::evidence::builder_key(ctx, &store)?;
    let json = ctx.json;
    guixie_p2p::run(
        guixie_p2p::NodeOptions {
            governance: Some(Box::new(crate::cmd::govern::gossip::JournalBook::new(
                store.clone(),
                ctx.clock(),
            ))),
            store,
            policy,
            listen,
            peers,
            http: args.http,
            identity,
            log_key,
            cache_key: cache_key.clone(),
            wait: Duration::from_secs(args.wait),
            decide_within: Duration::from_secs(args.decide_within),
            max_upload: args.max_upload,
            witness_key,
            witnesses,
            mdns: args.mdns,
            node_dir: None,
            clock: ctx.clock(),
        },
        move |started| {
            // The first lines say where the node is, for scripts that asked for port 0.
            let listen: Vec<String> = started
                .listen
                .iter()
                .map(|a| format!("{a}/p2p/{}", started.peer_id))
                .collect();
            if json {
                let _ = crate::output::print_json(&serde_json::json!({
                    "peer_id": started.peer_id,
                    "listen": listen,
                    "http": started.http.map(|h| h.to_string()),
                    "cache_key": cache_key.public().to_string(),
                }));
            } else {
                println!("peer-id: {}", started.peer_id);
                for l in &listen {
                    println!("listening: {l}");
                }
                if let Some(h) = started.http {
                    println!("http: http://{h}");
                }
                println!("cache-key: {}", cache_key.public());
            }
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The node inside this command (one per process), once started: its cache URL and key.
static EMBEDDED: std::sync::Mutex<Option<(String, String)>> = std::sync::Mutex::new(None);

/// A node inside this command, for `guixie build --peer … --trust-policy …`: it connects to
/// `peers` (it does not listen), asks them for what the build is missing and serves what the
/// policy accepts on a loopback cache the command asks first, signed with a key made for this
/// run. It keeps its files in a directory of its own (a `guixie node` may run on the store)
/// and ends with the command. Its URL and public key, once it serves.
pub fn embedded(
    ctx: &Context,
    store: Arc<LocalStore>,
    policy: Policy,
    peers: &[String],
) -> anyhow::Result<(String, String)> {
    let mut started = EMBEDDED.lock().expect("not poisoned");
    if let Some(running) = &*started {
        return Ok(running.clone());
    }
    let node_dir = guixie_p2p::private_node_dir(store.state_dir())?;
    let peers = parse_multiaddrs(peers)?;
    let cache_key = guixie_formats::signing::SecretKey::from_seed(
        "guixie-embedded-node",
        &ctx.rng().bytes32(),
    )?;
    let public = cache_key.public().to_string();
    let opts = guixie_p2p::NodeOptions {
        store,
        policy,
        listen: vec![],
        peers,
        http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        identity: ctx.rng().bytes32(),
        log_key: None,
        cache_key,
        // Only this command asks, and its HTTP reads give up after 120 s.
        wait: Duration::from_secs(110),
        decide_within: Duration::from_secs(5),
        max_upload: None,
        witness_key: None,
        witnesses: vec![],
        mdns: false,
        node_dir: Some(node_dir),
        clock: ctx.clock(),
        // A command's node substitutes; the store's own `guixie node` gossips governance.
        governance: None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("guixie node".into())
        .spawn(move || {
            let failed = tx.clone();
            let ran = guixie_p2p::run(opts, move |started| {
                let _ = tx.send(Ok(started.http));
            });
            if let Err(e) = ran {
                let _ = failed.send(Err(e.to_string()));
            }
        })?;
    let http = rx
        .recv()
        .context("the embedded node stopped before it served")?
        .map_err(|e| anyhow::anyhow!("the embedded node: {e}"))?
        .context("the embedded node serves no cache")?;
    let running = (format!("http://{http}"), public);
    *started = Some(running.clone());
    Ok(running)
}

/// A trust policy file (JSON; see docs/trust.md), checked.
pub fn read_policy(file: &Path) -> anyhow::Result<Policy> {
    Policy::parse(&read_policy_text(file)?).with_context(|| file.display().to_string())
}

pub fn read_policy_text(file: &Path) -> anyhow::Result<String> {
    let bytes = guixie_store::safe_fs::read_capped(file, MAX_POLICY_BYTES)
        .with_context(|| file.display().to_string())?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{}: not UTF-8", file.display()))
}

/// The trust policy a command uses: the file it names, else the one this store's quorum
/// applied (`guixie govern propose trust-policy`), else the store configuration's
/// `trust-policy`. A quorum's decision outranks the configuration file; only the operator
/// naming a file for one command sets it aside.
pub fn chosen_policy(
    store: &LocalStore,
    named: Option<&Path>,
    configured: Option<&str>,
) -> anyhow::Result<Option<Policy>> {
    if let Some(file) = named {
        return read_policy(file).map(Some);
    }
    if let Some(governed) = crate::cmd::govern::policy::governed(store)? {
        return Ok(Some(governed));
    }
    configured.map(|f| read_policy(Path::new(f))).transpose()
}

pub fn parse_multiaddrs<'a>(
    addrs: impl IntoIterator<Item = &'a String>,
) -> anyhow::Result<Vec<guixie_p2p::Multiaddr>> {
    addrs
        .into_iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("{a:?} is not a multiaddr"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_take_decimal_suffixes_and_refuse_nonsense() {
        assert_eq!(super::parse_rate("50M"), Ok(50_000_000));
        assert_eq!(super::parse_rate("2k"), Ok(2_000));
        assert_eq!(super::parse_rate("123"), Ok(123));
        for bad in ["", "0", "M", "-1M", "1.5M", "99999999999G", "5T"] {
            assert!(super::parse_rate(bad).is_err(), "{bad:?}");
        }
    }
}
