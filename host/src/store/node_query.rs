//! [`NodeQuery`] as SQL, for SQLite and PostgreSQL alike: the console reads a big tree part
//! by part with it. Every condition is on the execution's own rows (found by the index on
//! `execution`) and on their paths, so no index on paths is needed: a run pays nothing for a
//! reader's query. A group's members are ordered by index as `length(path), path` (they share
//! `prefix[` and `]`), so a page of them is a top-k pass, not a sort of them all.

use super::types::NodeQuery;

/// The two SQL dialects.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound parameter.
#[derive(Debug)]
pub(crate) enum Param {
    Int(i64),
    Text(String),
    /// PostgreSQL's `text[]` (SQLite gets one parameter per item).
    TextList(Vec<String>),
}

/// The columns `nodes` reads (`key` .. `worker`), then the row's `id` (index 12).
pub(crate) const NODE_COLUMNS: &str = "n.key, n.path, n.entity, n.kind, n.status, n.attempts, \
     coalesce(n.output, n.output_inline), coalesce(n.output_inline, v.bytes), \
     n.cached, n.start_us, n.end_us, n.worker, n.id";
/// The same without outputs (typed: PostgreSQL's bare `NULL` is text).
const NODE_COLUMNS_BARE: &str = "n.key, n.path, n.entity, n.kind, n.status, n.attempts, \
     NULL, NULL, n.cached, n.start_us, n.end_us, n.worker, n.id";
const NODE_COLUMNS_BARE_PG: &str = "n.key, n.path, n.entity, n.kind, n.status, n.attempts, \
     NULL::bytea, NULL::bytea, n.cached, n.start_us, n.end_us, n.worker, n.id";

struct Builder {
    dialect: Dialect,
    params: Vec<Param>,
    conds: Vec<String>,
}

impl Builder {
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        match self.dialect {
            Dialect::Sqlite => format!("?{}", self.params.len()),
            Dialect::Postgres => format!("${}", self.params.len()),
        }
    }

    fn text(&mut self, s: &str) -> String {
        self.bind(Param::Text(s.to_string()))
    }

    fn int(&mut self, i: i64) -> String {
        self.bind(Param::Int(i))
    }

    /// A character position or length: PostgreSQL's `substr` takes an `integer`, which a
    /// bound `i64` is not.
    fn pos(&mut self, i: usize) -> String {
        let p = self.int(i as i64);
        match self.dialect {
            Dialect::Sqlite => p,
            Dialect::Postgres => format!("({p}::bigint)::integer"),
        }
    }

    /// `n.path` starts with `prefix` (lengths in characters, as `substr` counts).
    fn starts(&mut self, prefix: &str) -> String {
        let len = self.pos(prefix.chars().count());
        let p = self.text(prefix);
        format!("substr(n.path, 1, {len}) = {p}")
    }

    /// `n.path` has no `c` after its first `from` characters.
    fn none_after(&mut self, from: usize, c: char) -> String {
        let start = self.pos(from + 1);
        let c = self.text(&c.to_string());
        match self.dialect {
            Dialect::Sqlite => format!("instr(substr(n.path, {start}), {c}) = 0"),
            Dialect::Postgres => format!("strpos(substr(n.path, {start}), {c}) = 0"),
        }
    }
}

/// The statement and its parameters that read what `q` selects of the execution whose `seq`
/// is `seq`. Each node may come as several rows (its last is its state): the caller keeps the
/// last (highest `id`) of each key.
pub(crate) fn node_query(dialect: Dialect, seq: i64, q: &NodeQuery) -> (String, Vec<Param>) {
    let mut b = Builder {
        dialect,
        params: Vec::new(),
        conds: Vec::new(),
    };
    let exec = b.int(seq);
    b.conds.push(format!("n.execution = {exec}"));
    if let Some(u) = &q.under {
        let eq = b.text(u);
        let slash = b.starts(&format!("{u}/"));
        let bracket = b.starts(&format!("{u}["));
        b.conds
            .push(format!("(n.path = {eq} OR {slash} OR {bracket})"));
    }
    for e in &q.except {
        let c = b.starts(&format!("{e}["));
        b.conds.push(format!("NOT {c}"));
    }
    if let Some(m) = &q.members {
        let head = format!("{m}[");
        let c = b.starts(&head);
        b.conds.push(c);
        let n = head.chars().count();
        let c = b.none_after(n, '/');
        b.conds.push(c);
        let c = b.none_after(n, '[');
        b.conds.push(c);
    }
    match q.failed {
        None => {}
        Some(true) => b.conds.push("n.status = 'failed'".into()),
        Some(false) => b
            .conds
            .push("n.status NOT IN ('failed', 'expanded')".into()),
    }
    if let Some(p) = &q.path {
        let p = b.text(p);
        b.conds.push(format!("n.path = {p}"));
    }
    if let Some(list) = &q.paths {
        let c = match dialect {
            Dialect::Sqlite if list.is_empty() => "0".to_string(),
            Dialect::Sqlite => {
                let items: Vec<String> = list.iter().map(|p| b.text(p)).collect();
                format!("n.path IN ({})", items.join(", "))
            }
            Dialect::Postgres => {
                let l = b.bind(Param::TextList(list.clone()));
                format!("n.path = ANY({l})")
            }
        };
        b.conds.push(c);
    }
    if let Some((lo, hi)) = q.rows {
        let (lo, hi) = (b.int(lo), b.int(hi));
        b.conds.push(format!("n.id BETWEEN {lo} AND {hi}"));
    }
    if q.tasks_by_start {
        let no = match dialect {
            Dialect::Sqlite => "0",
            Dialect::Postgres => "false",
        };
        b.conds.push(format!(
            "n.kind = 'task' AND n.cached = {no} AND n.start_us IS NOT NULL"
        ));
    }
    let order = if q.members.is_some() {
        "length(n.path), n.path, n.id"
    } else if q.tasks_by_start {
        "n.start_us, n.path, n.id"
    } else {
        "n.path, n.id"
    };
    let (columns, join) = if q.outputs {
        (
            NODE_COLUMNS,
            " LEFT JOIN value_bytes v ON v.hash = n.output",
        )
    } else if dialect == Dialect::Postgres {
        (NODE_COLUMNS_BARE_PG, "")
    } else {
        (NODE_COLUMNS_BARE, "")
    };
    let mut sql = format!(
        "SELECT {columns} FROM nodes n{join} WHERE {} ORDER BY {order}",
        b.conds.join(" AND ")
    );
    if let Some(limit) = q.limit {
        let l = b.int(limit.min(i64::MAX as u64) as i64);
        let o = b.int(q.offset.min(i64::MAX as u64) as i64);
        sql.push_str(&format!(" LIMIT {l} OFFSET {o}"));
    }
    // Without a limit the caller applies the offset (SQLite takes none without a limit).
    (sql, b.params)
}

/// Keeps each node's last row of `rows` (`(row id, record)`, in the query's order): the later
/// rows of a node replace its earlier ones in place. Without a limit in the query, applies
/// the query's offset.
pub(crate) fn last_rows<T>(rows: Vec<(i64, u64, T)>, q: &NodeQuery) -> Vec<T> {
    let mut at: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    let mut out: Vec<Option<(i64, T)>> = Vec::with_capacity(rows.len());
    for (id, key, r) in rows {
        match at.get(&key) {
            Some(&i) => {
                if out[i].as_ref().is_some_and(|(prev, _)| *prev < id) {
                    out[i] = Some((id, r));
                }
            }
            None => {
                at.insert(key, out.len());
                out.push(Some((id, r)));
            }
        }
    }
    let skip = if q.limit.is_none() {
        q.offset as usize
    } else {
        0
    };
    out.into_iter()
        .flatten()
        .map(|(_, r)| r)
        .skip(skip)
        .collect()
}
