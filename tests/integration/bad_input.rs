//! Bad input, end to end through the binary: each case gets one clear line naming the file,
//! host or image at fault and a non-zero exit (or 0 with a message where nextest does the
//! same), never a panic or a stack trace.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn fixture() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/rust-sample/Cargo.toml")
        .display()
        .to_string()
}

/// Runs `cargo shard ARGS --manifest-path <fixture> --quiet` (quiet keeps cargo's build
/// output out of stderr) and returns (exit code, stderr).
fn shard(args: &[&str]) -> (i32, String) {
    let mut all = vec!["shard"];
    all.extend_from_slice(args);
    let fixture = fixture();
    // The fixture has doctests: `skip` keeps their notice out of the one line checked here.
    all.extend([
        "--manifest-path",
        &fixture,
        "--quiet",
        "--no-progress",
        "--doctests",
        "skip",
    ]);
    let (code, _, err) = common::cargo_shard(&all);
    (code, err)
}

/// The one line of stderr, failing if there are more or if anything looks like a panic.
fn one_line(err: &str) -> &str {
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "a panic:\n{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line:\n{err}");
    lines[0]
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn hosts() -> String {
    common::hosts_file().display().to_string()
}

#[test]
fn unreadable_hosts_file() {
    let (code, err) = shard(&["--hosts", "/nonexistent/hosts.toml"]);
    assert_eq!(code, 1);
    let line = one_line(&err);
    assert!(
        line.starts_with("error: /nonexistent/hosts.toml: cannot read"),
        "{line}"
    );
}

#[test]
fn invalid_hosts_file_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "hosts.toml",
        "[[host]]\nname = \"x\"\ndocker_host = 3\n",
    );
    let (code, err) = shard(&["--hosts", &path]);
    assert_eq!(code, 1);
    let line = one_line(&err);
    assert!(line.starts_with(&format!("error: {path}:3:")), "{line}");
}

#[test]
fn unknown_only_host() {
    let (code, err) = shard(&["--hosts", &hosts(), "--only-host", "nope"]);
    assert_eq!(code, 1);
    let line = one_line(&err);
    assert!(line.contains("--only-host nope: no such host"), "{line}");
    assert!(line.contains("known: e1, e2, e3"), "{line}");
}

#[test]
fn refused_port() {
    let bad = common::testbed_file("bad-port.toml").display().to_string();
    let (code, err) = shard(&["--hosts", &bad, "--only-host", "closed-port"]);
    assert_eq!(code, 102);
    let line = one_line(&err);
    assert!(
        line.starts_with("error: no usable host in") && line.contains("closed-port: connection refused"),
        "{line}"
    );
}

#[test]
fn wrong_ssh_key() {
    let bad = common::testbed_file("bad-key.toml").display().to_string();
    let (code, err) = shard(&["--hosts", &bad]);
    assert_eq!(code, 102);
    let line = one_line(&err);
    assert!(line.contains("e3: ssh auth failed"), "{line}");
    assert!(line.contains("unauthorized_ed25519"), "names the key: {line}");
}

/// `openssl s_server` on a free loopback port, killed (by its pid) when dropped.
struct TlsServer {
    child: Child,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn self_signed(dir: &Path, name: &str) {
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"])
        .args([
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join(format!("{name}-key.pem")))
        .arg("-out")
        .arg(dir.join(format!("{name}.pem")))
        .stderr(Stdio::null())
        .status()
        .expect("openssl (to make throwaway certificates)");
    assert!(status.success());
}

fn tls_server(dir: &Path) -> TlsServer {
    self_signed(dir, "server");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-accept", &format!("127.0.0.1:{port}")])
        .arg("-cert")
        .arg(dir.join("server.pem"))
        .arg("-key")
        .arg(dir.join("server-key.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let server = TlsServer { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

#[test]
fn tls_certificate_from_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = tls_server(d);
    // The client trusts (and presents) a certificate of its own: the server's is unknown to it.
    let client = d.join("client");
    std::fs::create_dir(&client).unwrap();
    self_signed(&client, "other");
    for (from, to) in [
        ("other.pem", "ca.pem"),
        ("other.pem", "cert.pem"),
        ("other-key.pem", "key.pem"),
    ] {
        std::fs::copy(client.join(from), client.join(to)).unwrap();
    }
    let path = write(
        d,
        "hosts.toml",
        &format!(
            "[[host]]\nname = \"tls\"\ndocker_host = \"tcp://127.0.0.1:{}\"\ncert_path = \"client\"\n",
            server.port
        ),
    );
    let (code, err) = shard(&["--hosts", &path]);
    assert_eq!(code, 102);
    let line = one_line(&err);
    assert!(
        line.starts_with(&format!("error: no usable host in {path}: tls: TLS error")),
        "{line}"
    );
}

#[test]
fn image_missing_on_a_host_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::hosts_file())
        .unwrap()
        .replace("cargo-shard/base:latest", "cargo-shard/absent:latest");
    let path = write(dir.path(), "hosts.toml", &text);
    let (code, err) = shard(&["--hosts", &path, "--only-host", "e1"]);
    assert_eq!(code, 102);
    let line = one_line(&err);
    assert!(
        line.contains("e1: image cargo-shard/absent:latest is not present"),
        "{line}"
    );
}

#[test]
fn host_without_the_image_is_left_out_and_the_rest_run() {
    let dir = tempfile::tempdir().unwrap();
    // e2 alone names an image it does not have.
    let text = std::fs::read_to_string(common::hosts_file()).unwrap().replace(
        "name = \"e2\"\n",
        "name = \"e2\"\nimage = \"cargo-shard/absent:latest\"\n",
    );
    let path = write(dir.path(), "hosts.toml", &text);
    let (code, err) = shard(&["--hosts", &path, "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    let warning = one_line(&err);
    assert!(
        warning.starts_with("warning: host e2 (")
            && warning.contains("left out: e2: image cargo-shard/absent:latest is not present"),
        "{warning}"
    );
}

#[test]
fn corrupt_history_warns_and_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let history = write(dir.path(), "history.json", "{not json");
    let (code, err) = shard(&["--hosts", &hosts(), "--history", &history, "--dry-run"]);
    assert_eq!(code, 0);
    let line = one_line(&err);
    assert!(
        line.starts_with(&format!("warning: {history}: not a history file"))
            && line.ends_with("starting with an empty history"),
        "{line}"
    );
}

#[test]
fn nothing_left_after_filtering_is_success() {
    let (code, err) = shard(&["--hosts", &hosts(), "-E", "test(=no_such_test_anywhere)"]);
    assert_eq!(code, 0);
    assert_eq!(one_line(&err), "no tests to run (nothing left after filtering)");
}

#[test]
fn filters_file_naming_unknown_tests() {
    let dir = tempfile::tempdir().unwrap();
    let list = write(dir.path(), "filters.txt", "slow_fifth\nno_such_test\n");
    let (code, err) = shard(&["--hosts", &hosts(), "--filters-file", &list]);
    assert_eq!(code, 1);
    assert_eq!(
        one_line(&err),
        format!("error: {list}: 1 name(s) match no test: \"no_such_test\"")
    );
}

#[test]
fn missing_filters_file() {
    let (code, err) = shard(&["--hosts", &hosts(), "--filters-file", "/nonexistent/filters.txt"]);
    assert_eq!(code, 1);
    let line = one_line(&err);
    assert!(
        line.starts_with("error: /nonexistent/filters.txt: cannot read filters file"),
        "{line}"
    );
}

/// A tmpfs of our own, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mount a tmpfs (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_filling_up_while_results_come_in() {
    let dir = tempfile::tempdir().unwrap();
    // Room for the archive; filled up once shards run, before any result is back.
    let out_dir = Tmpfs::mount(dir.path().join("out"), "256m");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .env_remove("NEXTEST_PROFILE")
        .args(["shard", "--hosts", &hosts(), "--manifest-path", &fixture()])
        .arg("--out-dir")
        .arg(&out_dir.0)
        .args([
            "--quiet",
            "--message-format",
            "json",
            "--shards",
            "3",
            "--doctests",
            "skip",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let started: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(started["type"], "run-started", "{first}");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    // Staging unpacks the archive under the out dir: fill the disk once the first shard runs.
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "the run ended before any shard started: {first}");
        first.push_str(&line);
        if line.contains("\"shard-started\"") {
            break;
        }
    }
    let mut filler = std::fs::File::create(out_dir.0.join("filler")).unwrap();
    let chunk = vec![0u8; 1 << 20];
    while filler.write_all(&chunk).and_then(|_| filler.flush()).is_ok() {}
    let _ = filler.write_all(&[0; 4096]);
    drop(filler);

    let mut events = first;
    std::io::Read::read_to_string(&mut stdout, &mut events).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(102), "{err}");
    let line = one_line(&err);
    assert!(
        line.starts_with("error: cannot write ")
            && line.contains("junit.xml")
            && line.contains("No space left on device"),
        "{line}"
    );
    // The verdict still reached the JSON stream: every test, once.
    let finished: serde_json::Value = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["type"] == "run-finished")
        .expect("run-finished");
    assert_eq!(finished["exit_code"], 102);
    let planned = started["plan"]["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tests"].as_array().unwrap().len())
        .sum::<usize>();
    let reported = finished["tests"].as_array().unwrap();
    assert!(reported.len() >= planned && planned > 0);
    assert!(
        reported.iter().all(|t| t["status"] != "error"),
        "a full local disk does not fail the shards: {finished}"
    );
    // Nothing of the run is left on the engines.
    let rt = tokio::runtime::Runtime::new().unwrap();
    for host in common::testbed_hosts().hosts {
        let removed = rt.block_on(async {
            let engine = cargo_shard::engine::Engine::connect(&host).await.unwrap();
            engine.remove_labelled(Some(&run_id)).await.unwrap()
        });
        assert!(
            removed.containers.is_empty(),
            "{}: {:?}",
            host.name,
            removed.containers
        );
    }
}
