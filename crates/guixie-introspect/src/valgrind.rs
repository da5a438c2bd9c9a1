//! valgrind's findings on a program run: memcheck's errors and leaks with their stacks (from
//! its `--xml=yes` output, protocol 4), and callgrind's count of executed instructions, a
//! cost figure that does not depend on the machine's load.

use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "guixie.valgrind-report/1";

/// Largest memcheck XML read (valgrind stops reporting after 1000 distinct errors anyway).
pub const MAX_XML_BYTES: u64 = 64 << 20;

/// Frames kept per stack, and errors kept per report: a runaway program's report stays
/// readable and bounded; what was left out is counted.
pub const MAX_FRAMES: usize = 32;
pub const MAX_ERRORS: usize = 1000;

/// memcheck's options: XML to `xml_file`, every leak kind with its allocation stack, and
/// the program's own exit status passed through; detached debugging symbols looked for
/// under `debug_dir` (valgrind needs the loader's).
pub fn memcheck_args(xml_file: &str, debug_dir: &str) -> Vec<String> {
    [
        &format!("--extra-debuginfo-path={debug_dir}"),
        "--tool=memcheck",
        "--xml=yes",
        &format!("--xml-file={xml_file}"),
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect,possible",
        "--num-callers=32",
        "--track-origins=no",
        // A forked child would write into the same XML file and break it.
        "--child-silent-after-fork=yes",
        "-q",
    ]
    .map(String::from)
    .to_vec()
}

/// memcheck's options for a build: every program the builder and its processes execute
/// runs under memcheck too, each process writing its own XML into `xml_dir` (a process
/// that executes another program starts its file anew: its earlier image's findings are
/// lost, as with any program that replaces itself).
pub fn memcheck_build_args(xml_dir: &str, debug_dir: &str) -> Vec<String> {
    let mut args = memcheck_args(&format!("{xml_dir}/memcheck.%p.xml"), debug_dir);
    args.push("--trace-children=yes".into());
    args
}

/// Processes of a build kept in its report; the rest are counted.
pub const MAX_PROCESSES: usize = 256;

/// Command-line words kept per process.
pub const MAX_ARGS: usize = 64;

/// callgrind's options: its profile to `out_file`, nothing on the terminal.
pub fn callgrind_args(out_file: &str, debug_dir: &str) -> Vec<String> {
    [
        &format!("--extra-debuginfo-path={debug_dir}"),
        "--tool=callgrind",
        &format!("--callgrind-out-file={out_file}"),
        "-q",
    ]
    .map(String::from)
    .to_vec()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValgrindReport {
    pub schema: String,
    /// The store item the tool came from (the host's package and its closure).
    pub tool: String,
    /// The program, as run inside the sandbox (its logical store path), and its arguments.
    pub program: String,
    pub args: Vec<String>,
    /// The program's exit code under memcheck.
    pub exit_code: Option<i32>,
    pub memcheck: Memcheck,
    /// Instructions executed (callgrind's `Ir` total), when callgrind ran.
    pub instructions: Option<u64>,
    /// In a build: each process memcheck followed, with its own findings (`memcheck` is
    /// then empty), in order of pid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ValgrindProcess>,
    /// Processes beyond [`MAX_PROCESSES`], and those whose XML memcheck never finished
    /// (killed, or replaced by another program): counted, not read.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_processes: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unfinished_processes: usize,
    /// A traced build's comparison with the build (`program` is then the derivation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<crate::report::BuildCheck>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ValgrindReport {
    /// The findings of the program, or of every process of a build.
    pub fn memchecks(&self) -> impl Iterator<Item = &Memcheck> {
        std::iter::once(&self.memcheck).chain(self.processes.iter().map(|p| &p.memcheck))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValgrindProcess {
    pub pid: u32,
    /// The program and its arguments, as it was run (at most [`MAX_ARGS`] words).
    pub program: String,
    pub args: Vec<String>,
    pub memcheck: Memcheck,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memcheck {
    /// Errors other than leaks (invalid reads and writes, uses of uninitialised values,
    /// bad frees…), each once, with how often it happened.
    pub errors: Vec<MemError>,
    pub leaks: Vec<MemError>,
    /// Errors beyond [`MAX_ERRORS`], not kept.
    #[serde(default)]
    pub omitted: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemError {
    /// memcheck's kind: `InvalidRead`, `Leak_DefinitelyLost`, …
    pub kind: String,
    pub what: String,
    /// How many times it occurred (from `errorcounts`; 1 for leaks).
    pub count: u64,
    /// Bytes and blocks lost, for leaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked_blocks: Option<u64>,
    pub stack: Vec<Frame>,
    /// Further explanations, e.g. where the block read past was allocated, each with its
    /// stack (empty when memcheck gave none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aux: Vec<Aux>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aux {
    pub what: String,
    pub stack: Vec<Frame>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The object (executable or library) the instruction is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

impl Frame {
    /// `function (file:line)`, or what is known of it.
    pub fn describe(&self) -> String {
        let function = self.function.as_deref().unwrap_or("???");
        match (&self.file, self.line) {
            (Some(f), Some(l)) => format!("{function} ({f}:{l})"),
            _ => match &self.object {
                Some(o) => format!("{function} (in {o})"),
                None => format!("{function} ({})", self.ip),
            },
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValgrindError {
    #[error("memcheck's XML is malformed: {0}")]
    Xml(String),
    #[error("not memcheck's XML: {0}")]
    NotMemcheck(String),
    #[error("memcheck's XML ends before the run finished (valgrind was killed, or the program never exited)")]
    Unfinished,
}

/// Parses memcheck's XML output.
pub fn parse_memcheck(xml: &str) -> Result<Memcheck, ValgrindError> {
    parse_memcheck_process(xml).map(|p| p.memcheck)
}

/// [`parse_memcheck`], with the process the XML is of (its pid and command line).
pub fn parse_memcheck_process(xml: &str) -> Result<ValgrindProcess, ValgrindError> {
    let doc = roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: 4_000_000,
        },
    )
    .map_err(|e| ValgrindError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "valgrindoutput" {
        return Err(ValgrindError::NotMemcheck(format!(
            "its root element is <{}>",
            root.tag_name().name()
        )));
    }
    let tool = child_text(root, "tool").unwrap_or_default();
    if tool != "memcheck" {
        return Err(ValgrindError::NotMemcheck(format!("its tool is {tool:?}")));
    }
    let finished = root
        .children()
        .filter(|n| n.has_tag_name("status"))
        .any(|s| child_text(s, "state").as_deref() == Some("FINISHED"));
    if !finished {
        return Err(ValgrindError::Unfinished);
    }
    let counts: Vec<(String, u64)> = root
        .children()
        .filter(|n| n.has_tag_name("errorcounts"))
        .flat_map(|n| n.children().filter(|p| p.has_tag_name("pair")))
        .filter_map(|p| {
            Some((
                child_text(p, "unique")?,
                child_text(p, "count")?.parse().ok()?,
            ))
        })
        .collect();
    let mut report = Memcheck::default();
    for e in root.children().filter(|n| n.has_tag_name("error")) {
        if report.errors.len() + report.leaks.len() >= MAX_ERRORS {
            report.omitted += 1;
            continue;
        }
        let kind = child_text(e, "kind").unwrap_or_default();
        let unique = child_text(e, "unique").unwrap_or_default();
        let xwhat = e.children().find(|n| n.has_tag_name("xwhat"));
        let what = child_text(e, "what")
            .or_else(|| xwhat.and_then(|x| child_text(x, "text")))
            .unwrap_or_default();
        let number = |name: &str| xwhat.and_then(|x| child_text(x, name)?.parse().ok());
        // A stack follows the description it belongs to: the first is the error's own,
        // each later one the stack of the auxwhat before it.
        let mut stack = Vec::new();
        let mut aux: Vec<Aux> = Vec::new();
        let mut seen_stack = false;
        for c in e.children().filter(|n| n.is_element()) {
            match c.tag_name().name() {
                "stack" if !seen_stack => {
                    stack = frames(c);
                    seen_stack = true;
                }
                "stack" => {
                    if let Some(a) = aux.last_mut().filter(|a| a.stack.is_empty()) {
                        a.stack = frames(c);
                    }
                }
                "auxwhat" => aux.push(Aux {
                    what: c.text().unwrap_or_default().to_owned(),
                    stack: Vec::new(),
                }),
                "xauxwhat" => aux.push(Aux {
                    what: child_text(c, "text").unwrap_or_default(),
                    stack: Vec::new(),
                }),
                _ => {}
            }
        }
        let leak = kind.starts_with("Leak_");
        let count = if leak {
            1
        } else {
            counts
                .iter()
                .find(|(u, _)| *u == unique)
                .map_or(1, |(_, c)| *c)
        };
        let error = MemError {
            kind,
            what,
            count,
            leaked_bytes: number("leakedbytes"),
            leaked_blocks: number("leakedblocks"),
            stack,
            aux,
        };
        if leak {
            report.leaks.push(error);
        } else {
            report.errors.push(error);
        }
    }
    let argv = root
        .children()
        .filter(|n| n.has_tag_name("args"))
        .flat_map(|a| a.children().filter(|n| n.has_tag_name("argv")))
        .next();
    let words = |name: &str| -> Vec<String> {
        argv.into_iter()
            .flat_map(|a| a.children().filter(|n| n.has_tag_name(name)))
            .map(|n| n.text().unwrap_or_default().trim().to_owned())
            .take(MAX_ARGS)
            .collect()
    };
    Ok(ValgrindProcess {
        pid: child_text(root, "pid")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
        program: words("exe").into_iter().next().unwrap_or_default(),
        args: words("arg"),
        memcheck: report,
    })
}

fn frames(stack: roxmltree::Node) -> Vec<Frame> {
    stack
        .children()
        .filter(|n| n.has_tag_name("frame"))
        .take(MAX_FRAMES)
        .map(|f| Frame {
            ip: child_text(f, "ip").unwrap_or_default(),
            function: child_text(f, "fn"),
            object: child_text(f, "obj"),
            file: child_text(f, "file"),
            line: child_text(f, "line").and_then(|l| l.parse().ok()),
        })
        .collect()
}

fn child_text(node: roxmltree::Node, name: &str) -> Option<String> {
    node.children()
        .find(|n| n.has_tag_name(name))
        .map(|n| n.text().unwrap_or_default().trim().to_owned())
}

/// The instructions executed, from a callgrind profile's `summary:` (or `totals:`) line for
/// the `Ir` event. The caller reads the file a line at a time and hands each here.
pub fn callgrind_total(line: &str) -> Option<u64> {
    let rest = line
        .strip_prefix("summary:")
        .or_else(|| line.strip_prefix("totals:"))?;
    // `events: Ir` comes first and callgrind's default is Ir alone: the first figure is it.
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests;
