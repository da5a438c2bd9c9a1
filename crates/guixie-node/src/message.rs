//! The messages, CBOR-encoded (RFC 8949, so a capture dissects in Wireshark) inside
//! `{"v": VERSION, "m": …}`. Every message is length-capped before it is decoded, and a message
//! of another version is refused with its number.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use thiserror::Error;

use guixie_trust::votes::Bundle;

/// The libp2p protocol name.
pub const PROTOCOL: &str = "/guixie/node/3";
/// 2: `Latest` and `Cosigned`, for witnesses. 3: `Governance`.
pub const VERSION: u32 = 3;
/// Largest request accepted: a governance proposal of up to 128 KiB, framed.
pub const MAX_REQUEST_BYTES: usize = 160 << 10;
/// Largest response accepted: a range answer of up to [`MAX_RANGE_BYTES`] with its hash
/// pairs, or an attestation bundle.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// How a refusal that means "ask again later" begins (a node pacing its upload).
pub const BUSY: &str = "busy:";
/// Largest range a node serves in one answer.
pub const MAX_RANGE_BYTES: u64 = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First words on a connection: the logs this node keeps (their origins).
    Hello { logs: Vec<String> },
    /// Gossip: a checkpoint the sender accepted (or, from the log's node, made).
    Checkpoint { note: String },
    /// Gossip: two checkpoints of one log, one size, different roots.
    SplitView { first: String, second: String },
    /// The sender's own log's attestations of the output path with this hash part, with a
    /// consistency proof from `known_size` (the size the asker accepted) to now.
    /// `witnessed`: the asker counts only checkpoints with witness cosignatures, so the
    /// newest witnessed one is wanted rather than the latest.
    Attestations {
        hash_part: String,
        known_size: Option<u64>,
        #[serde(default)]
        witnessed: bool,
    },
    /// The sender's own log's checkpoint, with a consistency proof from `known_size`
    /// (answered as `Attestations` with an empty bundle): what a witness asks before it
    /// cosigns.
    Latest { known_size: Option<u64> },
    /// A witness's cosignature of a checkpoint of the receiver's own log (the whole note).
    Cosigned { note: String },
    /// Gossip: a signed governance document (proposal, vote, withdrawal or state) that the
    /// sender's instance accepted; the receiver's own rules decide whether it counts.
    Governance { document: String },
    /// Whether the node can serve the blob with this BLAKE3 root.
    Have {
        #[serde(with = "serde_bytes")]
        root: [u8; 32],
    },
    /// The verified-streaming encoding of bytes `start..end` of a blob.
    Range {
        #[serde(with = "serde_bytes")]
        root: [u8; 32],
        start: u64,
        end: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Hello {
        logs: Vec<String>,
    },
    Ack,
    Attestations {
        /// The log's signed checkpoint the bundle's proofs are against.
        checkpoint: String,
        /// Hex hashes from the asker's `known_size` to the checkpoint's size.
        consistency: Vec<String>,
        bundle: Bundle,
    },
    Have {
        size: Option<u64>,
    },
    Range {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    Refused {
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Framed<T> {
    v: u32,
    m: T,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("message of {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("message of protocol version {0}; this node speaks {VERSION}")]
    Version(u32),
    #[error("malformed message: {0}")]
    Malformed(String),
}

pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(
        &Framed {
            v: VERSION,
            m: message,
        },
        &mut out,
    )
    .expect("writing CBOR to memory cannot fail");
    out
}

fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, MessageError> {
    if bytes.len() > max {
        return Err(MessageError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let version: Version =
        ciborium::from_reader(bytes).map_err(|e| MessageError::Malformed(e.to_string()))?;
    if version.v != VERSION {
        return Err(MessageError::Version(version.v));
    }
    let framed: Framed<T> =
        ciborium::from_reader(bytes).map_err(|e| MessageError::Malformed(e.to_string()))?;
    Ok(framed.m)
}

pub fn decode_request(bytes: &[u8]) -> Result<Request, MessageError> {
    decode(bytes, MAX_REQUEST_BYTES)
}

pub fn decode_response(bytes: &[u8]) -> Result<Response, MessageError> {
    decode(bytes, MAX_RESPONSE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_caps_and_versions() {
        let requests = [
            Request::Hello {
                logs: vec!["log.a".into()],
            },
            Request::Range {
                root: [7; 32],
                start: 0,
                end: 16384,
            },
            Request::Attestations {
                hash_part: "1".repeat(32),
                known_size: Some(3),
                witnessed: true,
            },
            Request::Latest { known_size: None },
            Request::Cosigned {
                note: "log.a\n1\nAAAA\n\n— w sig\n".into(),
            },
        ];
        for r in &requests {
            assert_eq!(&decode_request(&encode(r)).unwrap(), r);
        }
        let big = Response::Range {
            bytes: vec![1; 1 << 20],
        };
        assert_eq!(decode_response(&encode(&big)).unwrap(), big);
        // A request may not be as large as a response.
        let too_big = encode(&Request::Hello {
            logs: vec!["x".repeat(MAX_REQUEST_BYTES)],
        });
        assert!(matches!(
            decode_request(&too_big),
            Err(MessageError::TooLarge { .. })
        ));
        let mut other = Vec::new();
        ciborium::into_writer(
            &Framed {
                v: VERSION + 1,
                m: &requests[0],
            },
            &mut other,
        )
        .unwrap();
        assert_eq!(
            decode_request(&other),
            Err(MessageError::Version(VERSION + 1))
        );
        for bad in [&b""[..], b"\xff\xff", &encode(&Response::Ack)] {
            assert!(
                matches!(decode_request(bad), Err(MessageError::Malformed(_))),
                "{bad:?}"
            );
        }
        // Roots are exactly 32 bytes.
        let mut short = Vec::new();
        #[derive(Serialize)]
        enum Fake {
            Have {
                #[serde(with = "serde_bytes")]
                root: Vec<u8>,
            },
        }
        ciborium::into_writer(
            &Framed {
                v: VERSION,
                m: Fake::Have { root: vec![1; 31] },
            },
            &mut short,
        )
        .unwrap();
        assert!(decode_request(&short).is_err());
    }
}
