//! On-disk cache of compiled modules, keyed by the module's hash and the engine's
//! configuration, so a second `sandflow run` skips Cranelift entirely.
//!
//! The cache directory is `$SANDFLOW_CACHE_DIR`, else `$XDG_CACHE_HOME/sandflow`, else
//! `~/.cache/sandflow`; `SANDFLOW_CACHE_DIR=off` disables it. Entries together take at most
//! `$SANDFLOW_CACHE_MAX_MB` MiB (default 1024); the least recently used go first.
//!
//! Loading a cached module runs its native code, so nothing on disk is trusted as it is:
//! - the directory and every file are opened without following links and checked through
//!   the open handle (this user's, not writable by others, a regular file): see `store`;
//! - an entry carries a MAC, keyed BLAKE3 with a per-user secret kept in the directory (mode
//!   0600), over the module's SHA-256, the engine's compatibility hash and the compiled bytes.
//!   A flipped bit, a patched file, or another module's entry copied under this key fails it;
//! - the bytes are read into memory, verified, and deserialized from that same buffer, so
//!   nothing can change between the check and the load.
//!
//! A bad entry is removed, the module recompiled and the entry rewritten, with one warning
//! line. A cache that cannot be used or written is never an error.
//!
//! Keyed BLAKE3 rather than HMAC-SHA-256: it is a MAC by construction (no HMAC wrapper) and
//! hashes several GB/s on one core with AVX2/AVX-512, so verifying a few-MB entry stays well
//! under a millisecond of a warm run's ~5 ms.

mod store;

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::SystemTime;
use store::{Entry, NotUsed, Store};
use wasmtime::{Engine, Module};

/// An entry starts with this, then its 32-byte MAC, then the compiled module.
const MAGIC: &[u8; 8] = b"sfcache1";
const MAC_LEN: usize = 32;
/// The MAC's first input, so it can never be mistaken for a keyed hash made for anything else.
const DOMAIN: &[u8] = b"sandflow module cache entry v1\0";

const DEFAULT_MAX_MB: u64 = 1024;

/// Where the cache is and how large it may grow; read from the environment by [`compile`],
/// given directly by tests.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub dir: Option<PathBuf>,
    pub max_bytes: u64,
}

impl Settings {
    /// Reads the settings through `var` (the environment), and says what was wrong with them.
    fn from_vars(
        var: impl Fn(&str) -> Option<std::ffi::OsString>,
        warnings: &mut Vec<String>,
    ) -> Settings {
        let dir = match var("SANDFLOW_CACHE_DIR") {
            Some(v) if v == "off" => None,
            Some(v) => Some(PathBuf::from(v)),
            None => var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|d| d.join("sandflow")),
        };
        let max_mb = match var("SANDFLOW_CACHE_MAX_MB") {
            None => DEFAULT_MAX_MB,
            Some(v) => match v.to_str().and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(mb) => mb,
                None => {
                    warnings.push(format!(
                        "SANDFLOW_CACHE_MAX_MB={} is not a whole number of MiB; using {DEFAULT_MAX_MB}",
                        v.to_string_lossy()
                    ));
                    DEFAULT_MAX_MB
                }
            },
        };
        Settings {
            dir,
            max_bytes: max_mb.saturating_mul(1 << 20),
        }
    }
}

/// Where a host keeps its compiled modules.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum CacheLocation {
    /// As the environment says (see the module's documentation).
    #[default]
    Environment,
    /// This directory, whatever the environment says (its size cap still comes from it).
    Dir(PathBuf),
    /// No cache: every load compiles.
    Off,
}

/// What one [`compile_in`] did: the modules, and whether they came from the cache.
pub(crate) struct Compiled {
    pub modules: Vec<Module>,
    /// Read by the tests: the proof that a hit skipped Cranelift.
    #[cfg_attr(not(test), allow(dead_code))]
    pub hit: bool,
}

/// The cache key: the module's SHA-256 and a digest of the engine's compatibility hash. Both
/// name the entry's file and are inputs of its MAC.
struct Key {
    module: [u8; 32],
    engine: [u8; 32],
}

/// Feeds `Hash` output into BLAKE3, for a 256-bit digest of the engine's compatibility hash
/// (std's `DefaultHasher` gives 64 bits and may change between Rust releases).
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        let hash = self.0.finalize();
        u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 of 32 bytes"))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Key {
    fn new(engine: &Engine, bytes: &[u8]) -> Key {
        let mut h = Blake3Hasher(blake3::Hasher::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        Key {
            module: Sha256::digest(bytes).into(),
            engine: *h.0.finalize().as_bytes(),
        }
    }

    /// The entry's file name. `v1-` keeps this format's entries apart from older sandflows'
    /// unauthenticated `.cwasm` files, which are never read and age out by eviction.
    fn file_name(&self) -> String {
        format!(
            "v1-{}-{}{}",
            hex(&self.module[..16]),
            hex(&self.engine[..8]),
            store::ENTRY_SUFFIX
        )
    }

    fn mac(&self, secret: &[u8; 32], compiled: &[u8]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(secret);
        h.update(DOMAIN);
        h.update(&self.module);
        h.update(&self.engine);
        h.update(compiled);
        h.finalize()
    }

    /// The compiled bytes of `stored` if its MAC is this key's under `secret`.
    fn verify<'a>(&self, secret: &[u8; 32], stored: &'a [u8]) -> Result<&'a [u8], &'static str> {
        let rest = stored
            .strip_prefix(MAGIC.as_slice())
            .ok_or("does not start with sandflow's cache header")?;
        if rest.len() < MAC_LEN {
            return Err("is cut short before its MAC");
        }
        let (mac, compiled) = rest.split_at(MAC_LEN);
        let mac: [u8; MAC_LEN] = mac.try_into().expect("split at MAC_LEN");
        // `blake3::Hash`'s `==` runs in constant time.
        if self.mac(secret, compiled) != blake3::Hash::from_bytes(mac) {
            return Err("failed its MAC check (corrupted, altered, or another module's entry)");
        }
        Ok(compiled)
    }
}

/// Compiles `bytes` once, or loads the compiled form cached by an earlier run, into each of
/// `engines` (which must share one configuration: `engines[0]` compiles for all of them).
/// The cache is at `location`. Problems with the cache are said on stderr, one line each, and
/// never fail the load.
pub fn compile(
    engines: &[Engine],
    bytes: &[u8],
    location: &CacheLocation,
) -> wasmtime::Result<Vec<Module>> {
    let mut warnings = Vec::new();
    let mut settings = Settings::from_vars(|k| std::env::var_os(k), &mut warnings);
    match location {
        CacheLocation::Environment => {}
        CacheLocation::Dir(dir) => settings.dir = Some(dir.clone()),
        CacheLocation::Off => settings.dir = None,
    }
    let compiled = compile_in(engines, bytes, &settings, &mut warnings);
    for w in &warnings {
        eprintln!("sandflow: warning: {w}");
    }
    compiled.map(|c| c.modules)
}

/// [`compile`] with the cache's settings given, adding its warnings to `warnings` instead of
/// printing them.
pub(crate) fn compile_in(
    engines: &[Engine],
    bytes: &[u8],
    settings: &Settings,
    warnings: &mut Vec<String>,
) -> wasmtime::Result<Compiled> {
    let Some(first) = engines.first() else {
        return Ok(Compiled {
            modules: Vec::new(),
            hit: false,
        });
    };
    let key = Key::new(first, bytes);
    let name = key.file_name();
    let store = settings.dir.as_deref().and_then(|d| match Store::open(d) {
        Ok(store) => Some(store),
        Err(NotUsed::Unavailable) => None,
        Err(NotUsed::Refused(why)) => {
            warnings.push(why);
            None
        }
    });
    let cache = store.and_then(|s| match s.secret(warnings) {
        Ok(secret) => Some((s, secret)),
        Err(why) => {
            warnings.push(why);
            None
        }
    });
    if let Some((store, secret)) = &cache {
        let bad = match store.read(&name, settings.max_bytes) {
            Entry::Missing => None,
            Entry::Bad(why) => Some(why),
            Entry::Found {
                file,
                bytes: stored,
            } => match key.verify(secret, &stored) {
                Err(why) => Some(why.to_owned()),
                Ok(compiled) => match deserialize(engines, compiled) {
                    Ok(modules) => {
                        Store::touch(&file);
                        return Ok(Compiled { modules, hit: true });
                    }
                    Err(e) => Some(format!("passed its MAC but wasmtime refused it: {e}")),
                },
            },
        };
        if let Some(why) = bad {
            warnings.push(format!(
                "cached module {} {why}; removed it, recompiling",
                store.path_of(&name).display()
            ));
            store.remove(&name);
        }
    }
    let compiled = first.precompile_module(bytes)?;
    if let Some((store, secret)) = &cache {
        // A cache that cannot be written is not an error: the run goes on with the compiled
        // module.
        let mac = key.mac(secret, &compiled);
        let _ = store.write(&name, &[MAGIC, mac.as_bytes(), &compiled]);
        store.sweep(settings.max_bytes, SystemTime::now());
    }
    Ok(Compiled {
        modules: deserialize(engines, &compiled)?,
        hit: false,
    })
}

fn deserialize(engines: &[Engine], compiled: &[u8]) -> wasmtime::Result<Vec<Module>> {
    engines
        .iter()
        .map(|e| {
            // SAFETY: `compiled` was produced by `precompile_module` of an engine of this
            // configuration: either just now, or by an earlier run, which the MAC proves (only
            // this user can read the key; the MAC covers this engine's compatibility hash and
            // this module's hash), checked on these very bytes in memory.
            unsafe { Module::deserialize(e, compiled) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;
    use std::time::Duration;

    /// A directory of the test's own under the system temp dir, removed on drop. Tests run in
    /// parallel threads and must never touch the user's real cache, so each gets one.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let root = std::env::temp_dir()
                .join(format!("sandflow-cache-unit-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            Scratch(root)
        }
        fn cache(&self) -> PathBuf {
            self.0.join("cache")
        }
        fn settings(&self) -> Settings {
            Settings {
                dir: Some(self.cache()),
                max_bytes: 1 << 30,
            }
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn engines() -> Vec<Engine> {
        let config = crate::sandbox::SandboxConfig {
            max_instances: 4,
            ..Default::default()
        };
        crate::sandbox::engines(&config, 2).unwrap()
    }

    /// A module whose `f` returns `n`: modules differ only in what they compute.
    fn wasm(n: i32) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module (func (export "f") (result i32) i32.const {n}))"#
        ))
        .unwrap()
    }

    fn call_f(engine: &Engine, module: &Module) -> i32 {
        let mut store = wasmtime::Store::new(engine, ());
        store.set_epoch_deadline(u64::MAX / 2);
        store.set_fuel(1 << 20).unwrap();
        let instance = wasmtime::Instance::new(&mut store, module, &[]).unwrap();
        let f = instance.get_typed_func::<(), i32>(&mut store, "f").unwrap();
        f.call(&mut store, ()).unwrap()
    }

    /// Loads module `n` through the cache in `settings`; what every engine's copy returns,
    /// whether it was a hit, and the warnings.
    fn load(engines: &[Engine], settings: &Settings, n: i32) -> (i32, bool, Vec<String>) {
        let mut warnings = Vec::new();
        let c = compile_in(engines, &wasm(n), settings, &mut warnings).unwrap();
        let values: Vec<i32> = engines
            .iter()
            .zip(&c.modules)
            .map(|(e, m)| call_f(e, m))
            .collect();
        assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
        (values[0], c.hit, warnings)
    }

    fn entry(engines: &[Engine], cache: &Path, n: i32) -> PathBuf {
        cache.join(Key::new(&engines[0], &wasm(n)).file_name())
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn set_age(path: &Path, age: Duration) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
    }

    fn mentions(warnings: &[String], path: &Path, what: &str) -> bool {
        warnings.len() == 1
            && warnings[0].contains(&path.display().to_string())
            && warnings[0].contains(what)
    }

    #[test]
    fn one_compile_serves_every_engine() {
        let config = crate::sandbox::SandboxConfig {
            max_instances: 4,
            ..Default::default()
        };
        let engines = crate::sandbox::engines(&config, 3).unwrap();
        let t = Scratch::new("every");
        let modules = compile_in(&engines, &wasm(7), &t.settings(), &mut Vec::new())
            .unwrap()
            .modules;
        assert_eq!(modules.len(), 3);
        for (engine, module) in engines.iter().zip(&modules) {
            assert!(Engine::same(engine, module.engine()));
            assert_eq!(call_f(engine, module), 7);
        }
        // The engines are distinct: each has a pool of its own.
        assert!(!Engine::same(&engines[0], &engines[1]));
    }

    #[test]
    fn second_load_is_a_hit_that_reads_the_entry_without_rewriting_it() {
        let t = Scratch::new("hit");
        let engines = engines();
        assert_eq!(load(&engines, &t.settings(), 7), (7, false, vec![]));
        let path = entry(&engines, &t.cache(), 7);
        let before = std::fs::metadata(&path).unwrap();
        assert_eq!(before.mode() & 0o777, 0o600);
        assert_eq!(load(&engines, &t.settings(), 7), (7, true, vec![]));
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(
            before.ino(),
            after.ino(),
            "a hit must not rewrite the entry"
        );
        let key = std::fs::metadata(t.cache().join("key")).unwrap();
        assert_eq!((key.len(), key.mode() & 0o777), (32, 0o600));
    }

    #[test]
    fn flipped_bytes_are_detected_recompiled_and_healed() {
        let t = Scratch::new("flip");
        let engines = engines();
        load(&engines, &t.settings(), 7);
        let path = entry(&engines, &t.cache(), 7);
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 200] {
            *b ^= 0xa5;
        }
        std::fs::write(&path, &bytes).unwrap();
        let (v, hit, warnings) = load(&engines, &t.settings(), 7);
        assert_eq!((v, hit), (7, false));
        assert!(
            mentions(&warnings, &path, "failed its MAC check"),
            "{warnings:?}"
        );
        assert_ne!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the entry is rewritten"
        );
        assert_eq!(
            load(&engines, &t.settings(), 7),
            (7, true, vec![]),
            "healed"
        );
    }

    #[test]
    fn another_modules_entry_under_this_key_is_rejected() {
        let t = Scratch::new("swap");
        let engines = engines();
        load(&engines, &t.settings(), 7);
        load(&engines, &t.settings(), 8);
        let (seven, eight) = (
            entry(&engines, &t.cache(), 7),
            entry(&engines, &t.cache(), 8),
        );
        std::fs::copy(&eight, &seven).unwrap();
        let (v, hit, warnings) = load(&engines, &t.settings(), 7);
        assert_eq!((v, hit), (7, false), "the right module runs");
        assert!(
            mentions(&warnings, &seven, "another module's entry"),
            "{warnings:?}"
        );
        assert_eq!(load(&engines, &t.settings(), 7), (7, true, vec![]));
    }

    #[test]
    fn an_entry_with_a_mac_forged_without_the_key_is_rejected() {
        let t = Scratch::new("forge");
        let engines = engines();
        load(&engines, &t.settings(), 7);
        let path = entry(&engines, &t.cache(), 7);
        // Foreign native code (module 8's), under module 7's key, with a MAC made exactly as
        // sandflow makes it, but with a guessed key.
        let foreign = engines[0].precompile_module(&wasm(8)).unwrap();
        let key = Key::new(&engines[0], &wasm(7));
        let mac = key.mac(&[0u8; 32], &foreign);
        std::fs::write(&path, [&MAGIC[..], mac.as_bytes(), &foreign].concat()).unwrap();
        let (v, hit, warnings) = load(&engines, &t.settings(), 7);
        assert_eq!((v, hit), (7, false), "the foreign code never runs");
        assert!(mentions(&warnings, &path, "MAC"), "{warnings:?}");
        // Nor does a plain wasmtime file without sandflow's header.
        std::fs::write(&path, &foreign).unwrap();
        let (v, hit, warnings) = load(&engines, &t.settings(), 7);
        assert_eq!((v, hit), (7, false));
        assert!(mentions(&warnings, &path, "header"), "{warnings:?}");
    }

    #[test]
    fn an_entry_others_may_write_is_rejected_and_rewritten_private() {
        let t = Scratch::new("mode");
        let engines = engines();
        load(&engines, &t.settings(), 7);
        let path = entry(&engines, &t.cache(), 7);
        chmod(&path, 0o666);
        let (v, hit, warnings) = load(&engines, &t.settings(), 7);
        assert_eq!((v, hit), (7, false));
        assert!(mentions(&warnings, &path, "mode 0666"), "{warnings:?}");
        let mode = std::fs::metadata(&path).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(&engines, &t.settings(), 7), (7, true, vec![]));
    }

    #[test]
    fn a_group_writable_cache_directory_is_not_used() {
        let t = Scratch::new("groupdir");
        let engines = engines();
        std::fs::create_dir(t.cache()).unwrap();
        chmod(&t.cache(), 0o770);
        for _ in 0..2 {
            let (v, hit, warnings) = load(&engines, &t.settings(), 7);
            assert_eq!((v, hit), (7, false));
            assert!(mentions(&warnings, &t.cache(), "not used"), "{warnings:?}");
            assert!(warnings[0].contains("mode 0770"), "{warnings:?}");
        }
        assert_eq!(std::fs::read_dir(t.cache()).unwrap().count(), 0);
    }

    #[test]
    fn an_entry_owned_by_another_user_is_rejected() {
        // The rule itself, wherever the tests run: the owner recorded on the open file must
        // be this process's effective uid.
        let why = store::untrusted(
            rustix::fs::FileType::RegularFile,
            65534,
            0o600,
            1000,
            rustix::fs::FileType::RegularFile,
            0o022,
        );
        assert_eq!(
            why.as_deref(),
            Some("is owned by uid 65534, not by this user (uid 1000)")
        );
        // Through the filesystem, a file can be given away only by root (as in CI). Without
        // root this part is skipped; `Store::read` applies `untrusted` to the fstat of the
        // open file, so the check above is the one a foreign file meets.
        if rustix::process::geteuid().as_raw() != 0 {
            return;
        }
        let t = Scratch::new("owner");
        let engines = engines();
        load(&engines, &t.settings(), 7);
        let path = entry(&engines, &t.cache(), 7);
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let (v, hit, warnings) = load(&engines, &t.settings(), 7);
        assert_eq!((v, hit), (7, false));
        assert!(
            mentions(&warnings, &path, "owned by uid 65534"),
            "{warnings:?}"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().uid(),
            0,
            "rewritten as ours"
        );
    }

    #[test]
    fn a_symlink_at_the_key_path_is_not_followed() {
        let t = Scratch::new("linkfile");
        let engines = engines();
        load(&engines, &t.settings(), 7);
        let path = entry(&engines, &t.cache(), 7);
        // A valid entry, moved out and linked back: following the link would be a hit.
        let outside = t.0.join("outside.cwasm");
        std::fs::rename(&path, &outside).unwrap();
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let (v, hit, warnings) = load(&engines, &t.settings(), 7);
        assert_eq!((v, hit), (7, false));
        assert!(mentions(&warnings, &path, "symbolic link"), "{warnings:?}");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert!(outside.is_file(), "the link's target is left alone");
    }

    #[test]
    fn a_symlinked_cache_directory_is_refused() {
        let t = Scratch::new("linkdir");
        let engines = engines();
        // A valid cache behind the link: following it would be a hit.
        load(&engines, &t.settings(), 7);
        let link = t.0.join("link");
        std::os::unix::fs::symlink(t.cache(), &link).unwrap();
        let linked = Settings {
            dir: Some(link.clone()),
            max_bytes: 1 << 30,
        };
        let (v, hit, warnings) = load(&engines, &linked, 7);
        assert_eq!((v, hit), (7, false));
        assert!(mentions(&warnings, &link, "symbolic link"), "{warnings:?}");
    }

    #[test]
    fn a_fifo_at_the_key_path_does_not_hang_and_is_replaced() {
        let t = Scratch::new("fifo");
        let path = entry(&engines(), &t.cache(), 7);
        std::fs::create_dir(t.cache()).unwrap();
        chmod(&t.cache(), 0o700);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let settings = t.settings();
        std::thread::spawn(move || {
            let _ = tx.send(load(&engines(), &settings, 7));
        });
        // Generous: a hang is forever, a load is milliseconds.
        let (v, hit, warnings) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("loading with a FIFO at the key path hangs");
        assert_eq!((v, hit), (7, false));
        assert!(mentions(&warnings, &path, "is a FIFO"), "{warnings:?}");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    }

    #[test]
    fn stale_temp_files_are_removed_and_fresh_ones_kept() {
        let t = Scratch::new("tmp");
        let engines = engines();
        load(&engines, &t.settings(), 7);
        let stale = t.cache().join(".tmp-4242-0-0-v1-x.cwasm");
        let fresh = t.cache().join(".tmp-4242-1-0-v1-y.cwasm");
        std::fs::write(&stale, b"interrupted").unwrap();
        std::fs::write(&fresh, b"being written").unwrap();
        set_age(&stale, store::STALE_TMP + Duration::from_secs(60));
        set_age(&fresh, Duration::from_secs(60));
        // The next run that writes sweeps.
        load(&engines, &t.settings(), 8);
        assert!(
            !stale.exists(),
            "a temp file older than the threshold is removed"
        );
        assert!(fresh.exists(), "a recent one may be a write in progress");
    }

    #[test]
    fn eviction_past_the_cap_keeps_the_most_recently_used_entries() {
        let t = Scratch::new("evict");
        let engines = engines();
        let paths: Vec<PathBuf> = (1..=3)
            .map(|n| {
                load(&engines, &t.settings(), n);
                entry(&engines, &t.cache(), n)
            })
            .collect();
        for (i, p) in paths.iter().enumerate() {
            set_age(p, Duration::from_secs(3600 * (3 - i as u64)));
        }
        // Entry 1, the oldest, is used again: a hit counts as use.
        assert_eq!(load(&engines, &t.settings(), 1), (1, true, vec![]));
        let size = std::fs::metadata(&paths[2]).unwrap().len();
        // Room for two and a half entries of this size (they differ by a constant only).
        let small = Settings {
            dir: Some(t.cache()),
            max_bytes: size * 5 / 2,
        };
        load(&engines, &small, 4);
        let kept: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
        assert_eq!(
            kept,
            [true, false, false],
            "1 (just used) stays, 2 and 3 go"
        );
        assert!(
            entry(&engines, &t.cache(), 4).exists(),
            "the new entry stays"
        );
        assert!(t.cache().join("key").exists(), "the key is not an entry");
    }

    #[test]
    fn a_secret_key_others_may_read_is_replaced() {
        let t = Scratch::new("key");
        let engines = engines();
        load(&engines, &t.settings(), 7);
        let key = t.cache().join("key");
        chmod(&key, 0o644);
        let (v, hit, warnings) = load(&engines, &t.settings(), 7);
        // A new key: the old entry no longer verifies, and says so.
        assert_eq!((v, hit), (7, false));
        assert!(mentions(&warnings[..1], &key, "mode 0644"), "{warnings:?}");
        assert!(warnings[1].contains("MAC"), "{warnings:?}");
        assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        assert_eq!(load(&engines, &t.settings(), 7), (7, true, vec![]));
    }

    #[test]
    fn settings_come_from_the_environment() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let mut w = Vec::new();
        let off = Settings::from_vars(
            vars(&[("SANDFLOW_CACHE_DIR", "off"), ("HOME", "/h")]),
            &mut w,
        );
        assert_eq!(off.dir, None);
        let home = Settings::from_vars(vars(&[("HOME", "/h")]), &mut w);
        assert_eq!(home.dir, Some(PathBuf::from("/h/.cache/sandflow")));
        assert_eq!(home.max_bytes, 1024 << 20);
        let capped = Settings::from_vars(vars(&[("SANDFLOW_CACHE_MAX_MB", "64")]), &mut w);
        assert_eq!(capped.max_bytes, 64 << 20);
        assert!(w.is_empty(), "{w:?}");
        let bad = Settings::from_vars(vars(&[("SANDFLOW_CACHE_MAX_MB", "lots")]), &mut w);
        assert_eq!(bad.max_bytes, 1024 << 20);
        assert!(
            w.len() == 1 && w[0].contains("SANDFLOW_CACHE_MAX_MB=lots"),
            "{w:?}"
        );
    }
}
