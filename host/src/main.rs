//! `sandflow`: run and describe sandflow guest modules. Exit codes: 0 success, 1 the
//! execution failed, 2 usage or input error, 130 cancelled (Ctrl-C).

mod cli;

// mimalloc rather than glibc's malloc: every task execution's inputs and results are
// allocated on one thread and freed on another (see host/Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::io::Write;

#[derive(Parser)]
#[command(
    name = "sandflow",
    version,
    about = "Run workflows whose every task executes in its own WebAssembly sandbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(cli::run::RunArgs),
    Describe(cli::describe::DescribeArgs),
    Executions(cli::executions::ExecutionsArgs),
    Show(cli::show::ShowArgs),
    Logs(cli::logs::LogsArgs),
    Cache(cli::cache::CacheArgs),
    Recover(cli::again::RecoverArgs),
    Relaunch(cli::again::RelaunchArgs),
    Launch(cli::launch::LaunchArgs),
    Cancel(cli::cancel::CancelArgs),
    Ui(cli::ui::UiArgs),
    Worker(cli::worker::WorkerArgs),
}

fn main() {
    let result = cli::run::hoist_options(std::env::args_os().collect()).and_then(|argv| {
        match Cli::parse_from(argv).command {
            Command::Run(a) => cli::run::run(a),
            Command::Describe(a) => cli::describe::describe(a),
            Command::Executions(a) => cli::executions::executions(a),
            Command::Show(a) => cli::show::show(a),
            Command::Logs(a) => cli::logs::logs(a),
            Command::Cache(a) => cli::cache::cache(a),
            Command::Recover(a) => cli::again::recover(a),
            Command::Relaunch(a) => cli::again::relaunch(a),
            Command::Launch(a) => cli::launch::launch(a),
            Command::Cancel(a) => cli::cancel::cancel(a),
            Command::Ui(a) => cli::ui::ui(a),
            Command::Worker(a) => cli::worker::worker(a),
        }
    });
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", cli::render_error(&e));
            2
        }
    };
    // Everything the user sees has been written: flush it, then end the process without
    // running exit handlers. What is left (the execution tree, the engines' pools, the
    // allocator's heaps) goes back to the OS at once; mimalloc's handler would first collect
    // and purge every heap page by page.
    let flushed = std::io::stdout().flush().is_ok() & std::io::stderr().flush().is_ok();
    let code = if flushed || code != 0 { code } else { 1 };
    // SAFETY: `_exit` ends the process; no Rust code runs after it.
    unsafe { libc::_exit(code as i32) }
}
