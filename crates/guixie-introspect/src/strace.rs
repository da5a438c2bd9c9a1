//! The report of a build or program traced with `strace -f` (the options are
//! [`STRACE_ARGS`]): its process tree, every exec, the files it read, wrote and deleted
//! (resolved against each process's working directory), the probes that failed, and its
//! connects. Schema `guixie.strace/1` (`docs/introspection.md`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::path::resolve;
use crate::syscall::{
    parse_call, parse_line, split_pid, string_arg, string_array, Call, Line, Outcome,
};

pub const SCHEMA: &str = "guixie.strace/1";

/// The strace options whose output the parser reads (the recorded traces in its tests were
/// made with them): follow forks, full-length strings, exit notices but no signals, and
/// only the calls the report needs. guixie's own tracer (`guixie-build`) writes the same.
pub const STRACE_ARGS: &[&str] = &[
    "-f",
    "-q",
    "--seccomp-bpf",
    // The build runs in a PID namespace of its own: pids as strace sees them.
    "--pidns-translation",
    "-s",
    "4096",
    "-e",
    "signal=none",
    "-e",
    "trace=execve,execveat,clone,clone3,fork,vfork,open,openat,openat2,creat,access,faccessat,faccessat2,unlink,unlinkat,rmdir,rename,renameat,renameat2,mkdir,mkdirat,chdir,fchdir,connect,symlink,symlinkat,link,linkat",
];

/// Lines longer than this are not parsed (strace's own are bounded by `-s` per string).
const MAX_LINE: usize = 1 << 20;

#[derive(Clone, Debug, Default)]
pub struct TraceOptions {
    /// Only what the process that executes this program, and its descendants, did (the
    /// sandbox's own setup before it is left out).
    pub root_exec: Option<String>,
    /// The working directory the root starts in.
    pub initial_cwd: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StraceReport {
    pub schema: String,
    pub processes: Vec<Process>,
    pub execs: Vec<Exec>,
    pub read: BTreeSet<String>,
    /// Files and directories the run made or wrote and left there.
    pub written: BTreeSet<String>,
    /// Those it removed (or renamed away) and did not make again.
    pub deleted: BTreeSet<String>,
    /// Paths a call was refused for, with the error (`ENOENT`, …): what the build looked for
    /// and did not find.
    pub failed_probes: BTreeMap<String, String>,
    pub connects: Vec<Connect>,
    /// Paths relative to a directory descriptor the trace does not show the opening of.
    pub unresolved: u64,
    /// Lines that were not understood (none expected).
    pub unparsed_lines: u64,
    /// Whether the trace accounts for everything: the root program was seen, and every line
    /// and path was understood. A report that is not complete proves nothing.
    pub complete: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub parent: Option<u32>,
    /// The argv of its last exec (empty if it never executed anything).
    pub argv: Vec<String>,
    pub exit: Option<Exit>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exit {
    Code(i32),
    Signal(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    pub pid: u32,
    pub path: String,
    pub argv: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connect {
    pub pid: u32,
    pub address: String,
    /// `ok`, or the error.
    pub result: String,
}

struct Proc {
    parent: Option<u32>,
    cwd: String,
    fds: BTreeMap<i64, String>,
    argv: Vec<String>,
    exit: Option<Exit>,
}

/// Builds the report from the trace's lines, in order.
pub struct Parser {
    options: TraceOptions,
    /// Thread id → the process (thread group) it belongs to.
    group: BTreeMap<u32, u32>,
    procs: BTreeMap<u32, Proc>,
    /// Processes whose doings count (the root and its descendants).
    scope: BTreeSet<u32>,
    unfinished: BTreeMap<u32, String>,
    /// Links the traced processes made: the link's path → what it names (a hard link's
    /// other name), both resolved. Paths through them are followed.
    links: BTreeMap<String, String>,
    /// Lines of processes not known yet, by thread id.
    orphans: BTreeMap<u32, Vec<String>>,
    report: StraceReport,
}

/// Lines kept of one process not known yet, at most.
const MAX_ORPHAN_LINES: usize = 4096;

impl Parser {
    pub fn new(options: TraceOptions) -> Self {
        Parser {
            options,
            group: BTreeMap::new(),
            procs: BTreeMap::new(),
            scope: BTreeSet::new(),
            unfinished: BTreeMap::new(),
            links: BTreeMap::new(),
            orphans: BTreeMap::new(),
            report: StraceReport {
                schema: SCHEMA.into(),
                processes: vec![],
                execs: vec![],
                read: BTreeSet::new(),
                written: BTreeSet::new(),
                deleted: BTreeSet::new(),
                failed_probes: BTreeMap::new(),
                connects: vec![],
                unresolved: 0,
                unparsed_lines: 0,
                complete: false,
            },
        }
    }

    pub fn line(&mut self, line: &str) {
        if line.len() > MAX_LINE {
            self.report.unparsed_lines += 1;
            return;
        }
        let Some((tid, rest)) = split_pid(line) else {
            if !line.trim().is_empty() {
                self.report.unparsed_lines += 1;
            }
            return;
        };
        if self.procs.is_empty() {
            self.procs.insert(tid, self.new_proc(None));
        }
        // A child may speak before its parent's clone returns (a vforked child always
        // does): its lines wait until it is known.
        if !self.procs.contains_key(&tid) && !self.group.contains_key(&tid) {
            let waiting = self.orphans.entry(tid).or_default();
            if waiting.len() < MAX_ORPHAN_LINES {
                waiting.push(rest.to_owned());
            } else {
                self.report.unparsed_lines += 1;
            }
            return;
        }
        self.handle(tid, rest);
    }

    fn new_proc(&self, parent: Option<u32>) -> Proc {
        match parent.and_then(|p| self.procs.get(&p)) {
            Some(p) => Proc {
                parent,
                cwd: p.cwd.clone(),
                fds: p.fds.clone(),
                argv: p.argv.clone(),
                exit: None,
            },
            None => Proc {
                parent: None,
                cwd: self.options.initial_cwd.clone(),
                fds: BTreeMap::new(),
                argv: vec![],
                exit: None,
            },
        }
    }

    /// The lines a child said before it was known, now that it is.
    fn replay_orphan(&mut self, tid: u32) {
        for rest in self.orphans.remove(&tid).unwrap_or_default() {
            self.handle(tid, &rest);
        }
    }

    fn handle(&mut self, tid: u32, rest: &str) {
        let pid = *self.group.get(&tid).unwrap_or(&tid);
        match parse_line(rest) {
            Line::Call(call) => self.call(pid, &call),
            Line::Unfinished(head) => {
                self.unfinished.insert(tid, head);
            }
            Line::Resumed { name, rest } => match self.unfinished.remove(&tid) {
                Some(head) if head.starts_with(&name) => match parse_call(&(head + &rest)) {
                    Some(call) => self.call(pid, &call),
                    None => self.report.unparsed_lines += 1,
                },
                _ => self.report.unparsed_lines += 1,
            },
            Line::Superseded(thread) => {
                // The exec began in another thread of this process and ends here.
                if let Some(head) = self.unfinished.remove(&thread) {
                    self.unfinished.insert(tid, head);
                }
                self.group.remove(&thread);
            }
            Line::Exited(code) if tid == pid => self.exited(pid, Exit::Code(code)),
            Line::Killed(signal) if tid == pid => self.exited(pid, Exit::Signal(signal)),
            Line::Exited(_) | Line::Killed(_) => {}
            Line::Other => self.report.unparsed_lines += 1,
        }
    }

    fn exited(&mut self, pid: u32, exit: Exit) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exit = Some(exit);
        }
        // Its thread ids may be reused by other processes.
        self.group.retain(|_, leader| *leader != pid);
    }

    fn call(&mut self, pid: u32, call: &Call) {
        let arg = |i: usize| call.args.get(i).map(String::as_str).unwrap_or_default();
        let ok = matches!(call.result, Outcome::Ok(_));
        match call.name.as_str() {
            "execve" | "execveat" => {
                let (path_arg, argv_arg) = if call.name == "execve" {
                    (0, 1)
                } else {
                    (1, 2)
                };
                let dirfd = (call.name == "execveat").then(|| arg(0));
                let Some(path) = self.path(pid, dirfd, arg(path_arg)) else {
                    return;
                };
                let argv = string_array(arg(argv_arg)).unwrap_or_default();
                if ok && !self.scope.contains(&pid) {
                    if self.options.root_exec.as_deref().is_none_or(|r| r == path) {
                        self.scope.insert(pid);
                    } else {
                        return;
                    }
                }
                if !self.scope.contains(&pid) {
                    return;
                }
                match &call.result {
                    Outcome::Ok(_) => {
                        let p = self.procs.get_mut(&pid).expect("entered");
                        p.argv = argv.clone();
                        self.report.execs.push(Exec { pid, path, argv });
                    }
                    Outcome::Err(e) => {
                        self.report.failed_probes.insert(path, e.clone());
                    }
                    Outcome::Unknown => {}
                }
            }
            "clone" | "clone3" | "fork" | "vfork" => {
                let Outcome::Ok(child) = call.result else {
                    return;
                };
                let Ok(child) = u32::try_from(child) else {
                    return;
                };
                let thread = call.args.iter().any(|a| a.contains("CLONE_THREAD"));
                if thread {
                    self.group.insert(child, pid);
                } else {
                    self.group.remove(&child);
                    let proc = self.new_proc(Some(pid));
                    self.procs.insert(child, proc);
                    if self.scope.contains(&pid) {
                        self.scope.insert(child);
                    }
                }
                self.replay_orphan(child);
            }
            // Setup before the root program: only working directories matter.
            "chdir" if !self.scope.contains(&pid) && ok => {
                if let Some(p) = self.path(pid, None, arg(0)) {
                    self.procs.get_mut(&pid).expect("entered").cwd = p;
                }
            }
            _ if !self.scope.contains(&pid) => {}
            "open" | "creat" => self.open(pid, None, arg(0), arg(1), call),
            "openat" | "openat2" => self.open(pid, Some(arg(0)), arg(1), arg(2), call),
            "access" => self.probe(pid, None, arg(0), call),
            "faccessat" | "faccessat2" => self.probe(pid, Some(arg(0)), arg(1), call),
            "unlink" | "rmdir" => self.delete(pid, None, arg(0), call),
            "unlinkat" => self.delete(pid, Some(arg(0)), arg(1), call),
            "rename" => self.rename(pid, (None, arg(0)), (None, arg(1)), call),
            "renameat" | "renameat2" => {
                self.rename(pid, (Some(arg(0)), arg(1)), (Some(arg(2)), arg(3)), call)
            }
            "symlink" => self.linked(pid, (None, arg(1)), arg(0), true, call),
            "symlinkat" => self.linked(pid, (Some(arg(1)), arg(2)), arg(0), true, call),
            "link" => self.linked(pid, (None, arg(1)), arg(0), false, call),
            "linkat" => {
                let old = self.path(pid, Some(arg(0)), arg(1));
                if let (Some(old), Some(new), Outcome::Ok(_)) =
                    (old, self.path(pid, Some(arg(2)), arg(3)), &call.result)
                {
                    self.links.insert(new.clone(), old);
                    self.wrote(new);
                }
            }
            "mkdir" => self.made(pid, None, arg(0), call),
            "mkdirat" => self.made(pid, Some(arg(0)), arg(1), call),
            "chdir" if ok => {
                if let Some(p) = self.path(pid, None, arg(0)) {
                    self.procs.get_mut(&pid).expect("entered").cwd = p;
                }
            }
            "fchdir" if ok => {
                let dir = arg(0)
                    .parse::<i64>()
                    .ok()
                    .and_then(|fd| self.procs[&pid].fds.get(&fd).cloned());
                match dir {
                    Some(d) => self.procs.get_mut(&pid).expect("entered").cwd = d,
                    None => self.report.unresolved += 1,
                }
            }
            "connect" => {
                let result = match &call.result {
                    Outcome::Ok(_) => "ok".to_owned(),
                    Outcome::Err(e) => e.clone(),
                    Outcome::Unknown => "?".to_owned(),
                };
                self.report.connects.push(Connect {
                    pid,
                    address: socket_address(arg(1)),
                    result,
                });
            }
            _ => {}
        }
    }

    /// A path argument resolved against `dirfd` (`AT_FDCWD` or a descriptor this process
    /// opened) or the working directory.
    fn path(&mut self, pid: u32, dirfd: Option<&str>, arg: &str) -> Option<String> {
        let (path, _) = string_arg(arg)?;
        let proc = &self.procs[&pid];
        let base = match dirfd {
            Some(fd) if fd != "AT_FDCWD" && !path.starts_with('/') => {
                match fd.parse::<i64>().ok().and_then(|fd| proc.fds.get(&fd)) {
                    Some(dir) => dir.clone(),
                    None => {
                        self.report.unresolved += 1;
                        return None;
                    }
                }
            }
            _ => proc.cwd.clone(),
        };
        Some(self.follow_links(resolve(&base, &path)))
    }

    /// `path` with the links the traced processes made followed (as the kernel did), at
    /// most 40 times, as the kernel does.
    fn follow_links(&self, mut path: String) -> String {
        for _ in 0..40 {
            let through = self
                .links
                .iter()
                .filter(|(link, _)| crate::path::is_within(&path, link))
                .max_by_key(|(link, _)| link.len());
            match through {
                Some((link, target)) => {
                    let rest = &path[link.len()..];
                    path = resolve("/", &format!("{target}/{rest}"));
                }
                None => break,
            }
        }
        path
    }

    /// `symlink(target, path)` (relative targets name from the link's directory) or
    /// `link(existing, path)`.
    fn linked(
        &mut self,
        pid: u32,
        at: (Option<&str>, &str),
        target: &str,
        symbolic: bool,
        call: &Call,
    ) {
        if !matches!(call.result, Outcome::Ok(_)) {
            return;
        }
        let Some(link) = self.path(pid, at.0, at.1) else {
            return;
        };
        let named = if symbolic {
            string_arg(target).map(|(t, _)| {
                let dir = link
                    .rsplit_once('/')
                    .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
                resolve(dir, &t)
            })
        } else {
            self.path(pid, None, target)
        };
        if let Some(named) = named {
            self.links.insert(link.clone(), named);
        }
        self.wrote(link);
    }

    fn open(&mut self, pid: u32, dirfd: Option<&str>, path: &str, flags: &str, call: &Call) {
        let Some(path) = self.path(pid, dirfd, path) else {
            return;
        };
        match &call.result {
            Outcome::Ok(fd) => {
                // Anything but write-only can read, whatever else the flags say.
                let reads = call.name != "creat" && !flags.contains("O_WRONLY");
                let writes = call.name == "creat"
                    || ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"]
                        .iter()
                        .any(|f| flags.contains(f));
                if reads {
                    self.report.read.insert(path.clone());
                }
                if writes {
                    self.wrote(path.clone());
                }
                self.procs
                    .get_mut(&pid)
                    .expect("entered")
                    .fds
                    .insert(*fd, path);
            }
            Outcome::Err(e) => {
                self.report.failed_probes.insert(path, e.clone());
            }
            Outcome::Unknown => {}
        }
    }

    fn probe(&mut self, pid: u32, dirfd: Option<&str>, path: &str, call: &Call) {
        if let (Some(path), Outcome::Err(e)) = (self.path(pid, dirfd, path), &call.result) {
            self.report.failed_probes.insert(path, e.clone());
        }
    }

    fn delete(&mut self, pid: u32, dirfd: Option<&str>, path: &str, call: &Call) {
        if let (Some(path), Outcome::Ok(_)) = (self.path(pid, dirfd, path), &call.result) {
            self.removed(path);
        }
    }

    fn made(&mut self, pid: u32, dirfd: Option<&str>, path: &str, call: &Call) {
        if let (Some(path), Outcome::Ok(_)) = (self.path(pid, dirfd, path), &call.result) {
            self.wrote(path);
        }
    }

    fn rename(
        &mut self,
        pid: u32,
        from: (Option<&str>, &str),
        to: (Option<&str>, &str),
        call: &Call,
    ) {
        if !matches!(call.result, Outcome::Ok(_)) {
            return;
        }
        if let Some(p) = self.path(pid, from.0, from.1) {
            self.removed(p);
        }
        if let Some(p) = self.path(pid, to.0, to.1) {
            self.wrote(p);
        }
    }

    /// Written and deleted say how each file was left: the last of the two wins.
    fn wrote(&mut self, path: String) {
        self.report.deleted.remove(&path);
        self.report.written.insert(path);
    }

    fn removed(&mut self, path: String) {
        self.report.written.remove(&path);
        self.report.deleted.insert(path);
    }

    /// A line the caller could not read whole (too long).
    pub fn skipped_line(&mut self) {
        self.report.unparsed_lines += 1;
    }

    pub fn finish(mut self) -> StraceReport {
        self.report.unparsed_lines += self.orphans.values().map(|l| l.len() as u64).sum::<u64>();
        self.report.complete = !self.scope.is_empty()
            && self.report.unparsed_lines == 0
            && self.report.unresolved == 0;
        self.report.processes = self
            .procs
            .into_iter()
            .filter(|(pid, _)| self.scope.contains(pid))
            .map(|(pid, p)| Process {
                pid,
                parent: p.parent.filter(|pp| self.scope.contains(pp)),
                argv: p.argv,
                exit: p.exit,
            })
            .collect();
        self.report
    }
}

/// Parses a whole trace.
pub fn parse(text: &str, options: TraceOptions) -> StraceReport {
    let mut parser = Parser::new(options);
    for line in text.lines() {
        parser.line(line);
    }
    parser.finish()
}

/// `{sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("1.2.3.4")}` → `1.2.3.4:80`;
/// IPv6 as `[::1]:80`; a Unix socket by its path; anything else as printed.
fn socket_address(arg: &str) -> String {
    let field = |name: &str| {
        let at = arg.find(name)? + name.len();
        let rest = &arg[at..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim().to_owned())
    };
    let quoted = |name: &str| {
        let at = arg.find(name)? + name.len();
        string_arg(&arg[at..]).map(|(s, _)| s)
    };
    let port = || {
        field("_port=htons(")
            .map(|p| p.trim_end_matches(')').to_owned())
            .unwrap_or_default()
    };
    if arg.contains("AF_INET6") {
        let addr = arg
            .find("inet_pton(AF_INET6, ")
            .and_then(|i| string_arg(&arg[i + "inet_pton(AF_INET6, ".len()..]))
            .map(|(s, _)| s)
            .unwrap_or_default();
        format!("[{addr}]:{}", port())
    } else if arg.contains("AF_INET") {
        format!("{}:{}", quoted("inet_addr(").unwrap_or_default(), port())
    } else if arg.contains("AF_UNIX") {
        format!("unix:{}", quoted("sun_path=").unwrap_or_default())
    } else {
        arg.chars().take(200).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_read_as_people_write_them() {
        assert_eq!(
            socket_address(
                r#"{sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}"#
            ),
            "127.0.0.1:9"
        );
        assert_eq!(
            socket_address(
                r#"{sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}"#
            ),
            "[::1]:443"
        );
        assert_eq!(
            socket_address(r#"{sa_family=AF_UNIX, sun_path="/run/nscd/socket"}"#),
            "unix:/run/nscd/socket"
        );
    }
}
