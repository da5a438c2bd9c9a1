//! Raw, unsafe bindings to the parts of libguile-3.0 guixie uses. `guile` (the crate above)
//! is the safe layer; nothing else should use these directly.
//!
//! Macros of the C API (`SCM_BOOL_F`, `scm_is_true`, `SCM_CAR`, …) are provided by a C shim
//! compiled against the installed headers, under the names `guixie_*`.
//!
//! Unless an item says otherwise, every function here must be called on a thread in Guile
//! mode, with `SCM` arguments that are live Scheme values (reachable by the collector for the
//! whole call) of the type the C function expects. Functions that allocate may run the
//! collector; functions that can raise a Scheme exception leave by `longjmp`, so they must be
//! called inside `scm_c_catch` with only plain frames (no pending destructors) in between.
//! The few items marked `safe` only look at the bits of their arguments, so any word will do.
#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::{c_char, c_int, c_long, c_void};

/// A Guile value: a tagged machine word.
pub type SCM = *mut c_void;
pub type scm_t_catch_body = unsafe extern "C" fn(data: *mut c_void) -> SCM;
pub type scm_t_catch_handler = unsafe extern "C" fn(data: *mut c_void, key: SCM, args: SCM) -> SCM;
/// libgc's out-of-memory hook: gets the failed request's size, returns memory or null.
pub type GC_oom_func = unsafe extern "C" fn(bytes: usize) -> *mut c_void;

// `unsafe extern` (rather than plain `extern`, still accepted by edition 2021) so the block
// already reads as edition 2024 requires, and so the bit tests below can be declared `safe`.
unsafe extern "C" {
    /// libgc (Boehm GC, which Guile links): grow the heap by `bytes` now.
    pub fn GC_expand_hp(bytes: usize) -> c_int;
    /// libgc: replace the out-of-memory hook (Guile's raises a Scheme exception). Returns
    /// nothing; callable once libgc is initialised.
    pub fn GC_set_oom_fn(f: GC_oom_func);

    // Shim (macros). Constants and pure bit tests of the word read no memory.
    pub safe fn guixie_scm_bool_f() -> SCM;
    pub safe fn guixie_scm_bool_t() -> SCM;
    pub safe fn guixie_scm_eol() -> SCM;
    pub safe fn guixie_scm_unspecified() -> SCM;
    pub safe fn guixie_scm_undefined() -> SCM;
    pub safe fn guixie_scm_is_true(x: SCM) -> c_int;
    pub safe fn guixie_scm_is_null(x: SCM) -> c_int;
    pub safe fn guixie_scm_is_eq(a: SCM, b: SCM) -> c_int;
    pub safe fn guixie_scm_is_unbound(x: SCM) -> c_int;
    /// Reads the cell `x` points to unless `x` is an immediate: `x` must be a live value.
    pub fn guixie_scm_is_pair(x: SCM) -> c_int;
    /// Like `guixie_scm_is_pair`, `x` must be a live value.
    pub fn guixie_scm_is_symbol(x: SCM) -> c_int;
    /// `x` must be a pair (no check).
    pub fn guixie_scm_car(x: SCM) -> SCM;
    /// `x` must be a pair (no check).
    pub fn guixie_scm_cdr(x: SCM) -> SCM;
    /// `bv` must be a bytevector (no check); the contents are valid while `bv` is alive.
    pub fn guixie_bytevector_contents(bv: SCM) -> *const i8;

    // Threads and entering Guile mode.
    pub fn scm_with_guile(
        func: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
        data: *mut c_void,
    ) -> *mut c_void;

    // Evaluation, calls, errors.
    pub fn scm_c_catch(
        tag: SCM,
        body: scm_t_catch_body,
        body_data: *mut c_void,
        handler: scm_t_catch_handler,
        handler_data: *mut c_void,
        pre_unwind_handler: Option<scm_t_catch_handler>,
        pre_unwind_handler_data: *mut c_void,
    ) -> SCM;
    pub fn scm_c_eval_string(expr: *const c_char) -> SCM;
    /// Only reads `argv` (it copies the arguments onto the VM stack before running `proc_`).
    pub fn scm_call_n(proc_: SCM, argv: *mut SCM, nargs: usize) -> SCM;
    pub fn scm_throw(key: SCM, args: SCM) -> SCM;
    pub fn scm_c_public_ref(module_name: *const c_char, name: *const c_char) -> SCM;

    // Modules and primitives.
    pub fn scm_c_define_gsubr(
        name: *const c_char,
        req: c_int,
        opt: c_int,
        rst: c_int,
        fcn: *mut c_void,
    ) -> SCM;
    pub fn scm_c_define_module(
        name: *const c_char,
        init: Option<unsafe extern "C" fn(*mut c_void)>,
        data: *mut c_void,
    ) -> SCM;
    pub fn scm_c_export(name: *const c_char, ...);

    // GC.
    pub fn scm_gc_protect_object(obj: SCM) -> SCM;
    pub fn scm_gc_unprotect_object(obj: SCM) -> SCM;
    /// Memory the collector scans for pointers and frees once nothing points at it.
    pub fn scm_gc_malloc(size: usize, what: *const c_char) -> *mut c_void;
    /// Does nothing, but an out-of-line call the optimiser cannot drop: `obj` stays in a
    /// register or stack slot (where the collector sees it) up to this point.
    pub safe fn scm_remember_upto_here_1(obj: SCM);

    // Lists.
    /// The length of a proper list, or -1 (improper or circular). Never allocates.
    pub fn scm_ilength(x: SCM) -> c_long;

    // Conversions.
    pub fn scm_from_utf8_stringn(s: *const c_char, len: usize) -> SCM;
    pub fn scm_to_utf8_stringn(s: SCM, lenp: *mut usize) -> *mut c_char;
    pub fn scm_from_utf8_symbol(s: *const c_char) -> SCM;
    pub fn scm_is_string(x: SCM) -> c_int;

    pub fn scm_symbol_to_string(sym: SCM) -> SCM;
    pub fn scm_is_bytevector(x: SCM) -> c_int;
    pub fn scm_c_bytevector_length(bv: SCM) -> usize;
    pub fn scm_c_make_bytevector(len: usize) -> SCM;
    pub fn scm_is_integer(x: SCM) -> c_int;
    pub fn scm_is_signed_integer(x: SCM, min: i64, max: i64) -> c_int;
    pub fn scm_to_int64(x: SCM) -> i64;
    pub fn scm_from_int64(x: i64) -> SCM;
    pub fn scm_cons(a: SCM, b: SCM) -> SCM;
    pub fn scm_is_keyword(x: SCM) -> c_int;
    pub fn scm_keyword_to_symbol(kw: SCM) -> SCM;
}
