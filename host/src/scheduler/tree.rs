//! The execution tree: what ran where, as Flyte's console shows it. Built on request from the
//! scheduler's state ([`TreeNode`]), and rendered as text for `sandflow run --tree`.

use super::{Child, NodeId, Scheduler, State, Timing};
use serde::Serialize;

/// One node of the execution tree.
#[derive(Clone, Debug, Serialize)]
pub struct TreeNode {
    /// The last segment of the node path (`core_wf_lp[1]`, `[3]` for a map element).
    pub name: String,
    pub path: String,
    pub entity: String,
    /// task, workflow, dynamic, launch plan, conditional; `map` for a map node.
    pub kind: String,
    pub state: String,
    pub attempts: u32,
    /// Messages of failed attempts, oldest first.
    pub failed_attempts: Vec<String>,
    /// The child execution a launch plan node started.
    pub execution: Option<u32>,
    pub start_us: Option<u64>,
    pub end_us: Option<u64>,
    pub children: Vec<TreeNode>,
    /// Map elements not listed in `children` (see [`TreeOptions::max_map_elements`]).
    pub elided: usize,
    /// Its result came from the task cache (no sandbox ran it).
    pub cached: bool,
    /// Its result was reused from the execution this run recovers.
    pub recovered: bool,
    /// What the node's latest attempt with any output wrote to stdout and stderr (lossy
    /// UTF-8), as the sandbox kept it: bounded, with a marker where a flood was cut.
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// Bytes the latest attempt wrote that the run did not keep (its log budget was spent).
    pub logs_dropped: u64,
    /// What earlier attempts of a retried node wrote, oldest first (attempts that wrote
    /// nothing are left out).
    pub earlier_attempts: Vec<AttemptOutput>,
}

/// What one earlier attempt of a node wrote.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptOutput {
    pub attempt: u32,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub logs_dropped: u64,
}

#[derive(Clone, Debug)]
pub struct TreeOptions {
    /// Map elements listed per map; failed ones are always listed.
    pub max_map_elements: usize,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            max_map_elements: 8,
        }
    }
}

impl Scheduler {
    /// The tree of everything this run started, from the root node.
    pub fn tree(&self, opts: &TreeOptions) -> TreeNode {
        self.tree_node(0, opts)
    }

    fn tree_node(&self, id: NodeId, opts: &TreeOptions) -> TreeNode {
        let n = &self.nodes[id as usize];
        let mut children = Vec::new();
        let mut elided = 0;
        let mut elided_span: Option<Timing> = None;
        let mut execution = None;
        let kind = match &n.child {
            Child::Map(_) => "map".to_string(),
            _ => self.node_kind(id).to_string(),
        };
        match &n.child {
            Child::None => {}
            Child::Scope(s) => {
                children = self.scopes[s.index()]
                    .nodes()
                    .map(|c| self.tree_node(c, opts))
                    .collect()
            }
            Child::Exec(x, s) => {
                execution = Some(*x);
                children = self.scopes[s.index()]
                    .nodes()
                    .map(|c| self.tree_node(c, opts))
                    .collect();
            }
            Child::Map(m) => {
                for (i, &el) in m.elements.iter().enumerate() {
                    let st = self.nodes[el as usize].state;
                    if i < opts.max_map_elements || st == State::Failed {
                        children.push(self.tree_node(el, opts));
                    } else {
                        elided += 1;
                        elided_span = merge(elided_span, self.span(el));
                    }
                }
            }
        }
        let name = {
            let p = self.path(id);
            let cut = if p.ends_with(']')
                && n.ordinal != u32::MAX
                && matches!(n.parent, super::Parent::Map(..))
            {
                p.rfind('[').unwrap_or(0)
            } else {
                p.rfind('/').map(|i| i + 1).unwrap_or(0)
            };
            p[cut..].to_string()
        };
        let mut span = merge(n.timing, elided_span);
        for c in &children {
            if let (Some(start_us), Some(end_us)) = (c.start_us, c.end_us) {
                span = merge(span, Some(Timing { start_us, end_us }));
            }
        }
        TreeNode {
            name,
            path: self.path(id),
            entity: self.node_name(id).to_string(),
            kind,
            // An attempt still being stopped is, to the reader of a finished run, aborted.
            state: match n.state {
                State::Aborting => "ABORTED".to_string(),
                other => format!("{other:?}").to_uppercase(),
            },
            attempts: n.attempts,
            failed_attempts: n
                .failed_attempts
                .iter()
                .flat_map(|v| v.iter())
                .map(|a| {
                    format!(
                        "{} ({})",
                        a.message,
                        fmt_us(a.timing.end_us.saturating_sub(a.timing.start_us))
                    )
                })
                .collect(),
            execution,
            start_us: span.map(|t| t.start_us),
            end_us: span.map(|t| t.end_us),
            children,
            elided,
            cached: n.origin == super::Origin::Cached,
            recovered: n.origin == super::Origin::Recovered,
            stdout: log_text(n.logs.as_ref().map(|l| &l.stdout)),
            stderr: log_text(n.logs.as_ref().map(|l| &l.stderr)),
            logs_dropped: n.logs.as_ref().map_or(0, |l| l.dropped),
            earlier_attempts: n
                .failed_attempts
                .iter()
                .flat_map(|v| v.iter())
                .enumerate()
                .filter_map(|(i, a)| {
                    let l = a.logs.as_ref()?;
                    Some(AttemptOutput {
                        attempt: i as u32 + 1,
                        stdout: log_text(Some(&l.stdout)),
                        stderr: log_text(Some(&l.stderr)),
                        logs_dropped: l.dropped,
                    })
                })
                .collect(),
        }
    }
}

fn log_text(bytes: Option<&Vec<u8>>) -> Option<String> {
    bytes
        .filter(|b| !b.is_empty())
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

impl Scheduler {
    /// When a node and everything under it ran, without building its tree.
    fn span(&self, id: NodeId) -> Option<Timing> {
        let n = &self.nodes[id as usize];
        let span = |acc, k| merge(acc, self.span(k));
        match &n.child {
            Child::None => n.timing,
            Child::Scope(s) | Child::Exec(_, s) => {
                self.scopes[s.index()].nodes().fold(n.timing, span)
            }
            Child::Map(m) => m.elements.iter().copied().fold(n.timing, span),
        }
    }
}

fn merge(a: Option<Timing>, b: Option<Timing>) -> Option<Timing> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Timing {
            start_us: a.start_us.min(b.start_us),
            end_us: a.end_us.max(b.end_us),
        }),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Renders the tree as indented text, one node a line.
pub fn render_tree(root: &TreeNode) -> String {
    let mut out = String::new();
    line(root, "", "", &mut out);
    out
}

fn line(n: &TreeNode, lead: &str, child_lead: &str, out: &mut String) {
    let dur = match (n.start_us, n.end_us) {
        (Some(s), Some(e)) => fmt_us(e.saturating_sub(s)),
        _ => "-".into(),
    };
    let mut extra = String::new();
    if n.cached {
        extra.push_str("  cached");
    }
    if n.recovered {
        extra.push_str("  recovered");
    }
    if n.attempts > 0 {
        extra.push_str(&format!("  attempts={}", n.attempts));
    }
    if let Some(x) = n.execution {
        extra.push_str(&format!("  child execution #{x}"));
    }
    let label = format!("{lead}{}", n.name);
    out.push_str(&format!(
        "{label:<44} {:<12} {:<10} {dur:>9}{extra}\n",
        n.kind, n.state
    ));
    for m in &n.failed_attempts {
        out.push_str(&format!(
            "{child_lead}    ! {}\n",
            m.lines().next().unwrap_or("")
        ));
    }
    let count = n.children.len();
    for (i, c) in n.children.iter().enumerate() {
        let last = i + 1 == count && n.elided == 0;
        let (l, cl) = if last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        line(
            c,
            &format!("{child_lead}{l}"),
            &format!("{child_lead}{cl}"),
            out,
        );
    }
    if n.elided > 0 {
        out.push_str(&format!("{child_lead}└─ … {} more elements\n", n.elided));
    }
}

/// A duration in microseconds as the execution tree shows them: `850µs`, `2.5ms`, `1.25s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}
