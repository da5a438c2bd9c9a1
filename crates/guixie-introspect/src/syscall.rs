//! One line of `strace -f` output: `PID NAME(ARG, ...) = RET [ERRNO (text)]`, the halves of
//! a call another process interrupted (`<unfinished ...>`, `<... NAME resumed>`), and exit
//! notices (`+++ exited with N +++`). Strings arrive quoted and escaped by strace, so a
//! traced program cannot forge structure with what it passes; the parser still takes no
//! length on trust and never panics.

/// A line of the trace, by its process (thread) id.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Call(Call),
    /// The first half of a call; its text so far.
    Unfinished(String),
    /// The second half of a call named `name`; its text from there on.
    Resumed {
        name: String,
        rest: String,
    },
    Exited(i32),
    Killed(String),
    /// The thread with this id called `execve`, which now finishes in this (main) thread.
    Superseded(u32),
    Other,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    /// Each top-level argument's text, as strace printed it.
    pub args: Vec<String>,
    pub result: Outcome,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(i64),
    Err(String),
    /// `= ?` (the process went away during the call) or something not understood.
    Unknown,
}

/// Splits `PID REST`; `None` for a line without a process id.
pub fn split_pid(line: &str) -> Option<(u32, &str)> {
    let (pid, rest) = line.split_once(' ')?;
    Some((pid.parse().ok()?, rest.trim_start()))
}

pub fn parse_line(rest: &str) -> Line {
    if let Some(status) = rest
        .strip_prefix("+++ exited with ")
        .and_then(|r| r.strip_suffix(" +++"))
    {
        return status.parse().map_or(Line::Other, Line::Exited);
    }
    if let Some(signal) = rest
        .strip_prefix("+++ killed by ")
        .and_then(|r| r.strip_suffix(" +++"))
    {
        let signal = signal.split_whitespace().next().unwrap_or_default();
        return Line::Killed(signal.to_owned());
    }
    if let Some(tid) = rest
        .strip_prefix("+++ superseded by execve in pid ")
        .and_then(|r| r.strip_suffix(" +++"))
    {
        return tid.trim().parse().map_or(Line::Other, Line::Superseded);
    }
    if let Some(r) = rest.strip_prefix("<... ") {
        return match r.split_once(" resumed>") {
            Some((name, rest)) => Line::Resumed {
                name: name.to_owned(),
                rest: rest.to_owned(),
            },
            None => Line::Other,
        };
    }
    if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
        return Line::Unfinished(head.to_owned());
    }
    parse_call(rest).map_or(Line::Other, Line::Call)
}

/// `NAME(ARGS) = RET ...`.
pub fn parse_call(text: &str) -> Option<Call> {
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let (args, after) = split_args(&text[open + 1..])?;
    let result = after
        .trim_start()
        .strip_prefix('=')
        .map_or(Outcome::Unknown, |r| {
            let mut words = r.split_whitespace();
            match (words.next(), words.next()) {
                // `--pidns-translation`: a pid the tracee sees in its namespace, and strace's.
                (Some(_), Some("/*")) if r.contains(" in strace's PID NS */") => r
                    .split_whitespace()
                    .nth(2)
                    .and_then(parse_number)
                    .map_or(Outcome::Unknown, Outcome::Ok),
                (Some(n), errno) => match parse_number(n) {
                    Some(v) if v < 0 => match errno {
                        Some(e) if e.starts_with('E') => Outcome::Err(e.to_owned()),
                        _ => Outcome::Ok(v),
                    },
                    Some(v) => Outcome::Ok(v),
                    None => Outcome::Unknown,
                },
                _ => Outcome::Unknown,
            }
        });
    Some(Call {
        name: name.to_owned(),
        args,
        result,
    })
}

fn parse_number(n: &str) -> Option<i64> {
    match n.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok().map(|v| v as i64),
        None => n.parse().ok(),
    }
}

/// The top-level arguments up to the `)` that closes the call, and the text after it.
fn split_args(text: &str) -> Option<(Vec<String>, &str)> {
    let bytes = text.as_bytes();
    let mut args = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_string(bytes, i)?,
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..].find("*/").map(|e| i + 2 + e + 1)?;
            }
            b'[' | b'{' | b'(' => depth += 1,
            b']' | b'}' => depth = depth.checked_sub(1)?,
            b')' if depth == 0 => {
                let last = text[start..i].trim();
                if !last.is_empty() || !args.is_empty() {
                    args.push(last.to_owned());
                }
                return Some((args, &text[i + 1..]));
            }
            b')' => depth -= 1,
            b',' if depth == 0 => {
                args.push(text[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the closing quote of the string opened at `open`.
fn skip_string(bytes: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// A quoted string argument, unescaped, and whether strace cut it short (`"..."...`).
pub fn string_arg(arg: &str) -> Option<(String, bool)> {
    let bytes = arg.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let close = skip_string(bytes, 0)?;
    let truncated = arg[close + 1..].starts_with("...");
    Some((unescape(&bytes[1..close]), truncated))
}

fn unescape(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        i += 1;
        let c = bytes[i];
        i += 1;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'f' => out.push(0x0c),
            b'x' => {
                let hex: Vec<u8> = bytes[i..].iter().take(2).copied().collect();
                match std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) if hex.len() == 2 => {
                        out.push(v);
                        i += 2;
                    }
                    _ => out.push(b'x'),
                }
            }
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                let mut n = 1;
                while n < 3 && i < bytes.len() && (b'0'..=b'7').contains(&bytes[i]) {
                    v = v * 8 + u32::from(bytes[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The strings of an array argument (`["a", "b"]`, possibly ending in `...`).
pub fn string_array(arg: &str) -> Option<Vec<String>> {
    let inner = arg.strip_prefix('[')?;
    let close = closing_bracket(inner)?;
    let (items, _) = split_args(&format!("{})", &inner[..close]))?;
    Some(
        items
            .iter()
            .filter_map(|i| string_arg(i).map(|(s, _)| s))
            .collect(),
    )
}

fn closing_bracket(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_string(bytes, i)?,
            b'[' => depth += 1,
            b']' if depth == 0 => return Some(i),
            b']' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_split_on_top_level_commas_only() {
        let c = parse_call(
            r#"execve("/usr/bin/sh", ["sh", "-c", "a, b) = 0"], 0x7ff /* 35 vars */) = 0"#,
        )
        .unwrap();
        assert_eq!(c.name, "execve");
        assert_eq!(c.args.len(), 3);
        assert_eq!(c.result, Outcome::Ok(0));
        assert_eq!(string_array(&c.args[1]).unwrap(), ["sh", "-c", "a, b) = 0"]);
        let c = parse_call(
            r#"openat(AT_FDCWD, "x", O_RDONLY) = -1 ENOENT (No such file or directory)"#,
        )
        .unwrap();
        assert_eq!(c.result, Outcome::Err("ENOENT".into()));
        assert_eq!(
            parse_call("exit_group(0) = ?").unwrap().result,
            Outcome::Unknown
        );
        assert_eq!(parse_call("vfork() = 14431").unwrap().args.len(), 0);
        assert_eq!(
            parse_call("vfork() = 2 /* 20104 in strace's PID NS */")
                .unwrap()
                .result,
            Outcome::Ok(20104)
        );
    }

    #[test]
    fn strings_unescape_as_strace_escapes_them() {
        assert_eq!(
            string_arg(r#""a\"b\\c\n\x41\101\0""#).unwrap(),
            ("a\"b\\c\nAA\0".into(), false)
        );
        assert_eq!(string_arg(r#""abc"..."#).unwrap(), ("abc".into(), true));
        assert!(string_arg("AT_FDCWD").is_none());
    }

    #[test]
    fn line_kinds() {
        assert_eq!(parse_line("+++ exited with 2 +++"), Line::Exited(2));
        assert_eq!(
            parse_line("+++ killed by SIGSEGV (core dumped) +++"),
            Line::Killed("SIGSEGV".into())
        );
        assert_eq!(
            parse_line("<... vfork resumed>) = 14431"),
            Line::Resumed {
                name: "vfork".into(),
                rest: ") = 14431".into()
            }
        );
        assert_eq!(
            parse_line("vfork( <unfinished ...>"),
            Line::Unfinished("vfork(".into())
        );
        assert_eq!(
            split_pid("14430 chdir(\"/tmp\") = 0"),
            Some((14430, "chdir(\"/tmp\") = 0"))
        );
        assert_eq!(split_pid("x y"), None);
    }
}
