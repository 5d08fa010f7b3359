//! The cache directory as one open handle. It is opened once without following a link, checked
//! through that handle, and every later step is relative to it (openat, renameat, unlinkat,
//! readdir on the fd); every file is checked through its own open handle (fstat). A path
//! swapped between a check and a use is therefore never followed: there is no path-based
//! stat-then-open anywhere.

use rustix::fd::OwnedFd;
use rustix::fs::{self, AtFlags, FileType, Mode, OFlags, Stat, Timestamps};
use rustix::io::Errno;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Temporary files start with this; a reader never opens them, the sweep removes stale ones.
const TMP_PREFIX: &str = ".tmp-";

/// Compiled entries end with this (older sandflows wrote `.cwasm` files too: the sweep counts
/// and evicts them like any other entry).
pub(super) const ENTRY_SUFFIX: &str = ".cwasm";

/// The per-user MAC key's file name in the cache directory.
const SECRET: &str = "key";

/// A temporary file older than this was left by a write that was interrupted (a write takes
/// milliseconds); younger ones may belong to a run that is writing right now.
pub(super) const STALE_TMP: Duration = Duration::from_secs(10 * 60);

/// What is wrong with `stat` for a cache file or directory owned by `euid`, if anything.
/// `want` is the file type it must have; `forbidden` the permission bits it must not have
/// (others' write bits for entries and the directory, all group/other bits for the secret).
/// Pure, so the owner rule is tested even where the tests cannot `chown`.
pub(super) fn untrusted(
    file_type: FileType,
    uid: u32,
    mode: u32,
    euid: u32,
    want: FileType,
    forbidden: u32,
) -> Option<String> {
    if file_type != want {
        return Some(format!(
            "is {}, not {}",
            type_name(file_type),
            type_name(want)
        ));
    }
    if uid != euid {
        return Some(format!(
            "is owned by uid {uid}, not by this user (uid {euid})"
        ));
    }
    if mode & forbidden != 0 {
        return Some(format!(
            "has mode {:04o}; expected none of {forbidden:04o} (it must not be writable{} by group or others)",
            mode & 0o7777,
            if forbidden & 0o044 != 0 { " or readable" } else { "" }
        ));
    }
    None
}

fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "an unknown kind of file",
    }
}

// `Stat`'s field types differ between platforms; the casts are no-ops only on some.
#[allow(clippy::unnecessary_cast)]
fn check(stat: &Stat, want: FileType, forbidden: u32) -> Result<(), String> {
    let euid = rustix::process::geteuid().as_raw();
    let mode = stat.st_mode as u32;
    match untrusted(
        FileType::from_raw_mode(mode as _),
        stat.st_uid as u32,
        mode,
        euid,
        want,
        forbidden,
    ) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

// As for `check`: the field types differ between platforms.
#[allow(clippy::unnecessary_cast)]
fn mtime(stat: &Stat) -> SystemTime {
    SystemTime::UNIX_EPOCH
        + Duration::from_secs(stat.st_mtime.max(0) as u64)
        + Duration::from_nanos(stat.st_mtime_nsec as u64)
}

/// Flags for opening anything in the cache for reading: never through a link, and never
/// blocking (a FIFO opens at once, and is then rejected as not a regular file).
fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY
}

/// Why the directory is not used. `Unavailable` is silent (no cache is not an error: a
/// read-only home, no `HOME`); `Refused` is said once on stderr, since it is a safety check
/// the user can fix.
pub(super) enum NotUsed {
    Unavailable,
    Refused(String),
}

/// What reading an entry found.
pub(super) enum Entry {
    Missing,
    /// The bytes, read from `file` (kept open to mark the entry as used).
    Found {
        file: File,
        bytes: Vec<u8>,
    },
    /// The file at the key path may not be trusted; why.
    Bad(String),
}

pub(super) struct Store {
    fd: OwnedFd,
    path: PathBuf,
}

impl Store {
    /// Creates `path` (mode 0700) if needed and opens it. A symbolic link as its last
    /// component is refused, not resolved: what a link points to may change after any check.
    /// Earlier components may be links (a home directory on another disk): whatever directory
    /// is opened is then checked through the handle, and the handle is all that is used.
    pub(super) fn open(path: &Path) -> Result<Store, NotUsed> {
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path);
        let fd = match fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                return Err(NotUsed::Refused(format!(
                    "module cache {} not used: it is a symbolic link or not a directory \
                     (links are not followed; point SANDFLOW_CACHE_DIR at the real directory)",
                    path.display()
                )))
            }
            Err(_) => return Err(NotUsed::Unavailable),
        };
        let stat = fs::fstat(&fd).map_err(|_| NotUsed::Unavailable)?;
        check(&stat, FileType::Directory, 0o022).map_err(|why| {
            NotUsed::Refused(format!(
                "module cache {} not used: it {why}; loading a cached module runs its code",
                path.display()
            ))
        })?;
        Ok(Store {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The path of `name` in the directory, for messages.
    pub(super) fn path_of(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Reads entry `name` if it is a regular file of this user's that others cannot write, and
    /// no larger than `max_len`.
    pub(super) fn read(&self, name: &str, max_len: u64) -> Entry {
        let fd = match fs::openat(&self.fd, name, read_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Entry::Missing,
            Err(Errno::LOOP) => {
                return Entry::Bad("is a symbolic link, which the cache does not follow".into())
            }
            Err(e) => return Entry::Bad(format!("cannot be opened: {e}")),
        };
        let stat = match fs::fstat(&fd) {
            Ok(stat) => stat,
            Err(e) => return Entry::Bad(format!("cannot be inspected: {e}")),
        };
        if let Err(why) = check(&stat, FileType::RegularFile, 0o022) {
            return Entry::Bad(why);
        }
        let len = stat.st_size.max(0) as u64;
        if len > max_len {
            return Entry::Bad(format!(
                "is {len} bytes, more than the cache's whole size cap ({max_len} bytes)"
            ));
        }
        let mut file = File::from(fd);
        let mut bytes = Vec::with_capacity(len as usize);
        // `take`: the file may grow while being read; never read more than was checked.
        match (&mut file).take(max_len).read_to_end(&mut bytes) {
            Ok(_) => Entry::Found { file, bytes },
            Err(e) => Entry::Bad(format!("cannot be read: {e}")),
        }
    }

    /// Removes `name` (whatever it is: a link is removed, not what it points to).
    pub(super) fn remove(&self, name: &str) {
        let _ = fs::unlinkat(&self.fd, name, AtFlags::empty());
    }

    /// Writes `parts` as entry `name`: into a fresh temporary file (created exclusively, mode
    /// 0600), then renamed into place, so a reader sees the old entry or the whole new one.
    /// No fsync: an entry cut short by a crash fails its MAC and is rewritten.
    pub(super) fn write(&self, name: &str, parts: &[&[u8]]) -> std::io::Result<()> {
        let tmp = self.create_tmp(name, parts)?;
        fs::renameat(&self.fd, &tmp, &self.fd, name).inspect_err(|_| self.remove(&tmp))?;
        Ok(())
    }

    fn create_tmp(&self, name: &str, parts: &[&[u8]]) -> std::io::Result<String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = format!(
            "{TMP_PREFIX}{}-{}-{nanos:x}-{name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let fd = fs::openat(
            &self.fd,
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut file = File::from(fd);
        parts
            .iter()
            .try_for_each(|p| file.write_all(p))
            .inspect_err(|_| self.remove(&tmp))?;
        Ok(tmp)
    }

    /// Marks an entry as used, for eviction: its mtime becomes now.
    pub(super) fn touch(file: &File) {
        let omit = fs::Timespec {
            tv_sec: 0,
            tv_nsec: fs::UTIME_OMIT,
        };
        let now = fs::Timespec {
            tv_sec: 0,
            tv_nsec: fs::UTIME_NOW,
        };
        let _ = fs::futimens(
            file,
            &Timestamps {
                last_access: omit,
                last_modification: now,
            },
        );
    }

    /// The per-user secret that keys the entries' MAC: 32 bytes in `key`, mode 0600. A key
    /// that is not a 32-byte regular file of this user's, private to it, is replaced (which
    /// invalidates every entry, as it should: someone else may know it). Errors say why the
    /// cache cannot be used this run.
    pub(super) fn secret(&self, warnings: &mut Vec<String>) -> Result<[u8; 32], String> {
        // Twice at most: another run may create the key between our look and our link.
        for _ in 0..2 {
            match self.read_secret() {
                Ok(Some(key)) => return Ok(key),
                Ok(None) => {}
                Err(why) => {
                    warnings.push(format!(
                        "module cache key {} {why}; replacing it (every cached module will be \
                         recompiled)",
                        self.path_of(SECRET).display()
                    ));
                    self.remove(SECRET);
                }
            }
            let mut key = [0u8; 32];
            File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut key))
                .map_err(|e| format!("module cache not used: no random key: {e}"))?;
            let tmp = self
                .create_tmp(SECRET, &[&key])
                .map_err(|e| format!("module cache not used: cannot write its key: {e}"))?;
            // `linkat` fails if the key exists: a key appears whole or not at all, and a
            // concurrent run's key is never overwritten.
            let linked = fs::linkat(&self.fd, &tmp, &self.fd, SECRET, AtFlags::empty());
            self.remove(&tmp);
            match linked {
                Ok(()) => return Ok(key),
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(format!("module cache not used: cannot store its key: {e}")),
            }
        }
        Err("module cache not used: its key kept changing under this run".into())
    }

    fn read_secret(&self) -> Result<Option<[u8; 32]>, String> {
        let fd = match fs::openat(&self.fd, SECRET, read_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err("is a symbolic link".into()),
            Err(e) => return Err(format!("cannot be opened: {e}")),
        };
        let stat = fs::fstat(&fd).map_err(|e| format!("cannot be inspected: {e}"))?;
        check(&stat, FileType::RegularFile, 0o077)?;
        if stat.st_size != 32 {
            return Err(format!("is {} bytes, not 32", stat.st_size));
        }
        let mut key = [0u8; 32];
        File::from(fd)
            .read_exact(&mut key)
            .map_err(|e| format!("cannot be read: {e}"))?;
        Ok(Some(key))
    }

    /// Removes temporary files older than [`STALE_TMP`] (left by interrupted writes), then
    /// evicts the least recently used entries (oldest mtime; a hit touches it) until all
    /// entries together take at most `max_bytes`.
    pub(super) fn sweep(&self, max_bytes: u64, now: SystemTime) {
        let Ok(dir) = fs::Dir::read_from(&self.fd) else {
            return;
        };
        let mut entries = Vec::new();
        for item in dir.flatten() {
            let Ok(name) = item.file_name().to_str() else {
                continue;
            };
            let (is_tmp, is_entry) = (name.starts_with(TMP_PREFIX), name.ends_with(ENTRY_SUFFIX));
            if !is_tmp && !is_entry {
                continue;
            }
            let Ok(stat) = fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let mtime = mtime(&stat);
            if is_tmp {
                if now.duration_since(mtime).is_ok_and(|age| age > STALE_TMP) {
                    self.remove(name);
                }
            } else if FileType::from_raw_mode(stat.st_mode as _) == FileType::RegularFile {
                entries.push((mtime, stat.st_size.max(0) as u64, name.to_owned()));
            }
        }
        // Newest first; keep while they fit.
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut total = 0u64;
        for (_, len, name) in entries {
            total = total.saturating_add(len);
            if total > max_bytes {
                self.remove(&name);
            }
        }
    }
}
