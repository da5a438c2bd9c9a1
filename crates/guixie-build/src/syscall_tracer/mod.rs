//! guixie's own tracer of a build, from outside its sandbox. A seccomp filter installed
//! before the sandbox helper starts marks the calls the report needs
//! ([`format::traced_calls`]); the tracer stops a process only at those (and at its
//! forks, execs and exit), never at the rest. strace 6.1 stops every new child at each of
//! its calls until its first marked one, which for a build that spawns many processes cost
//! several times the build (`docs/benchmarks.md`). What it sees is written as `strace -f`
//! writes it, so one parser reads it.

mod format;
mod memory;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use memory::Memory;

/// The calls the tracer stops at, by number. The sandbox helper marks them with a seccomp
/// filter just before it executes the builder, so the helper's own setup runs unstopped.
pub fn traced_numbers() -> Vec<u32> {
    format::traced_calls()
        .iter()
        .map(|(nr, _)| *nr as u32)
        .collect()
}

/// In the child between fork and exec: become traced by the thread that forked it. Its
/// exec then stops it (SIGTRAP), when the tracer sets its options.
///
/// # Safety
/// Only async-signal-safe calls: for `pre_exec`.
pub unsafe fn traceme() -> io::Result<()> {
    // SAFETY: a plain system call with integer arguments.
    if unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0usize, 0usize) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[derive(Default)]
struct Tracee {
    /// The call it stopped in, written up to its result.
    pending: Option<String>,
    /// Whether its first stop was seen: the SIGSTOP every new tracee starts with, or the
    /// helper's exec.
    started: bool,
}

/// Follows the traced helper `root` (spawned by this thread with [`traceme`]) and all it
/// starts until every one has exited, writing the trace to `out` (at most `max_bytes`; a
/// longer trace ends in a line the parser does not understand, so its report is not
/// complete). Returns the helper's status.
pub fn follow(root: libc::pid_t, out: &mut dyn Write, max_bytes: u64) -> io::Result<ExitStatus> {
    let mut t = Tracer {
        out,
        written: 0,
        max_bytes,
        cut: false,
        tracees: BTreeMap::new(),
    };
    t.tracees.insert(root, Tracee::default());
    let mut root_status = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid pointer. __WNOTHREAD: only this thread's children and
        // tracees, never another build's helper that another thread waits for.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::__WNOTHREAD) };
        if pid < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => break,
                _ => return Err(e),
            }
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            if let Some(pending) = t.tracees.remove(&pid).and_then(|p| p.pending) {
                t.line(pid, &format!("{pending}) = ?"))?;
            }
            let end = if libc::WIFEXITED(status) {
                format!("+++ exited with {} +++", libc::WEXITSTATUS(status))
            } else {
                format!("+++ killed by {} +++", signal_name(libc::WTERMSIG(status)))
            };
            t.line(pid, &end)?;
            if pid == root {
                root_status = Some(ExitStatus::from_raw(status));
            }
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        t.stopped(pid, root, status)?;
    }
    t.out.flush()?;
    root_status.ok_or_else(|| io::Error::other("the traced helper was never seen to exit"))
}

struct Tracer<'a> {
    out: &'a mut dyn Write,
    written: u64,
    max_bytes: u64,
    cut: bool,
    tracees: BTreeMap<libc::pid_t, Tracee>,
}

impl Tracer<'_> {
    fn line(&mut self, pid: libc::pid_t, text: &str) -> io::Result<()> {
        if self.cut {
            return Ok(());
        }
        let line = format!("{pid} {text}\n");
        self.written += line.len() as u64;
        if self.written > self.max_bytes {
            self.cut = true;
            return writeln!(self.out, "trace cut: over {} bytes", self.max_bytes);
        }
        self.out.write_all(line.as_bytes())
    }

    fn stopped(&mut self, pid: libc::pid_t, root: libc::pid_t, status: i32) -> io::Result<()> {
        let signal = libc::WSTOPSIG(status);
        let event = (status >> 16) & 0xff;
        let tracee = self.tracees.entry(pid).or_default();
        match event {
            libc::PTRACE_EVENT_SECCOMP => {
                let Some(regs) = registers(pid) else {
                    return resume(pid, libc::PTRACE_CONT, 0);
                };
                // The kernel dispatches on the low 32 bits of rax, sign-extended, and the filter
                // judged those: a build setting the upper bits must not pass unnamed.
                let nr = regs.orig_rax as u32 as i32 as i64;
                let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
                let Some(name) = format::name_of(nr) else {
                    // Never expected: the trace says so, and its report is not complete.
                    self.line(pid, &format!("marked call {nr:#x} not named"))?;
                    return resume(pid, libc::PTRACE_CONT, 0);
                };
                let entry = format::entry(name, &args, &Memory::of(pid));
                tracee.pending = Some(entry);
                // A fork's result comes with its event; every other result at the call's
                // exit, one more stop.
                let forks = matches!(name, "clone" | "clone3" | "fork" | "vfork");
                resume(
                    pid,
                    if forks {
                        libc::PTRACE_CONT
                    } else {
                        libc::PTRACE_SYSCALL
                    },
                    0,
                )
            }
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                let child = event_message(pid) as libc::pid_t;
                let entry = tracee.pending.take().unwrap_or_else(|| "clone(".into());
                self.tracees.entry(child).or_default();
                self.line(pid, &format!("{entry}) = {child}"))?;
                resume(pid, libc::PTRACE_CONT, 0)
            }
            libc::PTRACE_EVENT_EXEC => {
                let former = event_message(pid) as libc::pid_t;
                let mut pending = tracee.pending.take();
                if former != pid {
                    // Another thread executed; the kernel gave it this (the leader's) id.
                    self.line(
                        pid,
                        &format!("+++ superseded by execve in pid {former} +++"),
                    )?;
                    if let Some(thread) = self.tracees.remove(&former) {
                        pending = thread.pending.or(pending);
                    }
                }
                if let Some(entry) = pending {
                    self.line(pid, &format!("{entry}) = 0"))?;
                }
                resume(pid, libc::PTRACE_CONT, 0)
            }
            0 if signal == libc::SIGTRAP | 0x80 => {
                // A result that cannot be read is unknown, never a success.
                let result = registers(pid)
                    .map_or_else(|| ") = ?".to_owned(), |r| format::exit(r.rax as i64));
                if let Some(entry) = tracee.pending.take() {
                    self.line(pid, &format!("{entry}{result}"))?;
                }
                resume(pid, libc::PTRACE_CONT, 0)
            }
            0 if !tracee.started
                && (signal == libc::SIGSTOP || (pid == root && signal == libc::SIGTRAP)) =>
            {
                tracee.started = true;
                if pid == root {
                    set_options(pid)?;
                }
                resume(pid, libc::PTRACE_CONT, 0)
            }
            0 => {
                // A signal for the tracee: delivered, and a call in progress still followed
                // to its exit.
                let request = if tracee.pending.is_some() {
                    libc::PTRACE_SYSCALL
                } else {
                    libc::PTRACE_CONT
                };
                resume(pid, request, signal)
            }
            _ => resume(pid, libc::PTRACE_CONT, 0),
        }
    }
}

fn set_options(pid: libc::pid_t) -> io::Result<()> {
    let options = libc::PTRACE_O_TRACESYSGOOD
        | libc::PTRACE_O_TRACESECCOMP
        | libc::PTRACE_O_TRACEFORK
        | libc::PTRACE_O_TRACEVFORK
        | libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEEXEC
        // If guixie dies, so does everything it traced: no build runs on unwatched.
        | libc::PTRACE_O_EXITKILL;
    // SAFETY: PTRACE_SETOPTIONS on our stopped tracee, with an integer argument.
    if unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0usize, options as usize) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Resumes a stopped tracee; one that has gone meanwhile (ESRCH) is reported by waitpid.
fn resume(pid: libc::pid_t, request: libc::c_uint, signal: i32) -> io::Result<()> {
    // SAFETY: a ptrace restart request with integer arguments.
    unsafe { libc::ptrace(request, pid, 0usize, signal as usize) };
    Ok(())
}

fn registers(pid: libc::pid_t) -> Option<libc::user_regs_struct> {
    let mut regs = std::mem::MaybeUninit::<libc::user_regs_struct>::uninit();
    // SAFETY: PTRACE_GETREGS fills the struct of our stopped tracee; read only on success.
    unsafe {
        if libc::ptrace(libc::PTRACE_GETREGS, pid, 0usize, regs.as_mut_ptr()) != 0 {
            return None;
        }
        Some(regs.assume_init())
    }
}

fn event_message(pid: libc::pid_t) -> u64 {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: PTRACE_GETEVENTMSG writes one c_ulong to a valid pointer.
    unsafe { libc::ptrace(libc::PTRACE_GETEVENTMSG, pid, 0usize, &mut msg as *mut _) };
    msg as u64
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("SIG{signal}"),
    };
    name.into()
}
