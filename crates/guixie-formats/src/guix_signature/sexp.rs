//! The S-expressions libgcrypt reads and prints (SPKI style), as Guix carries keys and
//! signatures: read in the canonical (`4:data`), advanced (`data`, `#hex#`, `"string"`) and
//! base64 (`|…|`) forms; printed in the advanced form exactly as `gcry_sexp_sprint` prints it,
//! so what guixie sends reads like what Guix sends.

use data_encoding::{BASE64, HEXUPPER_PERMISSIVE};

/// An S-expression: a byte string or a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sexp {
    Atom(Vec<u8>),
    List(Vec<Sexp>),
}

/// Deeper nesting is refused (signatures are four levels deep).
const MAX_DEPTH: usize = 16;
/// Larger texts are refused (a Guix signature is about 700 bytes).
pub const MAX_SEXP_BYTES: usize = 16 << 10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("S-expression, byte {offset}: {message}")]
pub struct SexpError {
    pub offset: usize,
    pub message: String,
}

impl Sexp {
    pub fn atom(bytes: impl Into<Vec<u8>>) -> Sexp {
        Sexp::Atom(bytes.into())
    }

    /// `(name values…)` with atoms for values.
    pub fn list_of(items: Vec<Sexp>) -> Sexp {
        Sexp::List(items)
    }

    pub fn parse(text: &[u8]) -> Result<Sexp, SexpError> {
        if text.len() > MAX_SEXP_BYTES {
            return Err(SexpError {
                offset: MAX_SEXP_BYTES,
                message: format!(
                    "{} bytes, more than the {MAX_SEXP_BYTES} allowed",
                    text.len()
                ),
            });
        }
        let mut reader = Reader { text, at: 0 };
        reader.skip_space();
        let sexp = reader.value(0)?;
        reader.skip_space();
        if reader.at != text.len() {
            return Err(reader.error("text after the S-expression"));
        }
        match sexp {
            Sexp::List(_) => Ok(sexp),
            Sexp::Atom(_) => Err(SexpError {
                offset: 0,
                message: "not a list".into(),
            }),
        }
    }

    /// The first element, when it is an atom: the list's name.
    pub fn name(&self) -> Option<&[u8]> {
        match self {
            Sexp::List(items) => match items.first() {
                Some(Sexp::Atom(a)) => Some(a),
                _ => None,
            },
            Sexp::Atom(_) => None,
        }
    }

    /// The first list named `name` here or below (depth first), as libgcrypt's
    /// `gcry_sexp_find_token` finds it.
    pub fn find(&self, name: &str) -> Option<&Sexp> {
        if self.name() == Some(name.as_bytes()) {
            return Some(self);
        }
        match self {
            Sexp::List(items) => items.iter().skip(1).find_map(|i| i.find(name)),
            Sexp::Atom(_) => None,
        }
    }

    /// The `n`th element's bytes, when it is an atom.
    pub fn nth_atom(&self, n: usize) -> Option<&[u8]> {
        match self {
            Sexp::List(items) => match items.get(n) {
                Some(Sexp::Atom(a)) => Some(a),
                _ => None,
            },
            Sexp::Atom(_) => None,
        }
    }

    /// The advanced form, byte for byte as libgcrypt prints it (`GCRYSEXP_FMT_ADVANCED`).
    pub fn to_advanced(&self) -> String {
        let mut out = String::new();
        let mut indent = 0;
        self.print(&mut out, &mut indent);
        out.push('\n');
        out
    }

    fn print(&self, out: &mut String, indent: &mut usize) {
        match self {
            Sexp::Atom(a) => out.push_str(&advanced_atom(a)),
            Sexp::List(items) => {
                if *indent > 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(*indent));
                }
                out.push('(');
                *indent += 1;
                for (i, item) in items.iter().enumerate() {
                    item.print(out, indent);
                    let next = items.get(i + 1);
                    // libgcrypt: a space after an atom unless the list closes; after a list, a
                    // new line unless another list opens (which starts its own line).
                    match (item, next) {
                        (Sexp::Atom(_), Some(_)) => out.push(' '),
                        (Sexp::List(_), Some(Sexp::Atom(_)) | None) => {
                            out.push('\n');
                            out.push_str(&" ".repeat(*indent));
                        }
                        _ => {}
                    }
                }
                *indent -= 1;
                out.push(')');
            }
        }
    }
}

/// How libgcrypt prints one atom: a bare token, a quoted string, or `#HEX#`.
fn advanced_atom(a: &[u8]) -> String {
    const TOKEN_SPECIALS: &[u8] = b"-./_:*+=";
    if a.is_empty() {
        return "\"\"".into();
    }
    // libgcrypt prints bytes above 0xa0 raw inside a string; those are hex here, so the text
    // stays UTF-8 (no signature or key holds such a string).
    let binary = a[0] == 0
        || a.iter()
            .any(|&c| c >= 0x7f || (c < 0x20 && !b"\x08\t\x0b\n\x0c\r".contains(&c)));
    if binary {
        return format!("#{}#", data_encoding::HEXUPPER.encode(a));
    }
    let token = a
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || TOKEN_SPECIALS.contains(c))
        && !a[0].is_ascii_digit();
    if token {
        return String::from_utf8_lossy(a).into_owned();
    }
    let mut s = String::from("\"");
    for &c in a {
        match c {
            b'\x08' => s.push_str("\\b"),
            b'\t' => s.push_str("\\t"),
            b'\x0b' => s.push_str("\\v"),
            b'\n' => s.push_str("\\n"),
            b'\x0c' => s.push_str("\\f"),
            b'\r' => s.push_str("\\r"),
            b'"' => s.push_str("\\\""),
            b'\'' => s.push_str("\\'"),
            b'\\' => s.push_str("\\\\"),
            c => s.push(c as char),
        }
    }
    s.push('"');
    s
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn error(&self, message: impl Into<String>) -> SexpError {
        SexpError {
            offset: self.at,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Sexp, SexpError> {
        match self.peek() {
            None => Err(self.error("unexpected end")),
            Some(b'(') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error(format!("nested more than {MAX_DEPTH} deep")));
                }
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    match self.peek() {
                        None => return Err(self.error("unclosed list")),
                        Some(b')') => {
                            self.at += 1;
                            return Ok(Sexp::List(items));
                        }
                        Some(_) => items.push(self.value(depth + 1)?),
                    }
                }
            }
            Some(b')') => Err(self.error("unexpected `)`")),
            Some(b'#') => self.delimited(b'#', |s| HEXUPPER_PERMISSIVE.decode(s).ok(), "hex"),
            Some(b'|') => self.delimited(b'|', |s| BASE64.decode(s).ok(), "base64"),
            Some(b'"') => self.quoted(),
            Some(c) if c.is_ascii_digit() => self.canonical_or_token(),
            Some(_) => self.token(),
        }
    }

    fn delimited(
        &mut self,
        end: u8,
        decode: impl Fn(&[u8]) -> Option<Vec<u8>>,
        what: &str,
    ) -> Result<Sexp, SexpError> {
        let start = self.at + 1;
        let len = self.text[start..]
            .iter()
            .position(|&c| c == end)
            .ok_or_else(|| self.error(format!("unclosed {what} string")))?;
        let body: Vec<u8> = self.text[start..start + len]
            .iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let bytes = decode(&body).ok_or_else(|| self.error(format!("bad {what} string")))?;
        self.at = start + len + 1;
        Ok(Sexp::Atom(bytes))
    }

    fn quoted(&mut self) -> Result<Sexp, SexpError> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek().ok_or_else(|| self.error("unclosed string"))?;
            self.at += 1;
            match c {
                b'"' => return Ok(Sexp::Atom(out)),
                b'\\' => {
                    let e = self.peek().ok_or_else(|| self.error("unclosed string"))?;
                    self.at += 1;
                    out.push(match e {
                        b'b' => 8,
                        b't' => b'\t',
                        b'v' => 11,
                        b'n' => b'\n',
                        b'f' => 12,
                        b'r' => b'\r',
                        b'"' | b'\'' | b'\\' => e,
                        _ => return Err(self.error("unsupported escape in a string")),
                    });
                }
                c => out.push(c),
            }
        }
    }

    /// `N:bytes` (canonical), else a token that starts with a digit (libgcrypt allows none,
    /// so this is an error).
    fn canonical_or_token(&mut self) -> Result<Sexp, SexpError> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        if self.peek() != Some(b':') {
            return Err(self.error("a number not followed by `:`"));
        }
        let len: usize = std::str::from_utf8(&self.text[start..self.at])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.error("bad length"))?;
        self.at += 1;
        let end = self
            .at
            .checked_add(len)
            .filter(|&e| e <= self.text.len())
            .ok_or_else(|| self.error(format!("a {len}-byte string past the end")))?;
        let bytes = self.text[self.at..end].to_vec();
        self.at = end;
        Ok(Sexp::Atom(bytes))
    }

    fn token(&mut self) -> Result<Sexp, SexpError> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"-./_:*+=".contains(&c))
        {
            self.at += 1;
        }
        if self.at == start {
            return Err(self.error(format!("unexpected byte 0x{:02x}", self.text[start])));
        }
        Ok(Sexp::Atom(self.text[start..self.at].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_libgcrypt_does() {
        let key = Sexp::List(vec![
            Sexp::atom("public-key"),
            Sexp::List(vec![
                Sexp::atom("ecc"),
                Sexp::List(vec![Sexp::atom("curve"), Sexp::atom("Ed25519")]),
                Sexp::List(vec![Sexp::atom("q"), Sexp::atom(vec![0xEB, 0xF1, 0x84])]),
            ]),
        ]);
        // Copied from guile-gcrypt's `canonical-sexp->string` of a key libgcrypt generated.
        assert_eq!(
            key.to_advanced(),
            "(public-key \n (ecc \n  (curve Ed25519)\n  (q #EBF184#)\n  )\n )\n"
        );
        assert_eq!(Sexp::parse(key.to_advanced().as_bytes()).unwrap(), key);
    }

    #[test]
    fn reads_every_form() {
        let canonical = b"(4:data(4:hash6:sha2563:\x00\x01\x02))";
        let advanced = b"(data (hash sha256 #000102#))";
        let base64 = b"(data (hash \"sha256\" |AAEC|))";
        let a = Sexp::parse(canonical).unwrap();
        assert_eq!(a, Sexp::parse(advanced).unwrap());
        assert_eq!(a, Sexp::parse(base64).unwrap());
        assert_eq!(a.find("hash").unwrap().nth_atom(2), Some(&[0u8, 1, 2][..]));
    }

    #[test]
    fn bad_input_is_an_error_with_its_offset() {
        for (text, offset) in [
            (&b"(data"[..], 5),
            (b"(data))", 6),
            (b"(9:ab)", 3),
            (b"(#zz#)", 1),
            (b"data", 0),
            (b"(\x01)", 1),
        ] {
            let e = Sexp::parse(text).unwrap_err();
            assert_eq!(e.offset, offset, "{:?}: {e}", String::from_utf8_lossy(text));
        }
        let deep = format!("{}{}", "(a ".repeat(40), ")".repeat(40));
        assert!(Sexp::parse(deep.as_bytes()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = Sexp::parse(&bytes);
        }
    }
}
