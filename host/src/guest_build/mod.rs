//! Building guest crates for wasm32-wasip1 with cargo: the one build the `sandflow` CLI (for
//! `sandflow run <crate dir>`), the end-to-end tests and the bench all use.
//!
//! Guests are built with overflow checks on by default: a wrapped integer would be a silent
//! wrong answer, a trap is a task failure that names it.

mod fresh;

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target guests are built for.
pub const TARGET: &str = "wasm32-wasip1";

/// How to build: see [`build`].
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `CARGO_TARGET_DIR` of the build; `None`: cargo's own choice (the environment, the
    /// workspace's `target/`).
    pub target_dir: Option<PathBuf>,
    /// The release profile (`--release`), else the dev profile.
    pub release: bool,
    /// Overflow checks in the chosen profile, whatever the crate's manifest says.
    pub overflow_checks: bool,
    /// Skip cargo when a stamp proves the crate's module fresh, and write a stamp after a
    /// build (see `fresh.rs`). Only for a crate's own manifest, not a virtual workspace's.
    pub stamp: bool,
    /// Say `sandflow: building <crate> for wasm32-wasip1` on stderr before cargo runs.
    pub announce: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            target_dir: None,
            release: true,
            overflow_checks: true,
            stamp: false,
            announce: false,
        }
    }
}

/// What a build made.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// The module of the crate whose manifest was built, if it is a `cdylib` package.
    pub module: Option<PathBuf>,
    /// Every module the build produced (all of a workspace's `cdylib` members).
    pub modules: Vec<PathBuf>,
    /// The module was found fresh by its stamp: cargo did not run.
    pub fresh: bool,
}

/// Why a guest build failed. `crate_dir` is the crate as the caller named it.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{}: {source}", manifest.display())]
    Manifest {
        manifest: PathBuf,
        source: std::io::Error,
    },
    #[error("could not run {cargo} to build the guest crate")]
    Spawn {
        cargo: String,
        source: std::io::Error,
    },
    #[error("reading cargo's output")]
    Output { source: std::io::Error },
    #[error("waiting for cargo")]
    Wait { source: std::io::Error },
    #[error("building {} for {TARGET} failed (see cargo's output above){hint}", crate_dir.display())]
    Failed { crate_dir: PathBuf, hint: String },
    #[error("{}: the build produced no .wasm file; does Cargo.toml say crate-type = [\"cdylib\"]?", crate_dir.display())]
    NoModule { crate_dir: PathBuf },
    #[error(
        "`rustup target add {TARGET}` failed ({status}); the guest crate needs the {TARGET} target"
    )]
    RustupFailed { status: std::process::ExitStatus },
    #[error("the Rust toolchain at {sysroot} has no {TARGET} target and rustup was not found to add it; install the target (with rustup: `rustup target add {TARGET}`)")]
    NoRustup { sysroot: String },
    #[error("could not run `rustup target add {TARGET}`: {source}")]
    Rustup { source: std::io::Error },
}

/// The environment sandflow adds to the guest's cargo build.
fn build_env(opts: &BuildOptions) -> Vec<(String, String)> {
    let profile = if opts.release { "RELEASE" } else { "DEV" };
    vec![(
        format!("CARGO_PROFILE_{profile}_OVERFLOW_CHECKS"),
        opts.overflow_checks.to_string(),
    )]
}

/// Builds the crate or workspace of `crate_dir` (a directory with a Cargo.toml) for
/// wasm32-wasip1, adding the target with rustup if the toolchain lacks it. Cargo's
/// diagnostics go to stderr as they come; a failure says what cargo's errors point at.
pub fn build(crate_dir: &Path, opts: &BuildOptions) -> Result<Built, BuildError> {
    let manifest = crate_dir.join("Cargo.toml");
    let manifest = manifest
        .canonicalize()
        .map_err(|source| BuildError::Manifest { manifest, source })?;
    let env = build_env(opts);
    let stamps = opts
        .stamp
        .then(|| fresh::Stamps::new(&manifest, opts, &env));
    if let Some(wasm) = stamps.as_ref().and_then(|s| s.fresh_module()) {
        return Ok(Built {
            modules: vec![wasm.clone()],
            module: Some(wasm),
            fresh: true,
        });
    }
    let root = manifest.parent().unwrap_or(Path::new("."));
    ensure_target(root)?;
    if opts.announce {
        eprintln!("sandflow: building {} for {TARGET}", crate_dir.display());
    }
    let started = std::time::SystemTime::now();
    let stdout = run_cargo(crate_dir, &manifest, opts, &env)?;
    let built = artifacts(&stdout, &manifest);
    if let (Some(stamps), Some(wasm)) = (&stamps, &built.module) {
        stamps.record(wasm, started);
    }
    Ok(built)
}

/// The module of the crate at `crate_dir`, built (or found fresh) with `opts`.
pub fn build_module(crate_dir: &Path, opts: &BuildOptions) -> Result<PathBuf, BuildError> {
    build(crate_dir, opts)?
        .module
        .ok_or_else(|| BuildError::NoModule {
            crate_dir: crate_dir.to_path_buf(),
        })
}

/// Runs `cargo build` with JSON messages, copying its diagnostics to stderr; cargo's stdout.
fn run_cargo(
    crate_dir: &Path,
    manifest: &Path,
    opts: &BuildOptions,
    env: &[(String, String)],
) -> Result<Vec<u8>, BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.arg("build");
    if opts.release {
        cmd.arg("--release");
    }
    cmd.args([
        "--target",
        TARGET,
        "--message-format=json-render-diagnostics",
    ]);
    // Cargo's diagnostics pass through a pipe (to find what failed): keep their colours.
    if std::io::stderr().is_terminal() && std::env::var_os("CARGO_TERM_COLOR").is_none() {
        cmd.args(["--color", "always"]);
    }
    if let Some(dir) = &opts.target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    let mut child = cmd
        .arg("--manifest-path")
        .arg(manifest)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BuildError::Spawn {
            cargo: cargo.to_string_lossy().into_owned(),
            source,
        })?;
    let diagnostics = child
        .stderr
        .take()
        .map(|e| std::thread::spawn(move || tee(e)));
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_end(&mut out, &mut stdout)
            .map_err(|source| BuildError::Output { source })?;
    }
    let status = child.wait().map_err(|source| BuildError::Wait { source })?;
    let diagnostics = diagnostics.and_then(|d| d.join().ok()).unwrap_or_default();
    if !status.success() {
        return Err(BuildError::Failed {
            crate_dir: crate_dir.to_path_buf(),
            hint: hint(&diagnostics),
        });
    }
    Ok(stdout)
}

/// The .wasm files in cargo's `compiler-artifact` messages; `module` is `manifest`'s own.
fn artifacts(stdout: &[u8], manifest: &Path) -> Built {
    let mut built = Built::default();
    for line in String::from_utf8_lossy(stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let own = msg["manifest_path"].as_str().map(Path::new) == Some(manifest);
        let files = msg["filenames"].as_array().into_iter().flatten();
        for f in files.filter_map(|f| f.as_str()) {
            if f.ends_with(".wasm") {
                built.modules.push(PathBuf::from(f));
                if own {
                    built.module = Some(PathBuf::from(f));
                }
            }
        }
    }
    built
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
    String::new()
}

/// Makes sure the toolchain that will build the crate has the wasm32-wasip1 standard library,
/// adding it with rustup if it is missing.
fn ensure_target(crate_dir: &Path) -> Result<(), BuildError> {
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
        Ok(status) => Err(BuildError::RustupFailed { status }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BuildError::NoRustup { sysroot }),
        Err(source) => Err(BuildError::Rustup { source }),
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
}
