//! The run's head start on the live test bed: slot containers opened while the tests are still
//! being listed are removed whatever ends the run before it starts (nothing left to run, an
//! interrupt during the listing).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A crate whose one test binary (no libtest harness) takes `SLOWLIST_SECS` to list itself,
/// after touching `SLOWLIST_MARKER`: the window in which the head start works.
fn slow_listing_crate(dir: &Path) -> PathBuf {
    let root = dir.join("slowlist");
    std::fs::create_dir_all(root.join("tests")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"slowlist\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n\
         [[test]]\nname = \"slow\"\nharness = false\n",
    )
    .unwrap();
    std::fs::write(
        root.join("tests/slow.rs"),
        r#"fn main() {
    if std::env::args().any(|a| a == "--list") {
        if let Some(marker) = std::env::var_os("SLOWLIST_MARKER") {
            std::fs::write(marker, "").unwrap();
        }
        let secs: u64 = std::env::var("SLOWLIST_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        std::thread::sleep(std::time::Duration::from_secs(secs));
        if !std::env::args().any(|a| a == "--ignored") {
            println!("listed: test");
        }
    }
}
"#,
    )
    .unwrap();
    root.join("Cargo.toml")
}

/// The test bed's e1 and e2, every container they get labelled `cargo-shard-test=<label>`,
/// their slot containers opened early although the engines run on this machine.
fn labelled_hosts(dir: &Path, label: &str) -> PathBuf {
    let text = std::fs::read_to_string(common::hosts_file()).unwrap();
    let parts: Vec<&str> = text.split("[[host]]").take(3).collect();
    let text = parts.join("[[host]]").replace(
        "[defaults]\n",
        &format!("[defaults]\nearly_slots = true\nlabels = {{ \"cargo-shard-test\" = \"{label}\" }}\n"),
    );
    let path = dir.join("hosts.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Containers carrying the label on e1 and e2, by name.
fn labelled_containers(label: &str) -> Vec<String> {
    ["e1", "e2"]
        .iter()
        .flat_map(|name| {
            let out = Command::new("docker")
                .arg("-H")
                .arg(format!("unix:///run/cargo-shard-{name}.sock"))
                .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
                .arg(format!("label=cargo-shard-test={label}"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| format!("{name} {l}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Starts `cargo shard` on the slow-listing crate (its own process group), its listing taking
/// `secs`; returns the child and the listing's marker.
fn start(dir: &Path, label: &str, secs: u64, extra: &[&str]) -> (Child, PathBuf) {
    use std::os::unix::process::CommandExt;
    let manifest = slow_listing_crate(dir);
    let marker = dir.join("listing");
    let child = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .env_remove("NEXTEST_PROFILE")
        .env("SLOWLIST_MARKER", &marker)
        .env("SLOWLIST_SECS", secs.to_string())
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--out-dir")
        .arg(dir.join("out"))
        .arg("--hosts")
        .arg(labelled_hosts(dir, label))
        .args(["--no-progress", "--quiet"])
        .args(extra)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, marker)
}

/// Waits (up to two minutes) until the listing runs and the head start has opened slot
/// containers on both hosts; returns them.
fn wait_for_slots(marker: &Path, label: &str) -> Vec<String> {
    let start = Instant::now();
    loop {
        let found = labelled_containers(label);
        let slots = found.iter().filter(|c| c.contains("-slot-")).count();
        if marker.exists() && slots >= 4 {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no slot containers while the tests were listed: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    err
}

#[test]
fn slot_containers_open_while_tests_are_listed_and_go_when_nothing_is_left_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let label = common::unique("headstart-empty");
    let (mut child, marker) = start(dir.path(), &label, 8, &["-E", "test(=no_such_test)"]);
    let opened = wait_for_slots(&marker, &label);
    let status = child.wait().unwrap();
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("no tests to run"), "{err}");
    assert_eq!(
        labelled_containers(&label),
        Vec::<String>::new(),
        "opened: {opened:?}"
    );
}

#[test]
fn ctrl_c_while_tests_are_listed_removes_the_head_starts_containers() {
    let dir = tempfile::tempdir().unwrap();
    let label = common::unique("headstart-int");
    let (mut child, marker) = start(dir.path(), &label, 60, &[]);
    let opened = wait_for_slots(&marker, &label);
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let sent = Instant::now();
    let status = child.wait().unwrap();
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(
        labelled_containers(&label),
        Vec::<String>::new(),
        "opened: {opened:?}"
    );
}
