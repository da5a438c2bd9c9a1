use std::ffi::c_void;
use std::fmt;

use guile_sys as sys;
use thiserror::Error;

use crate::{Guile, Value};

/// A source position as Guile reports it: 1-based line, 1-based column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A Scheme exception, caught before it could cross Rust frames.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub struct GuileError {
    /// The exception key, e.g. `unbound-variable`, `read-error`, `guixie-error`.
    pub key: String,
    pub message: String,
    pub location: Option<Location>,
}

impl fmt::Display for GuileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            // Read errors already start with the location.
            Some(loc) if !self.message.starts_with(&loc.to_string()) => {
                write!(f, "{loc}: {}", self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

impl GuileError {
    pub fn plain(message: &str) -> Self {
        GuileError {
            key: "guile-rs".into(),
            message: message.into(),
            location: None,
        }
    }
}

/// Turns `(key . args)` into message and location. Defined in Scheme because only Scheme
/// knows how Guile prints its own exceptions; run inside a raw catch so it cannot escape.
const DESCRIBE: &str = r#"
(lambda (key args)
  (define (props->location props)
    (let ((file (assq-ref props 'filename))
          (line (assq-ref props 'line))
          (column (assq-ref props 'column)))
      (and file line column (list file (+ line 1) (+ column 1)))))
  (define (location)
    (cond
     ;; (guixie-error subr message-format (message) (file line column))
     ((and (eq? key 'guixie-error) (= (length args) 4) (list? (list-ref args 3)))
      (list-ref args 3))
     ((and (eq? key 'syntax-error) (>= (length args) 3) (list? (list-ref args 2)))
      (props->location (list-ref args 2)))
     ((and (eq? key 'read-error) (>= (length args) 2) (string? (cadr args)))
      (let ((parts (string-split (cadr args) #\:)))
        (and (>= (length parts) 3)
             (let ((line (string->number (cadr parts)))
                   (column (string->number (caddr parts))))
               (and line column (list (car parts) line column))))))
     (else #f)))
  (list (symbol->string key)
        (call-with-output-string
          (lambda (port)
            (if (and (eq? key 'guixie-error) (= (length args) 4))
                (display (car (list-ref args 2)) port)
                (print-exception port #f key args))))
        (location)))
"#;

struct Caught {
    failed: bool,
    key: sys::SCM,
    args: sys::SCM,
}

/// # Safety
/// `data` must point at an `F` that is alive, and not otherwise borrowed, during the call.
unsafe extern "C" fn body_trampoline<F: FnMut() -> sys::SCM>(data: *mut c_void) -> sys::SCM {
    // SAFETY: `raw_catch` passes its `body`, which outlives the scm_c_catch call.
    let f = unsafe { &mut *(data as *mut F) };
    f()
}

/// # Safety
/// `data` must point at a `Caught` that is alive, and not otherwise borrowed, during the call.
unsafe extern "C" fn record_handler(data: *mut c_void, key: sys::SCM, args: sys::SCM) -> sys::SCM {
    // SAFETY: `raw_catch` passes its `caught`, on its stack for the whole scm_c_catch call.
    let c = unsafe { &mut *(data as *mut Caught) };
    c.failed = true;
    c.key = key;
    c.args = args;
    sys::guixie_scm_bool_f()
}

/// Runs `body` under a catch-all. The key and arguments of a caught exception are returned
/// raw: `Caught` holds them in this frame, and the caller must keep them on its stack.
///
/// # Safety
/// In Guile mode. `body` may leave by `longjmp` (a Scheme exception), so it must not hold
/// values with destructors across the libguile calls it makes.
unsafe fn raw_catch<F: FnMut() -> sys::SCM>(mut body: F) -> Result<sys::SCM, (sys::SCM, sys::SCM)> {
    let mut caught = Caught {
        failed: false,
        key: std::ptr::null_mut(),
        args: std::ptr::null_mut(),
    };
    // SAFETY: in Guile mode (the caller's contract); each trampoline is instantiated for the
    // type its data pointer points at, and both pointees outlive the call. An exception in
    // `body` unwinds only `body`'s frames (the caller's contract makes that sound) and the
    // C frames of scm_c_catch, and lands in `record_handler`, so no `longjmp` crosses this
    // frame.
    let r = unsafe {
        sys::scm_c_catch(
            sys::guixie_scm_bool_t(),
            body_trampoline::<F>,
            &mut body as *mut _ as *mut c_void,
            record_handler,
            &mut caught as *mut Caught as *mut c_void,
            None,
            std::ptr::null_mut(),
        )
    };
    if caught.failed {
        Err((caught.key, caught.args))
    } else {
        Ok(r)
    }
}

/// # Safety
/// As for [`Guile::catch`].
pub(crate) unsafe fn catch<'g>(
    g: &'g Guile,
    body: impl FnMut() -> sys::SCM,
) -> Result<Value<'g>, GuileError> {
    // SAFETY: in Guile mode (`g`); `body` is as the caller promised.
    match unsafe { raw_catch(body) } {
        // SAFETY: `body` returned a live value (the caller's contract); it is this
        // function's result, held by the caller from here.
        Ok(v) => Ok(unsafe { Value::from_raw(g, v) }),
        Err((key, args)) => Err(describe(g, key, args)),
    }
}

/// `key` and `args` are the caught exception, held by the caller (as locals, on the stack)
/// and as arguments here, so live while this runs.
fn describe(g: &Guile, key: sys::SCM, args: sys::SCM) -> GuileError {
    let code = std::ffi::CString::new(DESCRIBE).expect("no NUL");
    let code_ptr = code.as_ptr();
    // SAFETY: in Guile mode (`g`); the body owns nothing with a destructor (the CString is
    // this frame's, outliving the catch). `code_ptr` is NUL-terminated, `argv` is a stack
    // array of two live values, and the evaluated procedure, a local, is used at once.
    let described = unsafe {
        raw_catch(|| {
            let describe = sys::scm_c_eval_string(code_ptr);
            let mut argv = [key, args];
            sys::scm_call_n(describe, argv.as_mut_ptr(), 2)
        })
    };
    let fallback = || {
        // SAFETY: `key` is live (see above).
        let key_name = unsafe { Value::from_raw(g, key) }
            .to_text()
            .unwrap_or_else(|| "unknown".into());
        GuileError {
            message: format!("Scheme exception {key_name}"),
            key: key_name,
            location: None,
        }
    };
    let Ok(v) = described else { return fallback() };
    // SAFETY: a value DESCRIBE returned, held in `v` (on the stack) from here on.
    let v = unsafe { Value::from_raw(g, v) };
    let Some([key_name, message, location]) = v.list_array() else {
        return fallback();
    };
    let location = location.list_array().and_then(|[file, line, column]| {
        Some(Location {
            file: file.to_text()?,
            line: u32::try_from(line.to_i64()?).ok()?,
            column: u32::try_from(column.to_i64()?).ok()?,
        })
    });
    GuileError {
        key: key_name.to_text().unwrap_or_default(),
        message: message.to_text().unwrap_or_default().trim_end().to_owned(),
        location,
    }
}
