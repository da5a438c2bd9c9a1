//! A seccomp filter for builders: system calls that let a process inspect or reshape what
//! lies outside its own address space and file tree (ptrace, mount, kernel keyrings, BPF,
//! modules…) fail with EPERM. The namespaces already confine what these could reach; the
//! filter makes the refusal explicit and keeps it when a build makes a namespace of its own.

use std::io;

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
/// `offsetof(struct seccomp_data, nr)` and `arch`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
/// x32 system calls arrive with the native architecture and this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The system calls refused, by number.
pub fn denied() -> Vec<(u32, &'static str)> {
    vec![
        (libc::SYS_ptrace as u32, "ptrace"),
        (libc::SYS_process_vm_readv as u32, "process_vm_readv"),
        (libc::SYS_process_vm_writev as u32, "process_vm_writev"),
        (libc::SYS_mount as u32, "mount"),
        (libc::SYS_umount2 as u32, "umount2"),
        (libc::SYS_pivot_root as u32, "pivot_root"),
        (libc::SYS_fsopen as u32, "fsopen"),
        (libc::SYS_fsmount as u32, "fsmount"),
        (libc::SYS_move_mount as u32, "move_mount"),
        (libc::SYS_open_tree as u32, "open_tree"),
        (libc::SYS_setns as u32, "setns"),
        (libc::SYS_keyctl as u32, "keyctl"),
        (libc::SYS_add_key as u32, "add_key"),
        (libc::SYS_request_key as u32, "request_key"),
        (libc::SYS_bpf as u32, "bpf"),
        (libc::SYS_init_module as u32, "init_module"),
        (libc::SYS_finit_module as u32, "finit_module"),
        (libc::SYS_delete_module as u32, "delete_module"),
        (libc::SYS_kexec_load as u32, "kexec_load"),
        (libc::SYS_open_by_handle_at as u32, "open_by_handle_at"),
        (libc::SYS_reboot as u32, "reboot"),
        (libc::SYS_swapon as u32, "swapon"),
        (libc::SYS_swapoff as u32, "swapoff"),
        // io_uring opens, reads and connects without the system calls a tracer sees (and
        // has a long record of kernel bugs); builds do not need it.
        (libc::SYS_io_uring_setup as u32, "io_uring_setup"),
        (libc::SYS_io_uring_enter as u32, "io_uring_enter"),
        (libc::SYS_io_uring_register as u32, "io_uring_register"),
    ]
}

/// What a traced build is refused besides: `seccomp()` itself, whose user-notification
/// filters would answer calls before strace's filter could see them.
pub fn denied_when_traced() -> Vec<(u32, &'static str)> {
    let mut d = denied();
    d.push((libc::SYS_seccomp as u32, "seccomp"));
    d
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter program: foreign architectures and x32 calls are refused outright, the
/// `denied()` calls get EPERM, everything else is allowed.
pub fn program(denied: &[(u32, &'static str)]) -> Vec<libc::sock_filter> {
    let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let mut p = vec![
        stmt(BPF_LD_W_ABS, ARCH_OFFSET),
        jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, eperm),
        stmt(BPF_LD_W_ABS, NR_OFFSET),
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, eperm),
    ];
    let n = denied.len();
    for (i, (nr, _)) in denied.iter().enumerate() {
        // On a match, jump over the remaining comparisons and the ALLOW to the EPERM return.
        let to_deny = (n - i) as u8;
        p.push(jump(BPF_JEQ_K, *nr, to_deny, 0));
    }
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p.push(stmt(BPF_RET_K, eperm));
    p
}

/// What a debugger's run (`guixie run --trace=gdb`) is allowed besides: `ptrace` and the
/// cross-process reads and writes gdb uses. The PID namespace bounds what they reach to the
/// sandbox's own processes, all of them the run's.
pub fn denied_to_debugger() -> Vec<(u32, &'static str)> {
    let allowed = [
        libc::SYS_ptrace as u32,
        libc::SYS_process_vm_readv as u32,
        libc::SYS_process_vm_writev as u32,
    ];
    denied()
        .into_iter()
        .filter(|(nr, _)| !allowed.contains(nr))
        .collect()
}

/// Installs the filter on this thread (inherited by everything it executes).
pub fn install(traced: bool, debugger: bool) -> io::Result<()> {
    install_program(&program(&match (traced, debugger) {
        (true, _) => denied_when_traced(),
        (false, true) => denied_to_debugger(),
        (false, false) => denied(),
    }))
}

/// The tracer's filter: the `traced` calls stop for the tracer (`SECCOMP_RET_TRACE`), the
/// rest run untouched. It only marks; the sandbox's own filter, installed after it, still
/// refuses what it refuses (a refusal takes precedence over a mark).
pub(crate) fn trace_program(traced: &[u32]) -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(BPF_LD_W_ABS, ARCH_OFFSET),
        jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        stmt(BPF_LD_W_ABS, NR_OFFSET),
    ];
    let n = traced.len();
    for (i, nr) in traced.iter().enumerate() {
        p.push(jump(BPF_JEQ_K, *nr, (n - i) as u8, 0));
    }
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p.push(stmt(BPF_RET_K, SECCOMP_RET_TRACE));
    p
}

/// Installs a filter program on this thread. Only system calls: safe between fork and exec.
pub(crate) fn install_program(program: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with valid arguments; `prog` and the program outlive the call, and the
    // kernel copies the filter.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
