//! Execution ids: 14 characters of lowercase base32, short enough to type, and accepted by
//! unique prefix: a few characters usually do, because the id starts with its well-spread
//! bits and ends with the second it was made in.
//!
//! The first 36 bits come from a counter, started at random once per process and spread by
//! multiplying with an odd constant (a permutation of the 36-bit numbers, so a process never
//! makes the same id twice): one run makes thousands of ids in a second (one per launch plan
//! call), which random bits alone would collide on, and consecutive ids still differ in their
//! first characters. Two processes collide only when their counters' ranges overlap within
//! the same second: about once in 3 million for two runs of 10 000 child executions.

use std::fmt;
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

/// Crockford's base32 alphabet in lower case: no i, l, o or u to misread.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
pub const ID_LEN: usize = 14;
/// Bits after the seconds.
const LOW_BITS: u32 = 36;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(String);

impl ExecutionId {
    /// A fresh id from the clock and the system's random source.
    pub fn generate() -> ExecutionId {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU64> = std::sync::OnceLock::new();
        let next = NEXT.get_or_init(|| {
            let start = (u64::from(random_u32()) << 32) | u64::from(random_u32());
            std::sync::atomic::AtomicU64::new(start)
        });
        let count = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // An odd multiplier permutes the 36-bit numbers: spread, and still never repeated.
        ExecutionId::from_parts(secs, count.wrapping_mul(0x9_e377_9b97))
    }

    fn from_parts(secs: u64, spread: u64) -> ExecutionId {
        // 70 bits: more than a u64 holds.
        let bits =
            (u128::from(spread & ((1 << LOW_BITS) - 1)) << 34) | u128::from(secs & ((1 << 34) - 1));
        let s = (0..ID_LEN)
            .map(|i| ALPHABET[((bits >> (5 * (ID_LEN - 1 - i))) & 31) as usize] as char)
            .collect();
        ExecutionId(s)
    }

    /// The id of the child execution that the launch plan call with stable key `node` of
    /// execution `parent` starts elsewhere, in its `attempt`-th try (a worker that takes
    /// over a dead one's calls tries again): the same in every process that derives it, so
    /// the one taking over finds what the dead one recorded. It ends with the parent's
    /// second, as the parent's child executions made in its process would.
    pub fn derived(parent: &ExecutionId, node: u64, attempt: u32) -> ExecutionId {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in parent
            .0
            .bytes()
            .chain(node.to_le_bytes())
            .chain(attempt.to_le_bytes())
        {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A final mix: FNV's low bits are weak.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        let bits = parent.0.bytes().fold(0u128, |acc, b| {
            let d = ALPHABET.iter().position(|&a| a == b).unwrap_or(0) as u128;
            (acc << 5) | d
        });
        ExecutionId::from_parts((bits & ((1 << 34) - 1)) as u64, h)
    }

    /// An id as read back (from the database or a user); [`is_id_text`] says whether it
    /// could be one.
    pub fn from_string(s: String) -> ExecutionId {
        ExecutionId(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `s` only holds characters an id may have (so a prefix of one).
pub fn is_id_text(s: &str) -> bool {
    !s.is_empty() && s.len() <= ID_LEN && s.bytes().all(|b| ALPHABET.contains(&b))
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Random bits from the kernel; the clock's nanoseconds and the pid if it cannot be read
/// (ids then still differ between processes and between calls).
fn random_u32() -> u32 {
    let mut buf = [0u8; 4];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)) {
        Ok(()) => u32::from_le_bytes(buf),
        Err(_) => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            nanos ^ std::process::id().rotate_left(16)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fourteen_base32_characters_that_differ_early() {
        let a = ExecutionId::generate();
        let b = ExecutionId::generate();
        assert_eq!(a.as_str().len(), ID_LEN);
        assert!(is_id_text(a.as_str()) && is_id_text(b.as_str()));
        // Consecutive ids of one process already differ in their first characters.
        assert_ne!(a.as_str()[..3], b.as_str()[..3], "{a} and {b}");
        assert_ne!(ExecutionId::generate(), ExecutionId::generate());
        assert!(!is_id_text("ABC") && !is_id_text("") && !is_id_text("0123456789abcde"));
    }

    #[test]
    fn a_process_never_makes_the_same_id_twice() {
        let ids: std::collections::HashSet<ExecutionId> =
            (0..100_000).map(|_| ExecutionId::generate()).collect();
        assert_eq!(ids.len(), 100_000);
    }
}
