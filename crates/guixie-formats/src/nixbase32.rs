//! Nix's base-32 encoding ("Nix32"): a 32-letter alphabet without `e o t u`, written
//! least-significant digit last, so the encoded string is the number read right to left.

use thiserror::Error;

pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Reverse table: byte -> digit value, 0xff where the byte is not in the alphabet.
const DIGIT: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 32 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Nix32Error {
    #[error("invalid Nix32 character {char:?} at offset {offset}")]
    BadChar { char: char, offset: usize },
    #[error("Nix32 string has {actual} characters, expected {expected}")]
    BadLength { expected: usize, actual: usize },
    #[error("Nix32 string encodes more bits than fit in {bytes} bytes")]
    NonZeroPadding { bytes: usize },
}

/// Length of the Nix32 encoding of `len` bytes.
pub const fn encoded_len(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (len * 8 - 1) / 5 + 1
    }
}

/// Number of bytes a Nix32 string of `len` characters decodes to.
pub const fn decoded_len(len: usize) -> usize {
    len * 5 / 8
}

pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = Vec::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let low = bytes[i] as u16 >> j;
        let high = if i + 1 < bytes.len() {
            (bytes[i + 1] as u16) << (8 - j)
        } else {
            0
        };
        out.push(ALPHABET[((low | high) & 0x1f) as usize]);
    }
    String::from_utf8(out).expect("alphabet is ASCII")
}

/// Strict decoding into exactly `expected_bytes` bytes.
pub fn decode_exact(input: &[u8], expected_bytes: usize) -> Result<Vec<u8>, Nix32Error> {
    let expected_chars = encoded_len(expected_bytes);
    if input.len() != expected_chars {
        return Err(Nix32Error::BadLength {
            expected: expected_chars,
            actual: input.len(),
        });
    }
    let mut out = vec![0u8; expected_bytes];
    for (n, &c) in input.iter().rev().enumerate() {
        let digit = DIGIT[c as usize];
        if digit == 0xff {
            return Err(Nix32Error::BadChar {
                char: c as char,
                offset: input.len() - 1 - n,
            });
        }
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        out[i] |= digit << j;
        let carry = (digit as u16) >> (8 - j);
        if i + 1 < expected_bytes {
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            return Err(Nix32Error::NonZeroPadding {
                bytes: expected_bytes,
            });
        }
    }
    Ok(out)
}

/// Whether `c` belongs to the Nix32 alphabet.
pub fn is_digit(c: u8) -> bool {
    DIGIT[c as usize] != 0xff
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn published_examples() {
        // From Nix's tests (libutil hash tests) and snix's nixbase32 tests.
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0x1f]), "0z");
        assert_eq!(
            encode(
                &data_encoding::HEXLOWER
                    .decode(b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
                    .unwrap()
            ),
            "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"
        );
        assert_eq!(
            decode_exact(b"00bgd045z0d4icpbc2yyz4gx48ak44la", 20).unwrap(),
            data_encoding::HEXLOWER
                .decode(b"8a12321522fd91efbd60ebb2481af88580f61600")
                .unwrap()
        );
    }

    #[test]
    fn strictness() {
        assert!(matches!(
            decode_exact(b"0e", 1),
            Err(Nix32Error::BadChar { offset: 1, .. })
        ));
        assert!(matches!(
            decode_exact(b"0", 1),
            Err(Nix32Error::BadLength { .. })
        ));
        // "zz" would need 10 bits; only 8 fit.
        assert_eq!(
            decode_exact(b"zz", 1),
            Err(Nix32Error::NonZeroPadding { bytes: 1 })
        );
        assert_eq!(decode_exact(b"7z", 1).unwrap(), vec![0xff]);
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let s = encode(&bytes);
            prop_assert_eq!(s.len(), encoded_len(bytes.len()));
            prop_assert_eq!(decode_exact(s.as_bytes(), bytes.len()).unwrap(), bytes);
        }
    }
}
