//! Conditional nodes: once everything a conditional reads is there, the scheduler evaluates
//! its cases itself (no sandbox), in order, and runs the first that holds (or the `otherwise`
//! branch). The branches become the conditional's children, in a scope of their own whose
//! bindings read the enclosing graph; the branches not taken are skipped, so the tree and the
//! store show them. The conditional's output is the taken branch's; a failure branch fails it
//! with its message.

use super::{NodeId, Parent, Scheduler, ScopeId, State};
use crate::compile::CONDITIONAL;
use sandflow_contract::{Binding, Branch, Condition, ConditionalSpec, Value};

impl Scheduler {
    /// Conditional node `id` (node `j` of scope `s`) has everything it reads: choose a branch
    /// and run it.
    pub(super) fn start_conditional(&mut self, s: ScopeId, j: u32, id: NodeId, depth: u32) {
        let graph = self.scopes[s.index()].graph.clone();
        let (Some(c), Some(branches)) = (
            graph.spec.nodes[j as usize].conditional.as_deref(),
            graph.branches(j),
        ) else {
            let m = "a conditional without compiled branches".to_string();
            return self.fail_node(id, self.graph_failure(id, m));
        };
        let taken = match self.choose(s, c) {
            Ok(t) => t,
            Err(m) => return self.fail_node(id, self.graph_failure(id, m)),
        };
        let exec = self.nodes[id as usize].exec;
        self.nodes[id as usize].state = State::Expanded;
        self.note_node(id);
        let bs = match self.new_scope(id, exec, branches.graph.clone(), Vec::new(), depth + 1) {
            Ok(bs) => bs,
            Err(m) => return self.fail_node(id, self.graph_failure(id, m)),
        };
        self.scopes[bs.index()].reads = self.scopes[s.index()].reads;
        let run = taken.and_then(|k| branches.slots[k]);
        let skipped: Vec<NodeId> = self.scopes[bs.index()]
            .nodes()
            .filter(|&n| Some(n) != run.map(|r| self.scopes[bs.index()].at(r)))
            .collect();
        for n in &skipped {
            self.nodes[*n as usize].state = State::Skipped;
            self.note_node(*n);
        }
        self.scopes[bs.index()].remaining -= skipped.len();
        match (run, taken.and_then(|k| c.branches().nth(k))) {
            (Some(r), _) => self.ready(bs, r),
            (None, Some(Branch::Fail(m))) => {
                let f = self.graph_failure(id, m.clone());
                self.fail_node(id, f);
            }
            // No case held and there is no `otherwise`: nothing runs (the compiler allows
            // this only for a conditional without an output).
            _ => self.complete_scope(bs),
        }
    }

    /// The branch to take: the first case whose condition holds, else `otherwise` (index
    /// `cases.len()`), else none.
    fn choose(&self, s: ScopeId, c: &ConditionalSpec) -> Result<Option<usize>, String> {
        for (k, case) in c.cases.iter().enumerate() {
            if self.holds(s, &case.when)? {
                return Ok(Some(k));
            }
        }
        Ok(c.otherwise.as_ref().map(|_| c.cases.len()))
    }

    /// Whether `cond` holds on the values of scope `s` (`and`/`or` short-circuit). Recursive:
    /// a decoded condition nests at most `depth::MAX_NESTING` deep.
    fn holds(&self, s: ScopeId, cond: &Condition) -> Result<bool, String> {
        Ok(match cond {
            Condition::Compare(a, op, b) => {
                let (x, y) = (self.operand(s, a)?, self.operand(s, b)?);
                let ordering = match (x, y) {
                    (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
                    (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
                    (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
                    (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
                    (x, y) => {
                        return Err(format!(
                            "condition compares a {} with a {}",
                            x.kind(),
                            y.kind()
                        ))
                    }
                };
                op.holds(ordering)
            }
            Condition::IsTrue(b) => match self.operand(s, b)? {
                Value::Bool(x) => *x,
                v => return Err(format!("is_true tests a {}, not a bool", v.kind())),
            },
            Condition::IsSome(b) | Condition::IsNone(b) => match self.operand(s, b)? {
                Value::Optional(o) => o.is_some() == matches!(cond, Condition::IsSome(_)),
                v => {
                    return Err(format!(
                        "is_some/is_none tests a {}, not an optional",
                        v.kind()
                    ))
                }
            },
            Condition::And(a, b) => self.holds(s, a)? && self.holds(s, b)?,
            Condition::Or(a, b) => self.holds(s, a)? || self.holds(s, b)?,
            Condition::Not(a) => !self.holds(s, a)?,
        })
    }

    /// The value an operand reads, without copying it: as an input reads it, from the graph
    /// the conditional is in.
    fn operand<'a>(&'a self, s: ScopeId, b: &'a Binding) -> Result<&'a Value, String> {
        self.read(s, b)
    }

    /// The output of branch scope `s`: its one succeeded node's (none when nothing ran).
    pub(super) fn branch_output(&mut self, s: ScopeId) -> Option<Value> {
        let taken = self.scopes[s.index()]
            .nodes()
            .find(|&n| self.nodes[n as usize].state == State::Succeeded)?;
        let out = self.nodes[taken as usize].output.take();
        self.budget.release(super::budget::output_bytes(&out));
        out
    }

    /// Whether `id` is a conditional node.
    pub(super) fn is_conditional(&self, id: NodeId) -> bool {
        self.nodes[id as usize].entity == CONDITIONAL
    }

    /// The node's name in its graph: its entity's, or a conditional's own.
    pub(super) fn node_name(&self, id: NodeId) -> &str {
        let n = &self.nodes[id as usize];
        if n.entity != CONDITIONAL {
            return &self.decl.entities[n.entity as usize].name;
        }
        match n.parent {
            Parent::Scope(s, j) => &self.scopes[s.index()].graph.spec.nodes[j as usize].entity,
            _ => "conditional",
        }
    }

    /// `task`, `workflow`, `dynamic`, `launch plan` or `conditional` (a map is told apart by
    /// its child, not here).
    pub(super) fn node_kind(&self, id: NodeId) -> &'static str {
        let n = &self.nodes[id as usize];
        if n.entity == CONDITIONAL {
            return "conditional";
        }
        self.decl.entities[n.entity as usize].kind.name()
    }
}
