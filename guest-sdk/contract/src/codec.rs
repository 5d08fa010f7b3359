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

/// Encodes `value` at the end of `buf`, so a caller can reuse one buffer for many values.
pub fn encode_to<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, buf, config())
        .map(|_| ())
        .map_err(|e| CodecError(format!("encode: {e}")))
}

/// Decodes a `T` that must span all of `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    crate::depth::start_decode();
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
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                proptest::collection::btree_map(".{0,6}", inner.clone(), 0..4).prop_map(Value::Map),
                inner
                    .clone()
                    .prop_map(|v| Value::Optional(Some(Box::new(v)))),
                proptest::collection::vec(inner, 0..4).prop_map(Value::Record),
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

    #[test]
    fn a_message_of_too_many_values_is_an_error_not_gigabytes() {
        // A list of MAX_DECODED_VALUES + 1 booleans: two bytes each when encoded.
        let n = crate::depth::MAX_DECODED_VALUES as usize + 1;
        let mut bytes = encode(&Value::List(Vec::new())).unwrap();
        bytes.pop(); // the empty list's length
        bytes.extend(encode(&(n as u64)).unwrap());
        let one = encode(&Value::Bool(false)).unwrap();
        for _ in 0..n {
            bytes.extend_from_slice(&one);
        }
        let err = decode::<Value>(&bytes).unwrap_err();
        assert!(err.0.contains("more than 8388608 values"), "{err}");
        // A large message within the bound still decodes.
        let ok = Value::List(vec![Value::Int(1); 100_000]);
        assert_eq!(decode::<Value>(&encode(&ok).unwrap()).unwrap(), ok);
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
    fn trailing_bytes_are_an_error() {
        let mut bytes = encode(&Value::Int(7)).unwrap();
        bytes.push(0);
        assert!(decode::<Value>(&bytes).unwrap_err().0.contains("trailing"));
    }
}
