use std::marker::PhantomData;

use guile_sys as sys;

use crate::Guile;

/// A Scheme value, valid while Guile mode lasts on this thread. Keep it on the stack (the GC
/// scans stacks); to keep one on the heap, use [`Protected`] (see the crate docs).
///
/// `repr(transparent)`, so a `&[Value]` is a `&[SCM]` Guile can read arguments from.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Value<'g> {
    raw: sys::SCM,
    _g: PhantomData<&'g Guile>,
}

impl<'g> Value<'g> {
    /// # Safety
    /// `raw` must be a live Scheme value (or an immediate such as a fixnum or `#f`), and the
    /// caller must keep it reachable by the collector while the `Value` is in use, as for any
    /// `Value` (see the crate docs).
    pub unsafe fn from_raw(_g: &'g Guile, raw: sys::SCM) -> Self {
        Value {
            raw,
            _g: PhantomData,
        }
    }

    /// The empty list; an immediate, so valid for any `'g`.
    fn eol() -> Self {
        Value {
            raw: sys::guixie_scm_eol(),
            _g: PhantomData,
        }
    }

    pub fn raw(self) -> sys::SCM {
        self.raw
    }

    pub(crate) fn as_raw_slice<'a>(values: &'a [Value<'g>]) -> &'a [sys::SCM] {
        // SAFETY: `Value` is `repr(transparent)` over `SCM` (the other field is a ZST), so
        // the layouts of the two slices are the same; the lifetime is kept.
        unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<sys::SCM>(), values.len()) }
    }

    fn wrap(self, raw: sys::SCM) -> Value<'g> {
        Value {
            raw,
            _g: PhantomData,
        }
    }

    pub fn is_true(self) -> bool {
        sys::guixie_scm_is_true(self.raw) != 0
    }
    pub fn is_false(self) -> bool {
        !self.is_true()
    }
    pub fn is_null(self) -> bool {
        sys::guixie_scm_is_null(self.raw) != 0
    }
    pub fn is_pair(self) -> bool {
        // SAFETY: `self` is a live value (the `Value` invariant), so the cell it may point
        // to is readable; a `Value` exists only in Guile mode.
        unsafe { sys::guixie_scm_is_pair(self.raw) != 0 }
    }
    pub fn is_string(self) -> bool {
        // SAFETY: as in `is_pair`: a type test on a live value, in Guile mode.
        unsafe { sys::scm_is_string(self.raw) != 0 }
    }
    pub fn is_symbol(self) -> bool {
        // SAFETY: as in `is_pair`.
        unsafe { sys::guixie_scm_is_symbol(self.raw) != 0 }
    }
    pub fn is_keyword(self) -> bool {
        // SAFETY: as in `is_pair`.
        unsafe { sys::scm_is_keyword(self.raw) != 0 }
    }
    pub fn is_bytevector(self) -> bool {
        // SAFETY: as in `is_pair`.
        unsafe { sys::scm_is_bytevector(self.raw) != 0 }
    }
    pub fn is_eq(self, other: Value<'_>) -> bool {
        sys::guixie_scm_is_eq(self.raw, other.raw) != 0
    }

    /// The car of a pair. The element is reachable through `self` for as long as the caller
    /// keeps `self`, and on its own once it is held (on the stack) itself.
    pub fn car(self) -> Option<Value<'g>> {
        self.is_pair()
            // SAFETY: `self` is a live pair (checked just before), in Guile mode.
            .then(|| self.wrap(unsafe { sys::guixie_scm_car(self.raw) }))
    }
    pub fn cdr(self) -> Option<Value<'g>> {
        self.is_pair()
            // SAFETY: as in `car`.
            .then(|| self.wrap(unsafe { sys::guixie_scm_cdr(self.raw) }))
    }

    /// The elements of a proper list, read in place (`None` for anything else, circular
    /// lists included). The iterator holds the first pair it has not yet consumed, which
    /// keeps the remaining elements reachable without copying them anywhere the collector
    /// cannot see; each element it yields is then kept like any other `Value`.
    pub fn list(self) -> Option<ListIter<'g>> {
        // SAFETY: scm_ilength only walks the cells of a live value, in Guile mode; it
        // neither allocates nor raises (improper and circular lists give -1).
        let len = unsafe { sys::scm_ilength(self.raw) };
        (len >= 0).then_some(ListIter { rest: self })
    }

    /// The elements of a proper list of exactly `N` elements, as an array (on the caller's
    /// stack, where the collector sees them); `None` for anything else.
    pub fn list_array<const N: usize>(self) -> Option<[Value<'g>; N]> {
        // SAFETY: as in `list`.
        let len = unsafe { sys::scm_ilength(self.raw) };
        if usize::try_from(len).ok()? != N {
            return None;
        }
        let mut items = ListIter { rest: self };
        let mut out = [Value::eol(); N];
        for slot in &mut out {
            // Refuse, rather than assume, if another thread has just shortened the list.
            *slot = items.next()?;
        }
        Some(out)
    }

    /// The UTF-8 bytes of a string, or the name of a symbol or keyword.
    pub fn to_text(self) -> Option<String> {
        let s = if self.is_string() {
            self.raw
        } else if self.is_symbol() {
            // SAFETY: `self` is a live symbol, in Guile mode. The new string is a local used
            // right below, so the collector sees it in a register or this frame.
            unsafe { sys::scm_symbol_to_string(self.raw) }
        } else if self.is_keyword() {
            // SAFETY: as above, for a live keyword (whose symbol is live through it).
            unsafe { sys::scm_symbol_to_string(sys::scm_keyword_to_symbol(self.raw)) }
        } else {
            return None;
        };
        let mut len = 0usize;
        // SAFETY: `s` is a live string, in Guile mode; the buffer returned is malloc'ed,
        // `len` bytes long, and freed here once copied. Any string converts to UTF-8, so the
        // only way out by `longjmp` is libc malloc failing (Guile then raises out-of-memory).
        let bytes = unsafe {
            let ptr = sys::scm_to_utf8_stringn(s, &mut len);
            let bytes = std::slice::from_raw_parts(ptr as *const u8, len).to_vec();
            libc_free(ptr as *mut std::ffi::c_void);
            bytes
        };
        sys::scm_remember_upto_here_1(s);
        Some(String::from_utf8(bytes).expect("Guile produces valid UTF-8"))
    }

    pub fn to_bytes(self) -> Option<Vec<u8>> {
        if self.is_bytevector() {
            // SAFETY: `self` is a live bytevector, in Guile mode, so its contents are `len`
            // readable bytes; it stays visible to the collector until the copy is made (the
            // remember below), since the contents pointer alone may not keep it alive.
            let bytes = unsafe {
                let len = sys::scm_c_bytevector_length(self.raw);
                let ptr = sys::guixie_bytevector_contents(self.raw) as *const u8;
                std::slice::from_raw_parts(ptr, len).to_vec()
            };
            sys::scm_remember_upto_here_1(self.raw);
            Some(bytes)
        } else {
            self.to_text().map(String::into_bytes)
        }
    }

    pub fn to_i64(self) -> Option<i64> {
        // SAFETY: type tests and a conversion of a live value, in Guile mode; scm_to_int64
        // is only reached for an integer in range, so it does not raise.
        unsafe {
            (sys::scm_is_signed_integer(self.raw, i64::MIN, i64::MAX) != 0)
                .then(|| sys::scm_to_int64(self.raw))
        }
    }
}

/// The elements of a proper list, from [`Value::list`]. `Default` is the empty list.
#[derive(Clone)]
pub struct ListIter<'g> {
    /// The rest of the list, not yet yielded: a pair or `()`. Being a `Value` in this
    /// iterator (on the stack), it keeps every remaining cell, and so element, reachable.
    rest: Value<'g>,
}

impl ListIter<'_> {
    /// Whether every element has been yielded.
    pub fn is_empty(&self) -> bool {
        !self.rest.is_pair()
    }
}

impl Default for ListIter<'_> {
    fn default() -> Self {
        ListIter { rest: Value::eol() }
    }
}

impl<'g> Iterator for ListIter<'g> {
    type Item = Value<'g>;

    fn next(&mut self) -> Option<Value<'g>> {
        // Re-checked at each step rather than trusting the length seen by `Value::list`:
        // Scheme code run between two steps may have changed the list with `set-cdr!`.
        let item = self.rest.car()?;
        self.rest = self.rest.cdr()?;
        Some(item)
    }
}

impl std::fmt::Debug for ListIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

unsafe extern "C" {
    #[link_name = "free"]
    fn libc_free(p: *mut std::ffi::c_void);
}

impl Guile {
    pub fn string<'g>(&'g self, s: &str) -> Value<'g> {
        // SAFETY: in Guile mode (`&self`); `s` is `s.len()` bytes of valid UTF-8, so the
        // conversion cannot fail (only libc malloc failing, for non-ASCII text, would raise).
        unsafe {
            Value::from_raw(
                self,
                sys::scm_from_utf8_stringn(s.as_ptr() as *const _, s.len()),
            )
        }
    }
    pub fn symbol<'g>(&'g self, s: &str) -> Value<'g> {
        let c = std::ffi::CString::new(s).expect("symbol names have no NUL");
        // SAFETY: in Guile mode; `c` is NUL-terminated UTF-8 that outlives the call.
        unsafe { Value::from_raw(self, sys::scm_from_utf8_symbol(c.as_ptr())) }
    }
    pub fn bytevector<'g>(&'g self, bytes: &[u8]) -> Value<'g> {
        // SAFETY: in Guile mode; `bv` is a fresh bytevector of `bytes.len()` bytes (a slice's
        // length is far below Guile's limit), so its contents have room for the copy, and it
        // stays in a local until wrapped.
        unsafe {
            let bv = sys::scm_c_make_bytevector(bytes.len());
            let dst = sys::guixie_bytevector_contents(bv) as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
            Value::from_raw(self, bv)
        }
    }
    pub fn int<'g>(&'g self, n: i64) -> Value<'g> {
        // SAFETY: in Guile mode; any i64 converts (a fixnum or a fresh bignum).
        unsafe { Value::from_raw(self, sys::scm_from_int64(n)) }
    }
    pub fn bool<'g>(&'g self, b: bool) -> Value<'g> {
        let raw = if b {
            sys::guixie_scm_bool_t()
        } else {
            sys::guixie_scm_bool_f()
        };
        // SAFETY: an immediate, valid for as long as Guile runs.
        unsafe { Value::from_raw(self, raw) }
    }
    pub fn unspecified<'g>(&'g self) -> Value<'g> {
        // SAFETY: an immediate, valid for as long as Guile runs.
        unsafe { Value::from_raw(self, sys::guixie_scm_unspecified()) }
    }
    pub fn cons<'g>(&'g self, a: Value<'g>, b: Value<'g>) -> Value<'g> {
        // SAFETY: in Guile mode; `a` and `b` are live values, held as arguments (so visible
        // to the collector) until the new pair holds them.
        unsafe { Value::from_raw(self, sys::scm_cons(a.raw(), b.raw())) }
    }
    /// A list of `items`. They are read from the slice while the list is consed up, so they
    /// need to be where the collector sees them only as much as any `Value` does: on the
    /// stack (e.g. an array literal), not in a `Vec`. To build a list of computed values,
    /// use [`Guile::list_with`], which never holds them on the Rust heap.
    pub fn list<'g>(&'g self, items: &[Value<'g>]) -> Value<'g> {
        let mut l = Value::eol();
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
        let mut l = Value::eol();
        for item in items.iter().rev() {
            let v = make(item);
            l = self.cons(v, l);
        }
        l
    }
}

/// A Scheme value kept alive by the GC while this handle lives (for storage on the Rust heap).
pub struct Protected {
    /// A raw pointer, so `Protected` is neither `Send` nor `Sync`: protecting and unprotecting
    /// happen in Guile mode, on the Guile thread.
    raw: sys::SCM,
}

impl Protected {
    pub fn new(v: Value<'_>) -> Self {
        // SAFETY: in Guile mode (a `Value` exists); `v` is live and held as an argument while
        // the protection (which may allocate) is set up.
        unsafe { sys::scm_gc_protect_object(v.raw()) };
        Protected { raw: v.raw() }
    }

    pub fn get<'g>(&self, g: &'g Guile) -> Value<'g> {
        // SAFETY: the value is protected, so live, while `self` is; once the caller holds the
        // returned `Value` on the stack, that keeps it live too (even past `self`).
        unsafe { Value::from_raw(g, self.raw) }
    }
}

impl Drop for Protected {
    fn drop(&mut self) {
        // SAFETY: a `Protected` is made only in Guile mode and is neither `Send` nor `Sync`,
        // so it is dropped on the Guile thread, which never leaves Guile mode. Protections
        // nest (counted), so this undoes exactly the one `new` made.
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
