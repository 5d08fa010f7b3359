//! [`SfType`]: the Rust types that may cross a task boundary, and their sandflow [`Type`].

use crate::wire::{ListOf, OptionOf, OwnedList, OwnedOption};
use sandflow_contract::{wire, Type, Value};
use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;

/// A Rust type with a sandflow type: i64, f64, bool, String, [`Bytes`], `Vec<T>`,
/// maps with string or `i64` keys, `Option<T>`, and structs and unit-variant enums with `#[derive(SfType)]`.
///
/// ```
/// use sandflow::SfType;
/// #[derive(SfType, Debug, PartialEq)]
/// struct Song { title: String, words: Vec<String> }
///
/// let s = Song { title: "a".into(), words: vec!["b".into()] };
/// let v = SfType::into_value(s);
/// assert_eq!(Song::from_value(v).unwrap().title, "a");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross a sandflow task boundary",
    label = "not a sandflow type",
    note = "sandflow types: i64, f64, bool, String, sandflow::Bytes, Vec<T>, BTreeMap<String | i64, T>, HashMap<String | i64, T>, Option<T>, and structs or unit-variant enums with #[derive(SfType)]"
)]
pub trait SfType: Sized {
    fn sf_type() -> Type;
    fn into_value(self) -> Value;
    /// Reads a value of [`SfType::sf_type`]; the error says what was found instead.
    fn from_value(v: Value) -> Result<Self, String>;

    /// Reads a value of this type from the encoded form of its [`Value`] (what a task's inputs
    /// arrive as). The default goes through `Value`; scalars, lists and optionals read their
    /// encoding directly, without building the `Value`. Not needed in user code.
    #[doc(hidden)]
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = <Value as serde::Deserialize>::deserialize(d)?;
        Self::from_value(v).map_err(|e| de::Error::custom(crate::wire::at_path(e)))
    }

    /// Writes this value exactly as its [`Value`] would be encoded (what a task's output is
    /// sent as). The default goes through `Value`. Not needed in user code.
    #[doc(hidden)]
    fn serialize_owned<S: Serializer>(self, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.into_value(), s)
    }
}

fn mismatch<T>(expected: &Type, found: &Value) -> Result<T, String> {
    Err(format!("expected {expected}, found {}", found.kind()))
}

macro_rules! scalar {
    ($t:ty, $variant:ident, $ty:expr, $tag:ident) => {
        impl SfType for $t {
            fn sf_type() -> Type {
                $ty
            }
            fn into_value(self) -> Value {
                Value::$variant(self)
            }
            fn from_value(v: Value) -> Result<Self, String> {
                match v {
                    Value::$variant(x) => Ok(x),
                    other => mismatch(&$ty, &other),
                }
            }
            fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                crate::wire::expect(d, wire::$tag, Self::sf_type, PhantomData::<$t>)
            }
            fn serialize_owned<S: Serializer>(self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_newtype_variant(wire::VALUE, wire::$tag, stringify!($variant), &self)
            }
        }
    };
}

scalar!(i64, Int, Type::Int, INT);
scalar!(f64, Float, Type::Float, FLOAT);
scalar!(bool, Bool, Type::Bool, BOOL);
scalar!(String, Str, Type::Str, STR);

/// Raw bytes (`Vec<u8>` would be a list of integers).
///
/// ```
/// use sandflow::{task, Bytes};
/// #[task]
/// pub fn checksum(data: Bytes) -> i64 {
///     data.0.iter().map(|b| *b as i64).sum()
/// }
/// # fn main() { assert_eq!(checksum(Bytes(vec![1, 2, 3])), 6); }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl SfType for Bytes {
    fn sf_type() -> Type {
        Type::Bytes
    }
    fn into_value(self) -> Value {
        Value::Bytes(self.0)
    }
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Bytes(b) => Ok(Bytes(b)),
            other => mismatch(&Type::Bytes, &other),
        }
    }
}

impl<T: SfType> SfType for Vec<T> {
    fn sf_type() -> Type {
        Type::List(Box::new(T::sf_type()))
    }
    fn into_value(self) -> Value {
        Value::List(self.into_iter().map(T::into_value).collect())
    }
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::List(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, x)| T::from_value(x).map_err(|e| format!("[{i}]: {e}")))
                .collect(),
            other => mismatch(&Self::sf_type(), &other),
        }
    }
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::wire::expect(d, wire::LIST, Self::sf_type, ListOf::<T>(PhantomData))
    }
    fn serialize_owned<S: Serializer>(self, s: S) -> Result<S::Ok, S::Error> {
        let items = OwnedList(Cell::new(Some(self)));
        s.serialize_newtype_variant(wire::VALUE, wire::LIST, "List", &items)
    }
}

impl<T: SfType> SfType for Option<T> {
    fn sf_type() -> Type {
        Type::Optional(Box::new(T::sf_type()))
    }
    fn into_value(self) -> Value {
        Value::Optional(self.map(|x| Box::new(x.into_value())))
    }
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Optional(None) => Ok(None),
            Value::Optional(Some(x)) => T::from_value(*x).map(Some),
            other => mismatch(&Self::sf_type(), &other),
        }
    }
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::wire::expect(d, wire::OPTIONAL, Self::sf_type, OptionOf::<T>(PhantomData))
    }
    fn serialize_owned<S: Serializer>(self, s: S) -> Result<S::Ok, S::Error> {
        let x = OwnedOption(Cell::new(Some(self)));
        s.serialize_newtype_variant(wire::VALUE, wire::OPTIONAL, "Optional", &x)
    }
}

impl<T: SfType> SfType for BTreeMap<String, T> {
    fn sf_type() -> Type {
        Type::Map(Box::new(T::sf_type()))
    }
    fn into_value(self) -> Value {
        Value::Map(self.into_iter().map(|(k, v)| (k, v.into_value())).collect())
    }
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Map(m) => m
                .into_iter()
                .map(|(k, x)| T::from_value(x).map(|x| (k, x)))
                .collect(),
            other => mismatch(&Self::sf_type(), &other),
        }
    }
}

impl<T: SfType> SfType for HashMap<String, T> {
    fn sf_type() -> Type {
        Type::Map(Box::new(T::sf_type()))
    }
    fn into_value(self) -> Value {
        Value::Map(self.into_iter().map(|(k, v)| (k, v.into_value())).collect())
    }
    fn from_value(v: Value) -> Result<Self, String> {
        BTreeMap::<String, T>::from_value(v).map(|m| m.into_iter().collect())
    }
}

impl<T: SfType> SfType for BTreeMap<i64, T> {
    fn sf_type() -> Type {
        Type::IntMap(Box::new(T::sf_type()))
    }
    fn into_value(self) -> Value {
        Value::IntMap(self.into_iter().map(|(k, v)| (k, v.into_value())).collect())
    }
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::IntMap(m) => m
                .into_iter()
                .map(|(k, x)| {
                    T::from_value(x)
                        .map(|x| (k, x))
                        .map_err(|e| format!("[{k}]: {e}"))
                })
                .collect(),
            other => mismatch(&Self::sf_type(), &other),
        }
    }
}

impl<T: SfType> SfType for HashMap<i64, T> {
    fn sf_type() -> Type {
        Type::IntMap(Box::new(T::sf_type()))
    }
    fn into_value(self) -> Value {
        Value::IntMap(self.into_iter().map(|(k, v)| (k, v.into_value())).collect())
    }
    fn from_value(v: Value) -> Result<Self, String> {
        BTreeMap::<i64, T>::from_value(v).map(|m| m.into_iter().collect())
    }
}

/// A tuple is a record whose fields are named by position (`0`, `1`, ..), and whose type is
/// named as Rust writes it (`(f64, f64)`): an entity may return several values as a tuple.
macro_rules! tuple_type {
    ($n:literal; $($t:ident $i:tt),+) => {
        impl<$($t: SfType),+> SfType for ($($t,)+) {
            fn sf_type() -> Type {
                let fields = vec![$((stringify!($i).to_string(), $t::sf_type())),+];
                let names: Vec<String> = fields.iter().map(|(_, t)| t.to_string()).collect();
                Type::Record(sandflow_contract::RecordType {
                    name: format!("({})", names.join(", ")),
                    fields,
                })
            }
            fn into_value(self) -> Value {
                Value::Record(vec![$(self.$i.into_value()),+])
            }
            fn from_value(v: Value) -> Result<Self, String> {
                match v {
                    Value::Record(vals) if vals.len() == $n => {
                        let mut it = vals.into_iter();
                        Ok(($(
                            $t::from_value(it.next().expect("length checked"))
                                .map_err(|e| format!(".{}: {e}", $i))?,
                        )+))
                    }
                    other => mismatch(&Self::sf_type(), &other),
                }
            }
        }
    };
}

tuple_type!(2; A 0, B 1);
tuple_type!(3; A 0, B 1, C 2);
tuple_type!(4; A 0, B 1, C 2, D 3);
