//! Hostile guests: one entity per way a task can misbehave, for the end-to-end suite
//! (`tests/all/hostile.rs`). Every one of them must end as a clear failure of its own node (or,
//! for output floods, as truncated logs) while the host stays up and other work completes.
//!
//! Most attacks are plain SDK entities. Those the SDK cannot express (garbage or out-of-bounds
//! results, results of the wrong kind) are hand-written ABI exports in [`raw`].
use sandflow::{dynamic, map, task, workflow, Bytes};
use std::hint::black_box;
use std::io::Write;

/// The well-behaved neighbour.
#[task]
pub fn ok(a: i64) -> i64 {
    a
}

/// Never returns: stopped by the epoch deadline.
#[task(timeout_ms = 200)]
pub fn spin(a: i64) -> i64 {
    let mut x = a;
    loop {
        x = black_box(x.wrapping_mul(31).wrapping_add(7));
    }
}

/// Allocates (and touches) `step_mib` MiB at a time, forever: stopped by the memory limit.
#[task(max_memory_mb = 64)]
pub fn memory_bomb(step_mib: i64) -> i64 {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; (step_mib.max(1) as usize) << 20]);
        black_box(&hoard);
    }
}

/// Recurses `depth` levels; each level keeps a frame alive (the result is used after the call).
#[task]
pub fn deep_recursion(depth: i64) -> i64 {
    fn down(n: i64) -> i64 {
        if n <= 0 {
            return 0;
        }
        let below = black_box(down as fn(i64) -> i64)(n - 1);
        below.wrapping_mul(3).wrapping_add(n)
    }
    down(depth)
}

/// Returns `mib` MiB of bytes: past the 64 MiB output limit for `mib > 64`.
#[task]
pub fn huge_output(mib: i64) -> Bytes {
    Bytes(vec![7u8; (mib.max(0) as usize) << 20])
}

/// Returns a string of `mib` MiB; large ones hit the memory limit while being encoded.
#[task]
pub fn huge_string(mib: i64) -> String {
    "x".repeat((mib.max(0) as usize) << 20)
}

/// Writes `mib` MiB to stdout in 64 KiB writes, then succeeds with the number of bytes written.
#[task]
pub fn stdout_flood(mib: i64) -> i64 {
    let chunk = [b'y'; 64 << 10];
    let mut out = std::io::stdout().lock();
    let mut written = 0i64;
    for i in 0..(mib.max(0) * 16) {
        // A line number first and last, so a test can see which parts were kept.
        let _ = writeln!(out, "line {i} start");
        let _ = out.write_all(&chunk);
        written += chunk.len() as i64;
    }
    let _ = writeln!(out, "the end");
    written
}

/// Writes `mib` MiB to stderr as one long line, then panics.
#[task]
pub fn stderr_flood_then_panic(mib: i64) -> i64 {
    let chunk = [b'z'; 64 << 10];
    let mut err = std::io::stderr().lock();
    for _ in 0..(mib.max(0) * 16) {
        let _ = err.write_all(&chunk);
    }
    drop(err);
    panic!("gave up after flooding stderr with {mib} MiB")
}

#[task]
pub fn panics(a: i64) -> i64 {
    panic!("hostile panic on input {a}")
}

/// Rust checks integer division: `b == 0` panics rather than trapping.
#[task]
pub fn divide(a: i64, b: i64) -> i64 {
    black_box(a) / black_box(b)
}

/// Executes wasm's `unreachable` instruction: a trap with no panic message.
#[task]
pub fn unreachable_trap(a: i64) -> i64 {
    if black_box(a) >= 0 {
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
    }
    a
}

/// Calls `exit(code)` in the middle of the task.
#[task]
pub fn exits(code: i64) -> i64 {
    std::process::exit(code as i32)
}

/// Sleeps in the host (WASI `poll_oneoff`) for `ms`, far past its timeout.
#[task(timeout_ms = 200)]
pub fn sleeps(ms: i64) -> i64 {
    std::thread::sleep(std::time::Duration::from_millis(ms.max(0) as u64));
    ms
}

/// Tries to read a file; returns what happened (`read N bytes` or `error: ..`).
#[task]
pub fn read_file(path: String) -> String {
    match std::fs::read(&path) {
        Ok(b) => format!("read {} bytes", b.len()),
        Err(e) => format!("error: {e}"),
    }
}

/// Tries to list a directory.
#[task]
pub fn list_dir(path: String) -> String {
    match std::fs::read_dir(&path) {
        Ok(entries) => format!("listed {} entries", entries.count()),
        Err(e) => format!("error: {e}"),
    }
}

/// Tries to create a file.
#[task]
pub fn write_file(path: String) -> String {
    match std::fs::write(&path, b"sandflow was here") {
        Ok(()) => "wrote".to_string(),
        Err(e) => format!("error: {e}"),
    }
}

/// Every environment variable the task can see, as `NAME=value`.
#[task]
pub fn env_vars() -> Vec<String> {
    std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect()
}

/// The task's command-line arguments.
#[task]
pub fn args() -> Vec<String> {
    std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// Tries to open a TCP connection and to bind a UDP socket.
#[task]
pub fn connect(addr: String) -> Vec<String> {
    let tcp = match std::net::TcpStream::connect(&addr) {
        Ok(_) => "tcp: connected".to_string(),
        Err(e) => format!("tcp error: {e}"),
    };
    let udp = match std::net::UdpSocket::bind("0.0.0.0:0") {
        Ok(_) => "udp: bound".to_string(),
        Err(e) => format!("udp error: {e}"),
    };
    vec![tcp, udp]
}

/// Behaves as `kind` says: `ok`, `bomb` (memory), `loop`, `panic`, `trap`, `exit`, `deep`
/// (stack), `flood` (stdout). For maps of mixed elements and long series of hostile runs.
#[task(timeout_ms = 200, max_memory_mb = 32)]
pub fn behave(kind: String) -> String {
    match kind.as_str() {
        "ok" => "fine".to_string(),
        "bomb" => {
            memory_bomb(4);
            unreachable!("the bomb never returns")
        }
        "loop" => {
            spin(1);
            unreachable!("the loop never returns")
        }
        "panic" => panic!("behave: panic"),
        "trap" => {
            unreachable_trap(1);
            unreachable!("the trap never returns")
        }
        "exit" => std::process::exit(7),
        "deep" => deep_recursion(i64::MAX).to_string(),
        "flood" => stdout_flood(4).to_string(),
        other => panic!("behave: unknown kind {other:?}"),
    }
}

/// A dynamic that expands into itself, without end: stopped by `max_depth`.
#[dynamic]
pub fn expand_forever(n: i64) -> i64 {
    expand_forever::call(n + 1)
}

/// A dynamic that fans out into `n` tasks: stopped by a small `max_nodes`.
#[dynamic]
pub fn fan_out(n: i64) -> Vec<i64> {
    (0..n).map(ok::call).collect::<Vec<_>>()
}

/// A map of `n` elements built by a dynamic: stopped by a small `max_nodes`.
#[dynamic]
pub fn map_fan_out(n: i64) -> Vec<i64> {
    map(ok::entity()).over((0..n).collect::<Vec<i64>>())
}

#[dynamic]
pub fn panicking_dynamic(n: i64) -> i64 {
    assert!(n < 0, "hostile dynamic refuses to expand {n}");
    ok::call(n)
}

/// A dynamic whose graph calls an entity the module does not have.
#[dynamic]
pub fn bad_graph(n: i64) -> i64 {
    let _ = sandflow::__private::add_node::<i64>(
        "no_such_entity",
        vec![("a", Some(sandflow::IntoBinding::<i64>::into_binding(n)))],
        None,
    );
    ok::call(n)
}

/// How many integers a list has.
#[task]
pub fn count(l: Vec<i64>) -> i64 {
    l.len() as i64
}

/// A dynamic whose graph carries a literal list of `n` integers: `n` values in host memory
/// for as long as the run keeps the graph.
#[dynamic]
pub fn big_literal(n: i64) -> i64 {
    count::call((0..n).collect::<Vec<i64>>())
}

/// A map of dynamics, each returning a big graph: stopped by the run's memory budget.
#[workflow]
pub fn many_big_literals(ns: Vec<i64>) -> Vec<i64> {
    map(big_literal::entity()).over(ns)
}

/// A dynamic expanding into `width` copies of itself, without end: a tree far within
/// `max_nodes` for its first levels, stopped by the run's memory budget.
#[dynamic]
pub fn tree(width: i64) -> i64 {
    let kids: Vec<_> = (0..width.max(1)).map(|_| tree::call(width)).collect();
    kids[0].clone()
}

/// A map where some elements misbehave: the good ones still complete.
#[workflow]
pub fn survivors(kinds: Vec<String>) -> Vec<Option<String>> {
    map(behave::entity()).min_success_ratio(0.5).over(kinds)
}

/// Many ordinary elements that each print `mib` MiB: what a run keeps of their output is
/// bounded by its log budget, not by the number of elements.
#[workflow]
pub fn flood_map(mibs: Vec<i64>) -> Vec<i64> {
    map(stdout_flood::entity()).over(mibs)
}

/// A hostile node next to good ones in a `run_all` workflow: the good ones still run.
#[workflow(on_failure = "run_all")]
pub fn side_by_side(a: i64) -> i64 {
    let good = ok::call(a);
    let _bad = spin::call(a);
    let _also_good = ok::call(good);
    good
}

/// Hand-written ABI exports for what the SDK would never do: each declares an `i64 -> i64`
/// task (or dynamic) and returns something other than a well-formed answer.
pub mod raw {
    #[cfg(target_arch = "wasm32")]
    use sandflow::__private::contract::{abi, codec, CallResult, GraphSpec};
    use sandflow::__private::{EntityDecl, EntityKind, Interface, Param, TaskConfig, Type};

    fn int_entity(name: &str, kind: EntityKind) -> EntityDecl {
        EntityDecl {
            name: name.to_string(),
            interface: Interface {
                inputs: vec![Param {
                    name: "a".to_string(),
                    ty: Type::Int,
                    default: None,
                }],
                output: Some(Type::Int),
            },
            kind,
        }
    }

    /// Declarations of the raw entities (also callable in `cargo test` of this crate).
    pub fn decls() -> Vec<EntityDecl> {
        let task = || EntityKind::Task(TaskConfig::default());
        vec![
            int_entity("garbage", task()),
            int_entity("out_of_bounds", task()),
            int_entity("past_output_limit", task()),
            int_entity("wrong_type", task()),
            int_entity("returns_nothing", task()),
            int_entity("trailing_bytes", task()),
            int_entity("task_returns_graph", task()),
            int_entity(
                "dynamic_returns_output",
                EntityKind::Dynamic(TaskConfig::default()),
            ),
            int_entity("huge_graph", EntityKind::Dynamic(TaskConfig::default())),
        ]
    }

    fn decl(name: &str) -> EntityDecl {
        decls()
            .into_iter()
            .find(|d| d.name == name)
            .expect("every raw export has a declaration")
    }

    /// Hands `bytes` to the host as a packed pointer/length; the instance dies after the call.
    #[cfg(target_arch = "wasm32")]
    fn leak(bytes: Vec<u8>) -> i64 {
        let bytes = Box::leak(bytes.into_boxed_slice());
        abi::pack(bytes.as_ptr() as usize as u32, bytes.len() as u32)
    }

    #[cfg(target_arch = "wasm32")]
    fn encoded(r: &CallResult) -> Vec<u8> {
        codec::encode(r).expect("a small call result encodes")
    }

    /// One raw entity: its decl export and its call export, whose body returns the packed i64.
    macro_rules! raw_entity {
        ($module:ident, $decl:literal, $call:literal, $body:block) => {
            mod $module {
                #[allow(unused_imports)]
                use super::*;

                fn declaration() -> EntityDecl {
                    decl(stringify!($module))
                }

                #[cfg(target_arch = "wasm32")]
                #[export_name = $decl]
                extern "C" fn decl_export() -> i64 {
                    sandflow::__private::decl_entity(declaration)
                }

                #[cfg(target_arch = "wasm32")]
                #[export_name = $call]
                extern "C" fn call_export(_ptr: u32, _len: u32) -> i64 $body

                #[cfg(not(target_arch = "wasm32"))]
                #[allow(dead_code)]
                fn unused() -> EntityDecl {
                    declaration()
                }
            }
        };
    }

    raw_entity!(garbage, "sandflow:decl:garbage", "sandflow:call:garbage", {
        leak(vec![0xff, 0xfe, 0xfd, 0xfc, 0x00, 0x13, 0x37, 0xff])
    });

    raw_entity!(
        out_of_bounds,
        "sandflow:decl:out_of_bounds",
        "sandflow:call:out_of_bounds",
        { abi::pack(0xffff_0000, 0x10_0000) }
    );

    raw_entity!(
        past_output_limit,
        "sandflow:decl:past_output_limit",
        "sandflow:call:past_output_limit",
        { abi::pack(16, u32::MAX) }
    );

    raw_entity!(
        wrong_type,
        "sandflow:decl:wrong_type",
        "sandflow:call:wrong_type",
        {
            leak(encoded(&CallResult::Output(Some(
                sandflow::__private::Value::Str("not a number".into()),
            ))))
        }
    );

    raw_entity!(
        returns_nothing,
        "sandflow:decl:returns_nothing",
        "sandflow:call:returns_nothing",
        { leak(encoded(&CallResult::Output(None))) }
    );

    raw_entity!(
        trailing_bytes,
        "sandflow:decl:trailing_bytes",
        "sandflow:call:trailing_bytes",
        {
            let mut b = encoded(&CallResult::Output(Some(sandflow::__private::Value::Int(
                1,
            ))));
            b.extend_from_slice(b"junk");
            leak(b)
        }
    );

    raw_entity!(
        task_returns_graph,
        "sandflow:decl:task_returns_graph",
        "sandflow:call:task_returns_graph",
        { leak(encoded(&CallResult::Graph(GraphSpec::default()))) }
    );

    raw_entity!(
        dynamic_returns_output,
        "sandflow:decl:dynamic_returns_output",
        "sandflow:call:dynamic_returns_output",
        {
            leak(encoded(&CallResult::Output(Some(
                sandflow::__private::Value::Int(1),
            ))))
        }
    );

    raw_entity!(
        huge_graph,
        "sandflow:decl:huge_graph",
        "sandflow:call:huge_graph",
        {
            // 20 million nodes of three zero bytes each (an empty entity name, no inputs, no
            // map): 60 MB, within the output limit, and 2 GB in memory once decoded.
            let n: u64 = 20_000_000;
            let mut b = vec![1u8]; // CallResult::Graph
            b.extend(codec::encode(&n).expect("a length encodes"));
            b.resize(b.len() + 3 * n as usize, 0);
            b.extend([0u8, 0]); // no output, fail fast
            leak(b)
        }
    );
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    #[link_name = "poll_oneoff"]
    fn raw_poll_oneoff(subs: *const u8, events: *mut u8, nsubs: usize, nevents: *mut usize) -> u16;
}

/// Calls WASI `poll_oneoff` directly with `nsubs` subscriptions at a small buffer: a huge
/// count must be refused (EFAULT), not allocated by the host. Returns the errno.
#[task]
pub fn poll_many(nsubs: i64) -> i64 {
    let buf = [0u8; 64];
    let mut out = [0u8; 64];
    let mut n = 0usize;
    // SAFETY: the pointers are valid for 64 bytes; the host must check `nsubs` against them.
    let errno = unsafe { raw_poll_oneoff(buf.as_ptr(), out.as_mut_ptr(), nsubs as usize, &mut n) };
    errno as i64
}
