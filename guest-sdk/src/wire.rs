//! The typed fast path: reading a task's inputs and writing its output straight from and to
//! their encoded [`Value`] form, without building the `Value` tree in between. A list of a
//! hundred thousand integers is then decoded into a `Vec<i64>` directly, instead of into a
//! `Vec<Value>` that is converted element by element and dropped.
//!
//! Everything here goes through serde, with the names and tags of [`sandflow_contract::wire`],
//! so the bytes are exactly those of the `Value` path (the tests compare them); types without
//! a fast path ([`SfType`]'s default methods) go through `Value`.

use crate::SfType;
use sandflow_contract::{wire, Type};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::ser::{self, Serialize, SerializeSeq, Serializer};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;

thread_local! {
    /// The list indices above the element being decoded, for messages (`[3]: [0]: ...`).
    static PATH: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// `message` about the value being decoded, prefixed with where it is in its input.
pub(crate) fn at_path(message: impl fmt::Display) -> String {
    PATH.with(|p| {
        let mut s = String::new();
        for i in p.borrow().iter() {
            s.push_str(&format!("[{i}]: "));
        }
        s.push_str(&message.to_string());
        s
    })
}

/// Decodes a `T` with [`SfType::decode`].
pub struct Typed<T>(PhantomData<T>);

impl<T> Typed<T> {
    pub fn new() -> Self {
        Typed(PhantomData)
    }
}

impl<T> Default for Typed<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'de, T: SfType> DeserializeSeed<'de> for Typed<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::decode(d)
    }
}

/// Reads a `Value` whose variant must be `tag` (a value of type `ty`), and its payload with
/// `seed`.
pub(crate) fn expect<'de, D, S>(
    d: D,
    tag: u32,
    ty: fn() -> Type,
    seed: S,
) -> Result<S::Value, D::Error>
where
    D: Deserializer<'de>,
    S: DeserializeSeed<'de>,
{
    d.deserialize_enum(wire::VALUE, wire::VALUE_VARIANTS, Expect { tag, ty, seed })
}

struct Expect<S> {
    tag: u32,
    ty: fn() -> Type,
    seed: S,
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Expect<S> {
    type Value = S::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a value of type {}", (self.ty)())
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<S::Value, A::Error> {
        let (tag, variant) = data.variant_seed(Tag)?;
        if tag != self.tag {
            return Err(de::Error::custom(at_path(format_args!(
                "expected {}, found {}",
                (self.ty)(),
                wire::kind(tag)
            ))));
        }
        variant.newtype_variant_seed(self.seed)
    }
}

/// A variant's tag, as an index (or, from a self-describing format, a name).
struct Tag;

impl<'de> DeserializeSeed<'de> for Tag {
    type Value = u32;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for Tag {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Value variant")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::custom(format!("no Value variant {v}")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
        wire::VALUE_VARIANTS
            .iter()
            .position(|n| *n == v)
            .map(|i| i as u32)
            .ok_or_else(|| E::unknown_variant(v, wire::VALUE_VARIANTS))
    }
}

/// A list's elements, each decoded as a `T`.
pub(crate) struct ListOf<T>(pub PhantomData<T>);

impl<'de, T: SfType> DeserializeSeed<'de> for ListOf<T> {
    type Value = Vec<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: SfType> Visitor<'de> for ListOf<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list<{}>", T::sf_type())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // The hint is the encoded length: bound what it may reserve up front.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        loop {
            PATH.with(|p| p.borrow_mut().push(out.len()));
            let next = seq.next_element_seed(Typed::<T>::new());
            PATH.with(|p| p.borrow_mut().pop());
            match next? {
                Some(x) => out.push(x),
                None => return Ok(out),
            }
        }
    }
}

/// An optional's payload, decoded as a `T` when present.
pub(crate) struct OptionOf<T>(pub PhantomData<T>);

impl<'de, T: SfType> DeserializeSeed<'de> for OptionOf<T> {
    type Value = Option<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, T: SfType> Visitor<'de> for OptionOf<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an option<{}>", T::sf_type())
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        T::decode(d).map(Some)
    }
}

/// Serializes the `T` it holds once, by value, with [`SfType::serialize_owned`]: what lets an
/// output be written without cloning it (serde's `Serialize` takes `&self`).
pub(crate) struct Owned<T>(pub Cell<Option<T>>);

impl<T> Owned<T> {
    pub(crate) fn new(v: T) -> Self {
        Owned(Cell::new(Some(v)))
    }
}

impl<T: SfType> Serialize for Owned<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.take() {
            Some(v) => v.serialize_owned(s),
            None => Err(ser::Error::custom("a value serialized twice")),
        }
    }
}

/// A list's elements, serialized by value.
pub(crate) struct OwnedList<T>(pub Cell<Option<Vec<T>>>);

impl<T: SfType> Serialize for OwnedList<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let items = self
            .0
            .take()
            .ok_or_else(|| ser::Error::custom("a value serialized twice"))?;
        let mut seq = s.serialize_seq(Some(items.len()))?;
        for x in items {
            seq.serialize_element(&Owned::new(x))?;
        }
        seq.end()
    }
}

/// An optional's payload, serialized by value.
pub(crate) struct OwnedOption<T>(pub Cell<Option<Option<T>>>);

impl<T: SfType> Serialize for OwnedOption<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.take() {
            Some(None) => s.serialize_none(),
            Some(Some(x)) => s.serialize_some(&Owned::new(x)),
            None => Err(ser::Error::custom("a value serialized twice")),
        }
    }
}

/// `CallResult::Output(Some(value))`, with the value serialized by value.
pub(crate) struct Output<T>(pub Cell<Option<T>>);

impl<T: SfType> Serialize for Output<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self
            .0
            .take()
            .ok_or_else(|| ser::Error::custom("a value serialized twice"))?;
        s.serialize_newtype_variant(
            wire::CALL_RESULT,
            wire::OUTPUT,
            "Output",
            &OwnedOption(Cell::new(Some(Some(v)))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::Args;
    use crate::Bytes;
    use proptest::prelude::*;
    use sandflow_contract::{codec, CallResult, Value};
    use std::collections::BTreeMap;

    /// The typed path writes the bytes the `Value` path writes, and reads back what it wrote.
    fn round_trip<T: SfType + Clone + PartialEq + fmt::Debug>(x: T) {
        let via_value = codec::encode(&CallResult::Output(Some(x.clone().into_value()))).unwrap();
        let typed = codec::encode(&Output(Cell::new(Some(x.clone())))).unwrap();
        assert_eq!(typed, via_value, "{x:?}");
        let inputs = codec::encode(&vec![x.clone().into_value()]).unwrap();
        let mut args = Args::new(&inputs, "t", 1).unwrap();
        assert_eq!(args.next::<T>("a").unwrap(), x);
        args.finish().unwrap();
    }

    proptest! {
        #[test]
        fn scalars(i in any::<i64>(), f in -1e300f64..1e300, b in any::<bool>(), s in ".{0,12}") {
            round_trip(i);
            round_trip(f);
            round_trip(b);
            round_trip(s);
        }

        #[test]
        fn lists_and_optionals(
            l in proptest::collection::vec(proptest::collection::vec(any::<i64>(), 0..5), 0..5),
            o in proptest::option::of(".{0,5}"),
            lo in proptest::collection::vec(proptest::option::of(any::<i64>()), 0..5),
            ol in proptest::option::of(proptest::collection::vec(any::<bool>(), 0..4)),
        ) {
            round_trip(l);
            round_trip(o);
            round_trip(lo);
            round_trip(ol);
        }

        #[test]
        fn types_without_a_fast_path_go_through_value(
            m in proptest::collection::btree_map(".{0,4}", any::<i64>(), 0..4),
            bytes in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            round_trip(m.clone());
            round_trip(Bytes(bytes));
            // ... also inside a list, which has one.
            round_trip(vec![m]);
        }
    }

    fn read<T: SfType>(inputs: Vec<Value>, params: usize) -> Result<T, String> {
        let bytes = codec::encode(&inputs).unwrap();
        let mut args = Args::new(&bytes, "t", params)?;
        let v = args.next::<T>("a")?;
        args.finish()?;
        Ok(v)
    }

    #[test]
    fn a_mismatch_names_the_input_the_element_and_what_was_found() {
        let e = read::<i64>(vec![Value::Str("x".into())], 1).unwrap_err();
        assert_eq!(e, "input `a`: expected i64, found a string");
        let e = read::<Vec<i64>>(vec![Value::List(vec![Value::Int(1), Value::Bool(true)])], 1)
            .unwrap_err();
        assert_eq!(e, "input `a`: [1]: expected i64, found a bool");
        let e = read::<Option<i64>>(vec![Value::Int(1)], 1).unwrap_err();
        assert_eq!(e, "input `a`: expected option<i64>, found an integer");
        let m = read::<BTreeMap<String, i64>>(vec![Value::Int(1)], 1).unwrap_err();
        assert_eq!(m, "input `a`: expected map<string, i64>, found an integer");
    }

    #[test]
    fn the_wrong_number_of_inputs_is_an_error() {
        let e = read::<i64>(vec![Value::Int(1), Value::Int(2)], 1).unwrap_err();
        assert_eq!(e, "t takes 1 inputs, the host sent 2");
        let bytes = codec::encode(&vec![Value::Int(1)]).unwrap();
        let mut more = bytes.clone();
        more.push(0);
        let mut args = Args::new(&more, "t", 1).unwrap();
        args.next::<i64>("a").unwrap();
        assert!(args.finish().unwrap_err().contains("1 trailing bytes"));
        assert!(Args::new(&[], "t", 1)
            .err()
            .unwrap()
            .starts_with("could not read the inputs the host sent"));
    }
}
