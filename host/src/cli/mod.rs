//! The CLI's subcommands, one file each, over the host library.

pub mod build;
pub mod describe;
pub mod run;
