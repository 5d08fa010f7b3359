//! `sandflow describe <module>`: the module's entities and their typed interfaces.

use super::build::module_path;
use clap::Args;
use sandflow_contract::{EntityDecl, EntityKind, EnumType, RecordType, Type};
use sandflow_host::json;
use sandflow_host::module::ModuleDecl;
use sandflow_host::runner::Host;
use std::path::PathBuf;

#[derive(Args)]
/// List the entities of a module with their typed interfaces
pub struct DescribeArgs {
    /// A .wasm module, or a guest crate directory to build first
    module: PathBuf,
}

pub fn describe(args: DescribeArgs) -> anyhow::Result<u8> {
    let host = Host::new(1)?;
    let sandbox = host.load(&module_path(&args.module)?)?;
    let mut text: Vec<String> = sandbox
        .decl
        .entities
        .iter()
        .map(|e| line(&sandbox.decl, e))
        .collect();
    // Interfaces name record and enum types; their fields or variants follow, one type a line.
    let mut records = Vec::new();
    let mut enums = Vec::new();
    for e in &sandbox.decl.entities {
        let types = e.interface.inputs.iter().map(|p| &p.ty);
        for t in types.chain(e.interface.output.as_ref()) {
            collect_named(t, &mut records, &mut enums);
        }
    }
    text.extend(records.iter().map(|r| {
        let fields = r
            .fields
            .iter()
            .map(|(n, t)| format!("{n}: {t}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("{:<12} {} {{ {fields} }}", "record", r.name)
    }));
    text.extend(
        enums
            .iter()
            .map(|e| format!("{:<12} {} {{ {} }}", "enum", e.name, e.variants.join(", "))),
    );
    super::print_stdout(&text.join("\n"));
    Ok(0)
}

/// The record and enum types in `t`, outermost first, each once (by name).
fn collect_named<'a>(
    t: &'a Type,
    records: &mut Vec<&'a RecordType>,
    enums: &mut Vec<&'a EnumType>,
) {
    match t {
        Type::List(t) | Type::Map(t) | Type::IntMap(t) | Type::Optional(t) => {
            collect_named(t, records, enums)
        }
        Type::Record(r) if !records.iter().any(|o| o.name == r.name) => {
            records.push(r);
            for (_, f) in &r.fields {
                collect_named(f, records, enums);
            }
        }
        Type::Enum(e) if !enums.iter().any(|o| o.name == e.name) => enums.push(e),
        _ => {}
    }
}

fn line(decl: &ModuleDecl, e: &EntityDecl) -> String {
    // A defaulted input shows the value a run uses when it is left out, as JSON.
    let index = decl.index(&e.name);
    let inputs = e
        .interface
        .inputs
        .iter()
        .enumerate()
        .map(
            |(k, p)| match index.and_then(|i| decl.default_input(i, k)) {
                Some(v) => format!("{}: {} = {}", p.name, p.ty, json::to_json(v, &p.ty)),
                None => format!("{}: {}", p.name, p.ty),
            },
        )
        .collect::<Vec<_>>()
        .join(", ");
    let output = e
        .interface
        .output
        .as_ref()
        .map(|t| format!(" -> {t}"))
        .unwrap_or_default();
    let mut extra = String::new();
    match &e.kind {
        EntityKind::Task(c) | EntityKind::Dynamic(c) => {
            if c.retries > 0 {
                extra.push_str(&format!("  retries={}", c.retries));
            }
            if let Some(t) = c.timeout_ms {
                extra.push_str(&format!("  timeout={t}ms"));
            }
        }
        EntityKind::Workflow(g) => extra.push_str(&format!("  {} nodes", g.nodes.len())),
        EntityKind::LaunchPlan(lp) => {
            extra.push_str(&format!("  runs {}", lp.workflow));
            // Defaults and fixed values shown as JSON, typed by the workflow's interface (the
            // plan's own interface leaves fixed inputs out).
            let wf = decl.get(&lp.workflow);
            let show = |v: &[(String, sandflow_contract::Value)]| {
                v.iter()
                    .map(|(n, v)| match wf.and_then(|w| w.interface.input(n)) {
                        Some(p) => format!("{n}={}", json::to_json(v, &p.ty)),
                        None => format!("{n}={v:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !lp.defaults.is_empty() {
                extra.push_str(&format!("  defaults({})", show(&lp.defaults)));
            }
            if !lp.fixed.is_empty() {
                extra.push_str(&format!("  fixed({})", show(&lp.fixed)));
            }
            if let Some(m) = lp.max_parallelism {
                extra.push_str(&format!("  max_parallelism={m}"));
            }
        }
    }
    format!(
        "{:<12} {:<24} ({inputs}){output}{extra}",
        e.kind.name(),
        e.name
    )
}
