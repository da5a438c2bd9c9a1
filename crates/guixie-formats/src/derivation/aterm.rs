//! The ATerm text form of a derivation, `Derive([outputs],[inputDrvs],[inputSrcs],system,
//! builder,[args],[env])`. Strings are bytes; only `\" \\ \n \r \t` are escapes. The parser
//! accepts exactly the canonical form the writer produces (sorted, unique keys), so a parsed
//! file re-serialises to the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use super::{Derivation, FixedOutput, Output};
use crate::hash::{Hash, HashAlgo};
use crate::store_path::{StoreDir, StorePath};

/// The `hashAlgo` and `hash` fields of an output: both empty, or a fixed output's declared
/// hash written as the writer would write it (so the file round-trips byte for byte).
fn fixed_output(hash_algo: &str, hash: &str) -> Result<Option<FixedOutput>, String> {
    match (hash_algo.is_empty(), hash.is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => {
            return Err(format!(
                "hash algorithm {hash_algo:?} without a hash (floating content-addressed outputs are not supported)"
            ))
        }
        (true, false) => return Err("a hash without a hash algorithm".into()),
        (false, false) => {}
    }
    let (recursive, algo) = match hash_algo.strip_prefix("r:") {
        Some(a) => (true, a),
        None => (false, hash_algo),
    };
    let algo = HashAlgo::parse(algo).map_err(|e| e.to_string())?;
    let hash_parsed = Hash::parse_digest(algo, hash).map_err(|e| e.to_string())?;
    if hash_parsed.to_hex() != hash {
        return Err(format!("hash {hash:?} is not lowercase base16"));
    }
    Ok(Some(FixedOutput {
        recursive,
        hash: hash_parsed,
    }))
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid derivation at byte {offset}: {message}")]
pub struct AtermError {
    pub offset: usize,
    pub message: String,
}

/// Writes `drv` in canonical ATerm form. `modulo_inputs`, when given, replaces the input
/// derivations' paths by their modulo hashes (`hashDerivationModulo`); `mask_outputs` blanks
/// the output paths and their environment variables.
pub fn write(
    drv: &Derivation,
    store_dir: &StoreDir,
    mask_outputs: bool,
    modulo_inputs: Option<&BTreeMap<String, BTreeSet<String>>>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"Derive([");
    for (i, (name, o)) in drv.outputs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'(');
        string(&mut out, name.as_bytes());
        out.push(b',');
        match &o.path {
            Some(p) if !mask_outputs => store_path(&mut out, store_dir, p),
            _ => string(&mut out, b""),
        }
        out.push(b',');
        match &o.fixed {
            Some(f) => {
                string(&mut out, f.algo_field().as_bytes());
                out.push(b',');
                string(&mut out, f.hash.to_hex().as_bytes());
            }
            None => out.extend_from_slice(b"\"\",\"\""),
        }
        out.push(b')');
    }
    out.extend_from_slice(b"],[");
    let open_input = |out: &mut Vec<u8>, i: usize| {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'(');
    };
    match modulo_inputs {
        Some(inputs) => {
            for (i, (key, outputs)) in inputs.iter().enumerate() {
                open_input(&mut out, i);
                string(&mut out, key.as_bytes());
                out.push(b',');
                list(&mut out, outputs.iter().map(|s| s.as_bytes()));
                out.push(b')');
            }
        }
        None => {
            for (i, (path, outputs)) in drv.input_drvs.iter().enumerate() {
                open_input(&mut out, i);
                store_path(&mut out, store_dir, path);
                out.push(b',');
                list(&mut out, outputs.iter().map(|s| s.as_bytes()));
                out.push(b')');
            }
        }
    }
    out.extend_from_slice(b"],[");
    for (i, p) in drv.input_srcs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        store_path(&mut out, store_dir, p);
    }
    out.extend_from_slice(b"],");
    string(&mut out, &drv.system);
    out.push(b',');
    string(&mut out, &drv.builder);
    out.push(b',');
    list(&mut out, drv.args.iter().map(|s| s.as_slice()));
    out.extend_from_slice(b",[");
    for (i, (k, v)) in drv.env.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'(');
        string(&mut out, k);
        out.push(b',');
        let masked =
            mask_outputs && std::str::from_utf8(k).is_ok_and(|k| drv.outputs.contains_key(k));
        string(&mut out, if masked { b"" } else { v });
        out.push(b')');
    }
    out.extend_from_slice(b"])");
    out
}

/// A store path as an ATerm string; store paths hold nothing that needs escaping.
fn store_path(out: &mut Vec<u8>, store_dir: &StoreDir, p: &StorePath) {
    out.push(b'"');
    out.extend_from_slice(store_dir.as_str().as_bytes());
    out.push(b'/');
    out.extend_from_slice(p.hash_part().as_bytes());
    out.push(b'-');
    out.extend_from_slice(p.name().as_bytes());
    out.push(b'"');
}

fn list<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a [u8]>) {
    out.push(b'[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, s);
    }
    out.push(b']');
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    // Runs without anything to escape are copied whole: most strings have none.
    let mut rest = s;
    while let Some(i) = rest
        .iter()
        .position(|&c| matches!(c, b'"' | b'\\' | b'\n' | b'\r' | b'\t'))
    {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(match rest[i] {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => b"\\t",
        });
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

pub fn parse(s: &[u8], store_dir: &StoreDir) -> Result<Derivation, AtermError> {
    let mut p = Parser { s, pos: 0 };
    p.expect(b"Derive(")?;

    let mut outputs = BTreeMap::new();
    let outputs_at = p.pos;
    p.list(|p| {
        let at = p.pos;
        p.expect(b"(")?;
        let name = p.utf8_string("output name")?;
        p.expect(b",")?;
        let path = p.store_path_or_empty(store_dir, "output path")?;
        p.expect(b",")?;
        let algo_at = p.pos;
        let hash_algo = p.utf8_string("output hash algorithm")?;
        p.expect(b",")?;
        let hash = p.utf8_string("output hash")?;
        p.expect(b")")?;
        let fixed = fixed_output(&hash_algo, &hash).map_err(|message| AtermError {
            offset: algo_at,
            message: format!("output {name:?}: {message}"),
        })?;
        insert_sorted(&mut outputs, name, Output { path, fixed }, at, "output")
    })?;
    if let Err(e) = super::check_fixed_output_shape(&outputs) {
        return Err(AtermError {
            offset: outputs_at,
            message: e.to_string(),
        });
    }
    p.expect(b",")?;

    let mut input_drvs = BTreeMap::new();
    p.list(|p| {
        let at = p.pos;
        p.expect(b"(")?;
        let path = p.store_path(store_dir, "input derivation path")?;
        p.expect(b",")?;
        let mut outs = BTreeSet::new();
        p.list(|p| {
            let at = p.pos;
            let o = p.utf8_string("input output name")?;
            push_sorted(&mut outs, o, at, "input derivation output")
        })?;
        p.expect(b")")?;
        insert_sorted(&mut input_drvs, path, outs, at, "input derivation")
    })?;
    p.expect(b",")?;

    let mut input_srcs = BTreeSet::new();
    p.list(|p| {
        let at = p.pos;
        let s = p.store_path(store_dir, "input source")?;
        push_sorted(&mut input_srcs, s, at, "input source")
    })?;
    p.expect(b",")?;
    let system = p.string()?;
    p.expect(b",")?;
    let builder = p.string()?;
    p.expect(b",")?;
    let mut args = Vec::new();
    p.list(|p| {
        args.push(p.string()?);
        Ok(())
    })?;
    p.expect(b",")?;
    let mut env = BTreeMap::new();
    p.list(|p| {
        let at = p.pos;
        p.expect(b"(")?;
        let k = p.string()?;
        p.expect(b",")?;
        let v = p.string()?;
        p.expect(b")")?;
        insert_sorted(&mut env, k, v, at, "environment variable")
    })?;
    p.expect(b")")?;
    if p.pos != s.len() {
        return Err(p.err("trailing bytes after the derivation"));
    }
    Ok(Derivation {
        outputs,
        input_drvs,
        input_srcs,
        system,
        builder,
        args,
        env,
    })
}

fn insert_sorted<K: Ord + std::fmt::Debug, V>(
    map: &mut BTreeMap<K, V>,
    k: K,
    v: V,
    at: usize,
    what: &str,
) -> Result<(), AtermError> {
    if let Some((last, _)) = map.last_key_value() {
        if *last == k {
            return Err(AtermError {
                offset: at,
                message: format!("duplicate {what} {k:?}"),
            });
        }
        if *last > k {
            return Err(AtermError {
                offset: at,
                message: format!("{what} {k:?} is out of order (keys must be sorted)"),
            });
        }
    }
    map.insert(k, v);
    Ok(())
}

fn push_sorted<T: Ord + std::fmt::Debug>(
    set: &mut BTreeSet<T>,
    s: T,
    at: usize,
    what: &str,
) -> Result<(), AtermError> {
    if let Some(last) = set.last() {
        if *last >= s {
            let kind = if *last == s {
                "duplicate"
            } else {
                "out-of-order"
            };
            return Err(AtermError {
                offset: at,
                message: format!("{kind} {what} {s:?}"),
            });
        }
    }
    set.insert(s);
    Ok(())
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> AtermError {
        AtermError {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn expect(&mut self, lit: &[u8]) -> Result<(), AtermError> {
        if self.s[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            let found = self
                .s
                .get(self.pos..(self.pos + lit.len()).min(self.s.len()))
                .unwrap_or_default();
            Err(self.err(format!(
                "expected {:?}, found {:?}",
                String::from_utf8_lossy(lit),
                if found.is_empty() {
                    "end of input".into()
                } else {
                    String::from_utf8_lossy(found)
                }
            )))
        }
    }

    /// `[item,item,...]`
    fn list(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), AtermError>,
    ) -> Result<(), AtermError> {
        self.expect(b"[")?;
        if self.s.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn string(&mut self) -> Result<Vec<u8>, AtermError> {
        self.expect(b"\"")?;
        let mut out = Vec::new();
        loop {
            let rest = &self.s[self.pos..];
            let Some(i) = rest
                .iter()
                .position(|&c| matches!(c, b'"' | b'\\' | b'\n' | b'\r' | b'\t'))
            else {
                return Err(self.err("unterminated string"));
            };
            out.extend_from_slice(&rest[..i]);
            self.pos += i;
            match self.s[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {}
                raw => {
                    return Err(self.err(format!(
                        "raw control character {:?} in string (must be escaped)",
                        raw as char
                    )))
                }
            }
            let c = match self.s.get(self.pos + 1) {
                Some(b'"') => b'"',
                Some(b'\\') => b'\\',
                Some(b'n') => b'\n',
                Some(b'r') => b'\r',
                Some(b't') => b'\t',
                Some(other) => {
                    return Err(self.err(format!("bad escape \"\\{}\"", other.escape_ascii())))
                }
                None => return Err(self.err("unterminated string")),
            };
            out.push(c);
            self.pos += 2;
        }
    }

    fn store_path(&mut self, store_dir: &StoreDir, what: &str) -> Result<StorePath, AtermError> {
        let at = self.pos;
        let s = self.utf8_string(what)?;
        store_dir.parse_path(&s).map_err(|e| AtermError {
            offset: at,
            message: format!("{what}: {e}"),
        })
    }

    fn store_path_or_empty(
        &mut self,
        store_dir: &StoreDir,
        what: &str,
    ) -> Result<Option<StorePath>, AtermError> {
        if self.s[self.pos..].starts_with(b"\"\"") {
            self.pos += 2;
            return Ok(None);
        }
        self.store_path(store_dir, what).map(Some)
    }

    fn utf8_string(&mut self, what: &str) -> Result<String, AtermError> {
        let at = self.pos;
        String::from_utf8(self.string()?).map_err(|_| AtermError {
            offset: at,
            message: format!("{what} is not UTF-8"),
        })
    }
}
