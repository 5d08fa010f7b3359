//! The driver's side of the task cache: a cached task's attempt is answered from the cache
//! when it has the result (no sandbox), and identical cached calls running at the same time in
//! one run execute once: the first runs, the others wait for its result.

use crate::scheduler::{Event, NodeId, Outcome, RunTask, Timing};
use rustc_hash::FxHashMap;
use sandflow_contract::CallResult;
use std::collections::VecDeque;

/// Cached attempts on their way: looked up, waiting for an identical one, or running.
#[derive(Default)]
pub(super) struct CachedCalls {
    /// Attempts with a cache key the driver has not looked up yet.
    pub(super) to_look_up: Vec<RunTask>,
    /// Per key being computed: the attempts waiting for its result.
    waiting: FxHashMap<[u8; 32], Vec<RunTask>>,
    /// The key of each running attempt that others may wait for.
    computing: FxHashMap<NodeId, [u8; 32]>,
    /// Answers to feed the scheduler: cache hits, and waiters served by a result.
    pub(super) answers: VecDeque<Event>,
}

/// What became of one looked-up attempt.
pub(super) enum Lookup {
    /// Answered (from the cache, or queued to wait for an identical running attempt).
    Handled,
    /// Nobody computes it: run it.
    Run(RunTask),
}

impl CachedCalls {
    /// Looks `task` up: `hit` is what the cache has for its key (`None` when it has nothing,
    /// or the run overwrites the cache).
    pub(super) fn look_up(
        &mut self,
        task: RunTask,
        hit: Option<CallResult>,
        now_us: u64,
    ) -> Lookup {
        let Some(key) = task.cache_key else {
            return Lookup::Run(task);
        };
        if let Some(result) = hit {
            self.answers.push_back(answer(&task, result, now_us));
            return Lookup::Handled;
        }
        if let Some(waiters) = self.waiting.get_mut(&key) {
            waiters.push(task);
            return Lookup::Handled;
        }
        self.waiting.insert(key, Vec::new());
        self.computing.insert(task.node, key);
        Lookup::Run(task)
    }

    /// Whether an attempt of `node` is one that others may wait for.
    pub(super) fn computes(&self, node: NodeId) -> bool {
        !self.computing.is_empty() && self.computing.contains_key(&node)
    }

    /// Whether an ended attempt of `node` has waiters to hand its result to.
    pub(super) fn has_waiters(&self, node: NodeId) -> bool {
        self.computing
            .get(&node)
            .and_then(|k| self.waiting.get(k))
            .is_some_and(|w| !w.is_empty())
    }

    /// The attempt of `node` ended: with `result` if the scheduler took it (`None` if it
    /// failed). Waiters get the result, or are looked up again (one of them then runs).
    pub(super) fn ended(&mut self, node: NodeId, result: Option<CallResult>, now_us: u64) {
        let Some(key) = self.computing.remove(&node) else {
            return;
        };
        let waiters = self.waiting.remove(&key).unwrap_or_default();
        match result {
            Some(r) => {
                for w in &waiters {
                    self.answers.push_back(answer(w, r.clone(), now_us));
                }
            }
            None => self.to_look_up.extend(waiters),
        }
    }
}

/// The scheduler's answer to `task` from a cached `result`.
fn answer(task: &RunTask, result: CallResult, now_us: u64) -> Event {
    Event::Attempted {
        node: task.node,
        attempt: task.attempt,
        outcome: Outcome::Cached(result),
        timing: Timing {
            start_us: now_us,
            end_us: now_us,
        },
        worker: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
    }
}
