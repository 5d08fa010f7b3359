//! The value model ([`Value`]) and the type model ([`Type`]) every interface is written in.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A static type of an input or output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Type {
    Int,
    Float,
    Bool,
    Str,
    Bytes,
    List(Box<Type>),
    /// A map with string keys.
    Map(Box<Type>),
    Optional(Box<Type>),
    Record(RecordType),
    Enum(EnumType),
    /// A map with integer keys.
    IntMap(Box<Type>),
    /// A tagged union: a user enum whose variants each hold one value.
    Union(UnionType),
}

/// A user enum of unit variants: its name and its variants' names in declaration order. Its
/// values are variant indices ([`Value::Enum`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnumType {
    #[serde(deserialize_with = "crate::depth::heap_string")]
    pub name: String,
    #[serde(deserialize_with = "crate::depth::strings")]
    pub variants: Vec<String>,
}

impl EnumType {
    /// `Coffee (one of Latte, Espresso)`, for messages.
    pub fn listing(&self) -> String {
        format!("{} (one of {})", self.name, self.variants.join(", "))
    }
}

/// A user enum whose variants each hold one value (`enum Shape { Circle(f64), Square(Side) }`):
/// its name and its variants' names and types, in declaration order. Its values are
/// [`Value::Union`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnionType {
    #[serde(deserialize_with = "crate::depth::heap_string")]
    pub name: String,
    #[serde(deserialize_with = "crate::depth::pairs")]
    pub variants: Vec<(String, Type)>,
}

impl UnionType {
    /// `Shape (one of Circle(f64), Square(Side))`, for messages.
    pub fn listing(&self) -> String {
        let vs: Vec<String> = self
            .variants
            .iter()
            .map(|(n, t)| format!("{n}({t})"))
            .collect();
        format!("{} (one of {})", self.name, vs.join(", "))
    }
}

/// A user struct: its name and its fields in declaration order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordType {
    #[serde(deserialize_with = "crate::depth::heap_string")]
    pub name: String,
    #[serde(deserialize_with = "crate::depth::pairs")]
    pub fields: Vec<(String, Type)>,
}

/// A runtime value. Records hold their fields positionally, in the order of their
/// [`RecordType`]; the type gives the names.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Optional(Option<Box<Value>>),
    Record(Vec<Value>),
    /// A variant of an [`EnumType`], by its index in `variants` (the type gives the name).
    Enum(u32),
    IntMap(BTreeMap<i64, Value>),
    /// A variant of a [`UnionType`], by its index in `variants`, and the value it holds.
    Union(u32, Box<Value>),
}

// Decoding goes through `depth::nested`, so hostile bytes cannot nest without bound, and
// charges what it builds to the decode's memory budget (`depth::charge`).
#[derive(Deserialize)]
#[serde(remote = "Type")]
enum TypeDef {
    Int,
    Float,
    Bool,
    Str,
    Bytes,
    List(Box<Type>),
    Map(Box<Type>),
    Optional(Box<Type>),
    Record(RecordType),
    Enum(EnumType),
    IntMap(Box<Type>),
    Union(UnionType),
}

impl<'de> Deserialize<'de> for Type {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::depth::charge::<D::Error>(std::mem::size_of::<Type>())?;
        crate::depth::nested(d, TypeDef::deserialize)
    }
}

#[derive(Deserialize)]
#[serde(remote = "Value")]
enum ValueDef {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(#[serde(deserialize_with = "crate::depth::heap_string")] String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Map(#[serde(deserialize_with = "crate::depth::string_map")] BTreeMap<String, Value>),
    Optional(Option<Box<Value>>),
    Record(Vec<Value>),
    Enum(u32),
    IntMap(#[serde(deserialize_with = "crate::depth::int_map")] BTreeMap<i64, Value>),
    Union(u32, Box<Value>),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::depth::charge::<D::Error>(std::mem::size_of::<Value>())?;
        let v = crate::depth::nested(d, ValueDef::deserialize)?;
        // Bytes take in memory what they take encoded: charged once read.
        if let Value::Bytes(b) = &v {
            crate::depth::charge::<D::Error>(b.len())?;
        }
        Ok(v)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Int => f.write_str("i64"),
            Type::Float => f.write_str("f64"),
            Type::Bool => f.write_str("bool"),
            Type::Str => f.write_str("string"),
            Type::Bytes => f.write_str("bytes"),
            Type::List(t) => write!(f, "list<{t}>"),
            Type::Map(t) => write!(f, "map<string, {t}>"),
            Type::Optional(t) => write!(f, "option<{t}>"),
            Type::Record(r) => f.write_str(&r.name),
            Type::Enum(e) => f.write_str(&e.name),
            Type::Union(u) => f.write_str(&u.name),
            Type::IntMap(t) => write!(f, "map<i64, {t}>"),
        }
    }
}

impl Value {
    /// A short name of this value's shape, for error messages.
    pub fn kind(&self) -> &'static str {
        crate::wire::kind(self.tag())
    }

    /// This value's variant tag (see [`crate::wire`]).
    pub fn tag(&self) -> u32 {
        use crate::wire::*;
        match self {
            Value::Int(_) => INT,
            Value::Float(_) => FLOAT,
            Value::Bool(_) => BOOL,
            Value::Str(_) => STR,
            Value::Bytes(_) => BYTES,
            Value::List(_) => LIST,
            Value::Map(_) => MAP,
            Value::Optional(_) => OPTIONAL,
            Value::Record(_) => RECORD,
            Value::Enum(_) => ENUM,
            Value::IntMap(_) => INT_MAP,
            Value::Union(..) => UNION,
        }
    }

    /// Checks that this value has type `ty`, naming the first place it does not.
    pub fn check(&self, ty: &Type) -> Result<(), TypeMismatch> {
        // The path is built only on the way out of a mismatch: checking a value that has its
        // type (every task output, every element of a map) formats and allocates nothing.
        self.check_inner(ty).map_err(|mut e| {
            e.path = e.path_rev.into_iter().rev().collect();
            e.path_rev = Vec::new();
            e
        })
    }

    fn check_inner(&self, ty: &Type) -> Result<(), TypeMismatch> {
        let ok = match (self, ty) {
            (Value::Int(_), Type::Int)
            | (Value::Float(_), Type::Float)
            | (Value::Bool(_), Type::Bool)
            | (Value::Str(_), Type::Str)
            | (Value::Bytes(_), Type::Bytes) => true,
            (Value::List(items), Type::List(t)) => {
                for (i, v) in items.iter().enumerate() {
                    v.check_inner(t).map_err(|e| e.inside(format!("[{i}]")))?;
                }
                true
            }
            (Value::Map(m), Type::Map(t)) => {
                for (k, v) in m {
                    v.check_inner(t).map_err(|e| e.inside(format!("[{k:?}]")))?;
                }
                true
            }
            (Value::IntMap(m), Type::IntMap(t)) => {
                for (k, v) in m {
                    v.check_inner(t).map_err(|e| e.inside(format!("[{k}]")))?;
                }
                true
            }
            (Value::Optional(None), Type::Optional(_)) => true,
            (Value::Optional(Some(v)), Type::Optional(t)) => return v.check_inner(t),
            (Value::Record(vals), Type::Record(r)) => {
                if vals.len() != r.fields.len() {
                    return Err(TypeMismatch::new(
                        ty.to_string(),
                        format!("a record with {} fields", vals.len()),
                    ));
                }
                for (v, (name, t)) in vals.iter().zip(&r.fields) {
                    v.check_inner(t).map_err(|e| e.inside(format!(".{name}")))?;
                }
                true
            }
            (Value::Enum(i), Type::Enum(e)) => {
                if (*i as usize) < e.variants.len() {
                    true
                } else {
                    return Err(TypeMismatch::new(
                        e.listing(),
                        format!("variant index {i} (it has {})", e.variants.len()),
                    ));
                }
            }
            (Value::Union(i, v), Type::Union(u)) => match u.variants.get(*i as usize) {
                Some((name, t)) => {
                    return v.check_inner(t).map_err(|e| e.inside(format!(".{name}")))
                }
                None => {
                    return Err(TypeMismatch::new(
                        u.listing(),
                        format!("variant index {i} (it has {})", u.variants.len()),
                    ))
                }
            },
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(TypeMismatch::new(ty.to_string(), self.kind().to_string()))
        }
    }
}

/// A value that does not have the type it should, and where inside it (`[3].name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeMismatch {
    /// Where in the value, empty for the value itself: `[2]`, `.title`, `["key"]`.
    pub path: String,
    pub expected: String,
    pub found: String,
    /// The path's segments, innermost first, while the error travels out of `check`.
    path_rev: Vec<String>,
}

impl TypeMismatch {
    fn new(expected: String, found: String) -> TypeMismatch {
        TypeMismatch {
            path: String::new(),
            expected,
            found,
            path_rev: Vec::new(),
        }
    }

    fn inside(mut self, segment: String) -> TypeMismatch {
        self.path_rev.push(segment);
        self
    }
}

impl fmt::Display for TypeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "expected {}, found {}", self.expected, self.found)
        } else {
            write!(
                f,
                "at {}: expected {}, found {}",
                self.path, self.expected, self.found
            )
        }
    }
}

impl std::error::Error for TypeMismatch {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_the_element_that_is_wrong() {
        let v = Value::List(vec![Value::Int(1), Value::Str("x".into())]);
        let err = v.check(&Type::List(Box::new(Type::Int))).unwrap_err();
        assert_eq!(err.to_string(), "at [1]: expected i64, found a string");
    }

    #[test]
    fn records_check_field_by_field() {
        let ty = Type::Record(RecordType {
            name: "Song".into(),
            fields: vec![("title".into(), Type::Str), ("n".into(), Type::Int)],
        });
        assert!(Value::Record(vec![Value::Str("a".into()), Value::Int(1)])
            .check(&ty)
            .is_ok());
        let err = Value::Record(vec![Value::Str("a".into()), Value::Bool(true)])
            .check(&ty)
            .unwrap_err();
        assert_eq!(err.path, ".n");
    }

    #[test]
    fn nested_paths_read_outermost_first() {
        let song = RecordType {
            name: "Song".into(),
            fields: vec![("tags".into(), Type::List(Box::new(Type::Str)))],
        };
        let ty = Type::Map(Box::new(Type::List(Box::new(Type::Record(song)))));
        let bad = Value::Record(vec![Value::List(vec![
            Value::Str("a".into()),
            Value::Int(7),
        ])]);
        let good = Value::Record(vec![Value::List(vec![])]);
        let v = Value::Map([("k".to_string(), Value::List(vec![good, bad]))].into());
        let err = v.check(&ty).unwrap_err();
        assert_eq!(err.path, r#"["k"][1].tags[1]"#);
        assert_eq!(
            err.to_string(),
            r#"at ["k"][1].tags[1]: expected string, found an integer"#
        );
    }

    #[test]
    fn integer_keyed_maps_check_each_value_naming_its_key() {
        let ty = Type::IntMap(Box::new(Type::Str));
        let v = Value::IntMap([(-4, Value::Str("a".into())), (7, Value::Int(1))].into());
        assert_eq!(
            v.check(&ty).unwrap_err().to_string(),
            "at [7]: expected string, found an integer"
        );
        let err = Value::Map(BTreeMap::new()).check(&ty).unwrap_err();
        assert_eq!(err.to_string(), "expected map<i64, string>, found a map");
    }

    #[test]
    fn enum_types_round_trip_through_the_codec() {
        let ty = Type::List(Box::new(Type::Enum(EnumType {
            name: "Coffee".into(),
            variants: vec!["Latte".into(), "Espresso".into()],
        })));
        let bytes = crate::codec::encode(&ty).unwrap();
        assert_eq!(crate::codec::decode::<Type>(&bytes).unwrap(), ty);
    }

    fn shape() -> Type {
        Type::Union(UnionType {
            name: "Shape".into(),
            variants: vec![("Circle".into(), Type::Float), ("Square".into(), Type::Int)],
        })
    }

    #[test]
    fn unions_check_the_variant_and_the_value_it_holds() {
        let ty = shape();
        assert!(Value::Union(0, Box::new(Value::Float(1.5)))
            .check(&ty)
            .is_ok());
        let err = Value::Union(1, Box::new(Value::Float(1.5)))
            .check(&ty)
            .unwrap_err();
        assert_eq!(err.to_string(), "at .Square: expected i64, found a float");
        let err = Value::Union(2, Box::new(Value::Int(1)))
            .check(&ty)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected Shape (one of Circle(f64), Square(i64)), found variant index 2 (it has 2)"
        );
        let err = Value::Enum(0).check(&ty).unwrap_err();
        assert_eq!(err.to_string(), "expected Shape, found an enum variant");
        let bytes = crate::codec::encode(&ty).unwrap();
        assert_eq!(crate::codec::decode::<Type>(&bytes).unwrap(), ty);
    }

    #[test]
    fn enums_check_the_variant_index_is_in_range() {
        let ty = Type::Enum(EnumType {
            name: "Coffee".into(),
            variants: vec!["Latte".into(), "Espresso".into()],
        });
        assert!(Value::Enum(1).check(&ty).is_ok());
        let err = Value::Enum(2).check(&ty).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected Coffee (one of Latte, Espresso), found variant index 2 (it has 2)"
        );
        let err = Value::Str("Latte".into()).check(&ty).unwrap_err();
        assert_eq!(err.to_string(), "expected Coffee, found a string");
        let err = Value::Enum(0).check(&Type::Int).unwrap_err();
        assert_eq!(err.to_string(), "expected i64, found an enum variant");
    }
}
