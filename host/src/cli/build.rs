//! `sandflow run <crate dir>`: build the guest crate for wasm32-wasip1 and find its module.
//! Guests are built in release with overflow checks on: a wrapped integer would be a silent
//! wrong answer, a trap is a task failure that names it.

use super::fresh;
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip1";

/// The environment sandflow adds to the guest's cargo build.
pub const BUILD_ENV: &[(&str, &str)] = &[("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true")];

/// The module to load: `path` itself if it is a file, else the crate at `path`, built (or
/// found fresh by its stamp, see `fresh.rs`).
pub fn module_path(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.exists() {
        bail!(
            "{}: no such file or directory (expected a .wasm module or a guest crate directory)",
            path.display()
        );
    }
    let manifest = path.join("Cargo.toml");
    if !manifest.is_file() {
        bail!("{}: a directory without Cargo.toml (expected a .wasm module or a guest crate directory)", path.display());
    }
    let manifest = manifest
        .canonicalize()
        .with_context(|| format!("{}", manifest.display()))?;
    if let Some(wasm) = fresh::fresh_module(&manifest) {
        return Ok(wasm);
    }
    let crate_dir = manifest.parent().unwrap_or(Path::new("."));
    ensure_target(crate_dir)?;
    eprintln!("sandflow: building {} for {TARGET}", path.display());
    let started = std::time::SystemTime::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        TARGET,
        "--message-format=json-render-diagnostics",
    ]);
    // Cargo's diagnostics pass through a pipe (to find what failed): keep their colours.
    if std::io::stderr().is_terminal() && std::env::var_os("CARGO_TERM_COLOR").is_none() {
        cmd.args(["--color", "always"]);
    }
    let mut child = cmd
        .arg("--manifest-path")
        .arg(&manifest)
        .envs(BUILD_ENV.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "could not run {} to build the guest crate",
                cargo.to_string_lossy()
            )
        })?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let diagnostics = std::thread::spawn(move || tee(stderr));
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_end(&mut out, &mut stdout).context("reading cargo's output")?;
    }
    let status = child.wait().context("waiting for cargo")?;
    let diagnostics = diagnostics.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "building {} for {TARGET} failed (see cargo's output above){}",
            path.display(),
            hint(&diagnostics)
        );
    }
    let mut found = None;
    for line in String::from_utf8_lossy(&stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact"
            || msg["manifest_path"].as_str().map(Path::new) != Some(&manifest)
        {
            continue;
        }
        if let Some(files) = msg["filenames"].as_array() {
            for f in files.iter().filter_map(|f| f.as_str()) {
                if f.ends_with(".wasm") {
                    found = Some(PathBuf::from(f));
                }
            }
        }
    }
    let wasm = found.with_context(|| {
        format!(
            "{}: the build produced no .wasm file; does Cargo.toml say crate-type = [\"cdylib\"]?",
            path.display()
        )
    })?;
    fresh::record(&manifest, &wasm, started);
    Ok(wasm)
}

/// Copies cargo's stderr to ours as it comes, and keeps the error lines (bounded) to explain
/// a failure.
fn tee(from: impl std::io::Read) -> String {
    let mut kept = String::new();
    let mut err = std::io::stderr();
    for line in BufReader::new(from).split(b'\n').map_while(Result::ok) {
        let _ = err.write_all(&line).and_then(|()| err.write_all(b"\n"));
        let text = String::from_utf8_lossy(&line);
        if kept.len() < 64 * 1024
            && (text.contains("error") || text.contains("target may not be installed"))
        {
            kept.push_str(&text);
            kept.push('\n');
        }
    }
    kept
}

/// What to add to "the build failed" when cargo's errors show a known cause.
fn hint(diagnostics: &str) -> String {
    if diagnostics.contains("can't find crate for `std`")
        || diagnostics.contains("can't find crate for `core`")
        || diagnostics.contains("target may not be installed")
    {
        return format!("; the {TARGET} target is not installed for this toolchain: `rustup target add {TARGET}`");
    }
    // Two entities of one name export one symbol: rustc says only "symbol `sandflow:call:x`
    // is already defined".
    let dup = diagnostics
        .split("symbol `sandflow:")
        .skip(1)
        .filter_map(|rest| rest.split_once(':')?.1.split_once('`').map(|(n, _)| n))
        .next();
    if let Some(name) = dup {
        return format!(
            "; two entities are named `{name}`: entity names are global in a module (across Rust modules too), rename one of them"
        );
    }
    String::new()
}

/// Makes sure the toolchain that will build the crate has the wasm32-wasip1 standard library,
/// adding it with rustup if it is missing.
fn ensure_target(crate_dir: &Path) -> anyhow::Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    // Run in the crate's directory, so rustup picks the toolchain its rust-toolchain.toml names.
    let Ok(out) = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(crate_dir)
        .stderr(Stdio::inherit())
        .output()
    else {
        // No rustc to ask: cargo will say what is wrong.
        return Ok(());
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || sysroot.is_empty() {
        return Ok(());
    }
    let lib = Path::new(&sysroot).join("lib/rustlib").join(TARGET);
    if lib.is_dir() {
        return Ok(());
    }
    eprintln!(
        "sandflow: the Rust toolchain at {sysroot} has no {TARGET} target; running `rustup target add {TARGET}`"
    );
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .current_dir(crate_dir)
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("`rustup target add {TARGET}` failed ({s}); the guest crate needs the {TARGET} target"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the Rust toolchain at {sysroot} has no {TARGET} target and rustup was not found to add it; install the target (with rustup: `rustup target add {TARGET}`)"
        ),
        Err(e) => bail!("could not run `rustup target add {TARGET}`: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::hint;

    #[test]
    fn the_target_hint_comes_only_when_std_is_missing() {
        assert!(hint("error[E0463]: can't find crate for `std`\n").contains("rustup target add"));
        assert_eq!(hint("error[E0308]: mismatched types\n"), "");
    }

    #[test]
    fn a_duplicate_entity_symbol_names_the_entity() {
        let h = hint("error: symbol `sandflow:call:t1` is already defined\n");
        assert!(h.contains("two entities are named `t1`"), "{h}");
    }
}
