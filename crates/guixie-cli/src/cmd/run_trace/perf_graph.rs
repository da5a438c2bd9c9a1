//! `--trace=perf`'s report: the counters, and the flame graph inferno draws from
//! `perf script`'s output. That output is the program's to shape (it can forge the samples
//! file perf reads), so it is bounded before it is read and inferno runs where a panic is
//! an error of this run, not guixie's.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context as _;
use guixie_formats::StorePath;
use guixie_introspect::perf;
use guixie_store::{LocalStore, PathInfoQuery as _, TextItem};

use super::Tool;

/// Largest `perf script` output drawn.
const MAX_SCRIPT_BYTES: u64 = 512 << 20;

/// The report, and the store items it references (its flame graph). A flame graph that
/// cannot be drawn leaves the counters standing, with a word on stderr.
#[allow(clippy::too_many_arguments)]
pub(crate) fn report(
    store: &LocalStore,
    tool: &Tool,
    program: &StorePath,
    logical: &str,
    args: &[String],
    exit_code: Option<i32>,
    counters: Vec<perf::Counter>,
    graph: anyhow::Result<(u64, Option<Vec<u8>>)>,
) -> anyhow::Result<(perf::PerfReport, BTreeSet<StorePath>)> {
    if counters.iter().all(|c| c.value.is_none()) {
        let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|_| "unreadable".into());
        anyhow::bail!(
            "perf stat counted nothing (kernel.perf_event_paranoid is {paranoid}; perf needs 2 \
             or less for a user's own programs)"
        );
    }
    let (samples, svg) = graph.unwrap_or_else(|e| {
        eprintln!("guixie: no flame graph: {e:#}");
        (0, None)
    });
    let mut references = BTreeSet::new();
    let flamegraph = match svg {
        Some(svg) => {
            let name = format!("{}-flamegraph.svg", program.name().trim_end_matches(".drv"));
            let item = store
                .add_texts(&[TextItem::text(&name, svg, BTreeSet::new())])?
                .remove(0);
            references.insert(item.clone());
            Some(store.store_dir().display(&item))
        }
        None => None,
    };
    let report = perf::PerfReport {
        schema: perf::SCHEMA.into(),
        tool: store.store_dir().display(&tool.item),
        program: logical.to_owned(),
        args: args.to_vec(),
        exit_code,
        pmu: has_pmu(),
        counters,
        samples,
        flamegraph,
        build: None,
    };
    Ok((report, references))
}

/// Whether a hardware PMU is there: an event source of type `PERF_TYPE_RAW` (`cpu`, or
/// `cpu_core` and `cpu_atom` on hybrid parts, `armv8_pmuv3_0` on ARM).
fn has_pmu() -> bool {
    let Ok(sources) = std::fs::read_dir("/sys/bus/event_source/devices") else {
        return false;
    };
    sources
        .filter_map(Result::ok)
        .any(|d| std::fs::read_to_string(d.path().join("type")).is_ok_and(|t| t.trim() == "4"))
}

/// The samples in `perf script`'s output, and their flame graph (none without samples).
pub(crate) fn flame_graph(script: &Path, title: &str) -> anyhow::Result<(u64, Option<Vec<u8>>)> {
    // Not followed if the program made it a link, and read only if not too large.
    let text =
        guixie_store::safe_fs::read_capped_written(script, MAX_SCRIPT_BYTES).map_err(|e| {
            anyhow::anyhow!("perf script's output (at most {MAX_SCRIPT_BYTES} bytes): {e}")
        })?;
    let samples = text
        .split(|b| *b == b'\n')
        .filter(|l| perf::count_samples(&String::from_utf8_lossy(l)))
        .count() as u64;
    if samples == 0 {
        return Ok((0, None));
    }
    let drawn = std::panic::catch_unwind(|| draw(&text, &format!("{title} ({samples} samples)")));
    let svg = drawn.map_err(|_| anyhow::anyhow!("inferno failed on perf script's output"))??;
    Ok((samples, Some(svg)))
}

fn draw(script: &[u8], title: &str) -> anyhow::Result<Vec<u8>> {
    use inferno::collapse::Collapse as _;
    let mut folded = Vec::new();
    inferno::collapse::perf::Folder::default()
        .collapse(std::io::BufReader::new(script), &mut folded)
        .context("folding perf's samples")?;
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_owned();
    let mut svg = Vec::new();
    let folded = String::from_utf8_lossy(&folded);
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
        .context("drawing the flame graph")?;
    Ok(svg)
}
