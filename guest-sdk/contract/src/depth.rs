//! Bounds on what one decode may build: how deeply values, types and bindings nest, and how
//! many values there are in all.
//!
//! The codec decodes recursively; without a bound, a few kilobytes of hostile bytes describing
//! a list inside a list inside a list... would overflow the decoding thread's stack (a crash
//! of the host, not an error). Each recursive type's `Deserialize` passes through [`nested`].
//! And a value takes 32 bytes in memory for as little as 2 encoded: a 64 MiB result of
//! booleans would be a gigabyte once decoded, so one decode builds at most
//! [`MAX_DECODED_VALUES`] values.

use serde::de::Error;
use std::cell::Cell;

/// Deepest nesting a decoded value, type or binding may have.
pub const MAX_NESTING: u32 = 100;

/// Values one decode may build (each is 32 bytes in memory: 256 MiB in all).
pub const MAX_DECODED_VALUES: u64 = 8 << 20;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static VALUES: Cell<u64> = const { Cell::new(0) };
}

/// Starts the value count of a new decode on this thread.
pub(crate) fn start_decode() {
    VALUES.with(|v| v.set(0));
}

/// Counts one decoded value, failing past [`MAX_DECODED_VALUES`].
pub(crate) fn count_value<E: Error>() -> Result<(), E> {
    let n = VALUES.with(|v| {
        v.set(v.get() + 1);
        v.get()
    });
    if n > MAX_DECODED_VALUES {
        return Err(E::custom(format!(
            "more than {MAX_DECODED_VALUES} values in one message"
        )));
    }
    Ok(())
}

struct Leave;

impl Drop for Leave {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Runs `decode` one level deeper, failing past [`MAX_NESTING`].
pub(crate) fn nested<'de, D, T>(
    d: D,
    decode: impl FnOnce(D) -> Result<T, D::Error>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let depth = DEPTH.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let _leave = Leave;
    if depth > MAX_NESTING {
        return Err(D::Error::custom(format!(
            "nested deeper than {MAX_NESTING} levels"
        )));
    }
    decode(d)
}
