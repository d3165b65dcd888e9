//! An image without `cargo-nextest`: cargo-shard finds that out once per host and ships this
//! machine's copy with every shard there, and the suite runs as on any other image. The
//! answer is kept on the host, so a run from a fresh output directory (a CI job) does not
//! ask again.

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

/// Removes the test's image and the probe answers kept for it however the test ends.
struct ImageGuard(String);
impl Drop for ImageGuard {
    fn drop(&mut self) {
        for volume in probe_volumes(&image_id(&self.0)) {
            let _ = docker(&["volume", "rm", "-f", &volume]);
        }
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

fn image_id(tag: &str) -> String {
    let out = docker(&["image", "inspect", "-f", "{{.Id}}", tag]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The volumes on e1 keeping an answer about `cargo-nextest` in image `id`.
fn probe_volumes(id: &str) -> Vec<String> {
    let filter = format!("label=dev.cargo-shard.probe={id} cargo-nextest");
    let out = docker(&["volume", "ls", "-q", "--filter", &filter]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn probe_answer(volume: &str) -> String {
    let format = r#"{{index .Labels "dev.cargo-shard.probe-has"}}"#;
    let out = docker(&["volume", "inspect", "-f", format, volume]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The base image's files, without `cargo-nextest` when `drop_nextest`, imported under a new
/// tag (a new image id, so that no answer about it is kept yet).
fn import_base(dir: &std::path::Path, drop_nextest: bool) -> ImageGuard {
    let tag = format!("cargo-shard/probe-test:{}", common::unique("t").to_lowercase());
    let created = docker(&["create", "--network", "none", "cargo-shard/base:latest", "true"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let id = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let rootfs = dir.join("rootfs.tar");
    let export = docker(&["export", "-o", rootfs.to_str().unwrap(), &id]);
    let _ = docker(&["rm", "-f", &id]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    if drop_nextest {
        let deleted = Command::new("tar")
            .args(["--delete", "-f"])
            .arg(&rootfs)
            .arg("usr/local/bin/cargo-nextest")
            .status()
            .unwrap();
        assert!(deleted.success());
    }
    let imported = docker(&["import", rootfs.to_str().unwrap(), &tag]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    ImageGuard(tag)
}

/// `cargo shard` on rust-sample, on e1 only with `image`, JSON events, `extra` last.
fn rust_sample_on_e1(image: &str, out_dir: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let manifest = common::fixture("rust-sample/Cargo.toml");
    let hosts = common::hosts_file();
    let mut args = vec![
        "--hosts",
        hosts.to_str().unwrap(),
        "--only-host",
        "e1",
        "--image",
        image,
        "--manifest-path",
        manifest.to_str().unwrap(),
        "--out-dir",
        out_dir.to_str().unwrap(),
        "--message-format",
        "json",
    ];
    args.extend_from_slice(extra);
    common::cargo_shard(&args)
}

#[test]
fn ships_cargo_nextest_to_an_image_that_lacks_it() {
    let dir = tempfile::tempdir().unwrap();
    let guard = import_base(dir.path(), true);
    let tag = guard.0.clone();
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
    let (code, stdout, stderr) = rust_sample_on_e1(&tag, &out_dir, &[]);
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
    // The answer stays on the host for runs from elsewhere.
    let kept = probe_volumes(&image_id(&tag));
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(probe_answer(&kept[0]), "false");
}

/// A run from a fresh output directory takes the answer the host keeps instead of probing
/// the image again. Shown with an answer planted for an image that does have the tool: the
/// run believes it (and ships its copy, which works as well), where a probe would have found
/// the tool and said nothing.
#[test]
fn a_fresh_output_directory_uses_the_answer_the_host_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let guard = import_base(dir.path(), false);
    let id = image_id(&guard.0);
    let planted = docker(&[
        "volume",
        "create",
        "--label",
        "dev.cargo-shard.cache=probe",
        "--label",
        &format!("dev.cargo-shard.probe={id} cargo-nextest"),
        "--label",
        "dev.cargo-shard.probe-has=false",
        &cargo_shard::engine::docker::probe_volume(&id, "cargo-nextest"),
    ]);
    assert!(
        planted.status.success(),
        "{}",
        String::from_utf8_lossy(&planted.stderr)
    );
    let out_dir = dir.path().join("out");
    let (code, stdout, stderr) = rust_sample_on_e1(&guard.0, &out_dir, &["--", "quick_0"]);
    assert_eq!(code, 0, "stderr:\n{stderr}");
    assert!(
        stderr.contains("e1: image has no cargo-nextest: shipping"),
        "the kept answer was not used:\n{stderr}"
    );
    let statuses = common::junit_statuses(&out_dir.join("junit.xml"));
    assert!(
        !statuses.is_empty() && statuses.values().all(|s| *s == "passed"),
        "{statuses:?}"
    );
    common::assert_nothing_left(&common::run_id_of(&stdout));
}
