//! The run's memory budget: an estimate of the host memory one run holds, so that no guest can
//! make the host run out of it. A dynamic's graph is small encoded and large decoded, and a
//! tree of dynamics can stay within `max_nodes` and still take gigabytes; counting nodes is
//! not enough.
//!
//! What is charged: every node the run creates (`size_of::<Node>()`), every scope with its
//! inputs, every graph a dynamic returns (estimated as decoding charges it, see
//! `sandflow_contract::memory`, plus the compiled indexes), every output a node keeps until
//! its scope completes, and the inputs of queued attempts and of maps. Outputs and inputs are
//! released when they are freed; nodes, scopes and graphs stay for the tree until the run
//! ends. Logs and the values in flight inside a sandbox are bounded elsewhere (per attempt).

use super::Node;
use crate::compile::CompiledGraph;
use sandflow_contract::Value;
use std::mem::size_of;

/// The default of `Options::max_run_memory_bytes`: 4 GiB.
pub const DEFAULT_MAX_RUN_MEMORY_BYTES: u64 = 4 << 30;

/// Bytes held against a limit.
#[derive(Debug)]
pub(super) struct Budget {
    limit: u64,
    used: u64,
}

impl Budget {
    pub(super) fn new(limit: u64) -> Budget {
        Budget { limit, used: 0 }
    }

    /// Charges `bytes`, or (charging nothing) says that the run would go past its budget.
    pub(super) fn charge(&mut self, bytes: u64) -> Result<(), Over> {
        let used = self.used.saturating_add(bytes);
        if used > self.limit {
            return Err(Over {
                bytes,
                limit: self.limit,
                used: self.used,
            });
        }
        self.used = used;
        Ok(())
    }

    /// Gives back bytes charged before.
    pub(super) fn release(&mut self, bytes: u64) {
        debug_assert!(bytes <= self.used, "releasing {bytes} of {}", self.used);
        self.used = self.used.saturating_sub(bytes);
    }

    /// Bytes held now.
    pub(super) fn used(&self) -> u64 {
        self.used
    }
}

/// A charge the budget refused.
#[derive(Debug)]
pub(super) struct Over {
    bytes: u64,
    limit: u64,
    used: u64,
}

impl Over {
    /// The user's message: what needed the memory, and how to raise the budget.
    pub(super) fn message(&self, what: &str) -> String {
        format!(
            "{what} needs {} more, past the run's memory budget of {} with {} held \
             (max_run_memory_bytes; raise it with --max-run-memory-mb)",
            mib(self.bytes),
            mib(self.limit),
            mib(self.used)
        )
    }
}

/// A size for a message: in MiB, or in KiB or bytes when smaller (an input of a few hundred
/// bytes is not "0.0 MiB").
fn mib(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} bytes"),
        1024..0x10_0000 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64),
    }
}

/// What `n` nodes of the arena take.
pub(super) fn nodes_bytes(n: usize) -> u64 {
    (n as u64).saturating_mul(size_of::<Node>() as u64)
}

/// What a list of values takes.
pub(super) fn values_bytes(values: &[Value]) -> u64 {
    values.iter().map(Value::memory_bytes).sum()
}

/// What a kept output takes.
pub(super) fn output_bytes(output: &Option<Value>) -> u64 {
    output.as_ref().map_or(0, Value::memory_bytes)
}

/// What a compiled graph adds to its spec: its per-node indexes and dependency lists, and
/// its conditionals' branches (copied into graphs of their own).
pub(super) fn index_bytes(g: &CompiledGraph) -> u64 {
    let per_node = 3 * size_of::<u32>() + size_of::<Vec<u32>>();
    let edges: usize = g.dependents.iter().map(Vec::capacity).sum();
    let branches: u64 = g
        .conditionals
        .iter()
        .map(|(_, b)| b.graph.spec.memory_bytes() + index_bytes(&b.graph))
        .sum();
    (g.spec.nodes.len() * per_node + edges * size_of::<u32>()) as u64 + branches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_past_the_limit_fails_charging_nothing_and_names_the_option() {
        let mut b = Budget::new(10 << 20);
        b.charge(6 << 20).unwrap();
        let e = b
            .charge(5 << 20)
            .unwrap_err()
            .message("the graph dyn returned");
        assert_eq!(
            e,
            "the graph dyn returned needs 5.0 MiB more, past the run's memory budget of \
             10.0 MiB with 6.0 MiB held (max_run_memory_bytes; raise it with \
             --max-run-memory-mb)"
        );
        assert_eq!(b.used(), 6 << 20);
        b.release(6 << 20);
        b.charge(10 << 20).unwrap();
        assert_eq!(b.used(), 10 << 20);
        // Small amounts read in KiB or bytes, not as 0.0 MiB.
        b.release(5 << 10);
        let e = b.charge(6 << 10).unwrap_err().message("x");
        assert!(e.starts_with("x needs 6.0 KiB more, "), "{e}");
        b.release(b.used());
        let e = b.charge(11 << 20).unwrap_err().message("y");
        assert!(e.contains("with 0 bytes held"), "{e}");
    }
}
