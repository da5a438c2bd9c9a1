//! A safe layer over GNU Guile 3.0 (libguile-3.0).
//!
//! - [`with_guile`] runs a closure on the process's one Guile thread; the [`Guile`] token it
//!   hands out is neither `Send` nor `Sync`, and every [`Value`] borrows it, so no Scheme
//!   value escapes Guile mode or that thread. Async callers just call it from a blocking task.
//! - Every call into Scheme goes through [`Guile::catch`]: a Scheme error (a non-local exit by
//!   `longjmp`) is caught on the C side before it can cross Rust frames, and becomes a
//!   [`GuileError`] with the message and, where Guile knows it, the source location.
//! - Rust primitives ([`Guile::define_primitive`]) run inside `catch_unwind`; a Rust error or
//!   panic is turned into a Scheme exception only after every Rust value is dropped.
//! - [`Value`]s live on the stack, which Guile's conservative GC scans. The GC does not scan
//!   the Rust heap: keep values there as [`Protected`].
//!
//! # What the GC can see
//!
//! A [`Value`] is a bare pointer; the collector keeps its object alive only while a copy of
//! that pointer is somewhere it scans: a stack slot or register of the Guile thread, another
//! live Scheme object, or a [`Protected`] root. The layer itself never leaves a value only on
//! the Rust heap: lists are walked in place ([`Value::list`] is an iterator holding the cell
//! it is at, [`Value::list_array`] returns the elements on the stack), primitive arguments sit
//! in memory the collector scans, and [`Guile::call`] hands Guile the caller's own slice.
//! What the type system cannot stop is safe code moving `Value`s into a `Vec`, a `Box` or any
//! other heap storage and then allocating: that is the one rule callers keep by hand. Store
//! [`Protected`] there instead.
//!
//! Collections can also start on another thread (Scheme code may spawn threads), so the code
//! here never argues from "nothing allocates in between": whatever it still needs stays
//! visible to the collector until its last use.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod error;
mod primitive;
mod value;

pub use error::{GuileError, Location};
pub use primitive::{Primitive, PrimitiveError};
pub use value::{ListIter, Protected, Value};

use std::ffi::{c_void, CString};

use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{mpsc, OnceLock};

use guile_sys as sys;

/// Proof that the current thread is in Guile mode.
pub struct Guile {
    _not_send: PhantomData<*mut ()>,
}

/// Runs `f` in Guile mode and returns its result. All Guile work in the process happens on
/// one dedicated, long-lived thread (started on first use, with a large stack for deep
/// Scheme recursion): threads that enter Guile and then exit race with the collector's
/// stop-the-world signals, and Guile's initialisation must not race with itself. The caller
/// blocks until `f` has finished, so `f` may borrow from the caller's stack. A panic in `f`
/// is resumed in the caller.
pub fn with_guile<F, R>(f: F) -> R
where
    F: FnOnce(&Guile) -> R + Send,
    R: Send,
{
    let (done_tx, done_rx) = mpsc::sync_channel::<std::thread::Result<R>>(1);
    let job: Box<dyn FnOnce(&Guile) + Send + '_> = Box::new(move |g: &Guile| {
        let r = panic::catch_unwind(AssertUnwindSafe(|| f(g)));
        let _ = done_tx.send(r);
    });
    // SAFETY: the job may borrow from this frame; we erase that lifetime to send it, and
    // do not return before the job has run to completion (or the Guile thread is gone, in
    // which case the job was dropped without running).
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce(&Guile) + Send + '_>, Job>(job) };
    guile_thread()
        .send(job)
        .expect("the Guile thread is running");
    match done_rx.recv().expect("the Guile thread ran the job") {
        Ok(r) => r,
        Err(p) => panic::resume_unwind(p),
    }
}

type Job = Box<dyn FnOnce(&Guile) + Send + 'static>;

fn guile_thread() -> &'static mpsc::Sender<Job> {
    static SENDER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("guile".into())
            .stack_size(256 << 20)
            .spawn(move || enter_guile_and_serve(rx))
            .expect("spawning the Guile thread");
        tx
    })
}

const INITIAL_HEAP_BYTES: usize = 192 << 20;

fn enter_guile_and_serve(rx: mpsc::Receiver<Job>) {
    unsafe extern "C" fn serve(data: *mut c_void) -> *mut c_void {
        // SAFETY: `data` is the receiver below, alive for the whole scm_with_guile call.
        let rx = unsafe { &*(data as *const mpsc::Receiver<Job>) };
        let g = Guile {
            _not_send: PhantomData,
        };
        // Evaluations allocate many small objects; starting from libgc's small default heap
        // costs a collection every few megabytes, a third of the time of a large evaluation.
        // Address space is reserved now; pages count towards RSS only once used.
        // SAFETY: called in Guile mode, after libgc is initialised.
        unsafe { sys::GC_expand_hp(INITIAL_HEAP_BYTES) };
        // SAFETY: as above; `abort_on_oom` has the hook's signature and never returns.
        unsafe { sys::GC_set_oom_fn(abort_on_oom) };
        for job in rx.iter() {
            job(&g);
        }
        std::ptr::null_mut()
    }
    // SAFETY: `serve` matches its data pointer; jobs catch their own panics.
    unsafe { sys::scm_with_guile(serve, &rx as *const _ as *mut c_void) };
}

/// Guile reports a failed GC allocation by raising `out-of-memory`, a `longjmp` out of
/// whatever allocated: the safe layer allocates (conses, makes strings) outside any catch,
/// with Rust frames in between, so that exit would skip their destructors. Aborting instead
/// is what Rust does when its own allocator fails.
unsafe extern "C" fn abort_on_oom(_bytes: usize) -> *mut c_void {
    use std::io::Write;
    // No formatting: that could allocate, and memory is what just ran out.
    let _ = std::io::stderr().write_all(b"guile: out of memory (the GC heap is exhausted)\n");
    std::process::abort()
}

impl Guile {
    /// Evaluates Scheme source (every form in it, in order) in the current module. The text is
    /// handed to Guile as UTF-8, whatever the process locale.
    pub fn eval_str<'g>(&'g self, code: &str) -> Result<Value<'g>, GuileError> {
        let eval_string = self.public_ref("guile", "eval-string")?;
        self.call(eval_string, &[self.string(code)])
    }

    /// Calls a procedure. Guile reads the arguments straight from `args` (no copy on the Rust
    /// heap), so they stay as visible to the collector as the caller keeps them; `args` is
    /// borrowed, hence unchanged, until Guile has copied them onto its own stack.
    pub fn call<'g>(
        &'g self,
        proc_: Value<'g>,
        args: &[Value<'g>],
    ) -> Result<Value<'g>, GuileError> {
        let (argv, len) = (Value::as_raw_slice(args).as_ptr(), args.len());
        // SAFETY: in Guile mode (`&self`); `proc_` and the arguments are live values (they
        // are `Value`s; `proc_` is captured by reference, so it sits in this frame's memory);
        // `argv` points at `len` SCMs that `args` keeps borrowed for the whole call, and
        // scm_call_n only reads them (the `*mut` is the C signature's). A non-procedure is a
        // Scheme error, caught; the body owns nothing, and returns what Guile returned.
        unsafe { self.catch(|| sys::scm_call_n(proc_.raw(), argv.cast_mut(), len)) }
    }

    /// A public variable of a module, e.g. `("guile", "car")` or `("guixie primitives", "x")`.
    pub fn public_ref<'g>(&'g self, module: &str, name: &str) -> Result<Value<'g>, GuileError> {
        let m = CString::new(module).map_err(|_| GuileError::plain("NUL in module name"))?;
        let n = CString::new(name).map_err(|_| GuileError::plain("NUL in variable name"))?;
        let (mp, np) = (m.as_ptr(), n.as_ptr());
        // SAFETY: in Guile mode; both are NUL-terminated strings that outlive the call. An
        // unknown module or variable is a Scheme error, caught; the body owns nothing.
        unsafe { self.catch(|| sys::scm_c_public_ref(mp, np)) }
    }

    /// Runs `body` (which calls libguile) with every Scheme exception caught, and wraps the
    /// value it returns.
    ///
    /// # Safety
    /// `body` must return a live Scheme value (or an immediate). It must not hold values
    /// with destructors across the libguile calls it makes: on an exception its frame is
    /// skipped by `longjmp`.
    pub unsafe fn catch<'g>(
        &'g self,
        body: impl FnMut() -> sys::SCM,
    ) -> Result<Value<'g>, GuileError> {
        // SAFETY: in Guile mode (`&self`); `body` is as the caller promised.
        unsafe { error::catch(self, body) }
    }
}
