//! What the commands that read the execution store share: opening it (`--db`, else
//! `$SANDFLOW_DB`, else the default path), times and durations as people read them, values
//! as JSON typed by the interfaces the store keeps, and the `--older-than` durations.

use anyhow::Context;
use sandflow_contract::{Interface, Type, Value};
use sandflow_host::json;
use sandflow_host::store::{
    self, AnyStore, EntityRecord, ExecutionId, ExecutionSummary, NodeRecord, StoreRead,
};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// The store at `db`, else at `$SANDFLOW_DB`, else at the default path
/// (`store::default_path` reads the variable and the XDG directories): a PostgreSQL database
/// where that is a `postgres://` URL, else an SQLite file.
pub fn open_store(db: Option<PathBuf>) -> anyhow::Result<AnyStore> {
    let path = match db {
        Some(p) => p,
        None => store::default_path()?,
    };
    // The store's errors name the file or the database already.
    Ok(AnyStore::open(&path)?)
}

/// The store at `db` (or `$SANDFLOW_DB`, or the default path) that must exist already: the
/// commands that read it (and prune it) never create one where a path was mistyped.
pub fn open_existing_store(db: Option<PathBuf>) -> anyhow::Result<AnyStore> {
    let path = match db {
        Some(p) => p,
        None => store::default_path()?,
    };
    // A database is there wherever it is reached; one without the store's tables gets them
    // (empty) rather than an error.
    if !AnyStore::is_database_url(&path) && !path.exists() {
        anyhow::bail!(
            "no execution store at {}: nothing was recorded there (`sandflow run` records into \
             it; --db or $SANDFLOW_DB name another)",
            path.display()
        );
    }
    open_store(Some(path))
}

/// `ms` since the Unix epoch as the local time, `2026-12-02 11:24:59`.
pub fn local_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000) as libc::time_t;
    // SAFETY: `tm` is plain data (integers and a pointer the call sets); `localtime_r`
    // writes only into it and reads only `secs`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        // A time the C library cannot convert (far out of range): still say what it is.
        return format!("{ms} ms since 1970");
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// A duration in milliseconds, short: `850ms`, `12.3s`, `2m03s`, `5h07m`.
pub fn fmt_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1e3)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1_000)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

/// A duration in microseconds as the execution tree shows them: `850µs`, `2.5ms`, `1.25s`.
pub use sandflow_host::scheduler::fmt_us;

/// `30s`, `15m`, `12h`, `7d`: a clap value parser, so a bad one is a usage error.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{text:?} is not a duration: expected a whole number and a unit s, m, h or d \
             (30s, 15m, 12h, 7d)"
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long a duration"))
}

/// The interfaces of a module's entities, by name; empty if the store has none for it (an
/// execution is shown untyped rather than not at all).
/// The output type of a node: its entity's, a list of them for a map node.
pub fn output_type(n: &NodeRecord, ifaces: &HashMap<String, EntityRecord>) -> Option<Type> {
    if n.kind == "conditional" {
        // Named by its author, not after an entity (a workflow of the same name may return
        // another type): shown untyped; its taken branch's row holds the typed value.
        return None;
    }
    let t = ifaces.get(&n.entity)?.interface.output.clone()?;
    Some(if n.kind == "map" {
        Type::List(Box::new(t))
    } else {
        t
    })
}

/// A node record as `show --json` and the console's API give it: its output as JSON typed by
/// its entity's interface (from `ifaces`, the interfaces of its module).
pub fn node_record_json(
    r: &NodeRecord,
    execution: &str,
    ifaces: &HashMap<String, EntityRecord>,
) -> Json {
    let ty = output_type(r, ifaces);
    serde_json::json!({
        "path": r.path,
        "execution": execution,
        "entity": r.entity,
        "kind": r.kind,
        "status": r.status.as_str(),
        "attempts": r.attempts,
        "cached": r.cached,
        "start_us": r.start_us,
        "end_us": r.end_us,
        "output": r.output.as_ref().map(|v| value_json(v, ty.as_ref())),
    })
}

pub fn interfaces(store: &AnyStore, module: &str) -> anyhow::Result<HashMap<String, EntityRecord>> {
    let entities = store
        .entities(module)
        .with_context(|| format!("reading the interfaces of module {module}"))?;
    Ok(entities.into_iter().map(|e| (e.name.clone(), e)).collect())
}

/// A value as JSON: typed by `ty` when known, else as the value holds it (records as lists).
pub fn value_json(v: &Value, ty: Option<&Type>) -> Json {
    // `to_json` shows what it is given when the type does not describe it.
    json::to_json(v, ty.unwrap_or(&Type::Str))
}

/// An execution's inputs (recorded as a list in interface order) as a JSON object by input
/// name. A launch plan's child execution holds its workflow's inputs, fixed ones included,
/// which the plan's interface leaves out: then, and for a list that does not match the
/// interface, the values are shown as a list, untyped.
pub fn inputs_json(inputs: &Value, interface: Option<&Interface>) -> Json {
    match (inputs, interface) {
        (Value::List(vals), Some(i)) if vals.len() == i.inputs.len() => Json::Object(
            vals.iter()
                .zip(&i.inputs)
                .map(|(v, p)| (p.name.clone(), json::to_json(v, &p.ty)))
                .collect(),
        ),
        (v, _) => value_json(v, None),
    }
}

/// The executions under `id` (launch plan calls, and theirs), each after its parent, in the
/// order they started.
pub fn descendants(store: &AnyStore, id: &ExecutionId) -> anyhow::Result<Vec<ExecutionSummary>> {
    let mut out = Vec::new();
    let mut stack = vec![id.clone()];
    while let Some(next) = stack.pop() {
        let children = store.children(&next)?;
        // Pushed in reverse so that the first child is visited (and listed) first.
        stack.extend(children.iter().rev().map(|c| c.id.clone()));
        out.extend(children);
    }
    out.sort_by(|a, b| a.started_ms.cmp(&b.started_ms).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Orders node paths as people count: `t[2]` before `t[10]`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> impl Iterator<Item = (bool, &str)> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digits = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (chunk, tail) = rest.split_at(end);
            rest = tail;
            Some((digits, chunk))
        })
    }
    let (mut x, mut y) = (chunks(a), chunks(b));
    loop {
        let ord = match (x.next(), y.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            // Leading zeros aside, a longer run of digits is a larger number.
            (Some((true, p)), Some((true, q))) => {
                let (p, q) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                p.len().cmp(&q.len()).then_with(|| p.cmp(q))
            }
            (Some((_, p)), Some((_, q))) => p.cmp(q),
        };
        if ord.is_ne() {
            return ord;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_a_number_and_a_unit() {
        assert_eq!(parse_age("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_age("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(604_800)));
        for bad in [
            "",
            "7",
            "d",
            "7w",
            "-1d",
            "1.5h",
            "7 d",
            "99999999999999999999d",
        ] {
            let e = parse_age(bad).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(fmt_ms(850), "850ms");
        assert_eq!(fmt_ms(12_345), "12.3s");
        assert_eq!(fmt_ms(123_000), "2m03s");
        assert_eq!(fmt_ms(18_420_000), "5h07m");
        assert_eq!(fmt_ms(-5), "0ms");
    }

    #[test]
    fn paths_order_their_numbers_as_numbers() {
        let mut paths = vec!["wf/t[10]", "wf/t[2]", "wf/s", "wf/t[1]/a", "wf/t[1]"];
        paths.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            paths,
            ["wf/s", "wf/t[1]", "wf/t[1]/a", "wf/t[2]", "wf/t[10]"]
        );
    }
}
