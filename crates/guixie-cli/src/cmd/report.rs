//! `guixie report show|json ITEM`: a traced build's report, for people and for machines.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use guixie_introspect::report::{BuildTrace, Report, MAX_REPORT_BYTES};
use guixie_introspect::{gdb, perf, python, valgrind};
use guixie_store::PathInfoQuery as _;

use crate::Context;

#[derive(Subcommand)]
pub enum ReportCmd {
    /// A readable summary of a report: a build trace's processes, execs, files, probes,
    /// connects and hermeticity violations; valgrind's errors and leaks with their stacks;
    /// gdb's signal and backtraces; perf's counters and flame graph; Python's calls.
    Show { item: String },
    /// The report's JSON, as it is stored.
    Json { item: String },
    /// What two reports of one kind differ in (e.g. two builders' traces of one derivation):
    /// execs, files read, written and deleted, probes, connects, violations; memcheck's
    /// errors; gdb's backtraces; Python's calls. Exits 1 when they differ, 2 when they cannot be
    /// compared, as diff(1) does.
    Diff { first: String, second: String },
}

pub fn run(ctx: &Context, cmd: ReportCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ReportCmd::Show { item } => match read(ctx, &item)? {
            Report::Build(r) => show(&r),
            Report::Valgrind(r) => show_valgrind(&r),
            Report::Gdb(r) => show_gdb(&r),
            Report::Perf(r) => show_perf(&r),
            Report::Python(r) => show_python(&r),
        },
        ReportCmd::Json { item } => {
            let report = read(ctx, &item)?;
            println!("{}", serde_json::to_string_pretty(&report.to_json())?);
        }
        ReportCmd::Diff { first, second } => {
            // As diff(1): 1 when they differ, 2 when they cannot be compared.
            let compared = read(ctx, &first).and_then(|a| {
                let b = read(ctx, &second)?;
                guixie_introspect::diff::diff(&a, &b).map_err(anyhow::Error::msg)
            });
            let d = match compared {
                Ok(d) => d,
                Err(e) => {
                    crate::output::report_error(&e);
                    return Ok(ExitCode::from(2));
                }
            };
            if ctx.json {
                crate::output::print_json(&serde_json::to_value(&d)?)?;
            } else if d.is_empty() {
                println!("the reports do not differ");
            } else {
                for s in &d.sections {
                    println!("{}:", s.name);
                    for x in &s.only_first {
                        println!("  - {x}");
                    }
                    for x in &s.only_second {
                        println!("  + {x}");
                    }
                }
            }
            return Ok(if d.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A report by its store path (as printed) or a file.
fn read(ctx: &Context, item: &str) -> anyhow::Result<Report> {
    let store = ctx.open_store()?;
    let file = match store.store_dir().parse_path(item) {
        Ok(path) => store.real_path(&path),
        Err(_) => std::path::PathBuf::from(item),
    };
    let bytes = guixie_store::safe_fs::read_capped(&file, MAX_REPORT_BYTES)
        .with_context(|| item.to_owned())?;
    Report::parse(&bytes).map_err(|e| anyhow::anyhow!("{item}: {e}"))
}

/// One line: what was traced and the verdicts.
pub fn summary_line(r: &BuildTrace) -> String {
    format!(
        "{}: {} processes, {} execs, {} files read, {} written, {} failed probes, {} connects; outputs {}; {}",
        r.derivation,
        r.strace.processes.len(),
        r.strace.execs.len(),
        r.strace.read.len(),
        r.strace.written.len(),
        r.strace.failed_probes.len(),
        r.strace.connects.len(),
        if r.outputs_equal { "equal to the build's" } else { "DIFFER from the build's" },
        match (r.violations.len(), r.strace.complete) {
            (0, true) => "hermetic".to_owned(),
            (0, false) => "INCOMPLETE TRACE (proves nothing)".to_owned(),
            (n, _) => format!("{n} HERMETICITY VIOLATIONS"),
        }
    )
}

fn show(r: &BuildTrace) {
    println!("{}", summary_line(r));
    for d in &r.differences {
        println!("  differs: {d}");
    }
    if !r.violations.is_empty() {
        println!("\nviolations (read or executed outside what the build declared):");
        for v in &r.violations {
            println!("  {:<5} {}", v.how, printable(&v.path));
        }
    }
    println!("\nprocesses:");
    let children = |parent: Option<u32>| {
        r.strace
            .processes
            .iter()
            .filter(move |p| p.parent == parent)
            .collect::<Vec<_>>()
    };
    let mut stack: Vec<(usize, &guixie_introspect::strace::Process)> =
        children(None).into_iter().rev().map(|p| (0, p)).collect();
    while let Some((depth, p)) = stack.pop() {
        let exit = match &p.exit {
            Some(guixie_introspect::strace::Exit::Code(c)) => format!("exit {c}"),
            Some(guixie_introspect::strace::Exit::Signal(s)) => format!("killed by {s}"),
            None => "?".into(),
        };
        let argv: String = printable(&p.argv.join(" ")).chars().take(100).collect();
        println!(
            "  {:indent$}{} [{exit}] {argv}",
            "",
            p.pid,
            indent = depth * 2
        );
        stack.extend(
            children(Some(p.pid))
                .into_iter()
                .rev()
                .map(|c| (depth + 1, c)),
        );
    }
    if !r.strace.connects.is_empty() {
        println!("\nconnects:");
        for c in &r.strace.connects {
            println!("  {} {} ({})", c.pid, printable(&c.address), c.result);
        }
    }
    println!("\nfiles written: {}", r.strace.written.len());
    for f in &r.strace.written {
        println!("  {}", printable(f));
    }
    if !r.strace.deleted.is_empty() {
        println!("files deleted: {}", r.strace.deleted.len());
        for f in &r.strace.deleted {
            println!("  {}", printable(f));
        }
    }
}

pub fn valgrind_summary(r: &valgrind::ValgrindReport) -> String {
    let leaks = || r.memchecks().flat_map(|m| &m.leaks);
    let lost: u64 = leaks().filter_map(|l| l.leaked_bytes).sum();
    let errors: u64 = r.memchecks().flat_map(|m| &m.errors).map(|e| e.count).sum();
    let head = format!(
        "{}: {errors} memory errors, {} leaks ({lost} bytes)",
        r.program,
        leaks().count()
    );
    match &r.build {
        Some(build) => format!(
            "{head} in {} processes; {}",
            r.processes.len() + r.omitted_processes,
            build_check_line(build)
        ),
        None => format!(
            "{head}; exit {}; {}",
            r.exit_code.map_or("?".into(), |c| c.to_string()),
            r.instructions
                .map_or("no instruction count".into(), |n| format!(
                    "{n} instructions"
                )),
        ),
    }
}

/// How a traced rebuild compared with the build, in a few words.
fn build_check_line(build: &guixie_introspect::report::BuildCheck) -> String {
    match (&build.error, build.outputs_equal) {
        (Some(e), _) => format!("not compared: {e}"),
        (None, true) => "outputs equal to the build's".into(),
        (None, false) => format!("{} files differ from the build's", build.differences.len()),
    }
}

fn show_valgrind(r: &valgrind::ValgrindReport) {
    println!("{}", valgrind_summary(r));
    show_memcheck(&r.memcheck, "");
    for p in &r.processes {
        if p.memcheck.errors.is_empty() && p.memcheck.leaks.is_empty() {
            continue;
        }
        println!(
            "\nprocess {}: {} {}",
            p.pid,
            printable(&p.program),
            printable(&p.args.join(" "))
        );
        show_memcheck(&p.memcheck, "  ");
    }
    if r.unfinished_processes > 0 {
        println!(
            "\n{} processes whose memcheck never finished (killed, or replaced by another \
             program)",
            r.unfinished_processes
        );
    }
}

fn show_memcheck(m: &valgrind::Memcheck, indent: &str) {
    let stack = |frames: &[valgrind::Frame]| {
        for f in frames {
            println!("{indent}      {}", printable(&f.describe()));
        }
    };
    for (title, list) in [("errors", &m.errors), ("leaks", &m.leaks)] {
        if list.is_empty() {
            continue;
        }
        println!("\n{indent}{title}:");
        for e in list {
            println!(
                "{indent}  {} ({}, {}×)",
                printable(&e.what),
                printable(&e.kind),
                e.count
            );
            stack(&e.stack);
            for a in &e.aux {
                println!("{indent}    {}", printable(&a.what));
                stack(&a.stack);
            }
        }
    }
    if m.omitted > 0 {
        println!("\n{indent}{} more errors not kept", m.omitted);
    }
}

pub fn gdb_summary(r: &gdb::GdbReport) -> String {
    let ending = match &r.ending {
        gdb::Ending::Exited { code } => format!("exited with code {code}"),
        gdb::Ending::Signal {
            name, description, ..
        } => format!("stopped by {name} ({description})"),
        gdb::Ending::Terminated { name, description } => {
            format!("killed by {name} ({description})")
        }
    };
    let at = r
        .threads
        .first()
        .and_then(|t| t.frames.first())
        .map(|f| format!(" in {}", printable(&f.describe())))
        .unwrap_or_default();
    let process = r
        .crashed
        .as_ref()
        .map(|c| format!(" (process {}, {})", c.pid, printable(&c.program)))
        .unwrap_or_default();
    let line = format!(
        "{}: {ending}{process}{at}; {} threads",
        r.program,
        r.threads.len()
    );
    match &r.build {
        Some(build) => format!("{line}; {}", build_check_line(build)),
        None => line,
    }
}

fn show_gdb(r: &gdb::GdbReport) {
    println!("{}", gdb_summary(r));
    for t in &r.threads {
        println!(
            "\nthread {}{}:",
            t.id,
            t.name
                .as_ref()
                .map(|n| format!(" \"{}\"", printable(n)))
                .unwrap_or_default()
        );
        for f in &t.frames {
            println!("  #{:<3} {}", f.level, printable(&f.describe()));
        }
    }
    if r.omitted_threads > 0 {
        println!("\n{} more threads not kept", r.omitted_threads);
    }
}

pub fn perf_summary(r: &perf::PerfReport) -> String {
    let clock = r
        .counters
        .iter()
        .find(|c| c.event == "task-clock")
        .and_then(|c| c.value)
        .map_or("?".into(), |v| format!("{v:.1} ms"));
    format!(
        "{}: task-clock {clock}, {} samples{}; {}{}",
        r.program,
        r.samples,
        r.flamegraph
            .as_ref()
            .map(|f| format!(", flame graph {f}"))
            .unwrap_or_default(),
        ending(r.build.as_ref(), r.exit_code),
        if r.pmu {
            ""
        } else {
            " (no PMU here: software counters only, samples on cpu-clock)"
        }
    )
}

fn show_perf(r: &perf::PerfReport) {
    println!("{}\n", perf_summary(r));
    for c in &r.counters {
        let value = c.value.map_or("not counted".into(), |v| format!("{v}"));
        println!("  {:<18} {value} {}", c.event, c.unit);
    }
    if let Some(svg) = &r.flamegraph {
        println!("\nflame graph (open in a browser): {svg}");
    }
}

pub fn python_summary(r: &python::PythonReport) -> String {
    let calls: usize = r.processes.iter().map(|p| p.calls.len()).sum();
    let dropped: u64 = r.processes.iter().map(|p| p.dropped_calls).sum();
    let http = match &r.http {
        None => String::new(),
        Some(h) => {
            let verb = match h.mode {
                python::HttpMode::Record => "recorded",
                python::HttpMode::Replay => "replayed",
            };
            let missing = if h.unrecorded.is_empty() {
                String::new()
            } else {
                format!(", {} with no recorded answer", h.unrecorded.len())
            };
            format!(
                "; HTTP: {} exchanges {verb}{missing} ({})",
                h.exchanges, h.recording
            )
        }
    };
    let ending = ending(r.build.as_ref(), r.exit_code);
    format!(
        "{}: {} Python processes, {calls} calls kept{}; {ending}{http}",
        printable(&r.program),
        r.processes.len(),
        if dropped > 0 {
            format!(" ({dropped} more counted)")
        } else {
            String::new()
        },
    )
}

/// A build's report says how its outputs compare; a program's, how it exited.
fn ending(build: Option<&guixie_introspect::report::BuildCheck>, exit_code: Option<i32>) -> String {
    match build {
        Some(b) if b.outputs_equal => "outputs equal to the build's".to_owned(),
        Some(_) => "outputs DIFFER from the build's".to_owned(),
        None => format!("exit {}", exit_code.map_or("?".into(), |c| c.to_string())),
    }
}

/// Calls shown per process; the report holds them all.
const SHOWN_CALLS: usize = 60;

fn show_python(r: &python::PythonReport) {
    println!("{}", python_summary(r));
    if let Some(b) = &r.build {
        let verdict = if b.outputs_equal {
            "equal to"
        } else {
            "DIFFER from"
        };
        println!("outputs {verdict} the build's:");
        for (name, path) in &b.outputs {
            println!("  {name}: {path}");
        }
        for d in &b.differences {
            println!("  differs: {}", printable(d));
        }
    }
    for p in &r.processes {
        println!(
            "\nprocess {} (parent {}), Python {}: {}",
            p.pid,
            p.ppid,
            printable(&p.python),
            printable(&p.argv.join(" "))
        );
        let mut busiest: Vec<&python::Function> = p.functions.iter().collect();
        busiest.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.name.cmp(&b.name)));
        println!("  {:>9} {:>10}  function", "calls", "exceptions");
        for f in busiest.iter().take(15) {
            println!(
                "  {:>9} {:>10}  {} ({}:{})",
                f.calls,
                f.exceptions,
                printable(&f.name),
                printable(&f.file),
                f.line
            );
        }
        println!("  call tree:");
        for (c, depth) in p
            .calls
            .iter()
            .zip(python::depths(&p.calls))
            .take(SHOWN_CALLS)
        {
            let name = p
                .functions
                .get(c.function as usize)
                .map_or("?", |f| &f.name);
            let args: Vec<String> = c.args.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let raised = c
                .exception
                .as_ref()
                .map(|e| format!("  !{e}"))
                .unwrap_or_default();
            println!(
                "  {:indent$}{}({}){} [thread {}]",
                "",
                printable(name),
                printable(&args.join(", ")),
                printable(&raised),
                c.thread,
                indent = 2 * depth.min(40)
            );
        }
        if p.calls.len() > SHOWN_CALLS {
            println!(
                "  … {} more calls (guixie report json)",
                p.calls.len() - SHOWN_CALLS
            );
        }
    }
    if let Some(h) = &r.http {
        for u in &h.unrecorded {
            println!("\nno recorded answer: {}", printable(u));
        }
    }
}

/// Text a traced program chose (names, arguments), with control characters escaped so
/// that showing a report cannot drive the terminal.
pub fn printable(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        text.to_owned()
    }
}
