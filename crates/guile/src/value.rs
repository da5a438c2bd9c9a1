use std::marker::PhantomData;

use guile_sys as sys;

use crate::Guile;

/// A Scheme value, valid while Guile mode lasts on this thread. Keep it on the stack (the GC
/// scans stacks); to keep one on the heap, use [`Protected`].
#[derive(Clone, Copy)]
pub struct Value<'g> {
    raw: sys::SCM,
    _g: PhantomData<&'g Guile>,
}

impl<'g> Value<'g> {
    /// # Safety
    /// `raw` must be a valid Scheme value reachable by the GC while `'g` lasts.
    pub unsafe fn from_raw(_g: &'g Guile, raw: sys::SCM) -> Self {
        Value {
            raw,
            _g: PhantomData,
        }
    }

    pub fn raw(self) -> sys::SCM {
        self.raw
    }

    fn wrap(self, raw: sys::SCM) -> Value<'g> {
        Value {
            raw,
            _g: PhantomData,
        }
    }

    pub fn is_true(self) -> bool {
        unsafe { sys::guixie_scm_is_true(self.raw) != 0 }
    }
    pub fn is_false(self) -> bool {
        !self.is_true()
    }
    pub fn is_null(self) -> bool {
        unsafe { sys::guixie_scm_is_null(self.raw) != 0 }
    }
    pub fn is_pair(self) -> bool {
        unsafe { sys::guixie_scm_is_pair(self.raw) != 0 }
    }
    pub fn is_string(self) -> bool {
        unsafe { sys::scm_is_string(self.raw) != 0 }
    }
    pub fn is_symbol(self) -> bool {
        unsafe { sys::guixie_scm_is_symbol(self.raw) != 0 }
    }
    pub fn is_keyword(self) -> bool {
        unsafe { sys::scm_is_keyword(self.raw) != 0 }
    }
    pub fn is_bytevector(self) -> bool {
        unsafe { sys::scm_is_bytevector(self.raw) != 0 }
    }
    pub fn is_eq(self, other: Value<'_>) -> bool {
        unsafe { sys::guixie_scm_is_eq(self.raw, other.raw) != 0 }
    }

    pub fn car(self) -> Option<Value<'g>> {
        self.is_pair()
            .then(|| self.wrap(unsafe { sys::guixie_scm_car(self.raw) }))
    }
    pub fn cdr(self) -> Option<Value<'g>> {
        self.is_pair()
            .then(|| self.wrap(unsafe { sys::guixie_scm_cdr(self.raw) }))
    }

    /// The elements of a proper list; `None` for anything else.
    pub fn list(self) -> Option<Vec<Value<'g>>> {
        let mut out = Vec::new();
        let mut cur = self;
        while let Some(head) = cur.car() {
            out.push(head);
            cur = cur.cdr().expect("pair has a cdr");
        }
        cur.is_null().then_some(out)
    }

    /// The UTF-8 bytes of a string, or the name of a symbol or keyword.
    pub fn to_text(self) -> Option<String> {
        let s = if self.is_string() {
            self.raw
        } else if self.is_symbol() {
            unsafe { sys::scm_symbol_to_string(self.raw) }
        } else if self.is_keyword() {
            unsafe { sys::scm_symbol_to_string(sys::scm_keyword_to_symbol(self.raw)) }
        } else {
            return None;
        };
        let mut len = 0usize;
        // SAFETY: `s` is a string; the returned buffer is malloc'ed and freed below.
        unsafe {
            let ptr = sys::scm_to_utf8_stringn(s, &mut len);
            let bytes = std::slice::from_raw_parts(ptr as *const u8, len).to_vec();
            libc_free(ptr as *mut std::ffi::c_void);
            Some(String::from_utf8(bytes).expect("Guile produces valid UTF-8"))
        }
    }

    pub fn to_bytes(self) -> Option<Vec<u8>> {
        if self.is_bytevector() {
            unsafe {
                let len = sys::scm_c_bytevector_length(self.raw);
                let ptr = sys::guixie_bytevector_contents(self.raw) as *const u8;
                Some(std::slice::from_raw_parts(ptr, len).to_vec())
            }
        } else {
            self.to_text().map(String::into_bytes)
        }
    }

    pub fn to_i64(self) -> Option<i64> {
        unsafe {
            (sys::scm_is_signed_integer(self.raw, i64::MIN, i64::MAX) != 0)
                .then(|| sys::scm_to_int64(self.raw))
        }
    }
}

extern "C" {
    #[link_name = "free"]
    fn libc_free(p: *mut std::ffi::c_void);
}

impl Guile {
    pub fn string<'g>(&'g self, s: &str) -> Value<'g> {
        unsafe {
            Value::from_raw(
                self,
                sys::scm_from_utf8_stringn(s.as_ptr() as *const _, s.len()),
            )
        }
    }
    pub fn symbol<'g>(&'g self, s: &str) -> Value<'g> {
        let c = std::ffi::CString::new(s).expect("symbol names have no NUL");
        unsafe { Value::from_raw(self, sys::scm_from_utf8_symbol(c.as_ptr())) }
    }
    pub fn bytevector<'g>(&'g self, bytes: &[u8]) -> Value<'g> {
        unsafe {
            let bv = sys::scm_c_make_bytevector(bytes.len());
            let dst = sys::guixie_bytevector_contents(bv) as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
            Value::from_raw(self, bv)
        }
    }
    pub fn int<'g>(&'g self, n: i64) -> Value<'g> {
        unsafe { Value::from_raw(self, sys::scm_from_int64(n)) }
    }
    pub fn bool<'g>(&'g self, b: bool) -> Value<'g> {
        unsafe {
            Value::from_raw(
                self,
                if b {
                    sys::guixie_scm_bool_t()
                } else {
                    sys::guixie_scm_bool_f()
                },
            )
        }
    }
    pub fn unspecified<'g>(&'g self) -> Value<'g> {
        unsafe { Value::from_raw(self, sys::guixie_scm_unspecified()) }
    }
    pub fn cons<'g>(&'g self, a: Value<'g>, b: Value<'g>) -> Value<'g> {
        unsafe { Value::from_raw(self, sys::scm_cons(a.raw(), b.raw())) }
    }
    /// A list of `items`. The slice must be on the stack (an array), not in a `Vec`: the GC
    /// does not scan the Rust heap. To build a list of computed values, use [`Guile::list_with`].
    pub fn list<'g>(&'g self, items: &[Value<'g>]) -> Value<'g> {
        let mut l = unsafe { Value::from_raw(self, sys::guixie_scm_eol()) };
        for v in items.iter().rev() {
            l = self.cons(*v, l);
        }
        l
    }

    /// A list with one value per item, made by `make`. Each value is consed onto the list
    /// (held on the stack) as soon as it exists, so no value is ever only on the Rust heap
    /// while allocation, and so collection, can happen.
    pub fn list_with<'g, T>(
        &'g self,
        items: &[T],
        mut make: impl FnMut(&T) -> Value<'g>,
    ) -> Value<'g> {
        let mut l = unsafe { Value::from_raw(self, sys::guixie_scm_eol()) };
        for item in items.iter().rev() {
            let v = make(item);
            l = self.cons(v, l);
        }
        l
    }
}

/// A Scheme value kept alive by the GC while this handle lives (for storage on the Rust heap).
pub struct Protected {
    raw: sys::SCM,
}

impl Protected {
    pub fn new(v: Value<'_>) -> Self {
        unsafe { sys::scm_gc_protect_object(v.raw()) };
        Protected { raw: v.raw() }
    }

    pub fn get<'g>(&self, g: &'g Guile) -> Value<'g> {
        unsafe { Value::from_raw(g, self.raw) }
    }
}

impl Drop for Protected {
    fn drop(&mut self) {
        // Unprotecting is only valid in Guile mode; a Protected is !Send (raw pointer), so it
        // is dropped on the thread that made it, which is still in Guile mode while it lives.
        unsafe { sys::scm_gc_unprotect_object(self.raw) };
    }
}

impl std::fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_text() {
            Some(t) => write!(f, "Value({t:?})"),
            None => write!(f, "Value({:p})", self.raw),
        }
    }
}
