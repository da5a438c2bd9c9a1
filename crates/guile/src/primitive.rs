use std::ffi::{c_void, CString};
use std::panic::{self, AssertUnwindSafe};

use guile_sys as sys;

use crate::{Guile, Location, Value};

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
/// arguments), so one trampoline serves every arity.
pub trait Primitive {
    const NAME: &'static str;
    fn call<'g>(g: &'g Guile, args: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError>;
}

unsafe extern "C" fn trampoline<P: Primitive>(rest: sys::SCM) -> sys::SCM {
    let g = Guile {
        _not_send: std::marker::PhantomData,
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `rest` is the argument list Guile passed in.
        let args = unsafe { Value::from_raw(&g, rest) }
            .list()
            .unwrap_or_default();
        P::call(&g, &args).map(|v| v.raw())
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
    unsafe { sys::scm_throw(key, args) }
}

impl Guile {
    /// Defines `P` as a procedure in the current module (call inside a module's init, or
    /// then export it).
    pub fn define_primitive<P: Primitive>(&self) {
        let name = CString::new(P::NAME).expect("primitive names have no NUL");
        unsafe {
            sys::scm_c_define_gsubr(name.as_ptr(), 0, 0, 1, trampoline::<P> as *mut c_void);
        }
    }

    /// Defines the module `name` (e.g. `"guixie primitives"`), running `init` inside it, and
    /// exports `exports`.
    pub fn define_module(&self, name: &str, init: fn(&Guile), exports: &[&str]) {
        unsafe extern "C" fn run_init(data: *mut c_void) {
            // SAFETY: `data` is the (fn, exports) pair below, alive during scm_c_define_module.
            let (init, exports) = unsafe { &*(data as *const (fn(&Guile), Vec<CString>)) };
            let g = Guile {
                _not_send: std::marker::PhantomData,
            };
            init(&g);
            for e in exports {
                unsafe { sys::scm_c_export(e.as_ptr(), std::ptr::null::<i8>()) };
            }
        }
        let module = CString::new(name).expect("module names have no NUL");
        let data: (fn(&Guile), Vec<CString>) = (
            init,
            exports
                .iter()
                .map(|e| CString::new(*e).expect("no NUL"))
                .collect(),
        );
        unsafe {
            sys::scm_c_define_module(
                module.as_ptr(),
                Some(run_init),
                &data as *const _ as *mut c_void,
            );
        }
    }
}
