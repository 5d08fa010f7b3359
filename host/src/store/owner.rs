//! Who runs an execution: host, boot, pid and the process's start time, so that an execution
//! whose process died (killed, crashed, machine rebooted) is seen as interrupted rather than
//! running forever, and a pid the kernel gave to another process since is not taken for the
//! owner.

/// The process that runs (or ran) an execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    /// The kernel's boot id: start times count from boot, so they only compare within one.
    pub boot: String,
    pub pid: u32,
    /// Clock ticks since boot when the process started (field 22 of `/proc/<pid>/stat`).
    pub start: u64,
}

/// What can be said about an owner from this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    /// Another host's process: this one cannot see it.
    Unknown,
}

/// The environment variable a `sandflow worker` gives its runs: see [`Owner::for_run`].
pub const WORKER_OWNER: &str = "SANDFLOW_WORKER_OWNER";

impl Owner {
    /// This process. Read once: a worker records thousands of child executions, and each
    /// read is three files (the host name, the boot id, /proc/self/stat).
    pub fn current() -> Owner {
        static CURRENT: std::sync::OnceLock<Owner> = std::sync::OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let pid = std::process::id();
                Owner {
                    host: hostname(),
                    boot: boot_id(),
                    pid,
                    start: start_time(pid).unwrap_or(0),
                }
            })
            .clone()
    }

    /// The process a run records as its owner: this one, or, in a run a `sandflow worker`
    /// started, that worker (its [`Owner::to_env`] in `SANDFLOW_WORKER_OWNER`), so `show`
    /// names the worker that drove the execution. The run dies with its worker, and the
    /// worker marks an execution its run left `running` interrupted, so the worker's
    /// liveness is the run's.
    pub fn for_run() -> Owner {
        std::env::var(WORKER_OWNER)
            .ok()
            .and_then(|v| Owner::from_env(&v))
            .unwrap_or_else(Owner::current)
    }

    /// This owner as the value of `SANDFLOW_WORKER_OWNER`.
    pub fn to_env(&self) -> String {
        format!("{}\t{}\t{}\t{}", self.host, self.boot, self.pid, self.start)
    }

    fn from_env(v: &str) -> Option<Owner> {
        let mut it = v.split('\t');
        let owner = Owner {
            host: it.next()?.to_string(),
            boot: it.next()?.to_string(),
            pid: it.next()?.parse().ok()?,
            start: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(owner)
    }

    pub fn liveness(&self) -> Liveness {
        if self.host != hostname() {
            return Liveness::Unknown;
        }
        if self.boot != boot_id() {
            return Liveness::Dead;
        }
        match start_time(self.pid) {
            Some(start) if start == self.start => Liveness::Alive,
            // No such process, or a new one that was given the same pid.
            _ => Liveness::Dead,
        }
    }
}

fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname").unwrap_or_default()
}

fn boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default()
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The start time of process `pid`, `None` if there is no such process.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself;
    // the fields after the last ')' start with field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workers_owner_passes_through_the_environment_whole_or_not_at_all() {
        let me = Owner::current();
        let back = Owner::from_env(&me.to_env()).expect("parses");
        assert_eq!(
            (back.host, back.boot, back.pid, back.start),
            (me.host, me.boot, me.pid, me.start)
        );
        for bad in ["", "h\tb\t12", "h\tb\tx\t1", "h\tb\t1\t2\t3"] {
            assert!(Owner::from_env(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn this_process_is_alive_and_an_exited_child_or_a_reused_pid_is_dead() {
        let me = Owner::current();
        assert!(me.start > 0, "{me:?}");
        assert_eq!(me.liveness(), Liveness::Alive);

        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait for true");
        let gone = Owner { pid, ..me.clone() };
        assert_eq!(gone.liveness(), Liveness::Dead);

        let reused = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(reused.liveness(), Liveness::Dead);
        let elsewhere = Owner {
            host: format!("{}-not-this-one", me.host),
            ..me
        };
        assert_eq!(elsewhere.liveness(), Liveness::Unknown);
    }
}
