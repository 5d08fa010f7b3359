//! `sandflow run <crate dir>`: build the guest crate for wasm32-wasip1 (or find it fresh by
//! its stamp) and find its module.

use anyhow::bail;
use sandflow_host::guest_build::{self, BuildOptions};
use std::path::{Path, PathBuf};

/// The module to load: `path` itself if it is a file, else the crate at `path`, built in
/// release with overflow checks on.
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
    if !path.join("Cargo.toml").is_file() {
        bail!("{}: a directory without Cargo.toml (expected a .wasm module or a guest crate directory)", path.display());
    }
    let opts = BuildOptions {
        stamp: true,
        announce: true,
        ..BuildOptions::default()
    };
    Ok(guest_build::build_module(path, &opts)?)
}
