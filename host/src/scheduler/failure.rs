//! The failure policy: what a failed node does to its scope (fail fast, or run all and fail
//! at the end), to its map (tolerated up to `min_success`), to the run (cancel), and whether
//! a failed attempt is retried. Every `Failure` the scheduler reports is built here or in
//! `protocol`.

use super::logs::{tail, AttemptLog};
use super::{budget, Child, Command, NodeId, Parent, Scheduler, ScopeId, State};
use super::{AttemptFailure, Failure, Timing};
use sandflow_contract::FailurePolicy;

impl Scheduler {
    /// A failure the graph itself causes (it cannot be compiled or resolved, or outgrows a
    /// limit): the user's to fix, with no attempt to name.
    pub(super) fn graph_failure(&self, id: NodeId, message: String) -> Failure {
        Failure::at(self.path(id), AttemptFailure::guest(message))
    }

    /// Attempt `attempt` of `id` failed: queue it again if its retry policy allows, else fail
    /// the node with it. `dropped_tail` is the attempt's stderr tail when the log budget did
    /// not keep its output.
    pub(super) fn retry_or_fail(
        &mut self,
        id: NodeId,
        attempt: u32,
        failure: AttemptFailure,
        timing: Timing,
        dropped_tail: Option<String>,
    ) {
        let n = &self.nodes[id as usize];
        let cfg = &self.configs[n.entity as usize].0;
        let retries = cfg.retries;
        let kept = self.logs.message(self.opts.max_log_bytes, &failure.message);
        let n = &mut self.nodes[id as usize];
        let retries_left = n.attempts <= retries;
        let retry = retries_left && cfg.retry_on.retries(failure.user);
        n.failed_attempts.get_or_insert_default().push(AttemptLog {
            timing,
            message: kept,
            // The next attempt's output becomes the node's; this one's stays with it.
            logs: if retry { n.logs.take() } else { None },
        });
        if retry {
            n.state = State::Queued;
            if self.delegated_calls > 0 && self.decl.is_launch_plan(n.entity) {
                // A delegated call is made again as it was made: handed to the driver.
                self.delegated.push_back(id);
                self.to_dispatch.push(n.exec);
            } else {
                self.execs[n.exec as usize].queue.push_back(id);
            }
            return;
        }
        let stderr_tail = dropped_tail.or_else(|| n.logs.as_ref().and_then(|l| tail(&l.stderr)));
        let mut f = Failure {
            attempt,
            attempts: retries.saturating_add(1),
            stderr_tail,
            ..Failure::at(self.path(id), failure)
        };
        if retries_left {
            // Retries left, but not for this kind of failure: say so, rather than "attempt 1
            // of 3" as if two more had been tried.
            let kind = if f.user { "user" } else { "system" };
            let only = if f.user { "system" } else { "user" };
            f.attempts = attempt;
            f.message = format!(
                "{} (not retried: {kind} errors are not retried, the task retries only {only} errors)",
                f.message
            );
        }
        self.fail_node(id, f);
    }

    /// `id` failed with `failure`: stop what it started, then apply its parent's policy
    /// (the run ends, the scope fails fast or runs the rest, the map tolerates or fails).
    pub(super) fn fail_node(&mut self, id: NodeId, failure: Failure) {
        let n = &mut self.nodes[id as usize];
        if matches!(
            n.state,
            State::Failed | State::Succeeded | State::Skipped | State::Aborting | State::Aborted
        ) {
            return;
        }
        n.state = State::Failed;
        self.note_node(id);
        self.drop_inputs(id);
        self.cancel_children(id);
        match self.nodes[id as usize].parent {
            Parent::Root => self.finish(Err(failure)),
            Parent::Scope(s, j) => {
                let scope = &self.scopes[s.index()];
                if scope.graph.handler == Some(j) {
                    return self.handler_ended(s, id, Some(failure));
                }
                if scope.over {
                    return;
                }
                if scope.graph.spec.on_failure == FailurePolicy::RunAll {
                    self.fail_and_run_the_rest(s, id, failure);
                } else {
                    self.fail_fast(s, id, failure);
                }
            }
            Parent::Map(m, _) => self.fail_element(m, failure),
        }
    }

    /// `FailurePolicy::FailFast`: the rest of scope `s` will not be needed; stop it and fail
    /// the scope's owner with `id`'s failure.
    fn fail_fast(&mut self, s: ScopeId, id: NodeId, failure: Failure) {
        self.scopes[s.index()].over = true;
        let handler = self.handler_node(s);
        for sib in self.scopes[s.index()].nodes() {
            if sib != id && Some(sib) != handler {
                self.cancel_subtree(sib);
            }
        }
        self.fail_scope(s, failure);
    }

    /// An element of map `m` failed: the map goes on while its min success allows, else
    /// fails with the element's failure.
    fn fail_element(&mut self, m: NodeId, failure: Failure) {
        let give_up = match &mut self.nodes[m as usize].child {
            Child::Map(ms) if !ms.over => {
                ms.running -= 1;
                ms.failed += 1;
                ms.allowed_failures.is_none_or(|a| ms.failed > a)
            }
            _ => return,
        };
        if !give_up {
            self.to_advance.push_back(m);
            return;
        }
        let mut f = failure;
        if let Child::Map(ms) = &self.nodes[m as usize].child {
            if ms.allowed_failures.is_some() {
                f.message = format!(
                    "{} (map: {} of {} elements failed, more than min_success allows)",
                    f.message,
                    ms.failed,
                    ms.elements.len()
                );
            }
        }
        self.fail_node(m, f);
    }

    /// `FailurePolicy::RunAll`: skip what depends on the failed node, let everything else
    /// run, and fail the scope's owner with the first failure once nothing is left.
    fn fail_and_run_the_rest(&mut self, s: ScopeId, id: NodeId, failure: Failure) {
        let scope = &mut self.scopes[s.index()];
        scope.failure.get_or_insert_with(|| Box::new(failure));
        let mut finished = 1;
        let graph = scope.graph.clone();
        let Parent::Scope(_, j) = self.nodes[id as usize].parent else {
            return;
        };
        let mut stack = graph.dependents[j as usize].clone();
        while let Some(k) = stack.pop() {
            let kid = self.scopes[s.index()].at(k);
            let kn = &mut self.nodes[kid as usize];
            if kn.state == State::Waiting {
                kn.state = State::Skipped;
                self.note_node(kid);
                finished += 1;
                stack.extend_from_slice(&graph.dependents[k as usize]);
            }
        }
        let scope = &mut self.scopes[s.index()];
        scope.remaining -= finished;
        if scope.remaining == 0 {
            self.complete_scope(s);
        }
    }

    /// Stops a node and everything under it: queued and waiting nodes are skipped, running
    /// ones aborted (their answers will be ignored).
    pub(super) fn cancel_subtree(&mut self, id: NodeId) {
        let n = &mut self.nodes[id as usize];
        match n.state {
            State::Waiting | State::Queued => {
                n.state = State::Skipped;
                self.note_node(id);
                self.drop_inputs(id);
            }
            State::Running => {
                n.state = State::Aborting;
                let attempt = n.attempts;
                self.out.push(Command::Abort { node: id, attempt });
                self.note_node(id);
            }
            State::Expanded => {
                n.state = State::Aborted;
                self.note_node(id);
                self.cancel_children(id);
            }
            _ => {}
        }
    }

    /// Frees a node's kept inputs (charged when it was queued).
    pub(super) fn drop_inputs(&mut self, id: NodeId) {
        if let Some(inputs) = self.nodes[id as usize].inputs.take() {
            self.budget.release(budget::values_bytes(&inputs));
        }
    }

    /// Stops everything `id` expanded into.
    fn cancel_children(&mut self, id: NodeId) {
        let kids: Vec<NodeId> = match &mut self.nodes[id as usize].child {
            Child::Scope(s) | Child::Exec(_, s) => {
                let scope = &mut self.scopes[s.index()];
                scope.over = true;
                scope.nodes().collect()
            }
            Child::Map(m) => {
                m.over = true;
                m.elements.clone()
            }
            Child::None => Vec::new(),
        };
        for k in kids {
            self.cancel_subtree(k);
        }
    }
}
