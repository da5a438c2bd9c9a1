use super::*;
use crate::blob::Outboard;

/// Deterministic bytes that do not repeat by chunk.
fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed as u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// How a simulated peer answers.
#[derive(Clone, Copy)]
enum Peer {
    Honest,
    FlipByte(u64),
    Truncate,
    Pad,
    WrongRange,
    Oversize,
    OtherContent,
    Refuse,
    Silent,
}

fn answer(
    kind: Peer,
    ob: &Outboard,
    bytes: &[u8],
    other: &(Outboard, Vec<u8>),
    r: &Request,
) -> Option<Result<Vec<u8>, String>> {
    let size = bytes.len() as u64;
    let honest = |data: &[u8], start, end| ob.encode(&data.to_vec(), start, end).unwrap();
    Some(Ok(match kind {
        Peer::Honest => honest(bytes, r.start, r.end),
        Peer::FlipByte(at) => {
            // A liar does not check its outboard: the honest encoding with one data byte
            // changed where it sits in the stream.
            let mut e = honest(bytes, r.start, r.end);
            if (r.start..r.end).contains(&at) {
                let g = (at / CHUNK_GROUP_BYTES * CHUNK_GROUP_BYTES) as usize;
                let ge = (g + CHUNK_GROUP_BYTES as usize).min(bytes.len());
                let pos = e.windows(ge - g).position(|w| w == &bytes[g..ge]).unwrap();
                e[pos + (at as usize - g)] ^= 1;
            }
            e
        }
        Peer::Truncate => {
            let mut e = honest(bytes, r.start, r.end);
            e.truncate(e.len() - 100);
            e
        }
        Peer::Pad => {
            let mut e = honest(bytes, r.start, r.end);
            e.extend_from_slice(&[0; 8]);
            e
        }
        Peer::WrongRange => {
            let start = if r.start == 0 { CHUNK_GROUP_BYTES } else { 0 };
            honest(bytes, start, (start + (r.end - r.start)).min(size))
        }
        Peer::Oversize => vec![0; r.max_response as usize + 1],
        Peer::OtherContent => {
            let end = r.end.min(other.1.len() as u64);
            other
                .0
                .encode(
                    &other.1,
                    r.start.min(end - 1) / CHUNK_GROUP_BYTES * CHUNK_GROUP_BYTES,
                    end,
                )
                .unwrap()
        }
        Peer::Refuse => return Some(Err("refused".into())),
        Peer::Silent => return None,
    }))
}

/// Runs a download against peers until it finishes or fails; returns the assembled bytes and
/// the download.
fn run(bytes: &[u8], peers: &[(&str, Peer)]) -> (Vec<u8>, Download) {
    let ob = Outboard::compute(bytes, bytes.len() as u64).unwrap();
    let other_bytes = data(bytes.len() + 5000, 99);
    let other = (
        Outboard::compute(&other_bytes[..], other_bytes.len() as u64).unwrap(),
        other_bytes,
    );
    let mut dl = Download::new(ob.blob(), 64 << 10, 4, 1000);
    for (name, _) in peers {
        dl.add_peer(name);
    }
    let mut out = vec![0u8; bytes.len()];
    let mut written = vec![false; bytes.len()];
    let mut now = 0;
    while !dl.is_complete() && dl.failure().is_none() {
        now += 10;
        let reqs = dl.requests(now);
        if reqs.is_empty() {
            now += 2000;
            dl.on_tick(now);
            continue;
        }
        for r in reqs {
            let kind = peers.iter().find(|(n, _)| *n == r.peer).unwrap().1;
            match answer(kind, &ob, bytes, &other, &r) {
                Some(Ok(enc)) => {
                    for v in dl.on_response(r.id, &enc) {
                        let at = v.offset as usize;
                        assert!(
                            written[at..at + v.data.len()].iter().all(|w| !w),
                            "written twice"
                        );
                        out[at..at + v.data.len()].copy_from_slice(&v.data);
                        written[at..at + v.data.len()]
                            .iter_mut()
                            .for_each(|w| *w = true);
                    }
                }
                Some(Err(why)) => dl.on_failure(r.id, &why),
                None => {}
            }
        }
    }
    (out, dl)
}

#[test]
fn honest_peers_share_the_work_and_the_bytes_are_the_blob() {
    let bytes = data(1_000_000, 1);
    let (out, dl) = run(
        &bytes,
        &[
            ("a", Peer::Honest),
            ("b", Peer::Honest),
            ("c", Peer::Honest),
        ],
    );
    assert!(dl.is_complete());
    assert_eq!(out, bytes);
    assert_eq!(dl.progress(), (bytes.len() as u64, bytes.len() as u64));
    for p in dl.peers() {
        assert!(p.verified_bytes > 200_000, "{p:?}");
        assert_eq!(p.dropped, None);
    }
}

#[test]
fn every_kind_of_liar_is_dropped_and_the_download_goes_on() {
    let bytes = data(700_001, 2);
    let flip_at = 300_123u64;
    let liars = [
        ("flip", Peer::FlipByte(flip_at)),
        ("truncate", Peer::Truncate),
        ("pad", Peer::Pad),
        ("range", Peer::WrongRange),
        ("oversize", Peer::Oversize),
        ("other", Peer::OtherContent),
        ("refuse", Peer::Refuse),
        ("silent", Peer::Silent),
    ];
    let mut peers = liars.to_vec();
    peers.push(("honest", Peer::Honest));
    let (out, dl) = run(&bytes, &peers);
    assert!(dl.is_complete());
    assert_eq!(out, bytes);
    let report = dl.peers();
    let why = |name: &str| {
        report
            .iter()
            .find(|p| p.peer == name)
            .unwrap()
            .dropped
            .clone()
    };
    assert_eq!(why("honest"), None);
    // The flipped byte is found in its own chunk group, within 32 KiB of it.
    let flip = why("flip").expect("the byte-flipping peer is dropped");
    let at: u64 = flip
        .strip_prefix("the chunk group at byte ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{flip}"));
    assert!(at <= flip_at && flip_at - at < 32 << 10, "{flip}");
    assert!(
        why("truncate").unwrap().contains("ends before"),
        "{:?}",
        why("truncate")
    );
    assert!(
        why("pad").unwrap().contains("past the end"),
        "{:?}",
        why("pad")
    );
    assert!(
        why("range").unwrap().contains("does not match"),
        "{:?}",
        why("range")
    );
    assert!(
        why("oversize").unwrap().contains("more than the"),
        "{:?}",
        why("oversize")
    );
    assert!(
        why("other").unwrap().contains("does not match"),
        "{:?}",
        why("other")
    );
    assert_eq!(why("refuse").as_deref(), Some("refused"));
    assert!(
        why("silent").unwrap().contains("no answer within"),
        "{:?}",
        why("silent")
    );
    // Nothing a liar sent was handed out: the bytes are the blob's.
    let honest = report.iter().find(|p| p.peer == "honest").unwrap();
    let others: u64 = report
        .iter()
        .filter(|p| p.peer != "honest")
        .map(|p| p.verified_bytes)
        .sum();
    assert_eq!(honest.verified_bytes + others, bytes.len() as u64);
}

#[test]
fn with_only_liars_the_download_fails_naming_them() {
    let bytes = data(100_000, 3);
    let (_, dl) = run(&bytes, &[("x", Peer::Truncate), ("y", Peer::Refuse)]);
    let e = dl.failure().expect("fails");
    let text = e.to_string();
    assert!(
        text.contains("x (") && text.contains("y (refused)"),
        "{text}"
    );
    assert!(!dl.is_complete());
}

#[test]
fn a_blob_smaller_than_a_chunk_group_and_late_answers() {
    let bytes = data(100, 4);
    let (out, dl) = run(&bytes, &[("a", Peer::Honest)]);
    assert_eq!(out, bytes);
    assert!(dl.is_complete());
    // An answer to a request that was settled is ignored.
    let ob = Outboard::compute(&bytes[..], 100).unwrap();
    let mut dl = Download::new(ob.blob(), 1 << 20, 1, 10);
    dl.add_peer("a");
    dl.add_peer("b");
    let reqs = dl.requests(0);
    assert_eq!(reqs.len(), 1);
    dl.on_tick(100);
    let enc = ob.encode(&bytes, 0, 100).unwrap();
    assert!(dl.on_response(reqs[0].id, &enc).is_empty());
    let again = dl.requests(100);
    assert_eq!(again[0].peer, "b");
    assert_eq!(dl.on_response(again[0].id, &enc).len(), 1);
    assert!(dl.is_complete());
}

#[test]
fn a_busy_peer_rests_and_is_asked_again_and_busy_for_good_is_dropped() {
    let bytes = data(300_000, 7);
    let ob = Outboard::compute(&bytes[..], bytes.len() as u64).unwrap();
    let mut dl = Download::new(ob.blob(), 64 << 10, 4, 10_000);
    dl.add_peer("slow");
    // Busy once: its range goes back, and it is not asked until it has rested.
    let first = dl.requests(0);
    assert_eq!(first.len(), 4);
    dl.on_busy(first[0].id, 0, 500);
    assert!(dl.requests(100).is_empty(), "asked while resting");
    let again = dl.requests(600);
    assert_eq!(again.len(), 1, "asked again for the range it gave back");
    assert_eq!(
        (again[0].start, again[0].end),
        (first[0].start, first[0].end)
    );
    for r in first[1..].iter().chain(&again) {
        let enc = ob.encode(&bytes, r.start, r.end).unwrap();
        assert!(!dl.on_response(r.id, &enc).is_empty());
    }
    for r in dl.requests(700) {
        let enc = ob.encode(&bytes, r.start, r.end).unwrap();
        dl.on_response(r.id, &enc);
    }
    assert!(dl.is_complete());
    assert!(dl.peers()[0].dropped.is_none());
    // Busy every time: dropped in the end, and the download says why it cannot finish.
    let mut dl = Download::new(ob.blob(), 64 << 10, 4, 10_000);
    dl.add_peer("never");
    let mut now = 0;
    while dl.failure().is_none() {
        now += 1_000;
        for r in dl.requests(now) {
            dl.on_busy(r.id, now, 500);
        }
        assert!(now < 1_000_000, "never dropped");
    }
    assert!(dl.peers()[0]
        .dropped
        .as_deref()
        .unwrap()
        .starts_with("busy"));
}
