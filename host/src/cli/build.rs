//! `sandflow run <crate dir>`: build the guest crate for wasm32-wasip1 and find its module.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The module to load: `path` itself if it is a file, else the crate at `path`, built.
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
    eprintln!("sandflow: building {} for wasm32-wasip1", path.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip1",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .context("could not run cargo to build the guest crate")?;
    if !out.status.success() {
        bail!("building {} for wasm32-wasip1 failed (see cargo's output above; is the target installed? `rustup target add wasm32-wasip1`)", path.display());
    }
    let mut found = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
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
    found.with_context(|| {
        format!(
            "{}: the build produced no .wasm file; does Cargo.toml say crate-type = [\"cdylib\"]?",
            path.display()
        )
    })
}
