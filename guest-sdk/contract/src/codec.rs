//! The codec: every byte that crosses the sandbox boundary goes through here (bincode 2, serde).
//!
//! Decoding is bounded ([`MAX_DECODE_BYTES`]) so a hostile length prefix cannot make the
//! decoder allocate more than that, and it must consume the whole buffer: trailing bytes mean
//! the two sides disagree about the format, which is an error, not something to ignore.

use serde::{de::DeserializeOwned, Serialize};

/// Upper bound on what one decode may allocate.
pub const MAX_DECODE_BYTES: usize = 1 << 30;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODE_BYTES>()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

/// Encodes `value` into a fresh buffer.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError(format!("encode: {e}")))
}

/// Decodes a `T` that must span all of `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (v, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError(format!("decode: {e}")))?;
    if used != bytes.len() {
        return Err(CodecError(format!(
            "decode: {} trailing bytes after a {}-byte value",
            bytes.len() - used,
            used
        )));
    }
    Ok(v)
}
