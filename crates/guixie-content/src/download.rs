//! One blob fetched from several peers at once, as a state machine with no I/O: the caller
//! asks it for [`Request`]s, sends them however it likes, and feeds back each response (or the
//! failure) with the time from its injected clock. Every response is decoded against the root
//! given at the start; each 16 KiB chunk group is verified before it is handed out as
//! [`Verified`] bytes to write at their offset. A peer whose response is oversized, truncated,
//! padded, of the wrong ranges or of wrong bytes is dropped with the reason, its outstanding
//! share goes back to the others, and the download goes on while any peer is left.

use std::collections::BTreeMap;
use std::io::Cursor;

use bao_tree::io::sync::DecodeResponseIter;
use bao_tree::io::{BaoContentItem, DecodeError};
use bao_tree::BaoTree;
use thiserror::Error;

use crate::blob::{chunk_ranges, Blob, CHUNK_GROUP_BYTES};

/// A peer, as the transport names it.
pub type PeerId = String;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Ask `peer` for the encoding of bytes `start..end` of the blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: RequestId,
    pub peer: PeerId,
    pub start: u64,
    pub end: u64,
    /// The most bytes a truthful answer can have; anything longer is refused unread.
    pub max_response: u64,
}

/// Bytes that verified against the root, to be written at `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub offset: u64,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DownloadError {
    #[error("no peer is left to fetch {missing} bytes from; dropped: {}", .dropped.iter().map(|(p, why)| format!("{p} ({why})")).collect::<Vec<_>>().join(", "))]
    NoPeersLeft {
        missing: u64,
        dropped: Vec<(PeerId, String)>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Segment {
    Pending,
    InFlight(RequestId),
    Done,
}

#[derive(Clone, Debug, Default)]
struct Peer {
    in_flight: usize,
    dropped: Option<String>,
    verified_bytes: u64,
    /// Said it was busy: not asked again before this.
    resting_until_ms: u64,
    busy_answers: u32,
}

/// A peer busy this many times is dropped: busy for good is no better than silent.
const MAX_BUSY_ANSWERS: u32 = 60;

struct Outstanding {
    peer: PeerId,
    segment: usize,
    sent_ms: u64,
}

/// What a download knows about a peer, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerReport {
    pub peer: PeerId,
    pub verified_bytes: u64,
    pub dropped: Option<String>,
}

pub struct Download {
    blob: Blob,
    tree: BaoTree,
    segment_bytes: u64,
    segments: Vec<Segment>,
    outstanding: BTreeMap<RequestId, Outstanding>,
    peers: BTreeMap<PeerId, Peer>,
    next_id: u64,
    window: usize,
    timeout_ms: u64,
    done_bytes: u64,
}

impl Download {
    /// A download of `blob` in segments of `segment_bytes` (rounded up to whole chunk groups),
    /// at most `window` requests in flight per peer, each given `timeout_ms` to answer.
    pub fn new(blob: Blob, segment_bytes: u64, window: usize, timeout_ms: u64) -> Self {
        let segment_bytes = segment_bytes.div_ceil(CHUNK_GROUP_BYTES).max(1) * CHUNK_GROUP_BYTES;
        let count = blob.size.div_ceil(segment_bytes) as usize;
        Download {
            blob,
            tree: blob.tree(),
            segment_bytes,
            segments: vec![Segment::Pending; count],
            outstanding: BTreeMap::new(),
            peers: BTreeMap::new(),
            next_id: 0,
            window: window.max(1),
            timeout_ms,
            done_bytes: 0,
        }
    }

    pub fn blob(&self) -> Blob {
        self.blob
    }

    /// A peer that says it has the blob. A peer dropped before stays dropped.
    pub fn add_peer(&mut self, peer: &str) {
        self.peers.entry(peer.to_owned()).or_default();
    }

    fn bounds(&self, segment: usize) -> (u64, u64) {
        let start = segment as u64 * self.segment_bytes;
        (start, (start + self.segment_bytes).min(self.blob.size))
    }

    /// The requests to send now: pending segments spread over live peers, the least busy
    /// first, up to each peer's window.
    pub fn requests(&mut self, now_ms: u64) -> Vec<Request> {
        let mut out = Vec::new();
        let mut pending = self
            .segments
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == Segment::Pending)
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
            .into_iter();
        while let Some(peer) = self.least_busy_peer(now_ms) {
            let Some(segment) = pending.next() else { break };
            let id = RequestId(self.next_id);
            self.next_id += 1;
            let (start, end) = self.bounds(segment);
            self.segments[segment] = Segment::InFlight(id);
            self.peers.get_mut(&peer).expect("chosen").in_flight += 1;
            self.outstanding.insert(
                id,
                Outstanding {
                    peer: peer.clone(),
                    segment,
                    sent_ms: now_ms,
                },
            );
            out.push(Request {
                id,
                peer,
                start,
                end,
                max_response: self.max_response(start, end),
            });
        }
        out
    }

    fn least_busy_peer(&self, now_ms: u64) -> Option<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| {
                p.dropped.is_none() && p.in_flight < self.window && p.resting_until_ms <= now_ms
            })
            .min_by_key(|(name, p)| (p.in_flight, *name))
            .map(|(name, _)| name.clone())
    }

    /// The chunk groups and, for each, at most one hash pair per tree level above it.
    fn max_response(&self, start: u64, end: u64) -> u64 {
        let groups = (end - start).div_ceil(CHUNK_GROUP_BYTES);
        let levels = 64 - self.tree.blocks().leading_zeros() as u64 + 1;
        (end - start) + 64 * (groups + 1) * levels
    }

    /// A response to `id`. Verified bytes come back to be written; a lie drops the peer.
    /// Answers to requests already settled (the peer dropped meanwhile) are ignored.
    pub fn on_response(&mut self, id: RequestId, bytes: &[u8]) -> Vec<Verified> {
        let Some(req) = self.outstanding.remove(&id) else {
            return vec![];
        };
        let (start, end) = self.bounds(req.segment);
        match self.decode(start, end, bytes) {
            Ok(verified) => {
                self.segments[req.segment] = Segment::Done;
                self.done_bytes += end - start;
                let peer = self.peers.get_mut(&req.peer).expect("known");
                peer.in_flight -= 1;
                peer.verified_bytes += end - start;
                verified
            }
            Err(why) => {
                self.segments[req.segment] = Segment::Pending;
                self.drop_peer(&req.peer, why);
                vec![]
            }
        }
    }

    fn decode(&self, start: u64, end: u64, bytes: &[u8]) -> Result<Vec<Verified>, String> {
        let max = self.max_response(start, end);
        if bytes.len() as u64 > max {
            return Err(format!(
                "answered {} bytes for {start}..{end}, more than the {max} possible",
                bytes.len()
            ));
        }
        let ranges = chunk_ranges(start, end);
        let mut cursor = Cursor::new(bytes);
        let mut out = Vec::new();
        for item in DecodeResponseIter::new(
            blake3::Hash::from(self.blob.root),
            self.tree,
            &mut cursor,
            &ranges,
        ) {
            match item {
                Ok(BaoContentItem::Leaf(leaf)) => out.push(Verified {
                    offset: leaf.offset,
                    data: leaf.data.to_vec(),
                }),
                Ok(BaoContentItem::Parent(_)) => {}
                Err(e) => return Err(describe(e, start, end)),
            }
        }
        if cursor.position() != bytes.len() as u64 {
            return Err(format!(
                "answered {} bytes past the end of the encoding of {start}..{end}",
                bytes.len() as u64 - cursor.position()
            ));
        }
        let covered: u64 = out.iter().map(|v| v.data.len() as u64).sum();
        if covered != end - start {
            return Err(format!("answered {covered} bytes of {start}..{end}"));
        }
        Ok(out)
    }

    /// The peer said it is busy (it paces what it serves): the range goes back to be asked of
    /// anyone, and this peer is not asked again for `rest_ms`. Busy too often, it is dropped.
    pub fn on_busy(&mut self, id: RequestId, now_ms: u64, rest_ms: u64) {
        let Some(req) = self.outstanding.remove(&id) else {
            return;
        };
        self.segments[req.segment] = Segment::Pending;
        let peer = self.peers.get_mut(&req.peer).expect("known");
        peer.in_flight = peer.in_flight.saturating_sub(1);
        peer.busy_answers += 1;
        peer.resting_until_ms = now_ms + rest_ms;
        if peer.busy_answers > MAX_BUSY_ANSWERS {
            let why = format!("busy {} times", peer.busy_answers);
            self.drop_peer(&req.peer, why);
        }
    }

    /// The request failed (the peer refused, the stream broke): the peer is dropped.
    pub fn on_failure(&mut self, id: RequestId, reason: &str) {
        if let Some(req) = self.outstanding.remove(&id) {
            self.segments[req.segment] = Segment::Pending;
            self.drop_peer(&req.peer, reason.to_owned());
        }
    }

    /// Drops the peers of requests older than the timeout.
    pub fn on_tick(&mut self, now_ms: u64) {
        let late: Vec<RequestId> = self
            .outstanding
            .iter()
            .filter(|(_, r)| now_ms.saturating_sub(r.sent_ms) > self.timeout_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let reason = format!("no answer within {} ms", self.timeout_ms);
            self.on_failure(id, &reason);
        }
    }

    fn drop_peer(&mut self, peer: &str, why: String) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        if p.dropped.is_none() {
            p.dropped = Some(why);
        }
        p.in_flight = 0;
        let theirs: Vec<RequestId> = self
            .outstanding
            .iter()
            .filter(|(_, r)| r.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in theirs {
            let req = self.outstanding.remove(&id).expect("listed");
            self.segments[req.segment] = Segment::Pending;
        }
    }

    pub fn is_complete(&self) -> bool {
        self.segments.iter().all(|s| *s == Segment::Done)
    }

    /// Bytes verified so far, of the blob's size.
    pub fn progress(&self) -> (u64, u64) {
        (self.done_bytes, self.blob.size)
    }

    /// Set when the download cannot finish: bytes are missing and no live peer is left.
    pub fn failure(&self) -> Option<DownloadError> {
        if self.is_complete() || self.peers.values().any(|p| p.dropped.is_none()) {
            return None;
        }
        Some(DownloadError::NoPeersLeft {
            missing: self.blob.size - self.done_bytes,
            dropped: self
                .peers
                .iter()
                .filter_map(|(n, p)| p.dropped.clone().map(|d| (n.clone(), d)))
                .collect(),
        })
    }

    pub fn peers(&self) -> Vec<PeerReport> {
        self.peers
            .iter()
            .map(|(n, p)| PeerReport {
                peer: n.clone(),
                verified_bytes: p.verified_bytes,
                dropped: p.dropped.clone(),
            })
            .collect()
    }
}

/// Where verification failed, in bytes of the blob.
fn describe(e: DecodeError, start: u64, end: u64) -> String {
    match e {
        DecodeError::LeafHashMismatch(chunk) => format!(
            "the chunk group at byte {} does not match the root",
            chunk.to_bytes()
        ),
        DecodeError::ParentHashMismatch(node) => format!(
            "a hash pair ({:?}) in {start}..{end} does not match the root",
            node
        ),
        DecodeError::LeafNotFound(chunk) => format!(
            "the answer for {start}..{end} ends before the chunk group at byte {}",
            chunk.to_bytes()
        ),
        DecodeError::ParentNotFound(node) => format!(
            "the answer for {start}..{end} ends before hash pair {:?}",
            node
        ),
        DecodeError::Io(e) => format!("reading the answer for {start}..{end}: {e}"),
    }
}

#[cfg(test)]
mod tests;
