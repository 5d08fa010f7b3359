//! `sandflow`: run and describe sandflow guest modules. Exit codes: 0 success, 1 the
//! execution failed, 2 usage or input error, 130 cancelled (Ctrl-C).

mod cli;

// mimalloc rather than glibc's malloc: every task execution's inputs and results are
// allocated on one thread and freed on another (see host/Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => cli::run::run(a),
        Command::Describe(a) => cli::describe::describe(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
