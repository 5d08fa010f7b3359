//! How [`Value`](crate::Value) and [`CallResult`](crate::CallResult) are laid out as serde
//! enums: their names and variant indices, for code that writes or reads a value of a type it
//! knows without building a `Value` first (the guest SDK's typed fast path). The derived
//! implementations must agree with these; the tests check every variant.

/// The name `Value` serializes under.
pub const VALUE: &str = "Value";
/// `Value`'s variants, in declaration order (the index is the variant's tag).
pub const VALUE_VARIANTS: &[&str] = &[
    "Int", "Float", "Bool", "Str", "Bytes", "List", "Map", "Optional", "Record", "Enum", "IntMap",
    "Union",
];
pub const INT: u32 = 0;
pub const FLOAT: u32 = 1;
pub const BOOL: u32 = 2;
pub const STR: u32 = 3;
pub const BYTES: u32 = 4;
pub const LIST: u32 = 5;
pub const MAP: u32 = 6;
pub const OPTIONAL: u32 = 7;
pub const RECORD: u32 = 8;
pub const ENUM: u32 = 9;
pub const INT_MAP: u32 = 10;
pub const UNION: u32 = 11;

/// The name `CallResult` serializes under, and its `Output` variant.
pub const CALL_RESULT: &str = "CallResult";
pub const OUTPUT: u32 = 0;

/// [`Value::kind`](crate::Value::kind) of the variant with tag `tag`, for messages.
pub fn kind(tag: u32) -> &'static str {
    match tag {
        INT => "an integer",
        FLOAT => "a float",
        BOOL => "a bool",
        STR => "a string",
        BYTES => "bytes",
        LIST => "a list",
        MAP => "a map",
        OPTIONAL => "an optional",
        RECORD => "a record",
        ENUM => "an enum variant",
        INT_MAP => "a map with integer keys",
        UNION => "a tagged union variant",
        _ => "an unknown variant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{codec, CallResult, Value};
    use serde::ser::{Serialize, Serializer};
    use std::collections::BTreeMap;

    /// Serializes the payload of `v` under the tag `wire` says it has.
    struct ByTag<'a>(&'a Value);

    impl Serialize for ByTag<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            macro_rules! tagged {
                ($tag:expr, $x:expr) => {
                    s.serialize_newtype_variant(VALUE, $tag, VALUE_VARIANTS[$tag as usize], $x)
                };
            }
            match self.0 {
                Value::Int(x) => tagged!(INT, x),
                Value::Float(x) => tagged!(FLOAT, x),
                Value::Bool(x) => tagged!(BOOL, x),
                Value::Str(x) => tagged!(STR, x),
                Value::Bytes(x) => tagged!(BYTES, x),
                Value::List(x) => tagged!(LIST, x),
                Value::Map(x) => tagged!(MAP, x),
                Value::Optional(x) => tagged!(OPTIONAL, x),
                Value::Record(x) => tagged!(RECORD, x),
                Value::Enum(x) => tagged!(ENUM, x),
                Value::IntMap(x) => tagged!(INT_MAP, x),
                Value::Union(i, x) => {
                    use serde::ser::SerializeTupleVariant;
                    let mut t = s.serialize_tuple_variant(VALUE, UNION, "Union", 2)?;
                    t.serialize_field(i)?;
                    t.serialize_field(x)?;
                    t.end()
                }
            }
        }
    }

    #[test]
    fn every_value_variant_has_the_tag_and_kind_listed_here() {
        let values = [
            Value::Int(-3),
            Value::Float(1.5),
            Value::Bool(true),
            Value::Str("s".into()),
            Value::Bytes(vec![1, 2]),
            Value::List(vec![Value::Int(1)]),
            Value::Map(BTreeMap::from([("k".into(), Value::Int(1))])),
            Value::Optional(Some(Box::new(Value::Int(1)))),
            Value::Record(vec![Value::Bool(false)]),
            Value::Enum(1),
            Value::IntMap(BTreeMap::from([(-1, Value::Int(1))])),
            Value::Union(1, Box::new(Value::Float(1.5))),
        ];
        for (tag, v) in values.iter().enumerate() {
            assert_eq!(
                codec::encode(v).unwrap(),
                codec::encode(&ByTag(v)).unwrap(),
                "{v:?}"
            );
            assert_eq!(v.tag(), tag as u32);
        }
        assert_eq!(values.len(), VALUE_VARIANTS.len());
    }

    #[test]
    fn output_is_call_result_variant_zero() {
        struct Out<'a>(&'a Value);
        impl Serialize for Out<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_newtype_variant(CALL_RESULT, OUTPUT, "Output", &Some(self.0))
            }
        }
        let v = Value::Int(7);
        assert_eq!(
            codec::encode(&CallResult::Output(Some(v.clone()))).unwrap(),
            codec::encode(&Out(&v)).unwrap()
        );
    }
}
