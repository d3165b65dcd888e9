//! Helpers shared by the integration tests: where the test bed is, and unique names so tests
//! running at once on the same engines never touch each other's objects.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use cargo_shard::config::{Host, HostsConfig};

/// The test bed's state dir: `CARGO_SHARD_TESTBED`, else `<repo>/target/testbed`.
pub fn testbed_dir() -> PathBuf {
    match std::env::var_os("CARGO_SHARD_TESTBED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testbed"),
    }
}

/// A file the test bed wrote (`hosts.toml`, `bad-key.toml`, …); fails the test if absent.
pub fn testbed_file(name: &str) -> PathBuf {
    let p = testbed_dir().join(name);
    if !p.exists() {
        panic!(
            "{} is missing: run `scripts/testbed up` (and set CARGO_SHARD_TESTBED if it lives elsewhere)",
            p.display()
        );
    }
    p
}

pub fn hosts_file() -> PathBuf {
    testbed_file("hosts.toml")
}

pub fn testbed_hosts() -> HostsConfig {
    HostsConfig::load(&hosts_file()).unwrap_or_else(|e| panic!("test bed hosts file: {e}"))
}

pub fn host(name: &str) -> Host {
    testbed_hosts()
        .hosts
        .into_iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("the test bed has no host {name}"))
}

/// A name no other test (or earlier run) uses: prefix, pid, time, counter.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs the built binary; returns (exit code, stdout, stderr).
pub fn cargo_shard(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(args)
        // nextest names its profile to the tests it runs; the fixtures do not have it.
        .env_remove("NEXTEST_PROFILE")
        .output()
        .expect("run cargo-shard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
