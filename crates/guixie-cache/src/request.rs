//! What a request asks for, from its path alone. Anything that is not exactly one of the
//! cache's resources is refused before the store is touched: hash parts must be 32 Nix32
//! characters, NAR hashes 52, and nothing else (`..`, `%2e`, NUL, query tricks, overlong paths)
//! can name a file.

use axum::http::StatusCode;
use guixie_formats::{Hash, HashAlgo, StorePath};

use crate::Compression;

/// Longer request paths are refused outright.
pub const MAX_PATH: usize = 256;

#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    CacheInfo,
    NarInfo {
        hash_part: String,
    },
    /// The NAR, as it is or compressed (`.nar.zst`, `.nar.gz`, `.nar.xz`).
    Nar {
        nar_hash: Hash,
        compression: Compression,
    },
    /// The public key narinfos are signed with.
    SigningKey,
    /// The transparency log's signed checkpoint.
    Checkpoint,
    /// The attestations of a path, with inclusion proofs.
    Attestations {
        hash_part: String,
    },
    /// The JSON listing of a path's NAR (`nix store ls --store`).
    Listing {
        hash_part: String,
    },
    /// The build log of a derivation, by its base name (`nix log --store`).
    Log {
        drv: StorePath,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    TooLong,
    BadHash,
    NotFound,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::TooLong => StatusCode::URI_TOO_LONG,
            Refusal::BadHash => StatusCode::BAD_REQUEST,
            Refusal::NotFound => StatusCode::NOT_FOUND,
        }
    }

    /// Says what was wrong without echoing the request.
    pub fn message(&self) -> &'static str {
        match self {
            Refusal::TooLong => "request path too long\n",
            Refusal::BadHash => "not a valid hash\n",
            Refusal::NotFound => "not found\n",
        }
    }
}

pub fn parse(path: &str) -> Result<Request, Refusal> {
    if path.len() > MAX_PATH {
        return Err(Refusal::TooLong);
    }
    if path == "/nix-cache-info" {
        return Ok(Request::CacheInfo);
    }
    if path == "/signing-key.pub" {
        return Ok(Request::SigningKey);
    }
    if path == "/checkpoint" {
        return Ok(Request::Checkpoint);
    }
    if let Some(hash_part) = path.strip_prefix("/attestations/") {
        let valid =
            hash_part.len() == 32 && hash_part.bytes().all(guixie_formats::nixbase32::is_digit);
        return if valid {
            Ok(Request::Attestations {
                hash_part: hash_part.to_owned(),
            })
        } else {
            Err(Refusal::BadHash)
        };
    }
    if let Some(hash_part) = path.strip_prefix('/').and_then(|p| p.strip_suffix(".ls")) {
        let valid =
            hash_part.len() == 32 && hash_part.bytes().all(guixie_formats::nixbase32::is_digit);
        return if valid {
            Ok(Request::Listing {
                hash_part: hash_part.to_owned(),
            })
        } else {
            Err(Refusal::BadHash)
        };
    }
    if let Some(hash_part) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix(".narinfo"))
    {
        let valid =
            hash_part.len() == 32 && hash_part.bytes().all(guixie_formats::nixbase32::is_digit);
        return if valid {
            Ok(Request::NarInfo {
                hash_part: hash_part.to_owned(),
            })
        } else {
            Err(Refusal::BadHash)
        };
    }
    if let Some(name) = path.strip_prefix("/nar/") {
        let found = [
            (".nar", Compression::None),
            (".nar.zst", Compression::Zstd),
            (".nar.gz", Compression::Gzip),
            (".nar.xz", Compression::Xz),
        ]
        .into_iter()
        .find_map(|(suffix, c)| Some((name.strip_suffix(suffix)?, c)));
        let Some((h, compression)) = found else {
            return Err(Refusal::NotFound);
        };
        let valid = h.len() == 52 && h.bytes().all(guixie_formats::nixbase32::is_digit);
        return match Hash::parse_digest(HashAlgo::Sha256, h) {
            Ok(nar_hash) if valid => Ok(Request::Nar {
                nar_hash,
                compression,
            }),
            _ => Err(Refusal::BadHash),
        };
    }
    if let Some(base) = path.strip_prefix("/log/") {
        return match StorePath::from_base_name(base) {
            Ok(drv) if drv.name().ends_with(".drv") => Ok(Request::Log { drv }),
            _ => Err(Refusal::BadHash),
        };
    }
    Err(Refusal::NotFound)
}

/// A `Range: bytes=N-[M]` header, as far as this cache answers it (one range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// From `start` to `end` inclusive, or to the end.
    From { start: u64, end: Option<u64> },
    /// Anything else (several ranges, suffix ranges, other units): answered with the whole body.
    Unsupported,
}

impl ByteRange {
    pub fn parse(header: &str) -> ByteRange {
        let Some(spec) = header.trim().strip_prefix("bytes=") else {
            return ByteRange::Unsupported;
        };
        let Some((a, b)) = spec.split_once('-') else {
            return ByteRange::Unsupported;
        };
        let Ok(start) = a.trim().parse::<u64>() else {
            return ByteRange::Unsupported;
        };
        let end = match b.trim() {
            "" => None,
            e => match e.parse::<u64>() {
                Ok(e) if e >= start => Some(e),
                _ => return ByteRange::Unsupported,
            },
        };
        ByteRange::From { start, end }
    }

    /// The byte window `[start, end)` of a body of `len` bytes, or `None` when the range lies
    /// beyond it (416).
    pub fn window(self, len: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::Unsupported => Some((0, len)),
            ByteRange::From { start, .. } if start >= len => None,
            ByteRange::From { start, end } => {
                Some((start, end.map_or(len, |e| e.saturating_add(1).min(len))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cache_resources_are_requests() {
        assert_eq!(parse("/nix-cache-info"), Ok(Request::CacheInfo));
        assert_eq!(parse("/checkpoint"), Ok(Request::Checkpoint));
        assert_eq!(parse("/signing-key.pub"), Ok(Request::SigningKey));
        assert_eq!(
            parse(&format!("/attestations/{}", "1".repeat(32))),
            Ok(Request::Attestations {
                hash_part: "1".repeat(32)
            })
        );
        assert_eq!(parse("/attestations/../x"), Err(Refusal::BadHash));
        let h = "0".repeat(32);
        assert_eq!(
            parse(&format!("/{h}.narinfo")),
            Ok(Request::NarInfo { hash_part: h })
        );
        let nar = "1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9lg";
        assert!(matches!(
            parse(&format!("/nar/{nar}.nar")),
            Ok(Request::Nar { .. })
        ));
        for bad in [
            "/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo", // 'e' is not Nix32
            "/0000000000000000000000000000000.narinfo",
            "/../../etc/passwd.narinfo",
            "/00000000000000000000000000000000\0.narinfo",
            "/nar/../../etc/passwd.nar",
            "/nar/1lz94v6gx3xz1mn5fxyzw9c4flh0n79d6mw138nm9iprzh6vj9l.nar",
            "/log/x",
            "/log/../../etc/passwd",
            "/log/00000000000000000000000000000000-x",
        ] {
            assert_eq!(parse(bad), Err(Refusal::BadHash), "{bad:?}");
        }
        assert!(matches!(
            parse(&format!("/nar/{nar}.nar.zst")),
            Ok(Request::Nar {
                compression: Compression::Zstd,
                ..
            })
        ));
        for missing in ["/", "/etc/passwd", "/nix-cache-info/", "/nar/", "/nar/x.gz"] {
            assert_eq!(parse(missing), Err(Refusal::NotFound), "{missing:?}");
        }
        assert_eq!(parse(&"/a".repeat(200)), Err(Refusal::TooLong));
    }

    #[test]
    fn ranges() {
        let r = ByteRange::parse("bytes=10-");
        assert_eq!(r.window(100), Some((10, 100)));
        assert_eq!(ByteRange::parse("bytes=10-19").window(100), Some((10, 20)));
        assert_eq!(
            ByteRange::parse("bytes=10-1000").window(100),
            Some((10, 100))
        );
        assert_eq!(ByteRange::parse("bytes=100-").window(100), None);
        for unsupported in [
            "bytes=-5",
            "bytes=1-2,4-5",
            "items=1-2",
            "bytes=5-1",
            "garbage",
        ] {
            assert_eq!(
                ByteRange::parse(unsupported),
                ByteRange::Unsupported,
                "{unsupported}"
            );
        }
        assert_eq!(ByteRange::Unsupported.window(7), Some((0, 7)));
    }
}
