//! The integration tests in one binary (linking bollard, rustls and ssh2 once instead of once per
//! file): each module talks to the real test bed, nextest, go or Chromium. `tests/faults.rs`, which
//! stops engines, stays a binary of its own so `scripts/test` can run it alone, last.

#[path = "../common/mod.rs"]
mod common;

mod backend_rules;
mod bad_input;
mod discover_go;
mod discover_nextest;
mod engine_run;
mod engine_ssh;
mod events_replay;
mod examples;
mod fidelity;
mod forge;
mod gc;
mod head_start;
mod history_run;
mod hosts;
mod known_hosts;
mod live_pty;
mod lost_tail;
mod output_snapshots;
mod partition;
mod registry;
mod report_html;
mod report_output;
mod run_go;
mod run_nextest;
mod services;
mod shared_container;
mod stage;
mod steal;
mod tool_shipping;
mod trust;
