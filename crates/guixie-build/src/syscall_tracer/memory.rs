//! Reading a stopped tracee's memory: `process_vm_readv`, bounded by what the caller asks,
//! never by a length the tracee chose.

pub struct Memory {
    pid: libc::pid_t,
}

impl Memory {
    pub fn of(pid: libc::pid_t) -> Self {
        Memory { pid }
    }

    /// Up to `len` bytes at `addr`; fewer where the mapping ends, `None` if none are there.
    pub fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            // Never across a page boundary in one go: a read that starts in a mapped page and
            // ends in an unmapped one fails whole.
            let at = addr.checked_add(got as u64)?;
            let to_page_end = 4096 - (at % 4096) as usize;
            let want = to_page_end.min(len - got);
            let local = libc::iovec {
                iov_base: buf[got..].as_mut_ptr().cast(),
                iov_len: want,
            };
            let remote = libc::iovec {
                iov_base: at as *mut libc::c_void,
                iov_len: want,
            };
            // SAFETY: `local` names `want` writable bytes of `buf`; the remote range is only
            // read by the kernel, which checks it against the tracee's mappings.
            let n = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
            if n <= 0 {
                break;
            }
            got += n as usize;
        }
        (got > 0).then(|| {
            buf.truncate(got);
            buf
        })
    }

    pub fn read_u64(&self, addr: u64) -> Option<u64> {
        let b = self.read(addr, 8).filter(|b| b.len() == 8)?;
        Some(u64::from_ne_bytes(b.try_into().ok()?))
    }

    /// The NUL-terminated string at `addr`, at most `max` bytes, and whether it ended within
    /// them.
    pub fn read_c_string(&self, addr: u64, max: usize) -> Option<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            let chunk = (4096 - (at % 4096) as usize).min(max - out.len());
            let Some(bytes) = self.read(at, chunk) else {
                return (!out.is_empty()).then_some((out, false));
            };
            if let Some(end) = bytes.iter().position(|&b| b == 0) {
                out.extend_from_slice(&bytes[..end]);
                return Some((out, true));
            }
            out.extend_from_slice(&bytes);
            at = at.checked_add(bytes.len() as u64)?;
        }
        Some((out, false))
    }
}
