//! A host's slots sharing one container on the live test bed: by default a Go or nextest run
//! gives each host one container running `slots × jobs` tests at once; `share_container =
//! false` and `--shards` keep one container per slot.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Go module of three packages with four quick, passing tests each.
fn module(dir: &Path) {
    std::fs::write(dir.join("go.mod"), "module example.com/shared\n\ngo 1.19\n").unwrap();
    for pkg in ["a", "b", "c"] {
        let d = dir.join(pkg);
        std::fs::create_dir(&d).unwrap();
        let mut code = format!("package {pkg}\n\nimport (\n\t\"testing\"\n\t\"time\"\n)\n");
        for i in 0..4 {
            code.push_str(&format!(
                "\nfunc Test{i}(t *testing.T) {{ time.Sleep(50 * time.Millisecond) }}\n"
            ));
        }
        std::fs::write(d.join(format!("{pkg}_test.go")), code).unwrap();
    }
}

/// The test bed's hosts file (three hosts, two slots each), with `extra` under `[defaults]`.
fn hosts(dir: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(common::hosts_file()).unwrap();
    let edited = text.replacen("[defaults]\n", &format!("[defaults]\n{extra}"), 1);
    assert!(
        extra.is_empty() || edited != text,
        "the bed's hosts file has no [defaults]"
    );
    let path = dir.join("hosts.toml");
    std::fs::write(&path, edited).unwrap();
    path
}

/// `cargo shard plan go` over `hosts` as JSON, with `extra` arguments.
fn plan(module: &Path, hosts: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["go", "--dir", module.to_str().unwrap()];
    args.extend(extra);
    common::plan_json(&args, hosts)
}

/// How many shards the plan puts on each host.
fn shards_per_host(plan: &serde_json::Value) -> BTreeMap<String, usize> {
    let mut per = BTreeMap::new();
    for s in plan["shards"].as_array().unwrap() {
        *per.entry(s["host"].as_str().unwrap().to_string()).or_default() += 1;
    }
    per
}

#[test]
fn a_hosts_slots_share_one_container_unless_the_file_or_shards_ask_for_one_each() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("module");
    std::fs::create_dir(&m).unwrap();
    module(&m);
    let shared = hosts(dir.path(), "");
    let own_dir = dir.path().join("own");
    std::fs::create_dir(&own_dir).unwrap();
    let own = hosts(&own_dir, "share_container = false\n");

    // Planned as the run would: one bin per host by default, one per slot otherwise.
    let per = shards_per_host(&plan(&m, &shared, &[]));
    assert!(per.values().all(|&n| n == 1), "{per:?}");
    let per = shards_per_host(&plan(&m, &own, &[]));
    assert_eq!(per.values().sum::<usize>(), 6, "{per:?}");
    let per = shards_per_host(&plan(&m, &shared, &["--shards", "6"]));
    assert_eq!(per.values().sum::<usize>(), 6, "{per:?}");

    // The run: every unit of work on a host went through that host's one container.
    let out_dir = dir.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(["go", "--hosts"])
        .arg(&shared)
        .args(["--message-format", "json", "--out-dir"])
        .arg(&out_dir)
        .arg("./...")
        .current_dir(&m)
        .env_remove("CARGO_SHARD_HOSTS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut containers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["type"] == "shard-finished") {
        containers
            .entry(e["host"].as_str().unwrap().to_string())
            .or_default()
            .insert(e["container"].as_str().unwrap().to_string());
    }
    assert!(!containers.is_empty(), "{stdout}");
    for (host, names) in &containers {
        assert_eq!(names.len(), 1, "{host}: {names:?}");
        let name = names.iter().next().unwrap();
        assert!(name.contains(&format!("-slot-{host}-0-")), "{host}: {name}");
    }
    let junit = common::junit_statuses(&out_dir.join("junit.xml"));
    assert_eq!(junit.len(), 12);
    assert!(junit.values().all(|s| *s == "passed"), "{junit:?}");
    common::assert_nothing_left(&common::run_id_of(&stdout));
}
