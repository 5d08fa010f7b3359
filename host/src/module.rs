//! A guest module's entities ([`ModuleDecl`]) and the errors loading a module can give.

use crate::compile::{self, CompileError, CompiledGraph, Entities};
use sandflow_contract::{EntityDecl, EntityKind, Param, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("{}: could not read the module: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a WebAssembly module (expected a .wasm file starting with \\0asm)", path.display())]
    NotWasm { path: PathBuf },
    #[error("{}: invalid WebAssembly module: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{}: imports {import}, which sandflow does not provide (only wasi_snapshot_preview1 functions are allowed)", path.display())]
    ForbiddenImport { path: PathBuf, import: String },
    #[error("{}: missing export `{export}`: is this a sandflow guest built with the sandflow SDK?", path.display())]
    MissingExport { path: PathBuf, export: String },
    #[error("{}: sandflow ABI version {found}, this host speaks version {expected}: rebuild the guest with a matching sandflow SDK", path.display())]
    AbiVersion {
        path: PathBuf,
        found: i32,
        expected: i32,
    },
    #[error("{}: describing entity `{entity}` failed: {reason}", path.display())]
    Describe {
        path: PathBuf,
        entity: String,
        reason: String,
    },
    #[error("{}: {source}", path.display())]
    Compile { path: PathBuf, source: CompileError },
}

/// Why [`ModuleDecl::find`] found no entity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    #[error("unknown entity `{name}`; the module has: {available}")]
    Unknown { name: String, available: String },
    #[error("`{name}` names more than one entity: {candidates}; give the full name")]
    Ambiguous { name: String, candidates: String },
}

/// The entities of one module, by name.
#[derive(Debug, Default)]
pub struct ModuleDecl {
    pub entities: Vec<EntityDecl>,
    by_name: HashMap<String, usize>,
    /// Each workflow's graph, compiled, by entity index.
    graphs: Vec<Option<Arc<CompiledGraph>>>,
    /// Each launch plan, resolved against its workflow, by entity index.
    plans: Vec<Option<Plan>>,
}

/// A launch plan resolved once, when the module loads: everything a run, the compiler and
/// the CLI need of it, by position rather than by name.
///
/// The plan's interface (its [`EntityDecl`]'s) is its workflow's inputs minus the fixed ones,
/// in the workflow's order.
#[derive(Debug)]
pub struct Plan {
    /// The workflow it starts, as an entity index.
    pub workflow: usize,
    /// For each input of the workflow, in the workflow's order: where its value comes from.
    pub sources: Vec<PlanInput>,
    /// For each input of the plan's interface: its default, used when a caller gives none
    /// (the plan's own, else the workflow's).
    pub defaults: Vec<Option<Value>>,
    /// Running task executions allowed at once in each execution the plan starts.
    pub max_parallelism: Option<u32>,
}

/// Where one workflow input of a launch plan comes from.
#[derive(Debug)]
pub enum PlanInput {
    /// The plan's input at this position of its interface (given by the caller, or its
    /// default).
    Param(usize),
    /// A value the plan fixes; no caller may bind it.
    Fixed(Value),
}

impl Plan {
    /// The workflow's inputs for a call of the plan with `inputs` (the plan's interface
    /// order).
    pub fn workflow_inputs(&self, inputs: Vec<Value>) -> Vec<Value> {
        let mut given: Vec<Option<Value>> = inputs.into_iter().map(Some).collect();
        self.sources
            .iter()
            .map(|s| match s {
                PlanInput::Param(i) => given
                    .get_mut(*i)
                    .and_then(Option::take)
                    .expect("a plan's inputs are checked against its interface"),
                PlanInput::Fixed(v) => v.clone(),
            })
            .collect()
    }
}

impl ModuleDecl {
    /// Indexes `entities` and compiles every workflow's graph and every launch plan, so nothing
    /// ill-typed is found only after tasks have run.
    ///
    /// A launch plan's interface becomes its workflow's inputs minus the fixed ones: the
    /// guest declares the inputs its Rust callers pass, and defaulted inputs may still be
    /// given (from the CLI, or bound in a graph).
    pub fn new(entities: Vec<EntityDecl>) -> Result<ModuleDecl, CompileError> {
        let by_name: HashMap<String, usize> = entities
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        let mut decl = ModuleDecl {
            entities,
            by_name,
            graphs: Vec::new(),
            plans: Vec::new(),
        };
        for e in &decl.entities {
            compile::check_defaults(e)?;
            if let EntityKind::Task(c) | EntityKind::Dynamic(c) = &e.kind {
                compile::check_task_config(e, c)?;
            }
        }
        // Launch plans: checked against their workflows, then resolved once. A plan's
        // interface becomes its workflow's inputs minus the fixed ones: the guest declares the
        // inputs its Rust callers pass, and defaulted inputs may still be given.
        let mut plans: Vec<Option<Plan>> = Vec::with_capacity(decl.entities.len());
        let mut widened = Vec::new();
        for (i, e) in decl.entities.iter().enumerate() {
            let EntityKind::LaunchPlan(lp) = &e.kind else {
                plans.push(None);
                continue;
            };
            compile::check_launch_plan(&decl, e, lp)?;
            let workflow = decl.index(&lp.workflow).expect("checked above");
            let wf = &decl.entities[workflow];
            let mut inputs = Vec::new();
            let mut sources = Vec::with_capacity(wf.interface.inputs.len());
            let mut defaults = Vec::new();
            for p in &wf.interface.inputs {
                let named = |list: &[(String, Value)]| {
                    list.iter()
                        .find(|(n, _)| n == &p.name)
                        .map(|(_, v)| v.clone())
                };
                match named(&lp.fixed) {
                    Some(v) => sources.push(PlanInput::Fixed(v)),
                    None => {
                        // The plan's default wins over the workflow's own; the widened
                        // interface shows the one that applies.
                        let default = named(&lp.defaults).or_else(|| p.default.clone());
                        sources.push(PlanInput::Param(inputs.len()));
                        inputs.push(Param {
                            default: default.clone(),
                            ..p.clone()
                        });
                        defaults.push(default);
                    }
                }
            }
            widened.push((i, inputs));
            plans.push(Some(Plan {
                workflow,
                sources,
                defaults,
                max_parallelism: lp.max_parallelism,
            }));
        }
        for (i, inputs) in widened {
            decl.entities[i].interface.inputs = inputs;
        }
        decl.plans = plans;
        for e in &decl.entities {
            if let EntityKind::Workflow(g) = &e.kind {
                compile::check_graph(
                    &decl,
                    g,
                    Some(&e.interface.inputs),
                    e.interface.output.as_ref(),
                    &e.name,
                )?;
            }
        }
        compile::check_workflow_recursion(&decl)?;
        let mut graphs = Vec::with_capacity(decl.entities.len());
        for e in &decl.entities {
            graphs.push(match &e.kind {
                EntityKind::Workflow(g) => Some(Arc::new(CompiledGraph::new(&decl, g.clone())?)),
                _ => None,
            });
        }
        decl.graphs = graphs;
        Ok(decl)
    }

    /// The compiled graph of workflow `index`.
    pub fn graph(&self, index: usize) -> Option<&Arc<CompiledGraph>> {
        self.graphs.get(index).and_then(|g| g.as_ref())
    }

    /// The workflow launch plan `index` starts, as an entity index.
    pub fn launch_target(&self, index: usize) -> Option<usize> {
        self.plan(index).map(|p| p.workflow)
    }

    /// Whether entity `index` is a launch plan.
    pub fn is_launch_plan(&self, index: u32) -> bool {
        self.entities
            .get(index as usize)
            .is_some_and(|e| matches!(e.kind, sandflow_contract::EntityKind::LaunchPlan(_)))
    }

    /// Entity `index` as a resolved launch plan, if it is one.
    pub fn plan(&self, index: usize) -> Option<&Plan> {
        self.plans.get(index).and_then(|p| p.as_ref())
    }

    /// The default of input `input` (interface position) of entity `index`, if it has one:
    /// a launch plan's resolved default, or the entity's own declared one. The one place
    /// callers (JSON inputs, graph bindings, the scheduler) take defaults from.
    pub fn default_input(&self, index: usize, input: usize) -> Option<&Value> {
        match self.plan(index) {
            Some(p) => p.defaults.get(input).and_then(|d| d.as_ref()),
            None => self
                .entities
                .get(index)
                .and_then(|e| e.interface.inputs.get(input))
                .and_then(|p| p.default.as_ref()),
        }
    }

    /// Whether `name` is an input that entity `index` fixes (a launch plan's fixed input).
    pub fn is_fixed(&self, index: usize, name: &str) -> bool {
        self.plan(index).is_some_and(|p| {
            self.entities[p.workflow]
                .interface
                .inputs
                .iter()
                .zip(&p.sources)
                .any(|(q, s)| q.name == name && matches!(s, PlanInput::Fixed(_)))
        })
    }

    /// The entity named `name`.
    pub fn get(&self, name: &str) -> Option<&EntityDecl> {
        self.by_name.get(name).map(|&i| &self.entities[i])
    }

    /// The index of the entity named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The entity a user names on the command line: the one of that full name
    /// (`conditional::t1`), or else the one whose name ends in `::name` (`t1`) if only one
    /// does; more than one is an error listing them.
    pub fn find(&self, name: &str) -> Result<&EntityDecl, FindError> {
        if let Some(e) = self.get(name) {
            return Ok(e);
        }
        let suffix = format!("::{name}");
        let matches: Vec<&EntityDecl> = self
            .entities
            .iter()
            .filter(|e| e.name.ends_with(&suffix))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(FindError::Unknown {
                name: name.to_string(),
                available: self.names(),
            }),
            many => Err(FindError::Ambiguous {
                name: name.to_string(),
                candidates: many
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The names of all entities, for "unknown entity" messages.
    pub fn names(&self) -> String {
        self.entities
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The compiler's view of the model (the inherent methods, which take precedence).
impl Entities for ModuleDecl {
    fn entities(&self) -> &[EntityDecl] {
        &self.entities
    }
    fn index(&self, name: &str) -> Option<usize> {
        self.index(name)
    }
    fn default_input(&self, index: usize, input: usize) -> Option<&Value> {
        self.default_input(index, input)
    }
    fn is_fixed(&self, index: usize, name: &str) -> bool {
        self.is_fixed(index, name)
    }
    fn get(&self, name: &str) -> Option<&EntityDecl> {
        self.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandflow_contract::{Interface, TaskConfig};

    fn task(config: TaskConfig) -> EntityDecl {
        EntityDecl {
            name: "t".into(),
            interface: Interface {
                inputs: Vec::new(),
                output: None,
            },
            kind: EntityKind::Task(config),
        }
    }

    #[test]
    fn a_task_declaring_a_limit_of_zero_fails_the_load() {
        let cases = [
            (
                TaskConfig {
                    max_memory_mb: Some(0),
                    ..TaskConfig::default()
                },
                "task t: max_memory_mb must be at least 1",
            ),
            (
                TaskConfig {
                    timeout_ms: Some(0),
                    ..TaskConfig::default()
                },
                "task t: timeout_ms must be at least 1",
            ),
        ];
        for (config, expected) in cases {
            let e = ModuleDecl::new(vec![task(config)]).expect_err("refused");
            assert_eq!(e.to_string(), expected);
        }
        assert!(ModuleDecl::new(vec![task(TaskConfig::default())]).is_ok());
    }

    fn add(b_default: Option<Value>) -> EntityDecl {
        let param = |name: &str, default| Param {
            name: name.into(),
            ty: sandflow_contract::Type::Int,
            default,
        };
        EntityDecl {
            name: "add".into(),
            interface: Interface {
                inputs: vec![param("a", None), param("b", b_default)],
                output: Some(sandflow_contract::Type::Int),
            },
            kind: EntityKind::Task(TaskConfig::default()),
        }
    }

    #[test]
    fn a_default_of_the_wrong_type_fails_the_load_naming_the_input() {
        let e = ModuleDecl::new(vec![add(Some(Value::Str("three".into())))]).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "task add: default of input `b`: expected i64, found a string"
        );
    }

    #[test]
    fn an_entitys_own_default_is_the_default_of_its_input() {
        let decl = ModuleDecl::new(vec![add(Some(Value::Int(3)))]).expect("loads");
        assert_eq!(decl.default_input(0, 1), Some(&Value::Int(3)));
        assert_eq!(decl.default_input(0, 0), None);
    }
}
