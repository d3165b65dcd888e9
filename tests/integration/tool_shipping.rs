//! An image without `cargo-nextest`: cargo-shard finds that out once per host and ships this
//! machine's copy with every shard there, and the suite runs as on any other image.

use crate::common;

use std::process::Command;

/// Docker CLI against e1 (its unix socket).
fn docker(args: &[&str]) -> std::process::Output {
    let e1 = common::host("e1");
    Command::new("docker")
        .arg("-H")
        .arg(e1.endpoint.to_string())
        .args(args)
        .output()
        .expect("docker CLI")
}

/// Removes the test's image however the test ends.
struct ImageGuard(String);
impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

#[test]
fn ships_cargo_nextest_to_an_image_that_lacks_it() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("cargo-shard/no-nextest:{}", common::unique("t").to_lowercase());
    // The base image's files without cargo-nextest, imported as a new image.
    let created = docker(&["create", "--network", "none", "cargo-shard/base:latest", "true"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let id = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let rootfs = dir.path().join("rootfs.tar");
    let export = docker(&["export", "-o", rootfs.to_str().unwrap(), &id]);
    let _ = docker(&["rm", "-f", &id]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let deleted = Command::new("tar")
        .args(["--delete", "-f"])
        .arg(&rootfs)
        .arg("usr/local/bin/cargo-nextest")
        .status()
        .unwrap();
    assert!(deleted.success());
    let imported = docker(&["import", rootfs.to_str().unwrap(), &tag]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let _guard = ImageGuard(tag.clone());
    let check = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &tag,
        "cargo-nextest",
        "--version",
    ]);
    assert!(
        !check.status.success(),
        "the new image must really lack cargo-nextest"
    );

    let out_dir = dir.path().join("out");
    let manifest = common::fixture("rust-sample/Cargo.toml");
    let (code, stdout, stderr) = common::cargo_shard(&[
        "--hosts",
        common::hosts_file().to_str().unwrap(),
        "--only-host",
        "e1",
        "--image",
        &tag,
        "--manifest-path",
        manifest.to_str().unwrap(),
        "--out-dir",
        out_dir.to_str().unwrap(),
        "--message-format",
        "json",
    ]);
    assert_eq!(
        code, 100,
        "tests ran and two failed on purpose; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("e1: image has no cargo-nextest: shipping"),
        "{stderr}"
    );
    let statuses = common::junit_statuses(&out_dir.join("junit.xml"));
    assert!(
        statuses.values().filter(|s| **s == "passed").count() >= 60,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.values().filter(|s| **s == "error").count(),
        0,
        "{statuses:?}"
    );
    common::assert_nothing_left(&common::run_id_of(&stdout));
}
