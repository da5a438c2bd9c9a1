//! Transparency-log benchmark, with a naive baseline measured in the same run:
//! appends (batched, durable) vs one fsync'd append per entry; inclusion proofs at size 10^6
//! from the stored tree vs recomputing subtrees from the leaf hashes; verification of a signed
//! checkpoint plus an inclusion proof; peak RSS.
//!
//! Run: `cargo run --release -p guixie-log --example log_bench [ENTRIES]` (default 1,000,000).

use std::time::Instant;

use guixie_log::checkpoint::{self, Checkpoint};
use guixie_log::merkle::{self, Hash, NodeSource};
use guixie_log::note::{SignerKey, ALG_ED25519};
use guixie_log::FileLog;

/// The naive way: only leaf hashes, every subtree recomputed when needed.
struct LeavesOnly(Vec<Hash>);

impl NodeSource for LeavesOnly {
    type Error = std::convert::Infallible;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        fn build(leaves: &[Hash]) -> Hash {
            if leaves.len() == 1 {
                return leaves[0];
            }
            let (l, r) = leaves.split_at(leaves.len() / 2);
            merkle::node_hash(&build(l), &build(r))
        }
        let width = 1usize << level;
        let start = index as usize * width;
        Ok(build(&self.0[start..start + width]))
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn entry(i: u64) -> Vec<u8> {
    format!("{{\"index\":{i},\"payload\":\"{}\"}}", "x".repeat(96)).into_bytes()
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let mut log = FileLog::open(&dir.path().join("log")).unwrap();

    // Appends: batches of 10,000, each batch made durable.
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<Vec<u8>> = (i..(i + 10_000).min(n)).map(entry).collect();
        log.append_batch(&batch).unwrap();
        i += batch.len() as u64;
    }
    let append_secs = start.elapsed().as_secs_f64();
    let rss_after_append = peak_rss_mib();

    // Baseline: one durable append per entry.
    let naive_n = 2_000u64;
    let mut naive = FileLog::open(&dir.path().join("naive")).unwrap();
    let start = Instant::now();
    for j in 0..naive_n {
        naive.append_batch(&[entry(j)]).unwrap();
    }
    let naive_append_rate = naive_n as f64 / start.elapsed().as_secs_f64();
    let append_rate = n as f64 / append_secs;

    // Inclusion proofs at the full size.
    let size = log.size();
    let samples: Vec<u64> = (0..2_000u64).map(|k| (k * 2_654_435_761) % size).collect();
    let start = Instant::now();
    let mut proofs = Vec::with_capacity(samples.len());
    for &idx in &samples {
        proofs.push(log.inclusion_proof(idx, size).unwrap());
    }
    let proof_us = start.elapsed().as_secs_f64() * 1e6 / samples.len() as f64;

    let leaves = LeavesOnly((0..size).map(|k| log.leaf_hash(k).unwrap()).collect());
    let naive_samples = &samples[..5];
    let start = Instant::now();
    for &idx in naive_samples {
        let p = merkle::inclusion_proof(&leaves, idx, size).unwrap();
        assert_eq!(p, log.inclusion_proof(idx, size).unwrap());
    }
    let naive_proof_us = start.elapsed().as_secs_f64() * 1e6 / naive_samples.len() as f64;

    // Verification of a signed checkpoint plus an inclusion proof.
    let key = SignerKey::from_seed("bench.example/log", ALG_ED25519, &[1u8; 32]).unwrap();
    let root = log.root(size).unwrap();
    let note = Checkpoint {
        origin: key.name.clone(),
        size,
        root,
        extensions: vec![],
    }
    .sign(&key)
    .unwrap();
    let vkey = key.verifier();
    let leaf_hashes: Vec<Hash> = samples.iter().map(|&k| log.leaf_hash(k).unwrap()).collect();
    let start = Instant::now();
    for (k, &idx) in samples.iter().enumerate() {
        let v = checkpoint::verify(note.as_bytes(), &vkey, &[], 0).unwrap();
        merkle::verify_inclusion(
            &leaf_hashes[k],
            idx,
            v.checkpoint.size,
            &proofs[k],
            &v.checkpoint.root,
        )
        .unwrap();
    }
    let verify_us = start.elapsed().as_secs_f64() * 1e6 / samples.len() as f64;

    println!("entries                         {n}");
    println!(
        "append (batches of 10k, durable) {append_rate:>12.0} entries/s   (target >= 200,000)"
    );
    println!(
        "append baseline (fsync each)     {naive_append_rate:>12.0} entries/s   ratio {:.0}x",
        append_rate / naive_append_rate
    );
    println!("inclusion proof at size {size}    {proof_us:>9.1} us           (target <= 50)");
    println!(
        "inclusion baseline (recompute)   {naive_proof_us:>12.1} us           ratio {:.0}x",
        naive_proof_us / proof_us
    );
    println!("verify checkpoint + inclusion    {verify_us:>12.1} us           (target <= 100)");
    println!("peak RSS after appends           {rss_after_append:>12.1} MiB  (frontier only; the naive baseline then holds all leaf hashes: {:.1} MiB)", peak_rss_mib());
}
