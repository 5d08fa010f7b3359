//! `cargo bench -p sandflow-host --bench conditional`: what a conditional costs per element
//! of a 10 000-element map over a workflow, against a plain map over the same task and a map
//! over a workflow without a conditional (the fixtures `halves`, `halve_wfs`, `sign_steps`:
//! one `halve` task execution per element in each), and of a conditional whose output is a
//! pair with a field access of it (`sign_field_steps`: one `halve_pair` execution each). The three take turns, round after round,
//! so whatever else the machine does falls on all alike; medians are reported, as a markdown
//! table (recorded in BENCHMARKS.md). Progress goes to stderr.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{anyhow, bail, ensure, Context};
use sandflow_contract::Value;
use sandflow_host::guest_build::{self, BuildOptions};
use sandflow_host::runner::Host;
use sandflow_host::scheduler::Options;
use std::path::PathBuf;
use std::time::Instant;

const ELEMENTS: i64 = 10_000;
const ROUNDS: usize = 9;
const CASES: [(&str, &str); 4] = [
    ("halves", "plain map of the task `halve`"),
    ("halve_wfs", "map of a workflow calling `halve`"),
    (
        "sign_steps",
        "map of a workflow with a conditional (`n >= 0` → `halve`, else `triple_plus_one`)",
    ),
    (
        "sign_field_steps",
        "map of a workflow with a conditional returning a pair, and a field access of it",
    ),
];

fn main() -> anyhow::Result<()> {
    for a in std::env::args().skip(1) {
        if a != "--bench" {
            bail!("unknown argument `{a}`: this bench takes none");
        }
    }
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("host/ is inside the repository")?
        .to_path_buf();
    let target = std::env::var_os("SANDFLOW_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("examples/target"));
    eprintln!("[bench] building the example guests (release, wasm32-wasip1)");
    let opts = BuildOptions {
        target_dir: Some(target.clone()),
        ..BuildOptions::default()
    };
    guest_build::build(&repo.join("examples"), &opts).context("building the guests")?;
    let host = Host::new(0)?;
    let fixtures = host.load(&target.join("wasm32-wasip1/release/fixtures.wasm"))?;
    let l = Value::List((0..ELEMENTS).map(Value::Int).collect());
    let mut walls: [Vec<f64>; CASES.len()] = Default::default();
    for round in 0..=ROUNDS {
        for (k, (entity, _)) in CASES.iter().enumerate() {
            // The short name, as on the command line (the entity is `conditionals::<entity>`).
            let name = &fixtures
                .decl
                .find(entity)
                .map_err(|e| anyhow!("{entity}: {e}"))?
                .name;
            let t = Instant::now();
            let report = host
                .run_blocking(&fixtures, name, vec![l.clone()], Options::default())
                .map_err(|e| anyhow!("{entity}: {e}"))?;
            let wall = t.elapsed().as_secs_f64();
            let Ok(Some(Value::List(out))) = &report.result else {
                bail!("{entity} returned {:?}", report.result);
            };
            ensure!(
                out.iter().zip(0..).all(|(v, n)| *v == Value::Int(n / 2))
                    && out.len() == ELEMENTS as usize,
                "{entity}: wrong output"
            );
            // Round 0 warms up (module instances, allocator).
            if round > 0 {
                walls[k].push(wall * 1e6 / ELEMENTS as f64);
            }
        }
        eprintln!("[bench] round {round} done");
    }
    let medians = walls.map(|mut w| {
        w.sort_by(f64::total_cmp);
        w[w.len() / 2]
    });
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "workers={}, {ELEMENTS} elements, median of {ROUNDS} interleaved rounds; load average before: {}, after: {}",
        host.workers(),
        load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        load_after.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!();
    println!("| case | µs/element (wall) | over the plain map |");
    println!("|---|---:|---:|");
    for ((_, what), m) in CASES.iter().zip(medians) {
        println!("| {what} | {m:.2} | {:+.2} µs |", m - medians[0]);
    }
    Ok(())
}
