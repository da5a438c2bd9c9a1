use std::any::Any;
use std::cell::Cell;
use std::ffi::{c_void, CString};
use std::panic::{self, AssertUnwindSafe};

use guile_sys as sys;

use crate::{Guile, GuileError, Location, Value};

/// The error a Rust primitive reports; raised in Scheme as `guixie-error`.
#[derive(Debug, Clone)]
pub struct PrimitiveError {
    pub message: String,
    pub location: Option<Location>,
}

impl PrimitiveError {
    pub fn new(message: impl Into<String>) -> Self {
        PrimitiveError {
            message: message.into(),
            location: None,
        }
    }
}

/// A Rust procedure callable from Scheme. Arguments arrive as a list (`(name . args)` rest
/// arguments), so one trampoline serves every arity. `args` lies in memory the collector
/// scans, so the arguments stay alive for the whole call wherever they are copied to.
pub trait Primitive {
    const NAME: &'static str;
    fn call<'g>(g: &'g Guile, args: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError>;
}

/// # Safety
/// Called by Guile only (it is registered as a gsubr with one rest argument), so in Guile
/// mode with `rest` the fresh, proper list of arguments.
unsafe extern "C" fn trampoline<P: Primitive>(rest: sys::SCM) -> sys::SCM {
    let g = Guile {
        _not_send: std::marker::PhantomData,
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `rest` is the argument list Guile passed in; it is a parameter of this
        // call, held until copied below.
        let rest = unsafe { Value::from_raw(&g, rest) };
        let args = GcArgs::new(&g, rest);
        let r = P::call(&g, args.as_slice()).map(|v| v.raw());
        // The buffer is reachable only through `args`; keep that pointer visible (and so
        // the buffer scanned) until the primitive is done with the arguments.
        sys::scm_remember_upto_here_1(args.ptr.cast());
        r
    }));
    match outcome {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => raise(&g, P::NAME, e),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            drop(panic);
            raise(
                &g,
                P::NAME,
                PrimitiveError::new(format!("internal error (panic): {message}")),
            )
        }
    }
}

/// A primitive's arguments, copied out of the rest list into memory from `scm_gc_malloc`:
/// the collector scans it (as long as `ptr` is visible), unlike a `Vec`, and Scheme code
/// cannot reach it, unlike the list.
struct GcArgs<'g> {
    ptr: *mut Value<'g>,
    len: usize,
}

impl<'g> GcArgs<'g> {
    fn new(_g: &'g Guile, rest: Value<'g>) -> Self {
        let Some(items) = rest.list() else {
            return GcArgs {
                ptr: std::ptr::null_mut(),
                len: 0,
            };
        };
        let len = items.clone().count();
        if len == 0 {
            return GcArgs {
                ptr: std::ptr::null_mut(),
                len: 0,
            };
        }
        // SAFETY: in Guile mode (`_g`). The allocation does not raise: a failure aborts in
        // the hook `with_guile` installs. While it runs, the arguments are reachable through
        // `items`, the rest list's head, held on this stack until the copy is done.
        let ptr = unsafe {
            sys::scm_gc_malloc(
                len * std::mem::size_of::<Value<'g>>(),
                c"primitive arguments".as_ptr(),
            )
        }
        .cast::<Value<'g>>();
        let mut n = 0;
        for v in items.take(len) {
            // SAFETY: `ptr` has room for `len` values (suitably aligned: GC memory is
            // word-aligned) and `n < len`.
            unsafe { ptr.add(n).write(v) };
            n += 1;
        }
        GcArgs { ptr, len: n }
    }

    fn as_slice(&self) -> &[Value<'g>] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: the first `len` slots were written in `new`, nothing writes them again, and
        // the memory lives while the collector sees `ptr` (the trampoline keeps it visible
        // until the primitive returns, and the slice cannot outlive `self`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Converts the error to Scheme values, drops every Rust value, then throws: the throw
/// `longjmp`s over this frame and the trampoline's, which by then own nothing.
#[inline(never)]
fn raise(g: &Guile, name: &str, e: PrimitiveError) -> sys::SCM {
    let (key, args) = {
        let loc = match &e.location {
            Some(l) => g.list(&[
                g.string(&l.file),
                g.int(l.line.into()),
                g.int(l.column.into()),
            ]),
            None => g.bool(false),
        };
        let args = g.list(&[
            g.string(name),
            g.string("~A"),
            g.list(&[g.string(&e.message)]),
            loc,
        ]);
        (g.symbol("guixie-error").raw(), args.raw())
    };
    drop(e);
    // SAFETY: in Guile mode; `key` and `args` are live (locals of this frame, passed as
    // arguments). The throw leaves by `longjmp` through this frame and the trampoline's, which
    // own nothing with a destructor any more (`e` is dropped; the panic payload was dropped
    // before the call), to the Scheme caller of the primitive.
    unsafe { sys::scm_throw(key, args) }
}

impl Guile {
    /// Defines `P` as a procedure in the current module (call inside a module's init, or
    /// then export it).
    pub fn define_primitive<P: Primitive>(&self) {
        let name = CString::new(P::NAME).expect("primitive names have no NUL");
        let name_ptr = name.as_ptr();
        // SAFETY: in Guile mode (`&self`); `name` is NUL-terminated and outlives the call
        // (Guile copies it); `trampoline::<P>` has the signature of a gsubr with no required,
        // no optional and one rest argument. The body owns nothing; Guile returns the
        // procedure, a live value.
        let defined = unsafe {
            self.catch(|| {
                sys::scm_c_define_gsubr(name_ptr, 0, 0, 1, trampoline::<P> as *mut c_void)
            })
        };
        if let Err(e) = defined {
            panic!("defining primitive {}: {e}", P::NAME);
        }
    }

    /// Defines the module `name` (e.g. `"guixie primitives"`), running `init` inside it, and
    /// exports `exports`. A panic in `init` is resumed here.
    pub fn define_module(
        &self,
        name: &str,
        init: fn(&Guile),
        exports: &[&str],
    ) -> Result<(), GuileError> {
        struct Init {
            init: fn(&Guile),
            exports: Vec<CString>,
            panic: Cell<Option<Box<dyn Any + Send>>>,
        }
        /// # Safety
        /// `data` must point at an `Init` alive during the call, in Guile mode.
        unsafe extern "C" fn run_init(data: *mut c_void) {
            // SAFETY: `define_module` passes its `Init`, alive during scm_c_define_module,
            // which calls this in Guile mode.
            let data = unsafe { &*(data as *const Init) };
            let g = Guile {
                _not_send: std::marker::PhantomData,
            };
            // A panic must not unwind into C; it is carried out and resumed in Rust.
            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| (data.init)(&g))) {
                data.panic.set(Some(p));
                return;
            }
            for e in &data.exports {
                // SAFETY: in Guile mode, inside the module being defined; `e` is
                // NUL-terminated and the list ends with the NULL the varargs need. This frame
                // holds only references, so a Scheme exception may skip it.
                unsafe { sys::scm_c_export(e.as_ptr(), std::ptr::null::<i8>()) };
            }
        }
        let module = CString::new(name).expect("module names have no NUL");
        let data = Init {
            init,
            exports: exports
                .iter()
                .map(|e| CString::new(*e).expect("no NUL"))
                .collect(),
            panic: Cell::new(None),
        };
        let (module_ptr, data_ptr) = (module.as_ptr(), &data as *const Init as *mut c_void);
        // SAFETY: in Guile mode (`&self`); `module_ptr` is NUL-terminated, `run_init` matches
        // `data_ptr`, and both pointees are this frame's, outliving the call. The body owns
        // nothing, so an exception (in the module system or `run_init`'s exports) may skip it;
        // Guile returns the module, a live value.
        let defined = unsafe {
            self.catch(|| sys::scm_c_define_module(module_ptr, Some(run_init), data_ptr))
        };
        if let Some(p) = data.panic.take() {
            panic::resume_unwind(p);
        }
        defined.map(|_| ())
    }
}
