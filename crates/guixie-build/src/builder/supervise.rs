//! Supervising a running build: the helper's output goes through a pipe into the gzipped
//! log (phases reported as they start, optionally echoed), and a watchdog stops the build at
//! its deadline, when it has been silent too long, or when it fills too much disk. When to
//! stop is decided by [`verdict`] on the injected clock's readings, so the rules are tested
//! without waiting.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use guixie_env::Clock;
use guixie_formats::StorePath;

use super::{BuildError, BuildEvent};

/// Finds the lines `starting phase `NAME'` (as build systems print them, Guix's and ours)
/// in a builder's output, whatever the chunks it arrives in.
#[derive(Default)]
struct PhaseScanner {
    line: Vec<u8>,
}

impl PhaseScanner {
    const PREFIX: &'static [u8] = b"starting phase `";
    /// Longer lines are not phase lines; only their start is kept.
    const MAX_LINE: usize = 256;

    fn scan(&mut self, bytes: &[u8], found: &mut dyn FnMut(&str)) {
        for &b in bytes {
            if b == b'\n' {
                if let Some(rest) = self.line.strip_prefix(Self::PREFIX) {
                    if let Some(end) = rest.iter().position(|&c| c == b'\'') {
                        found(&String::from_utf8_lossy(&rest[..end]));
                    }
                }
                self.line.clear();
            } else if self.line.len() < Self::MAX_LINE {
                self.line.push(b);
            }
        }
    }
}

/// Why the watchdog stopped a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    Timeout,
    Silent,
    TooLarge,
}

/// The limits a running build is held to.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub timeout: Duration,
    pub max_silent: Duration,
    /// Bytes the build's writable directories may hold (`u64::MAX`: not measured).
    pub max_output_size: u64,
}

/// What the watchdog does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing is due for this long (measure the disk at least once a second when limited).
    Wait(Duration),
    Stop(Stop),
}

/// The watchdog's rule, given how long the build has run and when it last wrote output
/// (both since it started).
pub(super) fn verdict(limits: &Limits, elapsed: Duration, last_output: Duration) -> Verdict {
    let silent_for = elapsed.saturating_sub(last_output);
    let Some(to_deadline) = limits.timeout.checked_sub(elapsed) else {
        return Verdict::Stop(Stop::Timeout);
    };
    let Some(to_silence) = limits.max_silent.checked_sub(silent_for) else {
        return Verdict::Stop(Stop::Silent);
    };
    if to_deadline.is_zero() {
        return Verdict::Stop(Stop::Timeout);
    }
    if to_silence.is_zero() {
        return Verdict::Stop(Stop::Silent);
    }
    let wait = to_deadline.min(to_silence);
    Verdict::Wait(if limits.max_output_size == u64::MAX {
        wait
    } else {
        wait.min(Duration::from_secs(1))
    })
}

/// What the helper was started with.
pub(super) struct Run<'a> {
    pub helper: &'a Path,
    pub spec_path: &'a Path,
    pub log: &'a Path,
    /// The writable directories' common parent, measured against `max_output_size`.
    pub measured: &'a Path,
    pub build_user: Option<(u32, u32)>,
    pub echo: bool,
    pub limits: Limits,
    pub drv_path: &'a StorePath,
    /// Run the helper under this tracer (from outside the sandbox).
    pub trace: Option<&'a super::check::Trace>,
}

/// Runs the helper until it exits or the watchdog stops it; returns its status and why it
/// was stopped, if it was.
pub(super) fn supervise(
    run: &Run<'_>,
    clock: &dyn Clock,
    progress: &(dyn Fn(BuildEvent<'_>) + Sync),
) -> Result<(ExitStatus, Option<Stop>), BuildError> {
    let log = run.log;
    let log_file = std::fs::File::create(log)
        .map_err(|e| BuildError::Io(format!("{}: {e}", log.display())))?;
    // The builder's output goes through a pipe into a gzip stream (and, with `echo`, to our
    // stderr as it comes).
    let (mut reader, writer) = std::io::pipe().map_err(|e| BuildError::Io(e.to_string()))?;
    if let Some((uid, gid)) = run.build_user {
        // The build user reopens its output as /dev/stdout and /dev/stderr.
        std::os::unix::fs::fchown(&writer, Some(uid), Some(gid))
            .map_err(|e| BuildError::Io(format!("the build log pipe: {e}")))?;
    }
    let writer2 = writer
        .try_clone()
        .map_err(|e| BuildError::Io(e.to_string()))?;
    let mut command = Command::new(run.helper);
    command
        .arg(run.spec_path)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2);
    let started = clock.monotonic();
    let since_start = move || clock.monotonic().saturating_sub(started);
    // When the builder last wrote something, in nanoseconds since it started.
    let last_output = &AtomicU64::new(0);
    let (echo, drv_path) = (run.echo, run.drv_path);
    std::thread::scope(|scope| -> Result<_, BuildError> {
        let logger = scope.spawn(move || -> std::io::Result<()> {
            use std::io::{Read, Write};
            let mut gz = flate2::write::GzEncoder::new(log_file, flate2::Compression::default());
            let mut buf = [0u8; 16 << 10];
            let mut phases = PhaseScanner::default();
            let mut escapes = crate::terminal::EscapeFilter::default();
            let mut shown = Vec::new();
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                last_output.store(since_start().as_nanos() as u64, Ordering::Relaxed);
                gz.write_all(&buf[..n])?;
                phases.scan(&buf[..n], &mut |phase| {
                    progress(BuildEvent::Phase {
                        drv: drv_path,
                        phase,
                    })
                });
                if echo {
                    shown.clear();
                    escapes.filter(&buf[..n], &mut shown);
                    let _ = std::io::stderr().write_all(&shown);
                }
            }
            // Not fsynced: a log is evidence of a build, not part of its result, and an
            // fsync per build costs more than many small builds take (as in Nix, logs are
            // written without one). Attestations record the log's hash.
            gz.finish().map(drop)
        });
        let helper = start(command, run, scope)?;
        // The watchdog kills the helper when the verdict says so (its PDEATHSIG takes the
        // build with it); otherwise we just block until it exits. It signals through a pidfd,
        // which names this process even once it is reaped, never a recycled pid.
        let pidfd = rustix::process::pidfd_open(helper.pid(), rustix::process::PidfdFlags::empty())
            .map_err(|e| BuildError::Io(format!("pidfd_open on the sandbox helper: {e}")));
        let pidfd = match pidfd {
            Ok(fd) => fd,
            Err(e) => {
                helper.kill_and_wait();
                return Err(e);
            }
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let watchdog = scope.spawn(move || -> Option<Stop> {
            loop {
                let last = Duration::from_nanos(last_output.load(Ordering::Relaxed));
                let stop = match verdict(&run.limits, since_start(), last) {
                    Verdict::Stop(stop) => Some(stop),
                    Verdict::Wait(d) => match done_rx.recv_timeout(d) {
                        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            return None
                        }
                        // Only the build's writable directories count; inputs are mounts
                        // the helper made in its own namespace, invisible here.
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                            if run.limits.max_output_size != u64::MAX
                                && guixie_store::safe_fs::disk_usage(run.measured)
                                    > run.limits.max_output_size =>
                        {
                            Some(Stop::TooLarge)
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                    },
                };
                if let Some(stop) = stop {
                    // An error (ESRCH) means it exited meanwhile, before any limit stopped it.
                    return rustix::process::pidfd_send_signal(
                        &pidfd,
                        rustix::process::Signal::KILL,
                    )
                    .ok()
                    .map(|()| stop);
                }
            }
        });
        let status = helper.wait();
        let _ = done_tx.send(());
        let stopped = watchdog.join().unwrap_or(None);
        // Every writer of the pipe is gone with the sandbox, so the logger sees its end.
        let logged = logger
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("log writer panicked")));
        logged.map_err(|e| BuildError::Io(format!("writing {}: {e}", log.display())))?;
        Ok((status?, stopped))
    })
}

/// The running helper: a child we wait for, or one the tracer thread follows and reaps.
enum Helper<'scope> {
    Child(std::process::Child),
    Traced {
        pid: rustix::process::Pid,
        tracer: std::thread::ScopedJoinHandle<'scope, Result<ExitStatus, BuildError>>,
    },
}

/// A traced trace's bytes, at most: past it the trace ends incomplete.
const MAX_TRACE_BYTES: u64 = 1 << 30;

fn start<'scope>(
    mut command: Command,
    run: &'scope Run<'_>,
    scope: &'scope std::thread::Scope<'scope, '_>,
) -> Result<Helper<'scope>, BuildError> {
    let spawn_error = |e: std::io::Error| {
        BuildError::Io(format!(
            "starting the sandbox helper {}: {e}",
            run.helper.display()
        ))
    };
    let output = match run.trace {
        Some(super::check::Trace::Strace { output }) => output,
        Some(super::check::Trace::Inside(_)) | None => {
            let child = command.spawn().map_err(spawn_error);
            // The command holds the pipe's write ends: the logger sees the end only once
            // it is gone.
            drop(command);
            return child.map(Helper::Child);
        }
    };
    traced_start(command, output, spawn_error, scope)
}

#[cfg(target_arch = "x86_64")]
fn traced_start<'scope>(
    mut command: Command,
    output: &'scope std::path::Path,
    spawn_error: impl Fn(std::io::Error) -> BuildError,
    scope: &'scope std::thread::Scope<'scope, '_>,
) -> Result<Helper<'scope>, BuildError> {
    let trace = std::fs::File::create(output)
        .map_err(|e| BuildError::Io(format!("{}: {e}", output.display())))?;
    // SAFETY: traceme makes one system call.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            crate::syscall_tracer::traceme()
        });
    }
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    // The tracer must be the thread that forked the helper: ptrace answers only to it.
    let tracer = scope.spawn(move || -> Result<ExitStatus, BuildError> {
        let child = command.spawn();
        drop(command);
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                let _ = pid_tx.send(Err(e));
                return Err(BuildError::Io("the helper did not start".into()));
            }
        };
        let pid = rustix::process::Pid::from_child(&child);
        let _ = pid_tx.send(Ok(pid));
        let mut out = std::io::BufWriter::with_capacity(1 << 16, trace);
        crate::syscall_tracer::follow(pid.as_raw_nonzero().get(), &mut out, MAX_TRACE_BYTES)
            .map_err(|e| BuildError::Io(format!("tracing the build: {e}")))
    });
    match pid_rx.recv() {
        Ok(Ok(pid)) => Ok(Helper::Traced { pid, tracer }),
        Ok(Err(e)) => {
            let _ = tracer.join();
            Err(spawn_error(e))
        }
        Err(_) => Err(BuildError::Io("the tracer thread failed".into())),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn traced_start<'scope>(
    _command: Command,
    _output: &'scope std::path::Path,
    _spawn_error: impl Fn(std::io::Error) -> BuildError,
    _scope: &'scope std::thread::Scope<'scope, '_>,
) -> Result<Helper<'scope>, BuildError> {
    Err(BuildError::Io(
        "--trace=strace: guixie's tracer reads x86_64 registers only".into(),
    ))
}

impl Helper<'_> {
    fn pid(&self) -> rustix::process::Pid {
        match self {
            Helper::Child(c) => rustix::process::Pid::from_child(c),
            Helper::Traced { pid, .. } => *pid,
        }
    }

    fn kill_and_wait(self) {
        match self {
            Helper::Child(mut c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            Helper::Traced { pid, tracer } => {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                let _ = tracer.join();
            }
        }
    }

    fn wait(self) -> Result<ExitStatus, BuildError> {
        match self {
            Helper::Child(mut c) => c.wait().map_err(|e| BuildError::Io(e.to_string())),
            Helper::Traced { tracer, .. } => tracer
                .join()
                .unwrap_or_else(|_| Err(BuildError::Io("the tracer panicked".into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn limits(timeout: u64, silent: u64, size: u64) -> Limits {
        Limits {
            timeout: S(timeout),
            max_silent: S(silent),
            max_output_size: size,
        }
    }

    #[test]
    fn waits_for_whichever_limit_comes_first() {
        let l = limits(100, 30, u64::MAX);
        assert_eq!(verdict(&l, S(0), S(0)), Verdict::Wait(S(30)));
        // Output at 20 s moves the silence deadline to 50 s.
        assert_eq!(verdict(&l, S(25), S(20)), Verdict::Wait(S(25)));
        assert_eq!(verdict(&l, S(90), S(89)), Verdict::Wait(S(10)));
    }

    #[test]
    fn stops_at_the_deadline_and_after_silence() {
        let l = limits(100, 30, u64::MAX);
        assert_eq!(verdict(&l, S(100), S(99)), Verdict::Stop(Stop::Timeout));
        assert_eq!(verdict(&l, S(130), S(129)), Verdict::Stop(Stop::Timeout));
        assert_eq!(verdict(&l, S(30), S(0)), Verdict::Stop(Stop::Silent));
        assert_eq!(verdict(&l, S(61), S(30)), Verdict::Stop(Stop::Silent));
    }

    #[test]
    fn a_size_limit_makes_it_look_every_second() {
        let l = limits(100, 30, 1 << 20);
        assert_eq!(verdict(&l, S(0), S(0)), Verdict::Wait(S(1)));
        assert_eq!(
            verdict(&l, Duration::from_millis(99_500), S(99)),
            Verdict::Wait(Duration::from_millis(500))
        );
    }

    #[test]
    fn the_watchdog_follows_the_injected_clock() {
        // The fake clock, not real time, says how long a build has run.
        let clock = guixie_env::FakeClock::new(0);
        let l = limits(10, 5, u64::MAX);
        let started = clock.monotonic();
        clock.advance(S(4));
        let elapsed = clock.monotonic() - started;
        assert_eq!(verdict(&l, elapsed, S(0)), Verdict::Wait(S(1)));
        clock.advance(S(1));
        let elapsed = clock.monotonic() - started;
        assert_eq!(verdict(&l, elapsed, S(0)), Verdict::Stop(Stop::Silent));
    }
}
