//! The CLI's subcommands, one file each, over the host library.

pub mod build;
pub mod describe;
pub mod run;

/// Prints `text` and a newline to stdout. A reader that went away (`sandflow run .. | head`)
/// is not an error of the run: the output is simply not wanted any more.
pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}
