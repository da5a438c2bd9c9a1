//! The Python tracer's account of a program run: for each Python process, the call tree of
//! the program's own code (call, return and exception events, arguments truncated) and
//! every function's call count. [`TRACER`] is the tracer itself, which each process loads
//! at start and which writes one `guixie.python-trace/1` file when it ends; [`parse_trace`]
//! checks such a file (the traced program could have written anything there) and makes it
//! a [`Process`] of the report.

use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "guixie.python-report/1";
/// What the tracer writes for one process.
pub const TRACE_SCHEMA: &str = "guixie.python-trace/1";
/// The tracer's source: a module imported by a `.pth` file of the user site directory.
pub const TRACER: &str = include_str!("../python/guixie_pytrace.py");
/// The tracer's module name, and the `.pth` line that loads it.
pub const TRACER_MODULE: &str = "guixie_pytrace";

/// Largest trace file read back, and the most processes kept.
pub const MAX_TRACE_BYTES: u64 = 64 << 20;
pub const MAX_PROCESSES: usize = 256;
/// Calls the tracer keeps per process (it counts the rest), passed to it; a file with more
/// is refused.
pub const MAX_CALLS: usize = 20_000;
const MAX_FUNCTIONS: usize = 10_000;
/// All trace files of a run read back, in bytes.
pub const MAX_TRACES_BYTES: u64 = 256 << 20;
const MAX_ARGS: usize = 8;
const MAX_TEXT: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonReport {
    pub schema: String,
    /// The tracer's store item.
    pub tool: String,
    pub program: String,
    pub args: Vec<String>,
    pub exit_code: Option<i32>,
    /// By pid.
    pub processes: Vec<Process>,
    /// Processes beyond [`MAX_PROCESSES`], not kept.
    #[serde(default)]
    pub omitted_processes: usize,
    /// The program's HTTP, when it went through the recording gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpUse>,
    /// For a traced build (`guixie build --trace=python`; `program` is then the
    /// derivation): how its outputs compare with the registered build's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<crate::report::BuildCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// In the sandbox's PID namespace.
    pub pid: u32,
    pub ppid: u32,
    pub argv: Vec<String>,
    pub python: String,
    pub threads: u32,
    pub functions: Vec<Function>,
    /// In the order they were made; a call's parent comes before it.
    pub calls: Vec<Call>,
    /// Calls past [`MAX_CALLS`] or too deep, counted in [`Function::calls`] only.
    pub dropped_calls: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Function {
    /// Its qualified name (`Class.method`).
    pub name: String,
    pub file: String,
    pub line: u32,
    pub calls: u64,
    /// Exception events in its frames (raised there or passing through).
    pub exceptions: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// Index of the calling call, `None` at a thread's top.
    pub parent: Option<u32>,
    /// Index into [`Process::functions`].
    pub function: u32,
    /// The tracer's number of the thread, in the order threads first called.
    pub thread: u32,
    /// (name, value shown) of its arguments.
    pub args: Vec<(String, String)>,
    /// The type of the last exception seen in the call.
    pub exception: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpMode {
    Record,
    Replay,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpUse {
    pub mode: HttpMode,
    /// The recording's store item: made by this run, or answered from.
    pub recording: String,
    pub exchanges: usize,
    /// Requests a replay had no recorded answer for (`METHOD URL`).
    pub unrecorded: Vec<String>,
}

/// A call's depth in its tree (0 at the top), from the parents before it.
pub fn depths(calls: &[Call]) -> Vec<usize> {
    let mut depth = Vec::with_capacity(calls.len());
    for c in calls {
        let d = c
            .parent
            .and_then(|p| depth.get(p as usize))
            .map_or(0, |d: &usize| d + 1);
        depth.push(d);
    }
    depth
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    schema: String,
    pid: u32,
    ppid: u32,
    argv: Vec<String>,
    python: String,
    threads: u32,
    functions: Vec<(String, String, u32)>,
    counts: Vec<(u64, u64)>,
    calls: Vec<RawCall>,
    dropped: u64,
}

/// (parent or -1, function, thread, args, exception), as the tracer writes a call.
type RawCall = (i64, u32, u32, Vec<(String, String)>, Option<String>);

/// Checks one process's trace file and makes it a [`Process`].
pub fn parse_trace(bytes: &[u8]) -> Result<Process, String> {
    let raw: RawTrace =
        serde_json::from_slice(bytes).map_err(|e| format!("not a Python trace: {e}"))?;
    if raw.schema != TRACE_SCHEMA {
        return Err(format!(
            "trace schema {:?}; this guixie reads {TRACE_SCHEMA:?}",
            raw.schema
        ));
    }
    if raw.functions.len() > MAX_FUNCTIONS || raw.functions.len() != raw.counts.len() {
        return Err(format!(
            "{} functions and {} counts: one count per function, at most {MAX_FUNCTIONS}",
            raw.functions.len(),
            raw.counts.len()
        ));
    }
    if raw.calls.len() > MAX_CALLS {
        return Err(format!(
            "{} calls; the tracer keeps at most {MAX_CALLS}",
            raw.calls.len()
        ));
    }
    let functions = raw
        .functions
        .into_iter()
        .zip(raw.counts)
        .map(|((name, file, line), (calls, exceptions))| Function {
            name: capped(name),
            file: capped(file),
            line,
            calls,
            exceptions,
        })
        .collect::<Vec<_>>();
    let mut calls = Vec::with_capacity(raw.calls.len());
    for (i, (parent, function, thread, args, exception)) in raw.calls.into_iter().enumerate() {
        let parent = match parent {
            -1 => None,
            p if p >= 0 && (p as usize) < i => Some(p as u32),
            p => return Err(format!("call {i}: its parent {p} is not an earlier call")),
        };
        if function as usize >= functions.len() {
            return Err(format!("call {i}: no function {function}"));
        }
        if thread >= raw.threads {
            return Err(format!(
                "call {i}: thread {thread} of {} threads",
                raw.threads
            ));
        }
        calls.push(Call {
            parent,
            function,
            thread,
            args: args
                .into_iter()
                .take(MAX_ARGS)
                .map(|(n, v)| (capped(n), capped(v)))
                .collect(),
            exception: exception.map(capped),
        });
    }
    Ok(Process {
        pid: raw.pid,
        ppid: raw.ppid,
        argv: raw.argv.into_iter().take(32).map(capped).collect(),
        python: capped(raw.python),
        threads: raw.threads,
        functions,
        calls,
        dropped_calls: raw.dropped,
    })
}

fn capped(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests;
