//! `guixie publish`: the local store as a binary cache (see `guixie-cache`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use crate::Context;

#[derive(Args)]
pub struct PublishArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    listen: std::net::SocketAddr,
    /// Sign every narinfo with this secret key (Nix's `name:base64`, private to its owner).
    #[arg(long, value_name = "SECRET-KEY-FILE")]
    key: Option<PathBuf>,
    /// `Priority` in `nix-cache-info` (lower is preferred).
    #[arg(long, default_value_t = 30)]
    priority: u32,
    /// Offer NARs compressed (each compressed once, on first request, and kept under
    /// `var/guixie/publish-cache`), or as they are.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    compression: CompressionArg,
    /// Write narinfos for Nix (`Sig:`) or Guix (`Signature:`) clients; by default Guix's for a
    /// store under /gnu/store, else Nix's.
    #[arg(long, value_enum)]
    dialect: Option<DialectArg>,
    /// Also serve introspection (loopback only): reports by hash, and traces on request
    /// with the token printed at start (`docs/introspection.md`).
    #[arg(long)]
    trace_api: bool,
    /// Traces that may run at once (more are refused).
    #[arg(long, default_value_t = 2, value_name = "N")]
    trace_jobs: usize,
    /// Seconds a requested trace may take before it is stopped.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    trace_timeout: u64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DialectArg {
    Nix,
    Guix,
}

/// How NARs are offered or written (publish, copy).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CompressionArg {
    None,
    Zstd,
    Xz,
    Gzip,
}

impl From<CompressionArg> for guixie_cache::Compression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::None => guixie_cache::Compression::None,
            CompressionArg::Zstd => guixie_cache::Compression::Zstd,
            CompressionArg::Xz => guixie_cache::Compression::Xz,
            CompressionArg::Gzip => guixie_cache::Compression::Gzip,
        }
    }
}

pub fn run(ctx: &Context, args: PublishArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.trace_api || args.listen.ip().is_loopback(),
        "--trace-api runs traces on request: it listens on the loopback interface only, not {}",
        args.listen
    );
    let store = Arc::new(ctx.open_store()?);
    let key = args
        .key
        .as_deref()
        .map(super::narinfo::read_key_file)
        .transpose()?;
    let compressed_dir = store.state_dir().join("publish-cache");
    let logs_dir = store.state_dir().join("build-logs");
    // The log's key, if the log has one (`guixie log key` makes it); publishing makes none.
    let log_dir = guixie_evidence::log_dir(store.state_dir());
    let key_file = log_dir.join("log.key");
    let log_key = if key_file.exists() {
        let text = guixie_evidence::keys::read_secret_file(&key_file)?;
        Some(
            guixie_log::note::SignerKey::parse(&text)
                .with_context(|| key_file.display().to_string())?,
        )
    } else {
        None
    };
    let evidence = guixie_cache::evidence::Evidence { log_dir, log_key };
    let host = host_name();
    let dialect = match args.dialect {
        None => guixie_cache::Dialect::for_store_dir(
            guixie_store::PathInfoQuery::store_dir(store.as_ref()),
            &host,
        ),
        Some(DialectArg::Nix) => guixie_cache::Dialect::Nix,
        Some(DialectArg::Guix) => guixie_cache::Dialect::Guix { host },
    };
    let trace_api = args
        .trace_api
        .then(|| -> anyhow::Result<_> {
            Ok(Arc::new(super::trace_api::TraceApi {
                store: store.clone(),
                token: super::trace_api::TraceApi::new_token(ctx.rng.as_ref()),
                exe: std::env::current_exe().context("finding guixie's executable")?,
                store_args: ctx.store_args(),
                jobs: Arc::new(tokio::sync::Semaphore::new(args.trace_jobs.max(1))),
                timeout: std::time::Duration::from_secs(args.trace_timeout),
                readers: Arc::new(tokio::sync::Semaphore::new(super::trace_api::READERS)),
            }))
        })
        .transpose()?;
    let cache = Arc::new(guixie_cache::Cache {
        store,
        key,
        priority: args.priority,
        compression: args.compression.into(),
        compressed_dir: Some(compressed_dir),
        logs_dir: Some(logs_dir),
        evidence: Some(evidence),
        dialect,
        resolve: None,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        // The first line is the address, for scripts that asked for port 0; then the
        // token, which only whoever started the server sees.
        println!("http://{addr}");
        let mut app = guixie_cache::router(cache);
        if let Some(api) = trace_api {
            println!("trace token: {}", api.token);
            app = super::trace_api::router(api).merge(app);
        }
        use std::io::Write;
        std::io::stdout().flush()?;
        guixie_cache::serve_router(listener, app)
            .await
            .context("serving the cache")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// This machine's name, as `guix publish` puts it in its signatures.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && !h.contains(';'))
        .unwrap_or_else(|| "localhost".into())
}
