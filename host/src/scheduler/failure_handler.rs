//! A workflow's failure handler (`#[workflow(on_failure = clean_up)]`): the last node of the
//! workflow's compiled graph, left waiting while the graph runs. When the graph fails, the
//! handler starts with the workflow's inputs and the error; when it ends, the workflow fails
//! with the graph's failure and the handler's outcome beside it. When the graph succeeds, the
//! handler is skipped.

use super::{budget, Failure, NodeId, Scheduler, ScopeId, State};
use sandflow_contract::failure_handler::ERROR_INPUT;
use sandflow_contract::{Binding, Type, Value};

impl Scheduler {
    /// The failure handler's node of scope `s`, if its graph has one.
    pub(super) fn handler_node(&self, s: ScopeId) -> Option<NodeId> {
        let scope = &self.scopes[s.index()];
        scope.graph.handler.map(|j| scope.at(j))
    }

    /// Scope `s` failed with `failure`: run its failure handler, or fail its owner at once
    /// when it has none (or the run was cancelled).
    pub(super) fn fail_scope(&mut self, s: ScopeId, failure: Failure) {
        let owner = self.scopes[s.index()].owner;
        self.scopes[s.index()].over = true;
        let Some(h) = self.handler_node(s) else {
            return self.fail_node(owner, failure);
        };
        if failure.cancelled || self.nodes[h as usize].state != State::Waiting {
            self.skip_handler(s);
            return self.fail_node(owner, failure);
        }
        let decl = self.decl.clone();
        let handler = &decl.entities[self.nodes[h as usize].entity as usize];
        let err = Value::Record(vec![
            Value::Str(failure.message.clone()),
            Value::Str(failure.path.clone()),
            Value::Str(if failure.user { "user" } else { "system" }.into()),
        ]);
        let mut inputs = Vec::with_capacity(handler.interface.inputs.len());
        for p in &handler.interface.inputs {
            if p.name == ERROR_INPUT {
                inputs.push(match p.ty {
                    Type::Optional(_) => Value::Optional(Some(Box::new(err.clone()))),
                    _ => err.clone(),
                });
                continue;
            }
            match self.read(s, &Binding::Input(p.name.clone())) {
                Ok(v) => inputs.push(v.clone()),
                Err(m) => {
                    self.skip_handler(s);
                    let mut f = failure;
                    f.message = format!(
                        "{} (failure handler {} could not start: input `{}`: {m})",
                        f.message, handler.name, p.name
                    );
                    return self.fail_node(owner, f);
                }
            }
        }
        // Held until the handler ends, which may be at once (a handler with an empty graph).
        self.scopes[s.index()].failure = Some(Box::new(failure));
        let depth = self.scopes[s.index()].depth;
        self.start_node(h, inputs, depth);
    }

    /// The failure handler of scope `s`, node `id`, ended (`failure` is its own, if it
    /// failed): the scope's owner fails with the scope's failure, the handler's outcome
    /// added to its message.
    pub(super) fn handler_ended(&mut self, s: ScopeId, id: NodeId, failure: Option<Failure>) {
        let Some(held) = self.scopes[s.index()].failure.take() else {
            return;
        };
        // Its output is not read by anything.
        let out = self.nodes[id as usize].output.take();
        self.budget.release(budget::output_bytes(&out));
        let name = &self.decl.entities[self.nodes[id as usize].entity as usize].name;
        let mut f = *held;
        f.message = match failure {
            None => format!("{} (failure handler {name} ran and succeeded)", f.message),
            Some(h) => format!(
                "{} (failure handler {name} failed too, at {}: {})",
                f.message, h.path, h.message
            ),
        };
        let owner = self.scopes[s.index()].owner;
        self.fail_node(owner, f);
    }

    /// Scope `s` ended without needing its failure handler: it shows as skipped.
    pub(super) fn skip_handler(&mut self, s: ScopeId) {
        if let Some(h) = self.handler_node(s) {
            if self.nodes[h as usize].state == State::Waiting {
                self.nodes[h as usize].state = State::Skipped;
                self.note_node(h);
            }
        }
    }
}
