//! Where substitutes come from: `--substitute-urls`/`--trusted-key`, else the store's
//! configuration file (`<store>/etc/guixie/guixie.conf`, Nix's `substituters` and
//! `trusted-public-keys` lines), and how their downloads are shown.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use guixie_cache::substitute::{CacheUrl, Progress, Substituter};
use guixie_formats::signing::PublicKey;

/// Files larger than this are not configuration.
const MAX_CONF_BYTES: u64 = 1 << 20;

#[derive(Args, Clone, Default)]
pub struct SubstituteArgs {
    /// Binary caches to substitute missing outputs from (`http(s)://` or `file://`, Nix's
    /// layout), tried in order; space-separated or repeated. Default: the store
    /// configuration's `substituters`.
    #[arg(long = "substitute-urls", value_name = "URL", value_delimiter = ' ')]
    pub substitute_urls: Vec<String>,
    /// A key substitutes must be signed with (`name:base64`), besides the store
    /// configuration's `trusted-public-keys`; repeatable. Without any, no substitute is
    /// accepted.
    #[arg(long = "trusted-key", value_name = "NAME:PUBKEY")]
    pub trusted_keys: Vec<String>,
    /// Build everything, substitute nothing.
    #[arg(long)]
    pub no_substitutes: bool,
    /// Substitute through the peer-to-peer network too, from this peer (repeatable), taking
    /// only what `--trust-policy` accepts; default: the store configuration's `peers`.
    #[arg(long = "peer", value_name = "MULTIADDR")]
    pub peers: Vec<String>,
    /// The trust policy for substitutes from the network (docs/trust.md); default: the one
    /// this store's quorum applied, else the store configuration's `trust-policy`. With
    /// peers and a policy, a node runs inside the command and is asked first.
    #[arg(long, value_name = "FILE")]
    pub trust_policy: Option<PathBuf>,
    /// Do not substitute through the peer-to-peer network, whatever the configuration says.
    #[arg(long)]
    pub no_network: bool,
}

/// The store's configuration: `name = value…` lines, `#` comments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StoreConf {
    pub substituters: Vec<String>,
    pub trusted_public_keys: Vec<String>,
    /// `guixie node`'s peers (multiaddrs).
    pub peers: Vec<String>,
    /// `guixie node`'s trust policy file.
    pub trust_policy: Option<String>,
}

pub fn conf_path(store_root: &Path) -> PathBuf {
    store_root.join("etc/guixie/guixie.conf")
}

impl StoreConf {
    pub fn read(store_root: &Path) -> anyhow::Result<StoreConf> {
        let file = conf_path(store_root);
        if !file.exists() {
            return Ok(StoreConf::default());
        }
        let bytes = guixie_store::safe_fs::read_capped(&file, MAX_CONF_BYTES)
            .with_context(|| format!("reading {}", file.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", file.display()))?;
        StoreConf::parse(&text).with_context(|| file.display().to_string())
    }

    pub fn parse(text: &str) -> anyhow::Result<StoreConf> {
        let mut conf = StoreConf::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (name, value) = line
                .split_once('=')
                .with_context(|| format!("line {}: {line:?} is not `name = value`", i + 1))?;
            let values = value.split_whitespace().map(str::to_owned);
            match name.trim() {
                "substituters" => conf.substituters = values.collect(),
                "trusted-public-keys" => conf.trusted_public_keys = values.collect(),
                "extra-substituters" => conf.substituters.extend(values),
                "extra-trusted-public-keys" => conf.trusted_public_keys.extend(values),
                "peers" => conf.peers = values.collect(),
                "trust-policy" => {
                    conf.trust_policy = value.split_whitespace().next_back().map(str::to_owned)
                }
                other => anyhow::bail!(
                    "line {}: unknown setting {other:?} (known: substituters, \
                     trusted-public-keys and their extra- forms, peers, trust-policy)",
                    i + 1
                ),
            }
        }
        Ok(conf)
    }
}

/// How downloads are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Quiet,
    Lines,
    Json,
}

impl SubstituteArgs {
    /// The substituter these arguments and the store's configuration name, or `None` when
    /// there is no cache to ask.
    pub fn substituter(
        &self,
        ctx: &crate::Context,
        show: Show,
    ) -> anyhow::Result<Option<Substituter>> {
        if self.no_substitutes {
            return Ok(None);
        }
        let store_root = ctx.store_root()?;
        let conf = StoreConf::read(&store_root)?;
        let peers = if self.peers.is_empty() {
            &conf.peers
        } else {
            &self.peers
        };
        // The network first: what it has, k of n builders vouch for.
        let network = if self.no_network || peers.is_empty() {
            None
        } else {
            let store = std::sync::Arc::new(ctx.open_store()?);
            let policy = crate::cmd::node::chosen_policy(
                &store,
                self.trust_policy.as_deref(),
                conf.trust_policy.as_deref(),
            )?;
            match policy {
                Some(policy) => Some(crate::cmd::node::embedded(ctx, store, policy, peers)?),
                None if !self.peers.is_empty() => anyhow::bail!(
                    "--peer: the network needs a trust policy (--trust-policy, or one this \
                     store's quorum applied)"
                ),
                None => None,
            }
        };
        let mut urls: Vec<&String> = network.iter().map(|(url, _)| url).collect();
        if self.substitute_urls.iter().any(|u| !u.is_empty()) {
            urls.extend(&self.substitute_urls);
        } else {
            urls.extend(&conf.substituters);
        }
        let caches: Vec<CacheUrl> = urls
            .into_iter()
            .filter(|u| !u.is_empty())
            .map(|u| CacheUrl::parse(u).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?;
        if caches.is_empty() {
            return Ok(None);
        }
        let trusted = conf
            .trusted_public_keys
            .iter()
            .chain(&self.trusted_keys)
            .chain(network.iter().map(|(_, key)| key))
            .map(|k| PublicKey::parse(k).map_err(|e| anyhow::anyhow!("trusted key {k}: {e}")))
            .collect::<anyhow::Result<_>>()?;
        let substituter = Substituter::new(caches, trusted);
        Ok(Some(match show {
            Show::Quiet => substituter,
            Show::Lines | Show::Json => substituter.with_progress(progress_display(show)),
        }))
    }
}

/// A bar of bytes and paths on a terminal; elsewhere, one line per path.
fn progress_display(show: Show) -> impl Fn(Progress<'_>) + Send + Sync + 'static {
    use std::io::IsTerminal;
    let bar = (show == Show::Lines && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec}  {msg}",
            )
            .expect("valid template"),
        );
        b
    });
    let done = std::sync::atomic::AtomicUsize::new(0);
    let total = std::sync::atomic::AtomicUsize::new(0);
    move |event| match (event, &bar) {
        (Progress::Planned { paths, nar_bytes }, Some(bar)) => {
            total.store(paths, std::sync::atomic::Ordering::Relaxed);
            bar.set_length(nar_bytes);
            bar.set_message(format!("0/{paths} paths"));
        }
        (Progress::Fetching { path, .. }, Some(bar)) => {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let of = total.load(std::sync::atomic::Ordering::Relaxed);
            bar.set_message(format!("{n}/{of} paths  {}", path.name()));
        }
        (Progress::Bytes(n), Some(bar)) => bar.inc(n),
        (Progress::Unreachable { error }, Some(bar)) => {
            bar.println(format!("warning: passing over a cache: {error}"))
        }
        (Progress::Unreachable { error }, None) => {
            eprintln!("warning: passing over a cache: {error}")
        }
        (
            Progress::Fetching {
                path,
                url,
                nar_size,
            },
            None,
        ) => {
            if show == Show::Json {
                eprintln!(
                    "{}",
                    serde_json::json!({"event": "substituting", "path": path.to_string(), "url": url, "narSize": nar_size})
                );
            } else {
                eprintln!("substituting {path} from {url} ({nar_size} bytes)");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_reads_nix_style_settings_and_names_bad_lines() {
        let conf = StoreConf::parse(
            "# caches\nsubstituters = http://a file:///b\nextra-substituters = http://c\n\
             trusted-public-keys = k-1:AAAA # mine\n",
        )
        .unwrap();
        assert_eq!(conf.substituters, ["http://a", "file:///b", "http://c"]);
        assert_eq!(conf.trusted_public_keys, ["k-1:AAAA"]);
        let node = StoreConf::parse(
            "peers = /ip4/127.0.0.1/tcp/1 /ip4/127.0.0.1/tcp/2\ntrust-policy = /etc/t.json\n",
        )
        .unwrap();
        assert_eq!(node.peers.len(), 2);
        assert_eq!(node.trust_policy.as_deref(), Some("/etc/t.json"));
        let e = StoreConf::parse("\nsubstitutes = x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("substitutes"), "{e}");
        assert!(StoreConf::parse("just words\n").is_err());
    }
}
