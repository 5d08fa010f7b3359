//! Execution ids: 14 characters of lowercase base32, short enough to type (and accepted by
//! unique prefix, so the first 8 or so usually do), and ordered by time: the first 34 bits are
//! the second the id was made in.
//!
//! The other 36 bits are a random start, drawn once per process, plus a counter: one run
//! makes thousands of ids in a second (one per launch plan call), which random bits alone
//! would collide on (26 random bits: 10 000 ids in one second collide more often than not).
//! Within a process ids never repeat; two processes collide only when their ranges overlap,
//! about once in 3 million for two runs of 10 000 child executions started in one second.

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
        static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU64> =
            std::sync::OnceLock::new();
        let next = NEXT.get_or_init(|| {
            let start = (u64::from(random_u32()) << 32) | u64::from(random_u32());
            std::sync::atomic::AtomicU64::new(start)
        });
        let low = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ExecutionId::from_parts(secs, low)
    }

    fn from_parts(secs: u64, low: u64) -> ExecutionId {
        // 70 bits: more than a u64 holds.
        let bits = (u128::from(secs & ((1 << 34) - 1)) << LOW_BITS)
            | u128::from(low & ((1 << LOW_BITS) - 1));
        let s = (0..ID_LEN)
            .map(|i| ALPHABET[((bits >> (5 * (ID_LEN - 1 - i))) & 31) as usize] as char)
            .collect();
        ExecutionId(s)
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
    fn ids_are_fourteen_base32_characters_ordered_by_time() {
        let a = ExecutionId::from_parts(1_700_000_000, u64::MAX);
        let b = ExecutionId::from_parts(1_700_000_001, 0);
        assert_eq!(a.as_str().len(), ID_LEN);
        assert!(is_id_text(a.as_str()) && is_id_text(b.as_str()));
        assert!(a < b, "{a} then {b}");
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
