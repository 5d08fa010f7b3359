//! Typed interfaces and the declarations a guest module exports for each entity.

use crate::graph::GraphSpec;
use crate::value::{Type, Value};
use serde::{Deserialize, Serialize};

/// One named, typed input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    // A param's header is charged with its name (its type charges itself).
    #[serde(deserialize_with = "crate::depth::owned_string")]
    pub name: String,
    pub ty: Type,
    /// The value used when a caller leaves the input out (`#[default(3)] b: i64`).
    pub default: Option<Value>,
}

/// What an entity takes and returns. An entity has at most one output (a record can carry
/// several values); `None` means it returns nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub inputs: Vec<Param>,
    pub output: Option<Type>,
}

impl Interface {
    pub fn input(&self, name: &str) -> Option<&Param> {
        self.inputs.iter().find(|p| p.name == name)
    }
}

/// Per-task settings declared in the SDK (`#[task(retries = 2, timeout_ms = 500)]`); the
/// CLI may override them for a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskConfig {
    /// Extra attempts after a failed one.
    pub retries: u32,
    /// Which failures a retry is spent on.
    pub retry_on: RetryOn,
    /// Wall-clock limit of one attempt, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Largest linear memory one attempt may grow to, in MiB.
    pub max_memory_mb: Option<u64>,
    /// A deterministic CPU budget for one attempt: wasm instructions, roughly (wasmtime fuel).
    pub fuel: Option<u64>,
    /// Results kept in the execution store and reused for the same inputs, across executions
    /// (`#[task(cache = true, cache_version = "1", cache_ignore = ["x"])]`).
    pub cache: Option<CacheConfig>,
}

/// How a task's results are cached. The key is formed as Flyte forms it: the task's name,
/// `version`, a hash of its interface and a hash of its input values, less `ignore`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// Bumped by the user when the task's code changes what it returns.
    pub version: String,
    /// Inputs left out of the key (a seed, a verbosity flag).
    pub ignore: Vec<String>,
}

/// Failures are told apart as Flyte does: the guest's own (panic, trap, returned error, limit
/// exceeded) or the host's (could not instantiate, internal fault).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryOn {
    #[default]
    Any,
    UserErrors,
    SystemErrors,
}

impl RetryOn {
    pub fn retries(self, user_error: bool) -> bool {
        match self {
            RetryOn::Any => true,
            RetryOn::UserErrors => user_error,
            RetryOn::SystemErrors => !user_error,
        }
    }
}

/// A named plan over a workflow: calling it starts a child execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchPlanSpec {
    pub workflow: String,
    /// Used when the caller does not bind the input.
    #[serde(deserialize_with = "crate::depth::pairs")]
    pub defaults: Vec<(String, Value)>,
    /// Always used; a caller may not bind them.
    #[serde(deserialize_with = "crate::depth::pairs")]
    pub fixed: Vec<(String, Value)>,
    /// Running task executions allowed at once in each execution this plan starts.
    pub max_parallelism: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EntityKind {
    Task(TaskConfig),
    /// A static graph, built once when the module is described.
    Workflow(GraphSpec),
    /// Runs in a sandbox with real inputs and returns a graph.
    Dynamic(TaskConfig),
    LaunchPlan(LaunchPlanSpec),
}

impl EntityKind {
    pub fn name(&self) -> &'static str {
        match self {
            EntityKind::Task(_) => "task",
            EntityKind::Workflow(_) => "workflow",
            EntityKind::Dynamic(_) => "dynamic",
            EntityKind::LaunchPlan(_) => "launch plan",
        }
    }
}

/// What a guest's `sandflow:decl:<name>` export returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntityDecl {
    pub name: String,
    pub interface: Interface,
    pub kind: EntityKind,
}

/// What a guest's `sandflow:call:<name>` export returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CallResult {
    /// A task's output (`None` for a task returning nothing).
    Output(Option<Value>),
    /// A dynamic's sub-graph.
    Graph(GraphSpec),
    /// The task returned an error, or its inputs could not be read.
    Error(String),
}
