//! The ABI between host and guest: export names, their signatures and the version.
//!
//! A guest module exports:
//! - [`ABI_VERSION_EXPORT`] `() -> i32`: must equal [`ABI_VERSION`];
//! - [`ALLOC_EXPORT`] `(len: i32) -> i32`: a buffer of `len` bytes the host writes inputs into;
//! - [`PANIC_MESSAGE_EXPORT`] `() -> i64`: packed pointer/length of the last panic message;
//! - per entity `name`, [`DECL_PREFIX`]`name` `() -> i64` returning an encoded
//!   [`crate::EntityDecl`], and [`CALL_PREFIX`]`name` `(ptr: i32, len: i32) -> i64` taking the
//!   encoded inputs (`Vec<Value>` in interface order) and returning an encoded
//!   [`crate::CallResult`].
//!
//! Byte buffers cross the boundary as a packed `i64`: pointer in the high 32 bits, length in
//! the low 32 bits. A module built as a WASI reactor also exports `_initialize`, which the
//! host calls once per instance before anything else.

/// Bumped whenever any encoded type or export signature of this crate changes.
pub const ABI_VERSION: i32 = 6;

pub const ABI_VERSION_EXPORT: &str = "sandflow_abi_version";
pub const ALLOC_EXPORT: &str = "sandflow_alloc";
pub const PANIC_MESSAGE_EXPORT: &str = "sandflow_panic_message";
pub const DECL_PREFIX: &str = "sandflow:decl:";
pub const CALL_PREFIX: &str = "sandflow:call:";
pub const WASI_INITIALIZE_EXPORT: &str = "_initialize";

/// Packs a guest buffer into the `i64` returned across the boundary.
pub fn pack(ptr: u32, len: u32) -> i64 {
    (((ptr as u64) << 32) | len as u64) as i64
}

/// Splits a packed `i64` into `(ptr, len)`.
pub fn unpack(packed: i64) -> (u32, u32) {
    let v = packed as u64;
    ((v >> 32) as u32, v as u32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn pack_round_trips() {
        for (p, l) in [(0, 0), (1, 2), (u32::MAX, u32::MAX), (65536, 17)] {
            assert_eq!(super::unpack(super::pack(p, l)), (p, l));
        }
    }
}
