//! `sandflow describe <module>`: the module's entities and their typed interfaces.

use super::build::module_path;
use clap::Args;
use sandflow_contract::{EntityDecl, EntityKind, EnumType, RecordType, Type, UnionType};
use sandflow_host::json;
use sandflow_host::module::ModuleDecl;
use sandflow_host::runner::Host;
use sandflow_host::store::StoreRead;
use serde_json::{json, Value as Json};
use std::path::PathBuf;

#[derive(Args)]
/// List the entities of a module with their typed interfaces
pub struct DescribeArgs {
    /// A .wasm module, or a guest crate directory to build first (with --stored: a module's
    /// digest, or a prefix of it, in the execution store)
    module: PathBuf,
    /// Print JSON: each entity's inputs (name, type, default), output and launch plan
    #[arg(long)]
    json: bool,
    /// MODULE is a module kept in the execution store, by its digest
    #[arg(long)]
    stored: bool,
    /// The execution store of --stored (default: $SANDFLOW_DB, else
    /// ~/.local/share/sandflow/sandflow.db)
    #[arg(long, value_name = "PATH", requires = "stored")]
    db: Option<PathBuf>,
}

pub fn describe(args: DescribeArgs) -> anyhow::Result<u8> {
    let host = Host::new(1)?;
    let sandbox = if args.stored {
        let store = super::store::open_existing_store(args.db.clone())?;
        let prefix = args.module.to_string_lossy();
        let digest = super::launch::resolve_module(&store, &prefix)?;
        let bytes = store.module(&digest)?;
        host.load_bytes(&bytes, &PathBuf::from(format!("<stored module {digest}>")))?
    } else {
        host.load(&module_path(&args.module)?)?
    };
    if args.json {
        super::print_stdout(&describe_json(&sandbox.decl).to_string());
        return Ok(0);
    }
    let mut text: Vec<String> = sandbox
        .decl
        .entities
        .iter()
        .map(|e| line(&sandbox.decl, e))
        .collect();
    // Interfaces name record and enum types; their fields or variants follow, one type a line.
    let mut records = Vec::new();
    let mut enums = Vec::new();
    let mut unions = Vec::new();
    for e in &sandbox.decl.entities {
        let types = e.interface.inputs.iter().map(|p| &p.ty);
        for t in types.chain(e.interface.output.as_ref()) {
            collect_named(t, &mut records, &mut enums, &mut unions);
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
    text.extend(unions.iter().map(|u| {
        let vs: Vec<String> = u
            .variants
            .iter()
            .map(|(n, t)| format!("{n}({t})"))
            .collect();
        format!("{:<12} {} {{ {} }}", "union", u.name, vs.join(", "))
    }));
    super::print_stdout(&text.join("\n"));
    Ok(0)
}

/// The record and enum types in `t`, outermost first, each once (by name).
fn collect_named<'a>(
    t: &'a Type,
    records: &mut Vec<&'a RecordType>,
    enums: &mut Vec<&'a EnumType>,
    unions: &mut Vec<&'a UnionType>,
) {
    match t {
        Type::List(t) | Type::Map(t) | Type::IntMap(t) | Type::Optional(t) => {
            collect_named(t, records, enums, unions)
        }
        Type::Record(r) if !records.iter().any(|o| o.name == r.name) => {
            records.push(r);
            for (_, f) in &r.fields {
                collect_named(f, records, enums, unions);
            }
        }
        Type::Enum(e) if !enums.iter().any(|o| o.name == e.name) => enums.push(e),
        Type::Union(u) if !unions.iter().any(|o| o.name == u.name) => {
            unions.push(u);
            for (_, t) in &u.variants {
                collect_named(t, records, enums, unions);
            }
        }
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

/// Type `t` spelled out for a form to pick a field by (`type` names records and enums only):
/// `{"kind": "i64"|"f64"|"bool"|"string"|"bytes"}`, `{"kind": "list"|"option", "of": ..}`,
/// `{"kind": "map", "key": "string"|"i64", "of": ..}`, `{"kind": "enum", "name", "variants"}`,
/// `{"kind": "record", "name", "fields": [{"name", "shape"}]}`.
pub fn shape(t: &Type) -> Json {
    match t {
        Type::Int => json!({ "kind": "i64" }),
        Type::Float => json!({ "kind": "f64" }),
        Type::Bool => json!({ "kind": "bool" }),
        Type::Str => json!({ "kind": "string" }),
        Type::Bytes => json!({ "kind": "bytes" }),
        Type::List(t) => json!({ "kind": "list", "of": shape(t) }),
        Type::Optional(t) => json!({ "kind": "option", "of": shape(t) }),
        Type::Map(t) => json!({ "kind": "map", "key": "string", "of": shape(t) }),
        Type::IntMap(t) => json!({ "kind": "map", "key": "i64", "of": shape(t) }),
        Type::Enum(e) => json!({ "kind": "enum", "name": e.name, "variants": e.variants }),
        Type::Union(u) => {
            let variants: Vec<Json> = u
                .variants
                .iter()
                .map(|(n, t)| json!({ "name": n, "shape": shape(t) }))
                .collect();
            json!({ "kind": "union", "name": u.name, "variants": variants })
        }
        Type::Record(r) => {
            let fields: Vec<Json> = r
                .fields
                .iter()
                .map(|(n, t)| json!({ "name": n, "shape": shape(t) }))
                .collect();
            json!({ "kind": "record", "name": r.name, "fields": fields })
        }
    }
}

/// The module's entities as JSON, for forms (the console's launch and relaunch): types as
/// the text above renders them, defaults and fixed values as JSON typed by them.
pub fn describe_json(decl: &ModuleDecl) -> Json {
    let entities: Vec<Json> = decl
        .entities
        .iter()
        .map(|e| {
            let index = decl.index(&e.name);
            let inputs: Vec<Json> = e
                .interface
                .inputs
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    let default = index.and_then(|i| decl.default_input(i, k));
                    json!({
                        "name": p.name,
                        "type": p.ty.to_string(),
                        "shape": shape(&p.ty),
                        "default": default.map(|v| json::to_json(v, &p.ty)),
                    })
                })
                .collect();
            let mut j = json!({
                "name": e.name,
                "kind": e.kind.name(),
                "inputs": inputs,
                "output": e.interface.output.as_ref().map(|t| t.to_string()),
            });
            if let EntityKind::LaunchPlan(lp) = &e.kind {
                // Fixed values are typed by the workflow's interface: the plan's leaves them out.
                let wf = decl.get(&lp.workflow);
                let fixed: Vec<Json> = lp
                    .fixed
                    .iter()
                    .map(|(n, v)| {
                        let ty = wf.and_then(|w| w.interface.input(n)).map(|p| &p.ty);
                        json!({
                            "name": n,
                            "type": ty.map(|t| t.to_string()),
                            "value": ty.map_or(Json::Null, |t| json::to_json(v, t)),
                        })
                    })
                    .collect();
                j["launch_plan"] = json!({
                    "workflow": lp.workflow,
                    "fixed": fixed,
                    "max_parallelism": lp.max_parallelism,
                });
            }
            j
        })
        .collect();
    json!({ "entities": entities })
}

#[cfg(test)]
mod tests {
    use super::shape;
    use sandflow_contract::{EnumType, RecordType, Type};
    use serde_json::json;

    #[test]
    fn a_shape_spells_out_enum_variants_and_record_fields_for_forms() {
        let coffee = Type::Enum(EnumType {
            name: "Coffee".into(),
            variants: vec!["Latte".into(), "Mocha".into()],
        });
        let order = Type::Record(RecordType {
            name: "Order".into(),
            fields: vec![
                ("coffee".into(), coffee.clone()),
                ("sizes".into(), Type::IntMap(Box::new(Type::Float))),
            ],
        });
        assert_eq!(
            shape(&Type::Optional(Box::new(coffee))),
            json!({ "kind": "option", "of":
                { "kind": "enum", "name": "Coffee", "variants": ["Latte", "Mocha"] } })
        );
        assert_eq!(
            shape(&Type::List(Box::new(order))),
            json!({ "kind": "list", "of": { "kind": "record", "name": "Order", "fields": [
                { "name": "coffee", "shape":
                    { "kind": "enum", "name": "Coffee", "variants": ["Latte", "Mocha"] } },
                { "name": "sizes", "shape":
                    { "kind": "map", "key": "i64", "of": { "kind": "f64" } } },
            ] } })
        );
    }
}
