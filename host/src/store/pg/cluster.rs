//! A real PostgreSQL for tests: one cluster per test binary, started on first use in a
//! temporary directory on a free port, each test in a database of its own, and stopped when
//! the binary exits. Shared by the store's unit tests and `tests/all` (which includes this
//! file by path), so it uses only std, `tempfile` and `postgres`.
//!
//! PostgreSQL refuses to run as root, and tests (and CI) run as root: then the server runs
//! as the unprivileged `postgres` user (`runuser -u postgres`), in a directory given to it.
//! No PostgreSQL is a test failure naming the package, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The superuser's password: host connections use scram-sha-256, so a wrong password fails.
pub const PASSWORD: &str = "sandflow-test";

pub struct Cluster {
    pub port: u16,
    next: AtomicU32,
    /// What stopping and starting it again needs.
    bin: PathBuf,
    root: bool,
    dir: PathBuf,
    data: PathBuf,
    /// Whether dropping it stops it (a private cluster; the binary's is a static).
    private: bool,
}

/// The binary's cluster, started on first use. Panics (failing the test) with what to
/// install where PostgreSQL is missing or does not start.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// A cluster of the caller's own, stopped and removed when dropped: for a test that stops
/// the server, which would fail the other tests on the binary's cluster.
// `tests/all`'s fault tests use it; the store's unit tests do not.
#[allow(dead_code)]
pub fn private_cluster() -> Cluster {
    match start() {
        Ok(mut c) => {
            c.private = true;
            c
        }
        Err(e) => panic!("{e}"),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.private {
            let _ = self.stop("immediate");
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The directory holding `initdb` and `pg_ctl`: on PATH, else Debian's
/// /usr/lib/postgresql/<version>/bin, the newest.
fn find_bin() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).ok_or_else(|| {
        "PostgreSQL is not installed: no initdb on PATH or in /usr/lib/postgresql/*/bin; \
         install Debian's `postgresql` package (apt-get install postgresql), as .ci/run does"
            .to_string()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args` as the user that runs the server.
fn as_server_user(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) -> Result<(), String> {
    let out = c
        .output()
        .map_err(|e| format!("cannot run {what} ({c:?}): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn start() -> Result<Cluster, String> {
    let bin = find_bin()?;
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("sandflow-pg-")
        .tempdir()
        .map_err(|e| format!("a temporary directory for PostgreSQL: {e}"))?
        .keep();
    let pw = dir.join("pw");
    std::fs::write(&pw, PASSWORD).map_err(|e| format!("writing {}: {e}", pw.display()))?;
    if root {
        run(
            {
                let mut c = Command::new("chown");
                c.arg("-R").arg("postgres:").arg(&dir);
                c
            },
            "giving the cluster's directory to the postgres user",
        )?;
    }
    let data = dir.join("data");
    let mut initdb = as_server_user(root, &bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", pw.display()))
        .args(["-E", "UTF8", "--locale=C", "--no-sync"]);
    run(initdb, "initdb")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))?;
    let cluster = Cluster {
        port,
        next: AtomicU32::new(0),
        bin,
        root,
        dir,
        data,
        private: false,
    };
    cluster.start_server()?;
    watch(root, &cluster.bin, &cluster.dir, &cluster.data);
    Ok(cluster)
}

/// Stops the server and removes its directory once this process is gone, however it ends
/// (a static is never dropped, and a failed test may abort): a shell waits for our pid.
fn watch(root: bool, bin: &Path, dir: &Path, data: &Path) {
    let stop = format!(
        "{}'{}' -D '{}' -m immediate stop",
        if root { "runuser -u postgres -- " } else { "" },
        bin.join("pg_ctl").display(),
        data.display()
    );
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; \
         rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

impl Cluster {
    /// `pg_ctl start` on the cluster's port, waiting until it accepts connections.
    fn start_server(&self) -> Result<(), String> {
        let mut ctl = as_server_user(self.root, &self.bin.join("pg_ctl"));
        ctl.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c max_connections=300 -c shared_buffers=64MB",
                self.port,
                self.dir.display()
            ))
            .arg("start");
        run(ctl, "pg_ctl start").map_err(|e| {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })
    }

    /// `pg_ctl stop -m <mode>` (`fast`: connections are terminated and transactions rolled
    /// back; `immediate`: the server dies and recovers from its WAL at the next start).
    fn stop(&self, mode: &str) -> Result<(), String> {
        let mut ctl = as_server_user(self.root, &self.bin.join("pg_ctl"));
        ctl.arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "-t", "60", "stop"]);
        run(ctl, "pg_ctl stop")
    }

    /// Stops the server (`mode` as [`Cluster::stop`]), leaves it down for `down`, and starts it
    /// again on the same port and data. Every client's connection is lost.
    // Only `tests/all`'s fault tests restart a cluster.
    #[allow(dead_code)]
    pub fn restart(&self, mode: &str, down: std::time::Duration) {
        self.stop(mode).unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(down);
        self.start_server().unwrap_or_else(|e| panic!("{e}"));
    }

    /// The URL of database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// A new, empty database for one test; its URL.
    pub fn database(&self, name: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let db: String = format!("{name}_{n}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to the test cluster: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap_or_else(|e| panic!("creating database {db}: {e}"));
        self.url(&db)
    }

    /// Runs `sql` in database `url` on a connection of the test's own.
    pub fn execute(&self, url: &str, sql: &str) {
        let mut c = postgres::Client::connect(url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        c.batch_execute(sql)
            .unwrap_or_else(|e| panic!("running {sql:?}: {e}"));
    }

    /// A number from a query of one row and column of type bigint.
    // The unit tests count rows with it; `tests/all` reads through the store.
    #[allow(dead_code)]
    pub fn query_i64(&self, url: &str, sql: &str) -> i64 {
        let mut c = postgres::Client::connect(url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        c.query_one(sql, &[])
            .unwrap_or_else(|e| panic!("running {sql:?}: {e}"))
            .get(0)
    }
}
