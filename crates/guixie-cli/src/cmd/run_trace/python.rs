//! `guixie run --trace=python [--record | --replay RECORDING]`: every Python process of the
//! run loads guixie's tracer (a store item) through a `.pth` file of the user site
//! directory guixie gives it, and leaves its call tree in the exchange directory. With
//! `--record` or `--replay`, the sandbox's only egress is the recording gateway.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context as _;
use guixie_build::container::{ContainerNetwork, EXCHANGE_DIR, GATEWAY_PROXY};
use guixie_formats::StorePath;
use guixie_introspect::http_recording::{Recording, Replayer, MAX_RECORDING_BYTES};
use guixie_introspect::python::{self, HttpMode, HttpUse, PythonReport};
use guixie_store::{safe_fs, LocalStore, PathInfoQuery as _, TextItem};

use super::gateway::{Gateway, Mode};
use super::{Finding, RunOptions};

/// The Python versions whose user site directory gets the `.pth` file.
const PYTHON_MINORS: std::ops::RangeInclusive<u32> = 6..=15;
const USER_BASE: &str = "python-user";

pub(super) fn traced_python(
    store: &LocalStore,
    program: &StorePath,
    logical: &str,
    args: &[String],
    exchange: &Path,
    options: &RunOptions,
) -> anyhow::Result<Finding> {
    let sd = store.store_dir();
    let tracer = tracer_item(store)?;
    write_user_site(exchange, &sd.display(&tracer))?;
    let mut references = BTreeSet::from([tracer.clone()]);
    let (mode, replayed) = match &options.replay {
        Some(item) => {
            let (path, recording) = read_recording(store, item)?;
            references.insert(path.clone());
            (
                Some(Mode::Replay(Mutex::new(Replayer::new(recording)))),
                Some(path),
            )
        }
        None if options.record => (Some(Mode::record()), None),
        None => (None, None),
    };
    // Apart from the exchange directory, which the program can write.
    let gateway_dir = store.build_area()?;
    let gateway = mode
        .map(|m| Gateway::start(&gateway_dir, m))
        .transpose()
        .context("starting the recording gateway")?;
    let mut env = tracer_env();
    let network = match &gateway {
        Some(_) => {
            for var in ["http_proxy", "HTTP_PROXY"] {
                env.push((var.to_owned(), GATEWAY_PROXY.to_owned()));
            }
            ContainerNetwork::Gateway(&gateway_dir)
        }
        None => options.network(),
    };
    let status = super::contain(
        store,
        program,
        logical.to_owned(),
        args.to_vec(),
        super::Sandboxing {
            tools: std::slice::from_ref(&tracer),
            exchange,
            env,
            debugger: false,
            stdout: None,
            network,
        },
    );
    let traffic = gateway.map(Gateway::finish);
    let _ = safe_fs::remove_tree(&gateway_dir);
    let status = status?;
    let (processes, omitted_processes) = read_traces(exchange)?;
    let http = match (traffic, replayed) {
        (None, _) => None,
        (Some(t), Some(recording)) => Some(HttpUse {
            mode: HttpMode::Replay,
            recording: sd.display(&recording),
            exchanges: t.exchanges.len(),
            unrecorded: t.unrecorded,
        }),
        (Some(t), None) => {
            let exchanges = t.exchanges.len();
            let json = serde_json::to_vec_pretty(&Recording::new(t.exchanges))?;
            let name = format!("{}-http-recording.json", program.name());
            let item = store
                .add_texts(&[TextItem::text(&name, json, BTreeSet::new())])?
                .remove(0);
            references.insert(item.clone());
            Some(HttpUse {
                mode: HttpMode::Record,
                recording: sd.display(&item),
                exchanges,
                unrecorded: vec![],
            })
        }
    };
    let report = PythonReport {
        schema: python::SCHEMA.into(),
        tool: sd.display(&tracer),
        program: logical.to_owned(),
        args: args.to_vec(),
        exit_code: status.code(),
        processes,
        omitted_processes,
        http,
        build: None,
    };
    let mut summary = crate::cmd::report::python_summary(&report);
    for request in report.http.iter().flat_map(|h| &h.unrecorded) {
        summary.push_str(&format!(
            "\nguixie replay: no recorded answer for {}",
            crate::cmd::report::printable(request)
        ));
    }
    let mut code = crate::cmd::shell::exit_code(status);
    if status.success()
        && report
            .http
            .as_ref()
            .is_some_and(|h| !h.unrecorded.is_empty())
    {
        // The run asked what the recording cannot answer: it is not the recorded run.
        code = std::process::ExitCode::from(1);
    }
    Ok(Finding {
        json: serde_json::to_vec_pretty(&report)?,
        status: code,
        summary,
        references,
    })
}

/// The tracer, as a store item of its own.
pub(crate) fn tracer_item(store: &LocalStore) -> anyhow::Result<StorePath> {
    Ok(store
        .add_texts(&[TextItem::text(
            &format!("{}.py", python::TRACER_MODULE),
            python::TRACER.as_bytes().to_vec(),
            BTreeSet::new(),
        )])?
        .remove(0))
}

/// What makes every Python process load the tracer (from the user site
/// [`write_user_site`] makes) and write into the exchange directory.
pub(crate) fn tracer_env() -> Vec<(String, String)> {
    vec![
        (
            "PYTHONUSERBASE".to_owned(),
            format!("{EXCHANGE_DIR}/{USER_BASE}"),
        ),
        ("GUIXIE_PYTRACE_DIR".to_owned(), EXCHANGE_DIR.to_owned()),
        (
            "GUIXIE_PYTRACE_MAX_CALLS".to_owned(),
            python::MAX_CALLS.to_string(),
        ),
    ]
}

/// In the exchange directory: the `.pth` file that loads the tracer from its store item,
/// in the user site directory of each Python version.
pub(crate) fn write_user_site(exchange: &Path, tracer: &str) -> anyhow::Result<()> {
    let base = exchange.join(USER_BASE);
    let module = python::TRACER_MODULE;
    let line = format!(
        "import importlib.util as u; s = u.spec_from_file_location({module:?}, {tracer:?}); \
         s.loader.exec_module(u.module_from_spec(s))\n"
    );
    for minor in PYTHON_MINORS {
        let dir = base.join(format!("lib/python3.{minor}/site-packages"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{module}.pth")), &line)?;
    }
    Ok(())
}

/// A recording given to `--replay`: a store item of this store.
fn read_recording(store: &LocalStore, item: &str) -> anyhow::Result<(StorePath, Recording)> {
    let path = store
        .store_dir()
        .parse_path(item)
        .map_err(|e| anyhow::anyhow!("--replay {item}: {e}"))?;
    anyhow::ensure!(store.is_valid(&path)?, "--replay {item}: not in the store");
    let bytes = safe_fs::read_capped(&store.real_path(&path), MAX_RECORDING_BYTES)
        .with_context(|| format!("--replay {item}"))?;
    let recording =
        Recording::parse(&bytes).map_err(|e| anyhow::anyhow!("--replay {item}: {e}"))?;
    Ok((path, recording))
}

/// The tracer's files, one per process, by pid; beyond [`python::MAX_PROCESSES`] counted.
pub(crate) fn read_traces(exchange: &Path) -> anyhow::Result<(Vec<python::Process>, usize)> {
    let mut names: Vec<(u32, String)> = std::fs::read_dir(exchange)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| {
            let pid = n
                .strip_prefix("pytrace-")?
                .strip_suffix(".json")?
                .parse()
                .ok()?;
            Some((pid, n))
        })
        .collect();
    // The first processes, by pid (the file names' order is not the pids').
    names.sort();
    let omitted = names.len().saturating_sub(python::MAX_PROCESSES);
    let mut processes = Vec::new();
    let mut budget = python::MAX_TRACES_BYTES;
    for (_, name) in names.iter().take(python::MAX_PROCESSES) {
        let bytes =
            safe_fs::read_capped_written(&exchange.join(name), python::MAX_TRACE_BYTES.min(budget))
                .with_context(|| {
                    format!(
                        "reading the Python tracer's {name} (at most {} bytes per file, {} in all)",
                        python::MAX_TRACE_BYTES,
                        python::MAX_TRACES_BYTES
                    )
                })?;
        budget -= bytes.len() as u64;
        processes.push(
            python::parse_trace(&bytes)
                .map_err(|e| anyhow::anyhow!("the Python tracer's {name}: {e}"))?,
        );
    }
    processes.sort_by_key(|p| p.pid);
    Ok((processes, omitted))
}
