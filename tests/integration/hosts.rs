//! `cargo shard hosts` against the real test bed: every transport reachable, and each kind of
//! breakage reported as one line naming the host.

use crate::common;

use common::{cargo_shard, hosts_file, testbed_file};

#[test]
fn all_testbed_hosts_reachable() {
    let path = hosts_file();
    let (code, out, err) = cargo_shard(&["hosts", "--hosts", path.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for name in ["e1", "e2", "e3"] {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{out}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[2], "yes", "{row}");
        assert_eq!(cols[4], "1.41", "{row}");
        assert!(row.contains("present"), "image missing on {name}: {row}");
    }
    assert!(out.contains("ssh://root@127.0.0.3:2222"), "{out}");
}

/// The fourth transport: e4 takes only mutual TLS (`--tlsverify`).
#[test]
fn tls_engine_reachable_and_a_rogue_client_certificate_refused() {
    let path = testbed_file("hosts-tls.toml");
    let (code, out, err) = cargo_shard(&["hosts", "--hosts", path.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("e4 "))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (cols[1], cols[2], cols[4]),
        ("tcp://127.0.0.5:2376", "yes", "1.41"),
        "{row}"
    );
    let path = testbed_file("bad-tls.toml");
    let (code, out, err) = cargo_shard(&["hosts", "--hosts", path.to_str().unwrap()]);
    assert_eq!(code, 102, "{out}{err}");
    let line = failure_line(&err, "e4");
    assert!(line.contains("unreachable: TLS error"), "{line}");
}

#[test]
fn only_host_limits_the_check() {
    let path = hosts_file();
    let (code, out, err) = cargo_shard(&["hosts", "--hosts", path.to_str().unwrap(), "--only-host", "e2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let (code, _, err) = cargo_shard(&["hosts", "--hosts", path.to_str().unwrap(), "--only-host", "nope"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--only-host nope: no such host") && err.contains("known: e1, e2, e3"),
        "{err}"
    );
}

/// The one failure line for `host`, from stderr.
fn failure_line<'a>(err: &'a str, host: &str) -> &'a str {
    err.lines()
        .find(|l| l.starts_with(&format!("host {host} (")))
        .unwrap_or_else(|| panic!("no failure line for {host}:\n{err}"))
}

#[test]
fn closed_port_is_refused() {
    let path = testbed_file("bad-port.toml");
    let (code, out, err) = cargo_shard(&["hosts", "--hosts", path.to_str().unwrap()]);
    assert_eq!(code, 102, "{out}{err}");
    let bad = path.to_str().unwrap();
    let cfg = cargo_shard::config::HostsConfig::load(std::path::Path::new(bad)).unwrap();
    let broken = cfg.hosts.iter().find(|h| h.name != "e1").unwrap();
    let line = failure_line(&err, &broken.name);
    assert!(line.ends_with("unreachable: connection refused"), "{line}");
}

#[test]
fn unauthorized_key_is_auth_failed() {
    let path = testbed_file("bad-key.toml");
    let (code, out, err) = cargo_shard(&["hosts", "--hosts", path.to_str().unwrap()]);
    assert_eq!(code, 102, "{out}{err}");
    let line = failure_line(&err, "e3");
    assert!(
        line.contains("unreachable: ssh auth failed (key ")
            && line.contains("rejected for root@127.0.0.3:2222"),
        "{line}"
    );
}

#[test]
fn missing_socket_is_reported() {
    let path = testbed_file("bad-socket.toml");
    let (code, out, err) = cargo_shard(&["hosts", "--hosts", path.to_str().unwrap()]);
    assert_eq!(code, 102, "{out}{err}");
    let cfg = cargo_shard::config::HostsConfig::load(&path).unwrap();
    let h = &cfg.hosts[0];
    let line = failure_line(&err, &h.name);
    assert!(
        line.contains("unreachable: socket ") && line.ends_with(" missing"),
        "{line}"
    );
}

#[test]
fn typo_in_hosts_file_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.toml");
    std::fs::write(
        &path,
        "[[host]]\nname = \"e1\"\ndocker_host = \"unix:///x.sock\"\n  slotz = 2\n",
    )
    .unwrap();
    let (code, out, err) = cargo_shard(&["hosts", "--hosts", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    let expected = format!("error: {}:4:3: unknown field `slotz`", path.display());
    assert!(err.starts_with(&expected), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(out.is_empty());
}

#[test]
fn silent_engine_times_out() {
    // Accepts connections (the kernel does) but never answers: only the timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.toml");
    std::fs::write(
        &path,
        format!("[[host]]\nname = \"silent\"\ndocker_host = \"tcp://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (code, out, err) = cargo_shard(&["hosts", "--hosts", path.to_str().unwrap(), "--timeout", "1s"]);
    assert_eq!(code, 102, "{out}{err}");
    let line = failure_line(&err, "silent");
    assert!(line.ends_with("unreachable: timeout after 1s"), "{line}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    drop(silent);
}

#[test]
fn tls_to_a_plain_port_is_a_tls_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=e2",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.2"])
        .arg("-keyout")
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (to make a throwaway certificate)");
    assert!(status.success());
    std::fs::copy(d.join("cert.pem"), d.join("ca.pem")).unwrap();
    // e2's plain-HTTP port: the TLS handshake cannot succeed there.
    let cfg = cargo_shard::config::HostsConfig::load(&hosts_file()).unwrap();
    let e2 = cfg.hosts.iter().find(|h| h.name == "e2").unwrap();
    let path = d.join("hosts.toml");
    std::fs::write(
        &path,
        format!(
            "[[host]]\nname = \"tls\"\ndocker_host = \"{}\"\ncert_path = \".\"\n",
            e2.endpoint
        ),
    )
    .unwrap();
    let (code, out, err) = cargo_shard(&["hosts", "--hosts", path.to_str().unwrap()]);
    assert_eq!(code, 102, "{out}{err}");
    let line = failure_line(&err, "tls");
    assert!(line.contains("unreachable: TLS error: "), "{line}");
}

#[test]
fn without_hosts_file_docker_host_is_used() {
    let cfg = cargo_shard::config::HostsConfig::load(&hosts_file()).unwrap();
    let e1 = cfg.hosts.iter().find(|h| h.name == "e1").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .arg("hosts")
        .env("DOCKER_HOST", e1.endpoint.to_string())
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_TLS_VERIFY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = stdout.lines().nth(1).unwrap();
    assert!(
        row.starts_with("local ") && row.contains(&e1.endpoint.to_string()) && row.contains(" yes "),
        "{row}"
    );
}

#[test]
fn stale_socket_is_refused() {
    // A socket file nobody listens on, as a crashed daemon leaves behind.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let path = dir.path().join("hosts.toml");
    std::fs::write(
        &path,
        format!(
            "[[host]]\nname = \"stale\"\ndocker_host = \"unix://{}\"\n",
            sock.display()
        ),
    )
    .unwrap();
    let (code, out, err) = cargo_shard(&["hosts", "--hosts", path.to_str().unwrap()]);
    assert_eq!(code, 102, "{out}{err}");
    assert!(
        failure_line(&err, "stale").ends_with("unreachable: connection refused"),
        "{err}"
    );
}

/// A host without `jobs` runs `CPUs / slots` tests at once per shard, and the plan says so
/// (what the run would use, asked from the engine); a host that sets `jobs` keeps it.
#[test]
fn plan_takes_jobs_from_the_engines_cpus_when_unset() {
    let cpus: usize = String::from_utf8(
        std::process::Command::new("docker")
            .args([
                "-H",
                "unix:///run/cargo-shard-e1.sock",
                "info",
                "--format",
                "{{.NCPU}}",
            ])
            .output()
            .expect("docker CLI")
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts.toml");
    std::fs::write(
        &hosts,
        "[[host]]\nname = \"e1\"\ndocker_host = \"unix:///run/cargo-shard-e1.sock\"\nslots = 1\n\
         [[host]]\nname = \"e2\"\ndocker_host = \"tcp://127.0.0.2:2375\"\nslots = 2\njobs = 3\n",
    )
    .unwrap();
    let manifest = common::fixture("rust-sample/Cargo.toml");
    let (code, out, err) = cargo_shard(&[
        "plan",
        "--hosts",
        hosts.to_str().unwrap(),
        "--manifest-path",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let line = out.lines().find(|l| l.starts_with("hosts: ")).expect(&out);
    let e1 = if cpus == 1 {
        "1 test".to_string()
    } else {
        format!("{cpus} tests")
    };
    assert_eq!(
        line,
        format!("hosts: e1 1 slot × {e1} at once (from CPUs); e2 2 slots in 1 container × 6 tests at once")
    );
}
