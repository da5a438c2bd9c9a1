//! A traced call written as `strace -f` writes it, so that one parser
//! (`guixie_introspect::strace`) reads every trace. Only what the report needs is written:
//! paths, flags that say read or write, argv, addresses, clone's thread flag.

use super::memory::Memory;

/// Strings are read up to this many bytes (as `strace -s 4096`); longer ones end `"..."...`.
const MAX_STRING: usize = 4096;
/// Arrays (argv) list at most this many strings, then `...`.
const MAX_ARRAY: usize = 4096;

const AT_FDCWD: i32 = -100;

/// The traced calls, by number, with their names.
pub fn traced_calls() -> Vec<(i64, &'static str)> {
    use libc::*;
    vec![
        (SYS_execve, "execve"),
        (SYS_execveat, "execveat"),
        (SYS_clone, "clone"),
        (SYS_clone3, "clone3"),
        (SYS_fork, "fork"),
        (SYS_vfork, "vfork"),
        (SYS_open, "open"),
        (SYS_openat, "openat"),
        (SYS_openat2, "openat2"),
        (SYS_creat, "creat"),
        (SYS_access, "access"),
        (SYS_faccessat, "faccessat"),
        (SYS_faccessat2, "faccessat2"),
        (SYS_unlink, "unlink"),
        (SYS_unlinkat, "unlinkat"),
        (SYS_rmdir, "rmdir"),
        (SYS_rename, "rename"),
        (SYS_renameat, "renameat"),
        (SYS_renameat2, "renameat2"),
        (SYS_mkdir, "mkdir"),
        (SYS_mkdirat, "mkdirat"),
        (SYS_chdir, "chdir"),
        (SYS_fchdir, "fchdir"),
        (SYS_connect, "connect"),
        (SYS_symlink, "symlink"),
        (SYS_symlinkat, "symlinkat"),
        (SYS_link, "link"),
        (SYS_linkat, "linkat"),
    ]
}

pub fn name_of(nr: i64) -> Option<&'static str> {
    traced_calls()
        .into_iter()
        .find(|(n, _)| *n == nr)
        .map(|(_, name)| name)
}

/// `NAME(ARGS` of a call at its entry (the result is added at its exit).
pub fn entry(name: &str, args: &[u64; 6], mem: &Memory) -> String {
    let s = |i: usize| string(mem, args[i]);
    let fd = |i: usize| dirfd(args[i]);
    let text = match name {
        "execve" => format!("{}, {}, {:#x}", s(0), array(mem, args[1]), args[2]),
        "execveat" => format!(
            "{}, {}, {}, {:#x}, {}",
            fd(0),
            s(1),
            array(mem, args[2]),
            args[3],
            args[4]
        ),
        "open" => format!("{}, {}", s(0), open_flags(args[1])),
        "creat" | "mkdir" => format!("{}, {:#o}", s(0), args[1]),
        "openat" => format!("{}, {}, {}", fd(0), s(1), open_flags(args[2])),
        "openat2" => {
            let flags = mem.read_u64(args[2]).unwrap_or(0);
            format!("{}, {}, {{flags={}}}", fd(0), s(1), open_flags(flags))
        }
        "access" => format!("{}, {}", s(0), args[1]),
        "faccessat" | "faccessat2" | "unlinkat" | "mkdirat" => {
            format!("{}, {}, {}", fd(0), s(1), args[2])
        }
        "unlink" | "rmdir" | "chdir" => s(0),
        "rename" | "symlink" | "link" => format!("{}, {}", s(0), s(1)),
        "renameat" | "renameat2" | "linkat" => {
            format!("{}, {}, {}, {}", fd(0), s(1), fd(2), s(3))
        }
        "symlinkat" => format!("{}, {}, {}", s(0), fd(1), s(2)),
        "fchdir" => format!("{}", args[0] as i32),
        "connect" => format!(
            "{}, {}, {}",
            args[0] as i32,
            sockaddr(mem, args[1], args[2]),
            args[2]
        ),
        "clone" => format!("flags={}", clone_flags(args[0])),
        "clone3" => format!(
            "{{flags={}}}, {}",
            clone_flags(mem.read_u64(args[0]).unwrap_or(0)),
            args[1]
        ),
        _ => String::new(),
    };
    format!("{name}({text}")
}

/// `) = RESULT` for a call that returned `ret` (a negative errno on failure).
pub fn exit(ret: i64) -> String {
    // ERESTARTSYS and its kin (512–516): the call is restarted, its result is not this.
    if (-516..=-512).contains(&ret) {
        ") = ? ERESTARTSYS".to_owned()
    } else if (-4095..0).contains(&ret) {
        let errno = -ret as i32;
        format!(") = -1 {} ({})", errno_name(errno), errno)
    } else {
        format!(") = {ret}")
    }
}

fn dirfd(v: u64) -> String {
    match v as i32 {
        AT_FDCWD => "AT_FDCWD".into(),
        fd => fd.to_string(),
    }
}

fn open_flags(v: u64) -> String {
    let v = v as i32;
    let mut out = match v & libc::O_ACCMODE {
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    }
    .to_owned();
    for (bit, name) in [
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_DIRECTORY, "O_DIRECTORY"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_CLOEXEC, "O_CLOEXEC"),
        (libc::O_PATH, "O_PATH"),
    ] {
        if v & bit == bit {
            out.push('|');
            out.push_str(name);
        }
    }
    out
}

fn clone_flags(v: u64) -> String {
    // Only whether the child is a thread matters to the report.
    if v & libc::CLONE_THREAD as u64 != 0 {
        format!("CLONE_THREAD|{:#x}", v & !(libc::CLONE_THREAD as u64))
    } else {
        format!("{v:#x}")
    }
}

/// A C string in the tracee, quoted and escaped as strace does; `NULL` or the address if it
/// cannot be read.
fn string(mem: &Memory, addr: u64) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    match mem.read_c_string(addr, MAX_STRING) {
        Some((bytes, complete)) => {
            let mut out = quote(&bytes);
            if !complete {
                out.push_str("...");
            }
            out
        }
        None => format!("{addr:#x}"),
    }
}

fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// A NULL-terminated array of C strings (argv).
fn array(mem: &Memory, addr: u64) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let mut items = Vec::new();
    for i in 0..=MAX_ARRAY {
        if i == MAX_ARRAY {
            items.push("...".to_owned());
            break;
        }
        match addr
            .checked_add(8 * i as u64)
            .and_then(|at| mem.read_u64(at))
        {
            Some(0) => break,
            Some(p) => items.push(string(mem, p)),
            None => {
                items.push("...".to_owned());
                break;
            }
        }
    }
    format!("[{}]", items.join(", "))
}

fn sockaddr(mem: &Memory, addr: u64, len: u64) -> String {
    let len = (len as usize).min(128);
    let Some(b) = mem.read(addr, len).filter(|b| b.len() >= 2) else {
        return format!("{addr:#x}");
    };
    let family = u16::from_ne_bytes([b[0], b[1]]) as i32;
    match family {
        libc::AF_INET if b.len() >= 8 => format!(
            "{{sa_family=AF_INET, sin_port=htons({}), sin_addr=inet_addr(\"{}\")}}",
            u16::from_be_bytes([b[2], b[3]]),
            std::net::Ipv4Addr::new(b[4], b[5], b[6], b[7])
        ),
        libc::AF_INET6 if b.len() >= 24 => {
            let ip: [u8; 16] = b[8..24].try_into().expect("16 bytes");
            format!(
                "{{sa_family=AF_INET6, sin6_port=htons({}), inet_pton(AF_INET6, \"{}\", &sin6_addr)}}",
                u16::from_be_bytes([b[2], b[3]]),
                std::net::Ipv6Addr::from(ip)
            )
        }
        libc::AF_UNIX => {
            let path = &b[2..];
            let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
            format!("{{sa_family=AF_UNIX, sun_path={}}}", quote(&path[..end]))
        }
        f => format!("{{sa_family={f}}}"),
    }
}

fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EISCONN => "EISCONN",
        _ => return format!("E{errno}"),
    };
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use guixie_introspect::syscall::{parse_call, string_arg, Outcome};

    #[test]
    fn what_is_written_reads_back_through_the_strace_parser() {
        let tricky = b"a\"b\\c\n\x01\xff)";
        let quoted = quote(tricky);
        let (back, truncated) = string_arg(&quoted).unwrap();
        assert!(!truncated);
        assert_eq!(back, String::from_utf8_lossy(tricky));
        let line = format!(
            "openat(AT_FDCWD, {quoted}, {}{}",
            open_flags((libc::O_WRONLY | libc::O_CREAT) as u64),
            exit(-(libc::ENOENT as i64))
        );
        let call = parse_call(&line).unwrap();
        assert_eq!(call.args.len(), 3);
        assert!(call.args[2].contains("O_WRONLY") && call.args[2].contains("O_CREAT"));
        assert_eq!(call.result, Outcome::Err("ENOENT".into()));
        assert_eq!(parse_call("fork() = 7").unwrap().result, Outcome::Ok(7));
        let restarted = format!("connect(3, x, 16{}", exit(-512));
        assert_eq!(parse_call(&restarted).unwrap().result, Outcome::Unknown);
        assert_eq!(dirfd(-100i64 as u64), "AT_FDCWD");
        assert!(clone_flags(libc::CLONE_THREAD as u64 | 0x100).contains("CLONE_THREAD"));
        assert!(!clone_flags(0x11).contains("CLONE_THREAD"));
    }
}
