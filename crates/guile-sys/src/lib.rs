//! Raw, unsafe bindings to the parts of libguile-3.0 guixie uses. `guile` (the crate above)
//! is the safe layer; nothing else should use these directly.
//!
//! Macros of the C API (`SCM_BOOL_F`, `scm_is_true`, `SCM_CAR`, …) are provided by a C shim
//! compiled against the installed headers, under the names `guixie_*`.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

/// A Guile value: a tagged machine word.
pub type SCM = *mut c_void;
pub type scm_t_catch_body = unsafe extern "C" fn(data: *mut c_void) -> SCM;
pub type scm_t_catch_handler = unsafe extern "C" fn(data: *mut c_void, key: SCM, args: SCM) -> SCM;

extern "C" {
    /// libgc (Boehm GC, which Guile links): grow the heap by `bytes` now.
    pub fn GC_expand_hp(bytes: usize) -> c_int;
    // Shim (macros).
    pub fn guixie_scm_bool_f() -> SCM;
    pub fn guixie_scm_bool_t() -> SCM;
    pub fn guixie_scm_eol() -> SCM;
    pub fn guixie_scm_unspecified() -> SCM;
    pub fn guixie_scm_undefined() -> SCM;
    pub fn guixie_scm_is_true(x: SCM) -> c_int;
    pub fn guixie_scm_is_null(x: SCM) -> c_int;
    pub fn guixie_scm_is_pair(x: SCM) -> c_int;
    pub fn guixie_scm_is_eq(a: SCM, b: SCM) -> c_int;
    pub fn guixie_scm_is_unbound(x: SCM) -> c_int;
    pub fn guixie_scm_is_symbol(x: SCM) -> c_int;
    pub fn guixie_scm_car(x: SCM) -> SCM;
    pub fn guixie_scm_cdr(x: SCM) -> SCM;
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
