//! gdb's account of a program run: how it ended (an exit code, or the signal that stopped
//! it) and, on a signal, a backtrace of every thread. gdb runs in batch mode with its own
//! output logged to a file ([`batch_args`]); [`parse_batch_log`] reads that log.

use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "guixie.gdb-report/1";

/// Largest log read back.
pub const MAX_LOG_BYTES: u64 = 16 << 20;
/// Threads and frames per thread kept (a recursion gone wrong has millions of frames).
pub const MAX_THREADS: usize = 256;
pub const MAX_FRAMES: usize = 64;

/// gdb's options: no init files, no shell between gdb and the program, its own output to
/// `log_file` (the program keeps the terminal), run, then every thread's backtrace (gdb
/// prints "No stack." when the program exited).
pub fn batch_args(log_file: &str, data_directory: &str, debug_dir: &str) -> Vec<String> {
    let mut args = settings(
        log_file,
        data_directory,
        debug_dir,
        "set startup-with-shell off",
    );
    for command in ["run", &format!("thread apply all bt {MAX_FRAMES}")] {
        args.push("-ex".into());
        args.push(command.to_owned());
    }
    args.push("--args".into());
    args
}

/// gdb's options for a build: every process the builder starts is followed (gdb's
/// inferiors, all run together) until one receives a signal that stops it, whose threads'
/// backtraces are logged, or all have ended, the builder's exit logged last. The builder
/// is started by `$SHELL` (gdb's own environment), which unescapes its arguments: gdb 13
/// without a shell passes them on escaped. `restore` are gdb commands run before the
/// build starts (putting back the build's own environment).
pub fn build_args(
    log_file: &str,
    data_directory: &str,
    debug_dir: &str,
    restore: &[String],
) -> Vec<String> {
    let mut args = settings(
        log_file,
        data_directory,
        debug_dir,
        "set startup-with-shell on",
    );
    let driver = FOLLOW_BUILD.replace("@MAX_FRAMES@", &MAX_FRAMES.to_string());
    let commands = [
        "set detach-on-fork off",
        "set schedule-multiple on",
        "set follow-exec-mode same",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(restore.iter().cloned())
    // One line: the driver, in hexadecimal, needs no quoting.
    .chain([format!(
        "python exec(bytes.fromhex('{}').decode())",
        data_encoding::HEXLOWER.encode(driver.as_bytes())
    )]);
    for command in commands {
        args.push("-ex".into());
        args.push(command);
    }
    args.push("--args".into());
    args
}

const FOLLOW_BUILD: &str = include_str!("gdb/follow_build.py");

/// What both modes share: no init files, no debuginfod, symbols from `debug_dir`, signals
/// programs take in their stride passed on, gdb's own output to `log_file`.
fn settings(log_file: &str, data_directory: &str, debug_dir: &str, shell: &str) -> Vec<String> {
    let mut args: Vec<String> = ["-nx", "-nh", "-batch"].map(String::from).to_vec();
    args.push(format!("--data-directory={data_directory}"));
    for command in [
        shell,
        "set debuginfod enabled off",
        &format!("set debug-file-directory {debug_dir}"),
        "set pagination off",
        // Signals programs take in their stride stop nothing: only one that ends the
        // program (or that gdb stops on by default: SIGSEGV, SIGABRT…) is a crash.
        "handle SIGUSR1 SIGUSR2 SIGPIPE SIGALRM SIGCHLD SIGWINCH SIGHUP SIGTERM SIGURG SIGIO \
         SIGPROF SIGVTALRM nostop noprint pass",
        "set width unlimited",
        &format!("set logging file {log_file}"),
        "set logging overwrite on",
        "set logging redirect on",
        "set logging enabled on",
    ] {
        args.push("-ex".into());
        args.push(command.to_owned());
    }
    args
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GdbReport {
    pub schema: String,
    /// The store item the tool came from (the host's package and its closure).
    pub tool: String,
    pub program: String,
    pub args: Vec<String>,
    pub ending: Ending,
    /// Every thread's backtrace when a signal stopped the program, the thread it hit first.
    pub threads: Vec<Thread>,
    /// Threads beyond [`MAX_THREADS`], not kept.
    #[serde(default)]
    pub omitted_threads: usize,
    /// In a build, the process that received the signal (the builder or any it started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crashed: Option<CrashedProcess>,
    /// A traced build's comparison with the build (`program` is then the derivation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<crate::report::BuildCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashedProcess {
    pub pid: u32,
    /// Its executable, as the sandbox shows it.
    pub program: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Ending {
    Exited {
        code: i32,
    },
    /// A signal stopped it (`SIGSEGV`, `SIGABRT`, …); `thread` is gdb's number of the thread
    /// that received it.
    Signal {
        name: String,
        description: String,
        thread: Option<u32>,
    },
    /// Killed outright (gdb could not look at it).
    Terminated {
        name: String,
        description: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thread {
    /// gdb's thread number.
    pub id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lwp: Option<u32>,
    pub frames: Vec<Frame>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    pub level: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The shared object, for frames without debug information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
}

impl Frame {
    pub fn describe(&self) -> String {
        match (&self.file, self.line, &self.library) {
            (Some(f), Some(l), _) => format!("{} ({f}:{l})", self.function),
            (_, _, Some(lib)) => format!("{} (from {lib})", self.function),
            _ => self.function.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GdbError {
    #[error("gdb's log does not say how the program ended (did it run? gdb's log:\n{0})")]
    NoEnding(String),
}

/// Reads gdb's batch log (from [`batch_args`]).
pub fn parse_batch_log(log: &str) -> Result<(Ending, Vec<Thread>, usize), GdbError> {
    let mut ending = None;
    let mut threads: Vec<Thread> = Vec::new();
    let mut omitted = 0;
    let mut keeping = true;
    for line in log.lines() {
        if let Some(e) = ending_of(line) {
            // gdb's last word is how the run ended (the program shares the log's directory
            // and could write an ending of its own before it).
            ending = Some(e);
        } else if let Some(t) = thread_header(line) {
            keeping = threads.len() < MAX_THREADS;
            if keeping {
                threads.push(t);
            } else {
                omitted += 1;
            }
        } else if let Some(f) = frame(line) {
            if let Some(t) = threads.last_mut().filter(|_| keeping) {
                if t.frames.len() < MAX_FRAMES {
                    t.frames.push(f);
                }
            }
        }
    }
    let Some(ending) = ending else {
        let head: String = log.chars().take(2000).collect();
        return Err(GdbError::NoEnding(head));
    };
    // The thread that took the signal first, as people read a crash.
    if let Ending::Signal {
        thread: Some(id), ..
    } = &ending
    {
        if let Some(i) = threads.iter().position(|t| t.id == *id) {
            let t = threads.remove(i);
            threads.insert(0, t);
        }
    }
    Ok((ending, threads, omitted))
}

/// `Program received signal SIGSEGV, Segmentation fault.`,
/// `Thread 1 "x" received signal SIGABRT, Aborted.`, `[Inferior 1 (process 9) exited with
/// code 03]` (octal, as gdb prints it), `… exited normally]`, `Program terminated with
/// signal SIGKILL, Killed.`
fn ending_of(line: &str) -> Option<Ending> {
    if let Some(rest) = line.strip_prefix("[Inferior ") {
        if rest.ends_with("exited normally]") {
            return Some(Ending::Exited { code: 0 });
        }
        let code = rest.split(" exited with code ").nth(1)?.strip_suffix(']')?;
        return Some(Ending::Exited {
            code: i32::from_str_radix(code, 8).ok()?,
        });
    }
    if let Some(rest) = line.strip_prefix("Program terminated with signal ") {
        let (name, description) = signal(rest)?;
        return Some(Ending::Terminated { name, description });
    }
    let (who, rest) = line.split_once(" received signal ")?;
    let thread = if who == "Program" {
        Some(1)
    } else {
        thread_number(who.strip_prefix("Thread ")?.split_whitespace().next()?)
    };
    let (name, description) = signal(rest)?;
    Some(Ending::Signal {
        name,
        description,
        thread,
    })
}

fn signal(rest: &str) -> Option<(String, String)> {
    let (name, description) = rest.split_once(", ")?;
    if !name.starts_with("SIG") {
        return None;
    }
    Some((
        name.to_owned(),
        description.trim_end_matches('.').to_owned(),
    ))
}

/// gdb's `2`, or `3.2` when it follows several processes (thread 2 of inferior 3: a build's
/// log shows one process's threads).
fn thread_number(id: &str) -> Option<u32> {
    id.rsplit('.').next()?.parse().ok()
}

/// The process a build's driver found stopped by a signal (`follow_build.py`).
pub fn crashed_process(log: &str) -> Option<CrashedProcess> {
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("guixie-gdb: crashed process "))?;
    let (pid, program) = line.split_once(' ')?;
    Some(CrashedProcess {
        pid: pid.parse().ok()?,
        program: program.to_owned(),
    })
}

/// `Thread 2 (Thread 0x7f… (LWP 8352) "name"):`, `Thread 2.1 (…):`
fn thread_header(line: &str) -> Option<Thread> {
    let rest = line.strip_prefix("Thread ")?;
    if !line.ends_with("):") {
        return None;
    }
    let (id, rest) = rest.split_once(' ')?;
    let id = thread_number(id)?;
    let lwp = rest
        .split("(LWP ")
        .nth(1)
        .and_then(|r| r.split(')').next()?.parse().ok());
    let name = rest
        .rsplit_once(") \"")
        .and_then(|(_, n)| n.strip_suffix("\"):"))
        .map(str::to_owned);
    Some(Thread {
        id,
        name,
        lwp,
        frames: Vec::new(),
    })
}

/// `#1  0x0000555555555185 in main () at crash.c:3`, `#0  deref (p=0x0) at crash.c:2`,
/// `#3  0x00007f… in clone3 () from /lib/…/libc.so.6`.
fn frame(line: &str) -> Option<Frame> {
    let rest = line.strip_prefix('#')?;
    let (level, rest) = rest.split_once(' ')?;
    let level = level.parse().ok()?;
    let mut rest = rest.trim_start();
    let mut address = None;
    if rest.starts_with("0x") {
        let (a, r) = rest.split_once(" in ")?;
        address = Some(a.to_owned());
        rest = r;
    }
    let function = match rest.find(" (") {
        Some(i) => &rest[..i],
        None => rest.split_whitespace().next()?,
    };
    let mut file = None;
    let mut line_no = None;
    let mut library = None;
    if let Some((_, at)) = rest.rsplit_once(") at ") {
        if let Some((f, l)) = at.rsplit_once(':') {
            if let Ok(l) = l.trim().parse() {
                file = Some(f.to_owned());
                line_no = Some(l);
            }
        }
    } else if let Some((_, from)) = rest.rsplit_once(") from ") {
        library = Some(from.trim().to_owned());
    }
    Some(Frame {
        level,
        address,
        function: function.to_owned(),
        file,
        line: line_no,
        library,
    })
}

#[cfg(test)]
mod tests;
