//! cargo-shard: list tests, build once, plan balanced shards, run them in containers on many
//! Docker engines, and merge the results into one JUnit report.
//!
//! The pipeline, one module per stage, data flowing one way:
//! `cli` → `config` → `discover` → `history` → `plan` → `engine` → `run` → `report`.
//! `junit` is a format library shared by the stages that read or write JUnit XML; `shard` and
//! `test_result` hold the plain types that cross stages (what a shard runs and returns, a test's
//! identity and result), so no stage imports another for them; `units` says bytes and seconds
//! alike in every report.

#![warn(missing_docs)]

pub mod atomic;
pub mod cli;
pub mod config;
pub mod discover;
pub mod engine;
pub mod exit;
pub mod hash;
pub mod history;
pub mod interrupt;
pub mod job;
pub mod junit;
pub mod limits;
pub mod partition;
pub mod plan;
pub mod report;
pub mod run;
pub mod shard;
pub mod test_result;
pub mod units;
