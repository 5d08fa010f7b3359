//! Graph specs: what workflow bodies (once, at describe time) and dynamics (per execution)
//! build from typed promises. The host compiles them (type check, missing inputs, cycles)
//! before anything in them runs.

use crate::conditional::ConditionalSpec;
use crate::value::Value;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphSpec {
    pub nodes: Vec<NodeSpec>,
    /// What the graph returns, if anything.
    pub output: Option<Binding>,
    /// What a failed node does to the rest of the graph.
    pub on_failure: FailurePolicy,
    /// A workflow's failure handler (`#[workflow(on_failure = clean_up)]`): the entity run
    /// once, with the workflow's inputs and the error, when the graph fails (see
    /// [`crate::failure_handler`]). Only a workflow's graph may have one.
    #[serde(deserialize_with = "crate::depth::optional_heap_string")]
    pub failure_handler: Option<String>,
}

/// What happens to the rest of a graph when one of its nodes fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailurePolicy {
    /// Stop at once: skip what has not started, abort what runs, fail the graph.
    #[default]
    FailFast,
    /// Run everything that does not depend on the failed node, then fail the graph.
    RunAll,
}

/// One call of an entity (or a map over it) inside a graph.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeSpec {
    /// The entity called: a task, workflow, dynamic or launch plan of the same module.
    pub entity: String,
    pub inputs: Vec<(String, Binding)>,
    pub map: Option<MapSpec>,
    /// Nodes of the same graph this one waits for without reading their outputs (Flyte's
    /// `a >> b`), by index.
    pub after: Vec<u32>,
    /// Makes the node a conditional (see [`crate::conditional`]): `entity` is then its name,
    /// and `inputs` and `map` are empty.
    pub conditional: Option<Box<ConditionalSpec>>,
}

/// Turns a node into a map: one element per item of the `mapped` inputs' lists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapSpec {
    /// Inputs bound to lists whose items become the elements' inputs; the other inputs are
    /// bound to the same value in every element.
    #[serde(deserialize_with = "crate::depth::strings")]
    pub mapped: Vec<String>,
    /// Elements running at once; `None` is as many as the execution allows.
    pub concurrency: Option<u32>,
    /// With a ratio, failed elements become `None` in a `list<option<T>>` output, and the
    /// map fails only when fewer than `ceil(ratio * n)` elements succeed.
    pub min_success_ratio: Option<f64>,
    /// Like `min_success_ratio`, as a count of elements.
    pub min_success: Option<u32>,
}

/// Where an input's value comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Binding {
    Literal(Value),
    /// An input of the enclosing workflow.
    Input(String),
    /// The output of an earlier node of the same graph, by index.
    Node(u32),
    /// A list built from bindings (a list of promises is a list input).
    List(Vec<Binding>),
    /// A string-keyed map built from bindings.
    Map(Vec<(String, Binding)>),
    /// A record built from bindings, one per field in the record type's order (a tuple is a
    /// record whose fields are named `0`, `1`, ..). Its type is the type expected where it is
    /// bound.
    Record(Vec<Binding>),
    /// Field `index` of the record `of` reads, named `name` (checked against the record's type
    /// when the graph is compiled).
    Field {
        of: Box<Binding>,
        name: String,
        index: u32,
    },
    /// Element `index` of the list `of` reads; out of range fails the node reading it.
    Index {
        of: Box<Binding>,
        index: u32,
    },
    /// The value under `key` of the string-keyed map `of` reads; a missing key fails the node
    /// reading it.
    Key {
        of: Box<Binding>,
        key: String,
    },
}

// Decoding goes through `depth::nested`, so hostile bytes cannot nest without bound, and
// charges what it builds to the decode's memory budget (`depth::charge`).
#[derive(Deserialize)]
#[serde(remote = "Binding")]
enum BindingDef {
    Literal(Value),
    Input(#[serde(deserialize_with = "crate::depth::heap_string")] String),
    Node(u32),
    List(Vec<Binding>),
    Map(#[serde(deserialize_with = "crate::depth::pairs")] Vec<(String, Binding)>),
    Record(Vec<Binding>),
    Field {
        of: Box<Binding>,
        #[serde(deserialize_with = "crate::depth::heap_string")]
        name: String,
        index: u32,
    },
    Index {
        of: Box<Binding>,
        index: u32,
    },
    Key {
        of: Box<Binding>,
        #[serde(deserialize_with = "crate::depth::heap_string")]
        key: String,
    },
}

impl<'de> Deserialize<'de> for Binding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::depth::charge::<D::Error>(std::mem::size_of::<Binding>())?;
        crate::depth::nested(d, BindingDef::deserialize)
    }
}

#[derive(Deserialize)]
#[serde(remote = "NodeSpec")]
struct NodeSpecDef {
    #[serde(deserialize_with = "crate::depth::heap_string")]
    entity: String,
    #[serde(deserialize_with = "crate::depth::pairs")]
    inputs: Vec<(String, Binding)>,
    map: Option<MapSpec>,
    #[serde(deserialize_with = "crate::depth::indices")]
    after: Vec<u32>,
    conditional: Option<Box<ConditionalSpec>>,
}

impl<'de> Deserialize<'de> for NodeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::depth::charge::<D::Error>(std::mem::size_of::<NodeSpec>())?;
        NodeSpecDef::deserialize(d)
    }
}
