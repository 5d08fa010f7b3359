//! What a value or graph takes in host memory, estimated as decoding charges it (see
//! [`crate::depth`]): `size_of` of each part plus its heap. The host charges these estimates
//! to a run's memory budget for the graphs and values it keeps.

use crate::conditional::{Branch, Case, Condition, ConditionalSpec};
use crate::depth::{int_key_bytes, map_key_bytes};
use crate::graph::{Binding, GraphSpec, NodeSpec};
use crate::value::Value;
use std::mem::size_of;

/// A named item's name, charged whole (`depth::pairs`).
fn name_bytes(name: &str) -> u64 {
    (size_of::<String>() + name.len()) as u64
}

impl Value {
    /// Estimated host memory of this value: its own size and everything it owns.
    pub fn memory_bytes(&self) -> u64 {
        let own = size_of::<Value>() as u64;
        own + match self {
            Value::Int(_)
            | Value::Float(_)
            | Value::Bool(_)
            | Value::Enum(_)
            | Value::Optional(None) => 0,
            Value::Str(s) => s.len() as u64,
            Value::Bytes(b) => b.len() as u64,
            Value::List(items) | Value::Record(items) => {
                items.iter().map(Value::memory_bytes).sum()
            }
            Value::Map(m) => m
                .iter()
                .map(|(k, v)| map_key_bytes(k) as u64 + v.memory_bytes())
                .sum(),
            Value::IntMap(m) => m
                .values()
                .map(|v| int_key_bytes() as u64 + v.memory_bytes())
                .sum(),
            Value::Optional(Some(v)) | Value::Union(_, v) => v.memory_bytes(),
        }
    }
}

impl Binding {
    /// Estimated host memory of this binding: its own size and everything it owns.
    pub fn memory_bytes(&self) -> u64 {
        let own = size_of::<Binding>() as u64;
        own + match self {
            Binding::Literal(v) => v.memory_bytes(),
            Binding::Input(name) => name.len() as u64,
            Binding::Node(_) => 0,
            Binding::List(items) => items.iter().map(Binding::memory_bytes).sum(),
            Binding::Map(items) => items
                .iter()
                .map(|(k, b)| name_bytes(k) + b.memory_bytes())
                .sum(),
            Binding::Record(items) => items.iter().map(Binding::memory_bytes).sum(),
            Binding::Field { of, name, .. } => of.memory_bytes() + name.len() as u64,
            Binding::Index { of, .. } => of.memory_bytes(),
            Binding::Key { of, key } => of.memory_bytes() + key.len() as u64,
        }
    }
}

impl NodeSpec {
    /// Estimated host memory of this node: its own size and everything it owns.
    pub fn memory_bytes(&self) -> u64 {
        let inputs: u64 = self
            .inputs
            .iter()
            .map(|(k, b)| name_bytes(k) + b.memory_bytes())
            .sum();
        let mapped: u64 = self
            .map
            .iter()
            .flat_map(|m| &m.mapped)
            .map(|n| name_bytes(n))
            .sum();
        let after = (self.after.len() * size_of::<u32>()) as u64;
        let conditional = self.conditional.as_ref().map_or(0, |c| c.memory_bytes());
        size_of::<NodeSpec>() as u64
            + self.entity.len() as u64
            + inputs
            + mapped
            + after
            + conditional
    }
}

impl ConditionalSpec {
    /// Estimated host memory of a conditional: its cases, their conditions and branches.
    pub fn memory_bytes(&self) -> u64 {
        let cases: u64 = self
            .cases
            .iter()
            .map(|c| size_of::<Case>() as u64 + c.when.memory_bytes())
            .sum();
        let branches: u64 = self
            .branches()
            .map(|b| match b {
                Branch::Node(n) => n.memory_bytes() - size_of::<NodeSpec>() as u64,
                Branch::Fail(m) => name_bytes(m),
            })
            .sum();
        size_of::<ConditionalSpec>() as u64 + cases + branches
    }
}

impl Condition {
    /// Estimated host memory of a condition and its operands.
    pub fn memory_bytes(&self) -> u64 {
        let mut operands = 0;
        self.operands(&mut |b| operands += b.memory_bytes());
        let mut conditions = 0u64;
        let mut stack = vec![self];
        while let Some(c) = stack.pop() {
            conditions += 1;
            match c {
                Condition::And(a, b) | Condition::Or(a, b) => {
                    stack.push(a);
                    stack.push(b);
                }
                Condition::Not(a) => stack.push(a),
                _ => {}
            }
        }
        conditions * size_of::<Condition>() as u64 + operands
    }
}

impl GraphSpec {
    /// Estimated host memory of this graph: its own size and everything it owns.
    pub fn memory_bytes(&self) -> u64 {
        size_of::<GraphSpec>() as u64
            + self.nodes.iter().map(NodeSpec::memory_bytes).sum::<u64>()
            + self.output.as_ref().map_or(0, Binding::memory_bytes)
            + self.failure_handler.as_ref().map_or(0, |h| h.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use crate::codec::{decode, encode};
    use crate::depth::last_decode_bytes;
    use crate::{Binding, GraphSpec, MapSpec, NodeSpec, Value};

    #[test]
    fn a_decode_charges_what_memory_bytes_estimates() {
        let v = Value::Map(
            [
                ("ab".to_string(), Value::List(vec![Value::Int(1); 3])),
                ("c".to_string(), Value::Str("hello".into())),
                ("d".to_string(), Value::Bytes(vec![1, 2, 3])),
                (
                    "e".to_string(),
                    Value::Optional(Some(Box::new(Value::Bool(true)))),
                ),
                ("f".to_string(), Value::Enum(3)),
                (
                    "g".to_string(),
                    Value::IntMap([(-2, Value::Str("x".into())), (9, Value::Int(0))].into()),
                ),
            ]
            .into(),
        );
        assert_eq!(decode::<Value>(&encode(&v).unwrap()).unwrap(), v);
        assert_eq!(last_decode_bytes(), v.memory_bytes());

        let g = GraphSpec {
            nodes: vec![
                NodeSpec {
                    entity: "t".into(),
                    inputs: vec![("a".into(), Binding::Input("x".into()))],
                    map: None,
                    after: vec![],
                    conditional: None,
                },
                NodeSpec {
                    entity: "m".into(),
                    inputs: vec![(
                        "l".into(),
                        Binding::List(vec![Binding::Node(0), Binding::Node(0)]),
                    )],
                    map: Some(MapSpec {
                        mapped: vec!["l".into()],
                        concurrency: None,
                        min_success_ratio: None,
                        min_success: None,
                    }),
                    after: vec![0],
                    conditional: None,
                },
            ],
            output: Some(Binding::Map(vec![("k".into(), Binding::Node(1))])),
            on_failure: Default::default(),
            failure_handler: Some("clean_up".into()),
        };
        assert_eq!(decode::<GraphSpec>(&encode(&g).unwrap()).unwrap(), g);
        // The graph's own header is not charged by a decode (it lives on the caller's stack).
        let header = std::mem::size_of::<GraphSpec>() as u64;
        assert_eq!(last_decode_bytes() + header, g.memory_bytes());
    }
}
