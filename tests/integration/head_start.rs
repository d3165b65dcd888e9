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
/// containers on both hosts (one each: a host's two slots share it); returns them.
fn wait_for_slots(marker: &Path, label: &str) -> Vec<String> {
    let start = Instant::now();
    loop {
        let found = labelled_containers(label);
        let slots = found.iter().filter(|c| c.contains("-slot-")).count();
        if marker.exists() && slots >= 2 {
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

/// A crate whose build script touches `SLOWBUILD_MARKER`, sleeps `SLOWBUILD_SECS`, then
/// touches `SLOWBUILD_MARKER.done`; it runs again whenever `SLOWBUILD_TOKEN` changes. Its
/// sources hold `token` (so their part is new to every cache) and a lock file (so the build
/// adds nothing to the tree).
fn slow_build_crate(dir: &Path, token: &str) -> PathBuf {
    let root = dir.join("slowbuild");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"slowbuild\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("build.rs"),
        r#"fn main() {
    println!("cargo:rerun-if-env-changed=SLOWBUILD_TOKEN");
    if let Some(marker) = std::env::var_os("SLOWBUILD_MARKER") {
        std::fs::write(&marker, "").unwrap();
        let secs: u64 = std::env::var("SLOWBUILD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        std::thread::sleep(std::time::Duration::from_secs(secs));
        let mut done = marker;
        done.push(".done");
        std::fs::write(done, "").unwrap();
    }
}
"#,
    )
    .unwrap();
    std::fs::write(root.join("src/lib.rs"), "#[test]\nfn builds() {}\n").unwrap();
    std::fs::write(root.join("token.txt"), token.repeat(4096)).unwrap();
    let lock = Command::new("cargo")
        .args(["generate-lockfile", "--offline", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(lock.status.success(), "{}", String::from_utf8_lossy(&lock.stderr));
    root
}

/// Whether volume `name` exists on test bed engine `engine`.
fn volume_exists(engine: &str, name: &str) -> bool {
    Command::new("docker")
        .arg("-H")
        .arg(format!("unix:///run/cargo-shard-{engine}.sock"))
        .args(["volume", "inspect", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn the_source_tree_is_staged_while_the_build_runs_and_counted_as_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    let label = common::unique("headstart-build");
    let root = slow_build_crate(dir.path(), &label);
    // The part the run will stage: the tree as it is now, with the target's mount point.
    let target = root.join("target");
    let files = cargo_shard::discover::files::source_files(&root, std::slice::from_ref(&target)).unwrap();
    let tree = cargo_shard::shard::Upload::Tree {
        src: root.clone(),
        files,
        dest: "src".into(),
    };
    let (parts, _) =
        cargo_shard::run::stage::parts_in(&[tree], dir.path(), false, &[target.display().to_string()])
            .unwrap();
    let src = parts.iter().find(|p| p.name == "src").unwrap();
    let volume = cargo_shard::engine::docker::volume_name(&src.hash);
    assert!(!volume_exists("e1", &volume) && !volume_exists("e2", &volume));

    let marker = dir.path().join("building");
    let done = dir.path().join("building.done");
    let child = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .env_remove("NEXTEST_PROFILE")
        .env_remove("CARGO_TARGET_DIR")
        .env("SLOWBUILD_MARKER", &marker)
        .env("SLOWBUILD_SECS", "6")
        .env("SLOWBUILD_TOKEN", &label)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--out-dir")
        .arg(dir.path().join("out"))
        .arg("--hosts")
        .arg(labelled_hosts(dir.path(), &label))
        .args(["--no-progress", "--message-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut seen = Vec::new();
    while !done.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the build never ended"
        );
        if marker.exists() {
            for engine in ["e1", "e2"] {
                if !seen.contains(&engine) && volume_exists(engine, &volume) {
                    seen.push(engine);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    seen.sort();
    assert_eq!(
        seen,
        ["e1", "e2"],
        "the sources reached both hosts' caches during the build"
    );
    // The sources went up during the build: the run reports them as uploaded, not cached.
    let finished: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["type"] == "run-finished")
        .unwrap_or_else(|| panic!("no run-finished event: {stdout}"));
    let archive = cargo_shard::shard::Upload::File {
        src: dir
            .path()
            .join("out")
            .join(cargo_shard::discover::nextest::ARCHIVE_DEST),
        dest: cargo_shard::discover::nextest::ARCHIVE_DEST.into(),
        mode: 0o644,
    };
    let (built, _) = cargo_shard::run::stage::parts_in(&[archive], dir.path(), false, &[]).unwrap();
    let (src_bytes, target_bytes) = (src.tar.len() as u64, built[0].tar.len() as u64);
    for staged in finished["staged"].as_array().unwrap() {
        let uploaded = staged["uploaded_bytes"].as_u64().unwrap();
        let cached = staged["cached_bytes"].as_u64().unwrap();
        assert_eq!(uploaded + cached, src_bytes + target_bytes, "{staged}");
        // The build's part may be in the cache from an earlier run; the sources never are.
        assert!(
            cached == 0 || cached == target_bytes,
            "{staged} (sources: {src_bytes} B)"
        );
    }
    let run_id = finished["run_id"].as_str().unwrap();
    common::assert_nothing_left(run_id);
}

/// With no probe answers kept yet (a fresh output directory) and a build quick enough for the
/// two head starts to meet, each image is checked once: two probes at once would share a
/// container name, and the one refused would read as a missing tool.
#[test]
fn a_fresh_output_directory_finds_the_images_tools_without_a_false_warning() {
    for _ in 0..2 {
        let out = tempfile::tempdir().unwrap();
        let run = common::run_rust_sample(out.path(), &["--quiet"]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!stderr.contains("image has no"), "{stderr}");
    }
}
