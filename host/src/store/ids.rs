//! Execution ids: 12 characters of lowercase base32, short enough to type, accepted by
//! unique prefix, and ordered by time (the first 34 bits are the second the id was made in).
//!
//! The other 26 bits are random: two executions started in the same second collide with a
//! chance of 1 in 67 million, where a millisecond clock with 18 random bits would have
//! made eight runs started together collide once in ten thousand tries.

use std::fmt;
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

/// Crockford's base32 alphabet in lower case: no i, l, o or u to misread.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
pub const ID_LEN: usize = 12;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(String);

impl ExecutionId {
    /// A fresh id from the clock and the system's random source.
    pub fn generate() -> ExecutionId {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        ExecutionId::from_parts(secs, random_u32())
    }

    fn from_parts(secs: u64, random: u32) -> ExecutionId {
        let bits = ((secs & ((1 << 34) - 1)) << 26) | u64::from(random & ((1 << 26) - 1));
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
    fn ids_are_twelve_base32_characters_ordered_by_time() {
        let a = ExecutionId::from_parts(1_700_000_000, u32::MAX);
        let b = ExecutionId::from_parts(1_700_000_001, 0);
        assert_eq!(a.as_str().len(), ID_LEN);
        assert!(is_id_text(a.as_str()) && is_id_text(b.as_str()));
        assert!(a < b, "{a} then {b}");
        assert_ne!(ExecutionId::generate(), ExecutionId::generate());
        assert!(!is_id_text("ABC") && !is_id_text("") && !is_id_text("0123456789abc"));
    }
}
