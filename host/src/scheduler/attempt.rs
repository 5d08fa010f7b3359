//! An attempt ended: book it (its execution slot, timing and output), then take its answer
//! (a task's output, a dynamic's graph) or hand its failure to the retry policy.

use super::logs::tail;
use super::{budget, Change, Scheduler, State};
use super::{AttemptFailure, NodeId, Outcome, Timing};
use crate::compile::{self, CompiledGraph};
use sandflow_contract::{CallResult, EntityKind, GraphSpec, Type, Value};
use std::sync::Arc;

impl Scheduler {
    /// Attempt `attempt` of `id` ended with `outcome`, having written `stdout` and `stderr`.
    pub(super) fn on_attempt(
        &mut self,
        id: NodeId,
        attempt: u32,
        outcome: Outcome,
        (timing, worker): (Timing, Option<u16>),
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    ) {
        if let Some(n) = self.nodes.get_mut(id as usize) {
            if n.attempts == attempt {
                n.worker = worker.unwrap_or(u16::MAX);
            }
        }
        // The store keeps every attempt's whole output, whatever the memory budget keeps.
        let logs = self.journaling().then(|| (stdout.clone(), stderr.clone()));
        let Some(dropped_tail) = self.end_attempt(id, attempt, timing, stdout, stderr) else {
            if let Some((stdout, stderr)) = logs {
                if self
                    .nodes
                    .get(id as usize)
                    .is_some_and(|n| n.attempts == attempt)
                {
                    let failure = Some((false, "aborted: its result was no longer wanted".into()));
                    self.note_attempt(id, attempt, (timing, worker), failure, stdout, stderr);
                }
            }
            return;
        };
        let key = self.cache_keys.remove(&id);
        let answer = match outcome {
            Outcome::Returned(r) => {
                // What a cache keeps: taken before the answer is consumed, only for a cached
                // task whose run a store records.
                let keep = key.filter(|_| self.journaling()).map(|k| (k, r.clone()));
                let answer = self.take_answer(id, r);
                if let (Ok(()), Some((key, result))) = (&answer, keep) {
                    if matches!(
                        self.nodes[id as usize].state,
                        State::Succeeded | State::Expanded
                    ) {
                        self.note(Change::Cache {
                            node: id,
                            key,
                            result,
                        });
                    }
                }
                answer
            }
            Outcome::Cached(r) => {
                let n = &mut self.nodes[id as usize];
                // Served without a sandbox: not a task execution.
                n.attempts -= 1;
                n.origin = super::Origin::Cached;
                self.take_answer(id, r)
            }
            Outcome::Failed(f) => Err(f),
        };
        if let Some((stdout, stderr)) = logs {
            let failure = answer.as_ref().err().map(|f| (f.user, f.message.clone()));
            self.note_attempt(id, attempt, (timing, worker), failure, stdout, stderr);
        }
        if let Err(f) = answer {
            self.retry_or_fail(id, attempt, f, timing, dropped_tail);
        }
    }

    /// Journals an ended attempt, with all it wrote.
    fn note_attempt(
        &mut self,
        id: NodeId,
        attempt: u32,
        (timing, worker): (Timing, Option<u16>),
        failure: Option<(bool, String)>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    ) {
        self.note(Change::Attempt {
            node: id,
            attempt,
            start_us: timing.start_us,
            end_us: timing.end_us,
            worker,
            failure,
            stdout,
            stderr,
        });
    }

    /// Books the end of attempt `attempt` of `id`: frees its execution slot, extends the
    /// node's timing and keeps its output as the log budget allows. `None` when its answer is
    /// not wanted: an unknown node, a stale attempt, or one that was aborted. Else the stderr
    /// tail a failure of this attempt reports when the budget did not keep its output (when
    /// it did, the tail is taken from the kept output, and only if the attempt failed).
    fn end_attempt(
        &mut self,
        id: NodeId,
        attempt: u32,
        timing: Timing,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    ) -> Option<Option<String>> {
        let n = self.nodes.get_mut(id as usize)?;
        if attempt != n.attempts || !matches!(n.state, State::Running | State::Aborting) {
            return None;
        }
        // A delegated launch plan call took no slot (see `dispatch`).
        if self.delegated_calls == 0 || !self.decl.is_launch_plan(n.entity) {
            self.execs[n.exec as usize].running -= 1;
        }
        self.to_dispatch.push(n.exec);
        n.timing = Some(match n.timing {
            Some(t) => Timing {
                start_us: t.start_us,
                end_us: timing.end_us,
            },
            None => timing,
        });
        let dropped_tail = (!self.logs.fits(self.opts.max_log_bytes, &stdout, &stderr))
            .then(|| tail(&stderr))
            .flatten();
        n.logs = self.logs.keep(self.opts.max_log_bytes, stdout, stderr);
        if n.state == State::Aborting {
            n.state = State::Aborted;
            return None;
        }
        Some(dropped_tail)
    }

    /// What the guest returned: a task succeeds with its output, a dynamic expands into its
    /// graph. An answer wrong for the entity is the attempt's failure (and may be retried).
    fn take_answer(&mut self, id: NodeId, answer: CallResult) -> Result<(), AttemptFailure> {
        let decl = self.decl.clone();
        let e = &decl.entities[self.nodes[id as usize].entity as usize];
        match (answer, &e.kind) {
            // A task's answer, or a delegated launch plan call's: its child execution's.
            (CallResult::Output(v), EntityKind::Task(_) | EntityKind::LaunchPlan(_)) => {
                let v = check_output(v, e.interface.output.as_ref())?;
                self.succeed_node(id, v);
                Ok(())
            }
            (CallResult::Graph(g), EntityKind::Dynamic(_)) => self.expand_dynamic(id, g),
            (CallResult::Error(m), _) => Err(AttemptFailure::guest(m)),
            (CallResult::Output(_), kind) => Err(AttemptFailure::guest(format!(
                "is a {} but returned a task output",
                kind.name()
            ))),
            (CallResult::Graph(_), kind) => Err(AttemptFailure::guest(format!(
                "is a {} but returned a graph",
                kind.name()
            ))),
        }
    }

    /// Dynamic `id` returned `g`: compile it and start it as the node's scope. A graph that
    /// does not compile is the attempt's failure; one past the run's limits fails the node
    /// (another attempt would return the same graph).
    pub(super) fn expand_dynamic(
        &mut self,
        id: NodeId,
        g: GraphSpec,
    ) -> Result<(), AttemptFailure> {
        let decl = self.decl.clone();
        let e = &decl.entities[self.nodes[id as usize].entity as usize];
        let path = self.path(id);
        // Charged before it is compiled: a graph past the budget goes no further.
        let spec_bytes = g.memory_bytes();
        let what = |o: budget::Over| o.message(&format!("the graph {path} returned"));
        if let Err(o) = self.budget.charge(spec_bytes) {
            self.fail_node(id, self.graph_failure(id, what(o)));
            return Ok(());
        }
        let compiled = compile::check_graph(&decl, &g, None, e.interface.output.as_ref(), &path)
            .and_then(|()| CompiledGraph::new(&decl, g));
        let graph = match compiled {
            Ok(graph) => graph,
            Err(c) => {
                self.budget.release(spec_bytes);
                return Err(AttemptFailure::guest(format!(
                    "returned a graph that does not compile: {c}"
                )));
            }
        };
        let depth = self.depth_of(id);
        let n = &mut self.nodes[id as usize];
        n.state = State::Expanded;
        let exec = n.exec;
        self.note_node(id);
        let index_bytes = budget::index_bytes(&graph);
        let expanded = self
            .budget
            .charge(index_bytes)
            .map_err(|o| (what(o), spec_bytes))
            .and_then(|()| {
                let graph = Arc::new(graph);
                if self.journaling() {
                    self.note(Change::Graph {
                        node: id,
                        graph: graph.clone(),
                    });
                }
                self.create_scope(id, exec, graph, Vec::new(), depth + 1)
                    .map_err(|m| (m, spec_bytes + index_bytes))
            });
        if let Err((m, charged)) = expanded {
            self.budget.release(charged);
            self.fail_node(id, self.graph_failure(id, m));
        }
        Ok(())
    }
}

/// A task's output `v` checked against its declared output type `t`.
fn check_output(v: Option<Value>, t: Option<&Type>) -> Result<Option<Value>, AttemptFailure> {
    match (v, t) {
        (Some(v), Some(t)) => match v.check(t) {
            Ok(()) => Ok(Some(v)),
            Err(m) => Err(AttemptFailure::guest(format!(
                "returned a value that does not match its output type: {m}"
            ))),
        },
        (None, None) => Ok(None),
        (Some(_), None) => Err(AttemptFailure::guest(
            "returned a value but declares no output",
        )),
        (None, Some(t)) => Err(AttemptFailure::guest(format!(
            "returned nothing, expected {t}"
        ))),
    }
}
