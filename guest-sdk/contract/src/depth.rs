//! Bounds on what one decode may build: how deeply values, types and bindings nest, and how
//! many bytes of host memory the decoded message takes in all.
//!
//! The codec decodes recursively; without a bound, a few kilobytes of hostile bytes describing
//! a list inside a list inside a list... would overflow the decoding thread's stack (a crash
//! of the host, not an error). Each recursive type's `Deserialize` passes through [`nested`].
//!
//! And what is small encoded can be large in memory: a value takes 32 bytes for as little as 2
//! encoded, a node of a graph about a hundred for 3, an empty string 24 for 1. So each decoded
//! [`Value`](crate::Value), [`Type`](crate::Type), [`Binding`](crate::Binding),
//! [`NodeSpec`](crate::NodeSpec), list element string, string key and string or bytes payload
//! charges its in-memory size (its `size_of` plus its heap) to a per-decode budget *before* it
//! is built, and one message builds at most [`MAX_DECODED_BYTES`]. The charge is an estimate
//! (allocator slack and B-tree node fill are rounded), close enough that a 64 MiB result can no
//! longer become gigabytes.

use serde::de::{Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::mem::size_of;

/// Deepest nesting a decoded value, type or binding may have.
pub const MAX_NESTING: u32 = 100;

/// Estimated host memory one decoded message may take: 256 MiB (8 Mi values of 32 bytes).
pub const MAX_DECODED_BYTES: u64 = 256 << 20;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

/// Starts the memory budget of a new decode on this thread.
pub(crate) fn start_decode() {
    BYTES.with(|v| v.set(0));
}

/// Estimated host memory the last decode on this thread built (or had built when it failed).
pub fn last_decode_bytes() -> u64 {
    BYTES.with(|v| v.get())
}

/// Charges `bytes` of host memory to this decode, failing past [`MAX_DECODED_BYTES`].
pub(crate) fn charge<E: Error>(bytes: usize) -> Result<(), E> {
    let n = BYTES.with(|v| {
        let n = v.get().saturating_add(bytes as u64);
        v.set(n);
        n
    });
    if n > MAX_DECODED_BYTES {
        return Err(E::custom(format!(
            "a graph/value of more than {} MiB in memory in one message",
            MAX_DECODED_BYTES >> 20
        )));
    }
    Ok(())
}

/// How a B-tree map entry is charged beyond its value: the key's header and heap, and as much
/// again for the half-empty node slots a B-tree keeps.
pub(crate) fn map_key_bytes(key: &str) -> usize {
    2 * size_of::<String>() + key.len()
}

/// How an integer-keyed B-tree map entry is charged beyond its value: the key, and as much
/// again for the half-empty node slots (as [`map_key_bytes`]).
pub(crate) fn int_key_bytes() -> usize {
    2 * size_of::<i64>()
}

/// A string whose heap is charged before it is allocated (the string's header belongs to a
/// value whose size is charged already).
pub(crate) fn heap_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_string(StringVisitor { header: false })
}

/// An optional string whose heap is charged before it is allocated (its header belongs to a
/// struct charged already).
pub(crate) fn optional_heap_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    struct HeapString(String);
    impl<'de> Deserialize<'de> for HeapString {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            heap_string(d).map(HeapString)
        }
    }
    Ok(Option::<HeapString>::deserialize(d)?.map(|s| s.0))
}

/// A string charged whole, header and heap: a field of a struct that is not charged itself.
pub(crate) fn owned_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_string(StringVisitor { header: true })
}

/// A string charged whole, header and heap: an element of a list, or a key.
struct OwnedString(String);

impl<'de> Deserialize<'de> for OwnedString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_string(StringVisitor { header: true })
            .map(OwnedString)
    }
}

struct StringVisitor {
    header: bool,
}

impl<'de> Visitor<'de> for StringVisitor {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: Error>(self, s: &str) -> Result<String, E> {
        let header = if self.header { size_of::<String>() } else { 0 };
        charge(header + s.len())?;
        Ok(s.to_owned())
    }

    fn visit_string<E: Error>(self, s: String) -> Result<String, E> {
        let header = if self.header { size_of::<String>() } else { 0 };
        charge(header + s.len())?;
        Ok(s)
    }
}

/// A list of strings, each charged before it is built.
pub(crate) fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::with_capacity(cautious::<String>(seq.size_hint()));
            while let Some(OwnedString(s)) = seq.next_element()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

/// A list of node indices, each charged as it is read (a `u32` costs no more than the bytes
/// that encode it, so charging after reading bounds the list all the same).
pub(crate) fn indices<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<u32>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of node indices")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u32>, A::Error> {
            let mut out = Vec::with_capacity(cautious::<u32>(seq.size_hint()));
            while let Some(i) = seq.next_element()? {
                charge::<A::Error>(size_of::<u32>())?;
                out.push(i);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

/// A list of named `T`s (`(String, T)` pairs); each name is charged, and each `T` charges
/// itself.
pub(crate) fn pairs<'de, D, T>(d: D) -> Result<Vec<(String, T)>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<(String, T)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of (name, item) pairs")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(cautious::<(String, T)>(seq.size_hint()));
            while let Some((OwnedString(k), v)) = seq.next_element::<(OwnedString, T)>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V(PhantomData))
}

/// A string-keyed map; each key is charged with its share of the tree, each `T` charges
/// itself.
pub(crate) fn string_map<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Key(String);
    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let s = d.deserialize_string(StringVisitor { header: false })?;
            // The header was not charged by the visitor: charge it with the tree's share.
            charge::<D::Error>(map_key_bytes(&s) - s.len())?;
            Ok(Key(s))
        }
    }
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = BTreeMap<String, T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map with string keys")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((Key(k), v)) = map.next_entry::<Key, T>()? {
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V(PhantomData))
}

/// An integer-keyed map; each key is charged with its share of the tree, each `T` charges
/// itself.
pub(crate) fn int_map<'de, D, T>(d: D) -> Result<BTreeMap<i64, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = BTreeMap<i64, T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map with integer keys")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(k) = map.next_key::<i64>()? {
                // Charged before the value is decoded, as a string key is.
                charge::<A::Error>(int_key_bytes())?;
                out.insert(k, map.next_value::<T>()?);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V(PhantomData))
}

/// A preallocation a hostile length prefix cannot inflate (serde's own rule: at most 1 MiB).
fn cautious<T>(hint: Option<usize>) -> usize {
    const MAX_PREALLOC_BYTES: usize = 1 << 20;
    hint.unwrap_or(0)
        .min(MAX_PREALLOC_BYTES / size_of::<T>().max(1))
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
