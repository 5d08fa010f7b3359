//! JSON in and out, typed by interfaces: CLI inputs become [`Value`]s (with errors naming the
//! input and the element that is wrong), outputs become JSON.

use crate::module::ModuleDecl;
use sandflow_contract::{EntityDecl, Type, Value};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// An input the user gave that does not fit the entity's interface.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("input `{input}`{at}: expected {expected}, found {found}", at = if path.is_empty() { String::new() } else { format!(" at {path}") })]
    Type {
        input: String,
        path: String,
        expected: String,
        found: String,
    },
    #[error("missing input `{input}` ({ty}) of {entity}")]
    Missing {
        entity: String,
        input: String,
        ty: String,
    },
    #[error("unknown input `{input}`; {entity} takes {expected}")]
    Unknown {
        entity: String,
        input: String,
        expected: String,
    },
    #[error("input `{input}` of {entity} is fixed by the launch plan and cannot be given")]
    Fixed { entity: String, input: String },
    #[error("input `{input}` of {entity} is given twice (give each input once)")]
    Repeated { entity: String, input: String },
}

fn describe(j: &Json) -> String {
    match j {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("{b}"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) if s.len() > 40 => format!(
            "a string \"{}…\"",
            &s[..s.char_indices().nth(37).map(|(i, _)| i).unwrap_or(s.len())]
        ),
        Json::String(s) => format!("the string {s:?}"),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

/// Reads `j` as a value of type `ty`; `path` locates it inside input `input` for errors.
pub fn from_json(j: &Json, ty: &Type, input: &str, path: &mut String) -> Result<Value, InputError> {
    let bad = |path: &String| InputError::Type {
        input: input.to_string(),
        path: path.clone(),
        expected: ty.to_string(),
        found: describe(j),
    };
    Ok(match (ty, j) {
        (Type::Int, Json::Number(n)) => Value::Int(n.as_i64().ok_or_else(|| bad(path))?),
        (Type::Float, Json::Number(n)) => Value::Float(n.as_f64().ok_or_else(|| bad(path))?),
        // JSON has no NaN or infinities: they travel as these three strings, both ways.
        (Type::Float, Json::String(s)) => Value::Float(non_finite(s).ok_or_else(|| bad(path))?),
        (Type::Bool, Json::Bool(b)) => Value::Bool(*b),
        (Type::Str, Json::String(s)) => Value::Str(s.clone()),
        (Type::Bytes, Json::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, x) in items.iter().enumerate() {
                match x.as_u64().filter(|b| *b <= 255) {
                    Some(b) => out.push(b as u8),
                    None => {
                        let len = path.len();
                        path.push_str(&format!("[{i}]"));
                        let e = InputError::Type {
                            input: input.into(),
                            path: path.clone(),
                            expected: "a byte (0..=255)".into(),
                            found: describe(x),
                        };
                        path.truncate(len);
                        return Err(e);
                    }
                }
            }
            Value::Bytes(out)
        }
        (Type::List(t), Json::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, x) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                out.push(from_json(x, t, input, path)?);
                path.truncate(len);
            }
            Value::List(out)
        }
        (Type::Map(t), Json::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, x) in m {
                let len = path.len();
                path.push_str(&format!("[{k:?}]"));
                out.insert(k.clone(), from_json(x, t, input, path)?);
                path.truncate(len);
            }
            Value::Map(out)
        }
        // JSON keys are strings: an integer key is written in decimal.
        (Type::IntMap(t), Json::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, x) in m {
                let len = path.len();
                path.push_str(&format!("[{k:?}]"));
                // Only the canonical spelling, so "1" and "01" cannot both name key 1.
                let Some(key) = k.parse::<i64>().ok().filter(|n| n.to_string() == *k) else {
                    let e = InputError::Type {
                        input: input.into(),
                        path: path.clone(),
                        expected:
                            "an integer key (a 64-bit decimal number without + or leading zeros)"
                                .into(),
                        found: format!("the key {k:?}"),
                    };
                    return Err(e);
                };
                out.insert(key, from_json(x, t, input, path)?);
                path.truncate(len);
            }
            Value::IntMap(out)
        }
        (Type::Optional(_), Json::Null) => Value::Optional(None),
        (Type::Optional(t), x) => Value::Optional(Some(Box::new(from_json(x, t, input, path)?))),
        (Type::Record(r), Json::Object(m)) => {
            let mut out = Vec::with_capacity(r.fields.len());
            for (name, t) in &r.fields {
                let len = path.len();
                path.push('.');
                path.push_str(name);
                match m.get(name) {
                    Some(x) => out.push(from_json(x, t, input, path)?),
                    None if matches!(t, Type::Optional(_)) => out.push(Value::Optional(None)),
                    None => {
                        let e = InputError::Type {
                            input: input.into(),
                            path: path.clone(),
                            expected: t.to_string(),
                            found: "nothing (the field is missing)".into(),
                        };
                        return Err(e);
                    }
                }
                path.truncate(len);
            }
            if let Some(k) = m.keys().find(|k| !r.fields.iter().any(|(n, _)| n == *k)) {
                return Err(InputError::Type {
                    input: input.into(),
                    path: path.clone(),
                    expected: format!(
                        "{} (fields: {})",
                        r.name,
                        r.fields
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    found: format!("an object with unknown field `{k}`"),
                });
            }
            Value::Record(out)
        }
        (Type::Enum(e), Json::String(s)) => match e.variants.iter().position(|v| v == s) {
            Some(i) => Value::Enum(i as u32),
            None => {
                return Err(InputError::Type {
                    input: input.into(),
                    path: path.clone(),
                    expected: e.listing(),
                    found: describe(j),
                })
            }
        },
        (Type::Enum(e), _) => {
            return Err(InputError::Type {
                input: input.into(),
                path: path.clone(),
                expected: e.listing(),
                found: describe(j),
            })
        }
        // A tagged union is an object of one key, the variant: `{"Circle": 1.5}`.
        (Type::Union(u), Json::Object(m)) if m.len() == 1 => {
            let (k, x) = m.iter().next().expect("one entry");
            let Some(i) = u.variants.iter().position(|(n, _)| n == k) else {
                return Err(InputError::Type {
                    input: input.into(),
                    path: path.clone(),
                    expected: format!("{}, as {{\"Variant\": value}}", u.listing()),
                    found: format!("unknown variant `{k}`"),
                });
            };
            let len = path.len();
            path.push_str(&format!(".{k}"));
            let v = from_json(x, &u.variants[i].1, input, path)?;
            path.truncate(len);
            Value::Union(i as u32, Box::new(v))
        }
        (Type::Union(u), _) => {
            return Err(InputError::Type {
                input: input.into(),
                path: path.clone(),
                expected: format!("{}, as {{\"Variant\": value}}", u.listing()),
                found: describe(j),
            })
        }
        _ => return Err(bad(path)),
    })
}

/// The f64 a non-finite float's JSON string stands for: "NaN", "Infinity" or "-Infinity".
fn non_finite(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// The JSON string of a non-finite float (JavaScript's names for them).
fn non_finite_name(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// Writes `v` (of type `ty`) as JSON. Records become objects with their field names, enum
/// variants strings of their names, a tagged union's variant `{"Variant": value}`; a NaN or an infinite float becomes the string "NaN", "Infinity" or "-Infinity".
pub fn to_json(v: &Value, ty: &Type) -> Json {
    match (v, ty) {
        (Value::Int(i), _) => Json::from(*i),
        (Value::Float(f), _) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or_else(|| Json::String(non_finite_name(*f).into())),
        (Value::Bool(b), _) => Json::Bool(*b),
        (Value::Str(s), _) => Json::String(s.clone()),
        (Value::Bytes(b), _) => Json::Array(b.iter().map(|x| Json::from(*x)).collect()),
        (Value::List(items), Type::List(t)) => {
            Json::Array(items.iter().map(|x| to_json(x, t)).collect())
        }
        (Value::Map(m), Type::Map(t)) => {
            Json::Object(m.iter().map(|(k, x)| (k.clone(), to_json(x, t))).collect())
        }
        (Value::IntMap(m), Type::IntMap(t)) => Json::Object(
            m.iter()
                .map(|(k, x)| (k.to_string(), to_json(x, t)))
                .collect(),
        ),
        (Value::Optional(None), _) => Json::Null,
        (Value::Optional(Some(x)), Type::Optional(t)) => to_json(x, t),
        (Value::Record(vals), Type::Record(r)) => Json::Object(
            vals.iter()
                .zip(&r.fields)
                .map(|(x, (n, t))| (n.clone(), to_json(x, t)))
                .collect(),
        ),
        (Value::Enum(i), Type::Enum(e)) => match e.variants.get(*i as usize) {
            Some(name) => Json::String(name.clone()),
            None => Json::from(*i),
        },
        (Value::Enum(i), _) => Json::from(*i),
        (Value::Union(i, x), Type::Union(u)) => match u.variants.get(*i as usize) {
            Some((name, t)) => Json::Object([(name.clone(), to_json(x, t))].into_iter().collect()),
            None => Json::Array(vec![Json::from(*i), to_json(x, &Type::Str)]),
        },
        (Value::Union(i, x), _) => Json::Array(vec![Json::from(*i), to_json(x, &Type::Str)]),
        // Values are type-checked before they get here; show what there is rather than lose it.
        (Value::List(items), _) => {
            Json::Array(items.iter().map(|x| to_json(x, &Type::Str)).collect())
        }
        (Value::Map(m), _) => Json::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), to_json(x, &Type::Str)))
                .collect(),
        ),
        (Value::IntMap(m), _) => Json::Object(
            m.iter()
                .map(|(k, x)| (k.to_string(), to_json(x, &Type::Str)))
                .collect(),
        ),
        (Value::Optional(Some(x)), _) => to_json(x, &Type::Str),
        (Value::Record(vals), _) => {
            Json::Array(vals.iter().map(|x| to_json(x, &Type::Str)).collect())
        }
    }
}

/// The inputs a caller may give entity `entity` of `decl`: its interface (a launch plan's
/// leaves out what it fixes). Returns values in interface order; a launch plan's defaults
/// fill what is not given.
pub fn inputs_from_json(
    decl: &ModuleDecl,
    entity: &EntityDecl,
    given: &[(String, Json)],
) -> Result<Vec<Value>, InputError> {
    let index = decl.index(&entity.name);
    for (i, (name, _)) in given.iter().enumerate() {
        if given[..i].iter().any(|(n, _)| n == name) {
            return Err(InputError::Repeated {
                entity: entity.name.clone(),
                input: name.clone(),
            });
        }
        if index.is_some_and(|i| decl.is_fixed(i, name)) {
            return Err(InputError::Fixed {
                entity: entity.name.clone(),
                input: name.clone(),
            });
        }
        if entity.interface.input(name).is_none() {
            return Err(InputError::Unknown {
                entity: entity.name.clone(),
                input: name.clone(),
                expected: signature(entity),
            });
        }
    }
    let mut out = Vec::with_capacity(entity.interface.inputs.len());
    for (k, p) in entity.interface.inputs.iter().enumerate() {
        match given.iter().find(|(n, _)| n == &p.name) {
            Some((_, j)) => out.push(from_json(j, &p.ty, &p.name, &mut String::new())?),
            None => match index.and_then(|i| decl.default_input(i, k)) {
                Some(v) => out.push(v.clone()),
                None if matches!(p.ty, Type::Optional(_)) => out.push(Value::Optional(None)),
                None => {
                    return Err(InputError::Missing {
                        entity: entity.name.clone(),
                        input: p.name.clone(),
                        ty: p.ty.to_string(),
                    })
                }
            },
        }
    }
    Ok(out)
}

/// Whether a command-line value of type `ty` that is not JSON is read as a JSON string: for
/// strings (`--name world`) and enums (`--coffee Latte`), where quoting would be a chore.
pub fn takes_bare_word(ty: &Type) -> bool {
    matches!(ty, Type::Str | Type::Enum(_))
}

/// `--l <list<i64>> --chunk <i64>`, or "no inputs".
pub fn signature(entity: &EntityDecl) -> String {
    if entity.interface.inputs.is_empty() {
        return "no inputs".into();
    }
    entity
        .interface
        .inputs
        .iter()
        .map(|p| format!("--{} <{}>", p.name, p.ty))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn non_finite_floats_print_as_strings_and_read_back() {
        for (f, s) in [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(to_json(&Value::Float(f), &Type::Float), json!(s));
            let back = from_json(&json!(s), &Type::Float, "x", &mut String::new()).unwrap();
            let Value::Float(b) = back else {
                panic!("{back:?}")
            };
            assert!(
                b.to_bits() == f.to_bits() || (f.is_nan() && b.is_nan()),
                "{s}"
            );
        }
        assert_eq!(to_json(&Value::Float(1.5), &Type::Float), json!(1.5));
    }

    fn coffee() -> Type {
        Type::Enum(sandflow_contract::EnumType {
            name: "Coffee".into(),
            variants: vec!["Latte".into(), "Espresso".into()],
        })
    }

    #[test]
    fn enum_variants_read_and_print_by_name() {
        let v = from_json(&json!("Espresso"), &coffee(), "c", &mut String::new()).unwrap();
        assert_eq!(v, Value::Enum(1));
        assert_eq!(to_json(&v, &coffee()), json!("Espresso"));
    }

    #[test]
    fn an_unknown_variant_is_an_error_listing_the_variants() {
        let ty = Type::List(Box::new(coffee()));
        let e = from_json(&json!(["Latte", "Mocha"]), &ty, "c", &mut String::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `c` at [1]: expected Coffee (one of Latte, Espresso), found the string \"Mocha\""
        );
        let e = from_json(&json!(0), &coffee(), "c", &mut String::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `c`: expected Coffee (one of Latte, Espresso), found the number 0"
        );
    }

    #[test]
    fn integer_keyed_maps_read_and_print_keys_in_decimal() {
        let ty = Type::IntMap(Box::new(Type::Str));
        let v = from_json(&json!({"-3": "a", "10": "b"}), &ty, "m", &mut String::new()).unwrap();
        assert_eq!(
            v,
            Value::IntMap([(-3, Value::Str("a".into())), (10, Value::Str("b".into()))].into())
        );
        assert_eq!(to_json(&v, &ty), json!({"-3": "a", "10": "b"}));
        for k in ["01", "+1", " 1", "1.0"] {
            let e = from_json(&json!({ k: "a" }), &ty, "m", &mut String::new()).unwrap_err();
            assert!(
                e.to_string().contains("expected an integer key"),
                "{k}: {e}"
            );
        }
        let e = from_json(&json!({"1": "a", "x": "b"}), &ty, "m", &mut String::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `m` at [\"x\"]: expected an integer key (a 64-bit decimal number without + or leading zeros), found the key \"x\""
        );
    }

    #[test]
    fn other_strings_are_not_floats() {
        for s in ["nan", "inf", "1.5", "Infinity ", ""] {
            let e = from_json(&json!(s), &Type::Float, "x", &mut String::new()).unwrap_err();
            assert!(e.to_string().contains("expected f64"), "{s}: {e}");
        }
    }
}
