//! Why a call failed, in words: an [`AttemptFailure`], a trap turned into the message a user reads
//! (timeout, cancel, memory, fuel, exit, panic), an error's chain on one line, and the wasm
//! backtrace demangled.

use super::{Ctx, Stop};
use crate::scheduler::AttemptFailure;
use wasmtime::{Trap, WasmBacktrace};

/// `n` bytes as a message says them: in MiB, KiB or bytes.
pub(super) fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

/// The failure of a call that trapped with `e`, said by what stopped it (`ctx`: the host's
/// timeout or cancel, a limit) before what the trap itself says; `panic` is the guest's own
/// panic message, when it left one.
pub(super) fn trap_failure(e: wasmtime::Error, ctx: &Ctx, panic: Option<String>) -> AttemptFailure {
    let backtrace = e.downcast_ref::<WasmBacktrace>().map(format_backtrace);
    let message = if let Some(p) = panic {
        format!("panicked: {p}")
    } else if let Some(Stop::Timeout) = ctx.stopped {
        format!("timed out after {} ms", ctx.timeout.as_millis())
    } else if let Some(Stop::Cancelled) = ctx.stopped {
        "cancelled while running".to_string()
    } else if let Some(desired) = ctx.memory_exceeded {
        format!(
            "exceeded its memory limit of {} (tried to grow to {})",
            human_bytes(ctx.max_memory as u64),
            human_bytes(desired as u64)
        )
    } else if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        format!("called exit({}) instead of returning a result", exit.0)
    } else {
        match e.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => "wasm stack overflow (recursion too deep)".to_string(),
            Some(Trap::OutOfFuel) => match ctx.fuel {
                Some(f) => format!("ran out of its fuel budget of {f}"),
                None => "ran out of fuel".to_string(),
            },
            // Displays as "wasm trap: <what>".
            Some(t) => t.to_string(),
            None => error_text(&e),
        }
    };
    AttemptFailure {
        user: true,
        message,
        backtrace,
    }
}

/// An error's whole chain of causes on one line (`outer: inner: root`), without the wasm
/// backtrace wasmtime adds as context (it is reported on its own) and without a cause that
/// only repeats the one before it.
pub(super) fn error_text(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        // WasmBacktrace's own Display (it is not an `Error` to downcast to).
        if text.starts_with("error while executing at wasm backtrace") {
            continue;
        }
        let text = text.lines().next().unwrap_or("").trim().to_string();
        if text.is_empty() || parts.last().is_some_and(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    if parts.is_empty() {
        "trapped".to_string()
    } else {
        parts.join(": ")
    }
}

/// One frame a line, demangled, without the panic machinery above the frame that panicked.
fn format_backtrace(bt: &WasmBacktrace) -> String {
    let names: Vec<String> = bt
        .frames()
        .iter()
        .map(|f| match f.func_name() {
            Some(n) => format!("{:#}", rustc_demangle::demangle(n)),
            None => format!("<wasm function {}>", f.func_index()),
        })
        .collect();
    // Frames are innermost first; everything up to the panic entry point is std's machinery.
    let skip = names
        .iter()
        .rposition(|n| n.contains("core::panicking::") || n.contains("rust_begin_unwind"))
        .map(|i| i + 1)
        .unwrap_or(0);
    names[skip..]
        .iter()
        .map(|n| format!("  {n}"))
        .collect::<Vec<_>>()
        .join("\n")
}
