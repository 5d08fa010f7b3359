//! The codec: every byte that crosses the sandbox boundary goes through here (bincode 2, serde).
//!
//! Decoding is bounded ([`MAX_DECODE_BYTES`]) so a hostile length prefix cannot make the
//! decoder allocate more than that, and it must consume the whole buffer: trailing bytes mean
//! the two sides disagree about the format, which is an error, not something to ignore.

use serde::{
    de::{DeserializeOwned, DeserializeSeed},
    Serialize,
};

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

/// Encodes `value` at the end of `buf`, so a caller can reuse one buffer for many values.
pub fn encode_to<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, buf, config())
        .map(|_| ())
        .map_err(|e| CodecError(format!("encode: {e}")))
}

/// Decodes a `T` that must span all of `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    crate::depth::start_decode();
    let (v, used) = bincode::serde::decode_from_slice(bytes, config()).map_err(|e| match e {
        // A message of ours (`depth`), shown as written rather than as bincode's Debug.
        bincode::error::DecodeError::OtherString(m) => CodecError(format!("decode: {m}")),
        e => CodecError(format!("decode: {e}")),
    })?;
    if used != bytes.len() {
        return Err(CodecError(format!(
            "decode: {} trailing bytes after a {}-byte value",
            bytes.len() - used,
            used
        )));
    }
    Ok(v)
}

/// Reads an encoded sequence (a `Vec<T>` as [`encode`] writes it) one element at a time, each
/// with a seed of the caller's: a caller that knows each element's type can decode it straight
/// into that type. [`SeqReader::finish`] then checks that nothing is left over.
pub struct SeqReader<'a> {
    bytes: &'a [u8],
    len: usize,
    read: usize,
}

impl<'a> SeqReader<'a> {
    /// Reads the sequence's length.
    pub fn new(bytes: &'a [u8]) -> Result<SeqReader<'a>, CodecError> {
        // A sequence starts with its length, encoded as a u64 is.
        let (len, used): (u64, usize) = bincode::serde::decode_from_slice(bytes, config())
            .map_err(|e| CodecError(format!("decode: {e}")))?;
        Ok(SeqReader {
            bytes: &bytes[used..],
            len: usize::try_from(len).map_err(|_| CodecError("decode: length overflow".into()))?,
            read: 0,
        })
    }

    /// How many elements the sequence has.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Decodes the next element with `seed`, or `None` past the last one.
    pub fn next_seed<S: DeserializeSeed<'a>>(
        &mut self,
        seed: S,
    ) -> Option<Result<S::Value, CodecError>> {
        if self.read == self.len {
            return None;
        }
        self.read += 1;
        crate::depth::start_decode();
        Some(
            bincode::serde::seed_decode_from_slice(seed, self.bytes, config())
                .map(|(v, used)| {
                    self.bytes = &self.bytes[used..];
                    v
                })
                .map_err(|e| match e {
                    // A message of the seed's own (a type mismatch): as it is.
                    bincode::error::DecodeError::OtherString(m) => CodecError(m),
                    e => CodecError(format!("decode: {e}")),
                }),
        )
    }

    /// Checks that every element was read and no bytes follow the last.
    pub fn finish(self) -> Result<(), CodecError> {
        if self.read != self.len {
            return Err(CodecError(format!(
                "decode: {} of {} elements left unread",
                self.len - self.read,
                self.len
            )));
        }
        if !self.bytes.is_empty() {
            return Err(CodecError(format!(
                "decode: {} trailing bytes after the sequence",
                self.bytes.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            any::<f64>()
                .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
                .prop_map(Value::Float),
            any::<bool>().prop_map(Value::Bool),
            ".{0,12}".prop_map(Value::Str),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
            Just(Value::Optional(None)),
            any::<u32>().prop_map(Value::Enum),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                proptest::collection::btree_map(".{0,6}", inner.clone(), 0..4).prop_map(Value::Map),
                inner
                    .clone()
                    .prop_map(|v| Value::Optional(Some(Box::new(v)))),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Record),
                (any::<u32>(), inner.clone()).prop_map(|(i, v)| Value::Union(i, Box::new(v))),
                proptest::collection::btree_map(any::<i64>(), inner, 0..4).prop_map(Value::IntMap),
            ]
        })
    }

    proptest! {
        #[test]
        fn values_round_trip(v in value()) {
            let bytes = encode(&v).unwrap();
            prop_assert_eq!(decode::<Value>(&bytes).unwrap(), v);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Value>(&bytes);
            let _ = decode::<crate::GraphSpec>(&bytes);
            let _ = decode::<crate::CallResult>(&bytes);
        }
    }

    /// Bytes for `depth` optionals nested in each other around an integer.
    fn deep_value_bytes(depth: usize) -> Vec<u8> {
        let mut v = Value::Int(1);
        for _ in 0..10 {
            v = Value::Optional(Some(Box::new(v)));
        }
        let ten = encode(&v).unwrap();
        // Each level is the same two-byte prefix; repeat it without building a deep value.
        let prefix = &ten[..ten.len() - encode(&Value::Int(1)).unwrap().len()];
        let per_level = &prefix[..prefix.len() / 10];
        let mut out = per_level.repeat(depth);
        out.extend(encode(&Value::Int(1)).unwrap());
        out
    }

    #[test]
    fn deeply_nested_bytes_are_an_error_not_a_stack_overflow() {
        let bytes = deep_value_bytes(1_000_000);
        let err = decode::<Value>(&bytes).unwrap_err();
        assert!(err.0.contains("nested deeper than"), "{err}");
        // Nesting within the bound still decodes.
        assert!(decode::<Value>(&deep_value_bytes(50)).is_ok());
    }

    /// Bytes of a `Vec<T>` of `n` copies of `one` (an encoded `T`), built without building
    /// the vector.
    fn repeated(n: usize, one: &[u8]) -> Vec<u8> {
        let mut bytes = encode(&(n as u64)).unwrap();
        bytes.reserve(n * one.len());
        for _ in 0..n {
            bytes.extend_from_slice(one);
        }
        bytes
    }

    const LIMIT: &str = "a graph/value of more than 256 MiB in memory in one message";

    #[test]
    fn a_message_of_too_many_values_is_an_error_not_gigabytes() {
        // A list of booleans, two bytes each when encoded and 32 in memory: one more than the
        // budget holds.
        let n = (crate::depth::MAX_DECODED_BYTES / std::mem::size_of::<Value>() as u64) as usize;
        let mut bytes = encode(&Value::List(Vec::new())).unwrap();
        bytes.pop(); // the empty list's length
        bytes.extend(repeated(n, &encode(&Value::Bool(false)).unwrap()));
        let err = decode::<Value>(&bytes).unwrap_err();
        assert!(err.0.contains(LIMIT), "{err}");
        // A large message within the bound still decodes, and says what it built.
        let ok = Value::List(vec![Value::Int(1); 100_000]);
        assert_eq!(decode::<Value>(&encode(&ok).unwrap()).unwrap(), ok);
        assert_eq!(crate::depth::last_decode_bytes(), ok.memory_bytes());
    }

    #[test]
    fn a_graph_of_many_tiny_nodes_is_an_error_not_gigabytes() {
        use crate::{GraphSpec, NodeSpec};
        // A node with an empty name, no inputs, no map, no ordering and no conditional: 5 bytes encoded, and more than a
        // hundred in memory. 32 MiB of them would be gigabytes decoded.
        let node = NodeSpec {
            entity: String::new(),
            inputs: Vec::new(),
            map: None,
            after: Vec::new(),
            conditional: None,
        };
        let one = encode(&node).unwrap();
        assert_eq!(one.len(), 5);
        let per_node = std::mem::size_of::<NodeSpec>() as u64;
        let n = (crate::depth::MAX_DECODED_BYTES / per_node) as usize + 1;
        let mut bytes = repeated(n, &one);
        bytes.extend(
            encode(&(
                None::<crate::Binding>,
                crate::FailurePolicy::FailFast,
                None::<String>,
            ))
            .unwrap(),
        );
        assert!(bytes.len() < 16 << 20, "{} bytes encoded", bytes.len());
        let err = decode::<GraphSpec>(&bytes).unwrap_err();
        assert!(err.0.contains(LIMIT), "{err}");
        // Within the budget, the same shape decodes.
        let mut bytes = repeated(1000, &one);
        bytes.extend(
            encode(&(
                None::<crate::Binding>,
                crate::FailurePolicy::FailFast,
                None::<String>,
            ))
            .unwrap(),
        );
        assert_eq!(decode::<GraphSpec>(&bytes).unwrap().nodes.len(), 1000);
    }

    #[test]
    fn many_empty_strings_are_charged_their_headers() {
        use crate::{Binding, NodeSpec};
        // A map's mapped names and a node's input names: one byte each encoded, 24 in memory.
        let mut node = encode(&String::new()).unwrap();
        let n = (crate::depth::MAX_DECODED_BYTES / 24) as usize + 1;
        node.extend(encode(&Vec::<(String, Binding)>::new()).unwrap());
        node.push(1); // Some(map)
        node.extend(repeated(n, &encode(&String::new()).unwrap()));
        node.extend(encode(&(None::<u32>, None::<f64>, None::<u32>)).unwrap());
        let err = decode::<NodeSpec>(&node).unwrap_err();
        assert!(err.0.contains(LIMIT), "{err}");
        // The same for the keys of a value's map (distinct keys: a map keeps one of each).
        let map = Value::Map((0..1000).map(|i| (i.to_string(), Value::Int(i))).collect());
        assert_eq!(decode::<Value>(&encode(&map).unwrap()).unwrap(), map);
        assert_eq!(crate::depth::last_decode_bytes(), map.memory_bytes());
    }

    #[test]
    fn encode_to_appends_what_encode_returns() {
        let v = Value::List(vec![Value::Str("abc".into()), Value::Int(-300)]);
        let mut buf = vec![9];
        encode_to(&v, &mut buf).unwrap();
        assert_eq!(buf[0], 9);
        assert_eq!(&buf[1..], &encode(&v).unwrap()[..]);
    }

    #[test]
    fn a_seq_reader_reads_what_encode_wrote_element_by_element() {
        use std::marker::PhantomData;
        let items = vec![Value::Int(1), Value::Str("two".into()), Value::Int(3)];
        let bytes = encode(&items).unwrap();
        let mut r = SeqReader::new(&bytes).unwrap();
        assert_eq!(r.len(), 3);
        let mut got = Vec::new();
        while let Some(v) = r.next_seed(PhantomData::<Value>) {
            got.push(v.unwrap());
        }
        r.finish().unwrap();
        assert_eq!(got, items);
        // Stopping early, or bytes after the last element, is an error.
        let mut r = SeqReader::new(&bytes).unwrap();
        r.next_seed(PhantomData::<Value>).unwrap().unwrap();
        assert!(r
            .finish()
            .unwrap_err()
            .0
            .contains("2 of 3 elements left unread"));
        let mut longer = bytes.clone();
        longer.push(0);
        let mut r = SeqReader::new(&longer).unwrap();
        while r.next_seed(PhantomData::<Value>).is_some() {}
        assert!(r.finish().unwrap_err().0.contains("1 trailing bytes"));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = encode(&Value::Int(7)).unwrap();
        bytes.push(0);
        assert!(decode::<Value>(&bytes).unwrap_err().0.contains("trailing"));
    }
}
