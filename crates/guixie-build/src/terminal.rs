//! What a builder prints reaches the user's terminal (`--verbose`) only without terminal
//! escape sequences and control characters: a build cannot move the cursor, retitle the
//! window, write to the clipboard (OSC 52) or hide what it printed.

/// Drops escape sequences (CSI, OSC, DCS and two-byte ones) and control characters other than
/// newline and tab, across chunk boundaries.
#[derive(Default)]
pub struct EscapeFilter {
    state: State,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Text,
    /// After ESC.
    Escape,
    /// Inside `ESC [` … final byte.
    Csi,
    /// Inside `ESC ]`, `ESC P`, `ESC _`, `ESC ^`, `ESC X` … BEL or `ESC \`.
    String,
    /// ESC seen inside a string.
    StringEscape,
}

impl EscapeFilter {
    pub fn filter(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        for &b in bytes {
            self.state = match (self.state, b) {
                (State::Text, 0x1b) => State::Escape,
                (State::Text, b'\n' | b'\t') => {
                    out.push(b);
                    State::Text
                }
                (State::Text, 0..=0x1f | 0x7f) => State::Text,
                (State::Text, _) => {
                    out.push(b);
                    State::Text
                }
                (State::Escape, b'[') => State::Csi,
                (State::Escape, b']' | b'P' | b'_' | b'^' | b'X') => State::String,
                (State::Escape, _) => State::Text,
                (State::Csi, 0x40..=0x7e) => State::Text,
                (State::Csi, _) => State::Csi,
                (State::String, 0x07) => State::Text,
                (State::String, 0x1b) => State::StringEscape,
                (State::String, _) => State::String,
                (State::StringEscape, b'\\') => State::Text,
                (State::StringEscape, _) => State::String,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(chunks: &[&[u8]]) -> String {
        let mut f = EscapeFilter::default();
        let mut out = Vec::new();
        for c in chunks {
            f.filter(c, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escape_sequences_and_controls_are_dropped_even_when_split() {
        assert_eq!(clean(&[b"a\x1b[31mred\x1b[0m b\n"]), "ared b\n");
        assert_eq!(clean(&[b"x\x1b]52;c;ZXZpbA==\x07y"]), "xy");
        assert_eq!(clean(&[b"x\x1b]0;title\x1b\\y"]), "xy");
        assert_eq!(clean(&[b"p\x1b", b"[2", b"J", b"q\r\x08\x07\tz"]), "pq\tz");
        assert_eq!(clean(&["grüße\n".as_bytes()]), "grüße\n");
    }
}
