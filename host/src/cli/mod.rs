//! The CLI's subcommands, one file each, over the host library.

pub mod again;
pub mod build;
pub mod cache;
pub mod cancel;
pub mod children;
mod console;
pub mod describe;
pub mod execute;
pub mod executions;
pub mod launch;
pub mod logs;
pub mod run;
pub mod show;
pub mod store;
pub mod submit;
pub mod ui;
pub mod worker;

/// Prints `text` and a newline to stdout. A reader that went away (`sandflow run .. | head`)
/// is not an error of the run: the output is simply not wanted any more.
pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// An error and its causes, each shown once: `a: b: c`. A message that already ends with its
/// cause's text (`#[error("{path}: {source}")]`, wasmtime's contexts) is not followed by it
/// again, which anyhow's `{:#}` would do.
pub fn render_error(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if text.contains(msg.as_str()) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&msg);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::render_error;

    #[derive(Debug, thiserror::Error)]
    #[error("m.wasm: {source}")]
    struct Outer {
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_shown_once() {
        let e = anyhow::Error::new(Outer {
            source: std::io::Error::other("bad graph"),
        });
        assert_eq!(format!("{e:#}"), "m.wasm: bad graph: bad graph");
        assert_eq!(render_error(&e), "m.wasm: bad graph");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(render_error(&e), "outer: inner");
    }
}
