//! A bound on how deeply decoded values, types and bindings may nest.
//!
//! The codec decodes recursively; without a bound, a few kilobytes of hostile bytes describing
//! a list inside a list inside a list... would overflow the decoding thread's stack (a crash
//! of the host, not an error). Each recursive type's `Deserialize` passes through [`nested`].

use serde::de::Error;
use std::cell::Cell;

/// Deepest nesting a decoded value, type or binding may have.
pub const MAX_NESTING: u32 = 100;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
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
