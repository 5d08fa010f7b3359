//! Whether a guest crate's module is fresh, without running cargo: after a build, a stamp
//! records the module, every file the build read (cargo's dep-info, the manifests and toolchain
//! and config files of the crate and its ancestors) with its mtime and size, and the
//! environment that steers cargo (with what sandflow adds). The next `sandflow run` skips
//! cargo (~50 ms of a 150 ms process) only when all of that is unchanged and older than the
//! module; any doubt (a file gone, moved, newer, a different environment, no stamp) runs cargo
//! as before.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bumped when what the stamp means changes (e.g. the flags sandflow passes to cargo).
const VERSION: u32 = 1;

/// Files whose change in the crate's directory or any ancestor may change the build.
const BUILD_FILES: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "rust-toolchain",
    "rust-toolchain.toml",
    ".cargo/config",
    ".cargo/config.toml",
];

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Stamp {
    version: u32,
    manifest: PathBuf,
    wasm: PathBuf,
    wasm_state: FileState,
    env: Vec<(String, String)>,
    /// Every file the build depends on; `None` for a build file that did not exist.
    files: Vec<(PathBuf, Option<FileState>)>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone, Copy)]
struct FileState {
    mtime_ns: u128,
    size: u64,
}

fn state(path: &Path) -> Option<FileState> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime_ns = meta
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(FileState {
        mtime_ns,
        size: meta.len(),
    })
}

/// The environment cargo and rustc read that can change the module: cargo's and rustc's
/// variables, minus those cargo sets for programs it runs (they differ between `cargo run`
/// and a shell, and change no build). `CARGO` (which cargo) is left out on purpose: the tool,
/// not an input.
fn build_env() -> Vec<(String, String)> {
    const RUNTIME: &[&str] = &[
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_",
        "CARGO_CRATE_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_MAKEFLAGS",
        "CARGO_RUSTC_CURRENT_DIR",
    ];
    let mut env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| {
            (k.starts_with("CARGO_") || k.starts_with("RUST"))
                && !RUNTIME.iter().any(|r| k.starts_with(r))
        })
        .collect();
    env.sort();
    env
}

fn stamp_name(manifest: &Path) -> String {
    let digest = Sha256::digest(manifest.as_os_str().as_encoded_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!(".sandflow-{hex}.stamp")
}

/// The build files of `dir` and its ancestors, existing or not.
fn build_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for a in dir.ancestors() {
        out.extend(BUILD_FILES.iter().map(|f| a.join(f)));
    }
}

/// Where the stamps of one crate's builds with one set of options live, and what they must say.
pub(super) struct Stamps {
    manifest: PathBuf,
    /// Directories where cargo may have put the module: the build's target directory, else
    /// `$CARGO_TARGET_DIR`, else `target/` in the crate's directory or an ancestor (a
    /// workspace root). A target directory set in a cargo config is not found: such crates
    /// are always checked by cargo.
    dirs: Vec<PathBuf>,
    /// The environment steering cargo, with what sandflow adds to it.
    env: Vec<(String, String)>,
}

impl Stamps {
    /// For the crate at `manifest` (canonical), built with `opts` and the extra `env`.
    pub fn new(manifest: &Path, opts: &super::BuildOptions, env: &[(String, String)]) -> Stamps {
        let crate_dir = manifest.parent().unwrap_or(Path::new("."));
        let targets = match &opts.target_dir {
            Some(d) => vec![d.clone()],
            None => match std::env::var_os("CARGO_TARGET_DIR")
                .or_else(|| std::env::var_os("CARGO_BUILD_TARGET_DIR"))
            {
                Some(d) => vec![PathBuf::from(d)],
                None => crate_dir.ancestors().map(|a| a.join("target")).collect(),
            },
        };
        let profile = if opts.release { "release" } else { "debug" };
        let dirs = targets
            .into_iter()
            .map(|t| t.join(super::TARGET).join(profile))
            .collect();
        let mut all = build_env();
        all.extend(env.iter().cloned());
        all.sort();
        Stamps {
            manifest: manifest.to_path_buf(),
            dirs,
            env: all,
        }
    }

    /// The crate's module, if a stamp proves it fresh.
    pub fn fresh_module(&self) -> Option<PathBuf> {
        let name = stamp_name(&self.manifest);
        let dir = self.dirs.iter().find(|d| d.join(&name).is_file())?;
        let text = std::fs::read(dir.join(&name)).ok()?;
        let stamp: Stamp = serde_json::from_slice(&text).ok()?;
        let wasm = stamp.wasm.clone();
        let fresh = stamp.version == VERSION
            && stamp.manifest == self.manifest
            && state(&wasm) == Some(stamp.wasm_state)
            && stamp.env == self.env
            && stamp.files.iter().all(|(path, recorded)| {
                let now = state(path);
                now == *recorded && now.is_none_or(|s| s.mtime_ns < stamp.wasm_state.mtime_ns)
            });
        fresh.then_some(wasm)
    }

    /// Records that `wasm`, just built by a cargo run that started at `started`, is fresh.
    /// Writes nothing when in doubt: a dep-info file that is missing or unreadable, or a file
    /// changed since (or just before) the build started, which cargo may not have seen.
    pub fn record(&self, wasm: &Path, started: SystemTime) {
        let manifest = &self.manifest;
        let Some(stamp) = stamp_for(manifest, wasm, started, &self.env) else {
            return;
        };
        let Some(dir) = wasm.parent() else { return };
        let Ok(text) = serde_json::to_vec(&stamp) else {
            return;
        };
        // Written whole under a temporary name, then renamed: a reader never sees half a stamp.
        let path = dir.join(stamp_name(manifest));
        let tmp = dir.join(format!("{}.{}", stamp_name(manifest), std::process::id()));
        if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

fn stamp_for(
    manifest: &Path,
    wasm: &Path,
    started: SystemTime,
    env: &[(String, String)],
) -> Option<Stamp> {
    // Coarse file systems keep mtimes in seconds: a file edited in the second before the
    // build may look older than it is.
    let cutoff = started
        .checked_sub(Duration::from_secs(2))?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let dep_info = wasm.with_extension("d");
    let deps = parse_dep_info(&std::fs::read_to_string(&dep_info).ok()?)?;
    // The dep-info file itself is rewritten by every cargo run, fresh or not: not a source.
    let mut paths = Vec::new();
    build_files(manifest.parent()?, &mut paths);
    // Path dependencies' manifests too: cargo's dep-info lists sources only.
    let mut seen = std::collections::HashSet::new();
    for d in &deps {
        if let Some(root) = d
            .ancestors()
            .skip(1)
            .find(|a| a.join("Cargo.toml").is_file())
        {
            if seen.insert(root.to_path_buf()) {
                paths.push(root.join("Cargo.toml"));
            }
        }
    }
    paths.extend(deps);
    let mut files = Vec::with_capacity(paths.len());
    for p in paths {
        if !p.is_absolute() {
            return None;
        }
        let s = state(&p);
        if s.is_some_and(|s| s.mtime_ns >= cutoff) {
            return None;
        }
        // A dep-info file that is gone means cargo's list is not what it read.
        if s.is_none() && !BUILD_FILES.iter().any(|f| p.ends_with(f)) {
            return None;
        }
        files.push((p, s));
    }
    Some(Stamp {
        version: VERSION,
        manifest: manifest.to_path_buf(),
        wasm: wasm.to_path_buf(),
        wasm_state: state(wasm)?,
        env: env.to_vec(),
        files,
    })
}

/// The prerequisites in a Makefile-style dep-info file (`target: dep dep ...` lines, spaces in
/// names escaped as `\ `). `None` if a line is not of that form.
fn parse_dep_info(text: &str) -> Option<Vec<PathBuf>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // Cargo's dep-info has no line continuations; a target is an absolute path.
        let (_, deps) = line
            .split_once(": ")
            .or_else(|| line.strip_suffix(':').map(|t| (t, "")))?;
        let mut cur = String::new();
        let mut chars = deps.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.push(chars.next()?),
                ' ' => {
                    if !cur.is_empty() {
                        out.push(PathBuf::from(std::mem::take(&mut cur)));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(PathBuf::from(cur));
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_lines_give_their_prerequisites_with_escaped_spaces() {
        let text = "/t/a.wasm: /s/lib.rs /s/my\\ dir/b.rs\n/t/a.rlib: /s/lib.rs\n\n/s/lib.rs:\n";
        assert_eq!(
            parse_dep_info(text).unwrap(),
            [PathBuf::from("/s/lib.rs"), PathBuf::from("/s/my dir/b.rs")]
        );
    }
}
