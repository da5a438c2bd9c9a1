//! What guixie takes from the world: the time and randomness. Everything above this crate
//! receives them as `&dyn Clock` / `&dyn Randomness` (or an `Arc` of one); only a binary's
//! composition root picks [`SystemClock`] and [`OsRandomness`]. Tests and the simulator hand
//! in [`FakeClock`] and [`SeededRandomness`], so a run is repeatable from its seed.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A source of time.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch: for timestamps that leave the process (registration
    /// times, attestations, checkpoints).
    fn unix_seconds(&self) -> i64;
    /// Time since an arbitrary fixed origin, never going back: for deadlines and durations.
    fn monotonic(&self) -> Duration;
}

/// A source of random bytes.
pub trait Randomness: Send + Sync {
    fn fill(&self, buf: &mut [u8]);

    fn bytes32(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        self.fill(&mut b);
        b
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn unix_seconds(&self) -> i64 {
        (**self).unix_seconds()
    }
    fn monotonic(&self) -> Duration {
        (**self).monotonic()
    }
}

impl<R: Randomness + ?Sized> Randomness for Arc<R> {
    fn fill(&self, buf: &mut [u8]) {
        (**self).fill(buf)
    }
}

/// The operating system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_seconds(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
    fn monotonic(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct FakeClock {
    /// The wall clock, in nanoseconds since the epoch (so small steps add up).
    unix_nanos: AtomicI64,
    monotonic_nanos: AtomicU64,
}

impl FakeClock {
    pub fn new(unix_seconds: i64) -> Self {
        FakeClock {
            unix_nanos: AtomicI64::new(unix_seconds.saturating_mul(1_000_000_000)),
            monotonic_nanos: AtomicU64::new(0),
        }
    }

    /// Moves both clocks forward by `d`.
    pub fn advance(&self, d: Duration) {
        let nanos = d.as_nanos().min(i64::MAX as u128) as i64;
        self.monotonic_nanos
            .fetch_add(nanos as u64, Ordering::SeqCst);
        self.unix_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// Sets the wall clock (which, unlike the monotonic one, may jump back).
    pub fn set_unix_seconds(&self, s: i64) {
        self.unix_nanos
            .store(s.saturating_mul(1_000_000_000), Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn unix_seconds(&self) -> i64 {
        self.unix_nanos
            .load(Ordering::SeqCst)
            .div_euclid(1_000_000_000)
    }
    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.monotonic_nanos.load(Ordering::SeqCst))
    }
}

/// The operating system's random number generator.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandomness;

impl Randomness for OsRandomness {
    fn fill(&self, buf: &mut [u8]) {
        use rand_core::RngCore;
        rand_core::OsRng.fill_bytes(buf)
    }
}

/// A repeatable stream of bytes from a seed (SHA-256 in counter mode). For tests and the
/// simulator only: anyone who knows the seed knows every byte, keys included.
#[derive(Debug)]
pub struct SeededRandomness {
    seed: [u8; 32],
    counter: Mutex<u64>,
}

impl SeededRandomness {
    pub fn new(seed: u64) -> Self {
        SeededRandomness {
            seed: Sha256::digest(seed.to_le_bytes()).into(),
            counter: Mutex::new(0),
        }
    }
}

impl Randomness for SeededRandomness {
    fn fill(&self, buf: &mut [u8]) {
        let mut counter = self.counter.lock().unwrap_or_else(|p| p.into_inner());
        for chunk in buf.chunks_mut(32) {
            let block = Sha256::new()
                .chain_update(self.seed)
                .chain_update(counter.to_le_bytes())
                .finalize();
            *counter += 1;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let c = FakeClock::new(1_700_000_000);
        assert_eq!(c.monotonic(), Duration::ZERO);
        c.advance(Duration::from_millis(2500));
        assert_eq!(c.monotonic(), Duration::from_millis(2500));
        assert_eq!(c.unix_seconds(), 1_700_000_002);
        // Small steps add up.
        for _ in 0..4 {
            c.advance(Duration::from_millis(250));
        }
        assert_eq!(c.unix_seconds(), 1_700_000_003);
        c.set_unix_seconds(5);
        assert_eq!(c.unix_seconds(), 5);
        assert_eq!(c.monotonic(), Duration::from_millis(3500));
    }

    #[test]
    fn seeded_randomness_repeats_by_seed() {
        let (a, b, c) = (
            SeededRandomness::new(7),
            SeededRandomness::new(7),
            SeededRandomness::new(8),
        );
        let mut x = [0u8; 70];
        let mut y = [0u8; 70];
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(a.bytes32(), c.bytes32());
        // The stream goes on: later bytes differ from earlier ones.
        assert_ne!(a.bytes32()[..], x[..32]);
    }

    #[test]
    fn system_sources_work() {
        let c = SystemClock;
        let t = c.monotonic();
        assert!(c.monotonic() >= t);
        assert!(c.unix_seconds() > 1_600_000_000);
        assert_ne!(OsRandomness.bytes32(), OsRandomness.bytes32());
    }
}
