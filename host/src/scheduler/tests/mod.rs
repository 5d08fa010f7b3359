//! The scheduler's unit tests: hand-built modules, canned events in, commands out; one file
//! per topic, and `support` with what they share.

mod conditionals;
mod expansion;
mod failure_handlers;
mod failures;
mod limits;
mod logs;
mod maps;
mod parallelism;
mod parts;
mod recovery;
mod replay;
mod seed;
mod support;
