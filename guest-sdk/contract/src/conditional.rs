//! Conditionals (Flyte's `conditional(..).if_(..).then(..).elif_(..).else_()`): a graph node
//! that runs one of its branches, chosen by conditions the host evaluates itself, without a
//! sandbox, once the values they read are there.
//!
//! A conditional is a [`NodeSpec`] whose `conditional` is set: its `entity` is then the
//! conditional's name (it shows in node paths), and it has no inputs and no map of its own.
//! Its branches' bindings and its conditions' operands read the enclosing graph, as any of its
//! nodes would.

use crate::graph::{Binding, NodeSpec};
use serde::{Deserialize, Serialize};

/// The cases of a conditional, tried in order, and what runs when none holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConditionalSpec {
    pub cases: Vec<Case>,
    /// `None`: when no case holds, nothing runs (allowed only for a conditional without an
    /// output).
    pub otherwise: Option<Branch>,
}

/// `if_(when).then(then)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub when: Condition,
    pub then: Branch,
}

/// What a taken case runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Branch {
    /// One call of any entity (or a map over it), or a nested conditional.
    Node(NodeSpec),
    /// Fails the conditional with this message.
    Fail(#[serde(deserialize_with = "crate::depth::owned_string")] String),
}

/// A test of values of primitive types (int, float, str, bool) the enclosing graph has.
/// Operands are literals, workflow inputs or node outputs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Condition {
    Compare(Binding, Comparison, Binding),
    /// A boolean is true.
    IsTrue(Binding),
    /// An optional holds a value.
    IsSome(Binding),
    /// An optional holds none.
    IsNone(Binding),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparison {
    /// `==`, `<`, ...: how messages and the tree write it.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        }
    }

    /// Whether `ordering` (of the left operand against the right) satisfies the comparison;
    /// `None` (a NaN) satisfies only `!=`, as IEEE 754 has it.
    pub fn holds(self, ordering: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::*;
        match (self, ordering) {
            (Comparison::Ne, None) => true,
            (_, None) => false,
            (Comparison::Eq, Some(o)) => o == Equal,
            (Comparison::Ne, Some(o)) => o != Equal,
            (Comparison::Lt, Some(o)) => o == Less,
            (Comparison::Le, Some(o)) => o != Greater,
            (Comparison::Gt, Some(o)) => o == Greater,
            (Comparison::Ge, Some(o)) => o != Less,
        }
    }

    /// Whether the comparison only tells equal from unequal (all a boolean supports).
    pub fn is_equality(self) -> bool {
        matches!(self, Comparison::Eq | Comparison::Ne)
    }
}

impl Condition {
    /// Every operand the condition reads, in order.
    pub fn operands(&self, f: &mut impl FnMut(&Binding)) {
        match self {
            Condition::Compare(a, _, b) => {
                f(a);
                f(b);
            }
            Condition::IsTrue(b) | Condition::IsSome(b) | Condition::IsNone(b) => f(b),
            Condition::And(a, b) | Condition::Or(a, b) => {
                a.operands(f);
                b.operands(f);
            }
            Condition::Not(c) => c.operands(f),
        }
    }
}

impl ConditionalSpec {
    /// Every branch, in the order they are tried (the `otherwise` branch last).
    pub fn branches(&self) -> impl Iterator<Item = &Branch> {
        self.cases.iter().map(|c| &c.then).chain(&self.otherwise)
    }
}

// Decoding goes through `depth::nested` (a condition inside a condition, a conditional inside
// a branch of a conditional), so hostile bytes cannot nest without bound, and charges what it
// builds to the decode's memory budget.
#[derive(Deserialize)]
#[serde(remote = "Condition")]
enum ConditionDef {
    Compare(Binding, Comparison, Binding),
    IsTrue(Binding),
    IsSome(Binding),
    IsNone(Binding),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::depth::charge::<D::Error>(std::mem::size_of::<Condition>())?;
        crate::depth::nested(d, ConditionDef::deserialize)
    }
}

#[derive(Deserialize)]
#[serde(remote = "ConditionalSpec")]
struct ConditionalSpecDef {
    cases: Vec<Case>,
    otherwise: Option<Branch>,
}

impl<'de> Deserialize<'de> for ConditionalSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::depth::charge::<D::Error>(std::mem::size_of::<ConditionalSpec>())?;
        crate::depth::nested(d, ConditionalSpecDef::deserialize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{codec, GraphSpec, Value};

    fn conditional(name: &str, spec: ConditionalSpec) -> NodeSpec {
        NodeSpec {
            entity: name.into(),
            inputs: Vec::new(),
            map: None,
            after: Vec::new(),
            conditional: Some(Box::new(spec)),
        }
    }

    fn call(entity: &str) -> Branch {
        Branch::Node(NodeSpec {
            entity: entity.into(),
            inputs: vec![("a".into(), Binding::Node(0))],
            map: None,
            after: Vec::new(),
            conditional: None,
        })
    }

    #[test]
    fn a_conditional_round_trips_through_the_codec() {
        let when = Condition::And(
            Box::new(Condition::Compare(
                Binding::Input("x".into()),
                Comparison::Ge,
                Binding::Literal(Value::Float(0.0)),
            )),
            Box::new(Condition::Not(Box::new(Condition::IsNone(Binding::Node(
                0,
            ))))),
        );
        let inner = conditional(
            "inner",
            ConditionalSpec {
                cases: vec![Case {
                    when: Condition::IsTrue(Binding::Node(1)),
                    then: call("double"),
                }],
                otherwise: Some(Branch::Fail("no".into())),
            },
        );
        let g = GraphSpec {
            nodes: vec![conditional(
                "outer",
                ConditionalSpec {
                    cases: vec![Case {
                        when,
                        then: Branch::Node(inner),
                    }],
                    otherwise: None,
                },
            )],
            output: Some(Binding::Node(0)),
            ..Default::default()
        };
        let bytes = codec::encode(&g).unwrap();
        assert_eq!(codec::decode::<GraphSpec>(&bytes).unwrap(), g);
    }

    #[test]
    fn conditions_nested_past_the_limit_are_refused_not_a_stack_overflow() {
        let mut c = Condition::IsTrue(Binding::Input("b".into()));
        for _ in 0..1_000 {
            c = Condition::Not(Box::new(c));
        }
        let bytes = codec::encode(&c).unwrap();
        let e = codec::decode::<Condition>(&bytes).unwrap_err().to_string();
        assert!(e.contains("nested deeper than"), "{e}");
    }

    #[test]
    fn conditionals_nested_past_the_limit_are_refused() {
        let mut node = conditional(
            "c",
            ConditionalSpec {
                cases: vec![],
                otherwise: Some(Branch::Fail("x".into())),
            },
        );
        for _ in 0..200 {
            node = conditional(
                "c",
                ConditionalSpec {
                    cases: vec![],
                    otherwise: Some(Branch::Node(node)),
                },
            );
        }
        let bytes = codec::encode(&node).unwrap();
        let e = codec::decode::<NodeSpec>(&bytes).unwrap_err().to_string();
        assert!(e.contains("nested deeper than"), "{e}");
    }

    #[test]
    fn comparisons_follow_ieee_for_nan() {
        assert!(Comparison::Ne.holds(None));
        assert!(!Comparison::Eq.holds(None));
        assert!(!Comparison::Ge.holds(None));
        assert!(Comparison::Le.holds(Some(std::cmp::Ordering::Equal)));
        assert!(!Comparison::Lt.holds(Some(std::cmp::Ordering::Equal)));
    }
}
