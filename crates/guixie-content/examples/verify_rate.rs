//! How fast a download verifies: a blob's outboard is made, every range is encoded as a
//! serving peer would, and the time measured is only the receiving side's (`Download`
//! decoding and checking each 16 KiB chunk group against the root), on one core.
//! `cargo run --release -p guixie-content --example verify_rate [MiB]`

use std::time::Instant;

use guixie_content::{Download, Outboard};

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let ob = Outboard::compute(&data[..], data.len() as u64).expect("outboard");
    let mut dl = Download::new(ob.blob(), 256 << 10, 1 << 20, u64::MAX);
    dl.add_peer("p");
    let requests = dl.requests(0);
    let answers: Vec<_> = requests
        .iter()
        .map(|r| ob.encode(&data, r.start, r.end).expect("encode"))
        .collect();
    let start = Instant::now();
    let mut verified = 0u64;
    for (r, a) in requests.iter().zip(&answers) {
        for v in dl.on_response(r.id, a) {
            verified += v.data.len() as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert!(dl.is_complete() && verified == data.len() as u64);
    println!(
        "verified {mib} MiB in {:.3} s: {:.0} MB/s on one core",
        secs,
        verified as f64 / secs / 1e6
    );
}
