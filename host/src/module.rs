//! A guest module's entities ([`ModuleDecl`]) and the errors loading a module can give.

use crate::compile::{self, CompileError, CompiledGraph};
use sandflow_contract::{EntityDecl, EntityKind};
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

/// The entities of one module, by name.
#[derive(Debug, Default)]
pub struct ModuleDecl {
    pub entities: Vec<EntityDecl>,
    by_name: HashMap<String, usize>,
    /// Each workflow's graph, compiled, by entity index.
    graphs: Vec<Option<Arc<CompiledGraph>>>,
    /// Each launch plan's workflow, by entity index (so a run never looks it up by name).
    targets: Vec<Option<usize>>,
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
        let targets = entities
            .iter()
            .map(|e| match &e.kind {
                EntityKind::LaunchPlan(lp) => by_name.get(&lp.workflow).copied(),
                _ => None,
            })
            .collect();
        let mut decl = ModuleDecl {
            entities,
            by_name,
            graphs: Vec::new(),
            targets,
        };
        for e in &decl.entities {
            if let EntityKind::Task(c) | EntityKind::Dynamic(c) = &e.kind {
                compile::check_task_config(e, c)?;
            }
        }
        let mut widened = Vec::new();
        for (i, e) in decl.entities.iter().enumerate() {
            if let EntityKind::LaunchPlan(lp) = &e.kind {
                compile::check_launch_plan(&decl, e, lp)?;
                let wf = decl.get(&lp.workflow).expect("checked above");
                let inputs = wf
                    .interface
                    .inputs
                    .iter()
                    .filter(|p| !lp.fixed.iter().any(|(n, _)| n == &p.name))
                    .cloned()
                    .collect();
                widened.push((i, inputs));
            }
        }
        for (i, inputs) in widened {
            decl.entities[i].interface.inputs = inputs;
        }
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
        self.targets.get(index).copied().flatten()
    }

    pub fn get(&self, name: &str) -> Option<&EntityDecl> {
        self.by_name.get(name).map(|&i| &self.entities[i])
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
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
}
