//! Where shards run, against the test bed's real engines: local processes only when nothing
//! was configured and no engine answers (said even with `-q`), `--backend local` on request,
//! otherwise a host that cannot run is an error naming it; and the configuration found by
//! itself (`CARGO_SHARD_HOSTS`, `.config/cargo-shard.toml`), named in the backend line.

use crate::common;

use std::path::Path;

use common::{host, hosts_file};

/// Runs cargo-shard in `dir` with nothing configured but `env`; returns (code, stderr).
fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-shard"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("DOCKER_HOST")
        .env_remove("CARGO_SHARD_HOSTS")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("NEXTEST_PROFILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cargo-shard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `exec` over two keys, one container each; key `b` fails, so a run that happened exits 100.
fn exec_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["exec", "--list", "printf 'a\\nb\\n'", "--key-env", "K"];
    v.extend_from_slice(extra);
    v.extend(["--", "sh", "-c", "test \"$K\" = a"]);
    v
}

/// A directory that is its own repository root, so no project file above it is found.
fn project_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    dir
}

/// A [`project_dir`] on a machine whose stock Docker socket (the built-in default) is absent.
fn unconfigured_dir() -> tempfile::TempDir {
    assert!(
        !Path::new("/var/run/docker.sock").exists(),
        "this test needs no stock engine"
    );
    project_dir()
}

#[test]
fn nothing_configured_and_no_engine_falls_back_to_local_processes_and_says_so_with_q() {
    let dir = unconfigured_dir();
    let (code, err) = run_in(dir.path(), &exec_args(&["-q"]), &[]);
    assert_eq!(code, 100, "the run happened, key b failed:\n{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.starts_with("backend: local processes, ") && first.contains("nothing configured"),
        "{err}"
    );
}

#[test]
fn plan_with_nothing_configured_and_no_engine_shows_the_local_processes_a_run_would_use() {
    let dir = unconfigured_dir();
    std::fs::write(
        dir.path().join("go.mod"),
        "module example.com/fallback\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("a_test.go"),
        "package a\n\nimport \"testing\"\n\nfunc TestOne(t *testing.T) {}\n\nfunc TestTwo(t *testing.T) {}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(["plan", "go", "./..."])
        .current_dir(dir.path())
        .env_remove("DOCKER_HOST")
        .env_remove("CARGO_SHARD_HOSTS")
        .output()
        .expect("run cargo-shard plan");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("backend: local processes, ") && l.contains("does not answer")),
        "{stderr}"
    );
    // Local processes run one shard per slot: no container, shared or not.
    let hosts = stdout
        .lines()
        .find(|l| l.starts_with("hosts: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(hosts.starts_with("hosts: local "), "{stdout}");
    assert!(!hosts.contains("container"), "{stdout}");
}

#[test]
fn docker_host_engine_without_the_image_is_an_error_not_a_fallback() {
    let dir = project_dir();
    let e1 = host("e1").endpoint.to_string();
    let (code, err) = run_in(
        dir.path(),
        &exec_args(&["-q", "--image", "cargo-shard/not-there:1"]),
        &[("DOCKER_HOST", &e1)],
    );
    assert_eq!(code, 102, "{err}");
    // No public registry answers here: the pull fails with the engine's own reason.
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with(&format!(
            "error: no usable host in DOCKER_HOST={e1}: local: image cargo-shard/not-there:1 is not present and pulling it failed: "
        )),
        "{err}"
    );
    assert!(!err.contains("local processes"), "{err}");
}

#[test]
fn unreachable_docker_host_is_an_error_naming_it() {
    let dir = project_dir();
    let sock = format!("unix://{}/gone.sock", dir.path().display());
    let (code, err) = run_in(dir.path(), &exec_args(&["-q"]), &[("DOCKER_HOST", &sock)]);
    assert_eq!(code, 102, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: no usable host in DOCKER_HOST={sock}: local: socket "
        )),
        "{err}"
    );
    assert!(!err.contains("local processes"), "{err}");
}

#[test]
fn backend_local_runs_local_processes_even_with_hosts_configured() {
    let dir = project_dir();
    let hosts = hosts_file();
    let (code, err) = run_in(
        dir.path(),
        &exec_args(&["--backend", "local", "--no-progress"]),
        &[("CARGO_SHARD_HOSTS", hosts.to_str().unwrap())],
    );
    assert_eq!(code, 100, "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("backend: local processes, ") && l.ends_with("(--backend local)")),
        "{err}"
    );
}

#[test]
fn cargo_shard_hosts_is_used_and_named() {
    let dir = project_dir();
    let hosts = hosts_file();
    let (code, err) = run_in(
        dir.path(),
        &exec_args(&["--dry-run", "--only-host", "e1"]),
        &[
            ("CARGO_SHARD_HOSTS", hosts.to_str().unwrap()),
            ("DOCKER_HOST", "unix:///nowhere"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("backend: docker on e1 ")
            && l.ends_with(&format!("(hosts from CARGO_SHARD_HOSTS={})", hosts.display()))),
        "{err}"
    );
}

#[test]
fn project_file_gives_hosts_options_and_beats_docker_host() {
    let dir = project_dir();
    let e2 = host("e2");
    let config = dir.path().join(".config/cargo-shard.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "[[host]]\nname = \"team\"\ndocker_host = \"{}\"\nslots = 3\n\n[options]\nshards = 1\n",
            e2.endpoint
        ),
    )
    .unwrap();
    // Run from a subdirectory: the file is found upwards, in the project root.
    let sub = dir.path().join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let (code, err) = run_in(
        &sub,
        &[
            "exec",
            "--list",
            "printf 'a\\nb\\nc\\n'",
            "--filter-env",
            "F",
            "--dry-run",
            "--",
            "true",
        ],
        &[("DOCKER_HOST", "unix:///nowhere")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("backend: docker on team ")
            && l.ends_with(&format!("(hosts from {})", config.display()))),
        "{err}"
    );
    assert!(
        err.contains("1 shards") || err.contains("1 shard"),
        "[options] shards = 1 plans one shard:\n{err}"
    );
}

#[test]
fn hosts_command_fails_when_an_image_is_missing() {
    let hosts = hosts_file();
    let (code, err) = run_in(
        Path::new("/"),
        &[
            "hosts",
            "--hosts",
            hosts.to_str().unwrap(),
            "--only-host",
            "e1",
            "--image",
            "cargo-shard/not-there:1",
        ],
        &[],
    );
    assert_eq!(code, 102, "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("host e1 (")
            && l.contains("image cargo-shard/not-there:1 is missing and cannot be pulled: ")),
        "{err}"
    );
}

/// A `[job]` image replaces the hosts' own, so it is the one checked (and pulled) when the
/// hosts connect, by a run and by `cargo shard hosts`, before any shard needs it.
#[test]
fn the_jobs_image_is_the_one_checked_at_connect() {
    let dir = project_dir();
    let text = std::fs::read_to_string(hosts_file()).unwrap();
    let hosts = dir.path().join("hosts.toml");
    std::fs::write(
        &hosts,
        format!("{text}\n[job]\nimage = \"cargo-shard/job-image-absent:1\"\n"),
    )
    .unwrap();
    let hosts = hosts.to_str().unwrap();
    let (code, err) = run_in(
        dir.path(),
        &exec_args(&["-q", "--hosts", hosts, "--only-host", "e1"]),
        &[],
    );
    assert_eq!(code, 102, "{err}");
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with(&format!("error: no usable host in {hosts}: "))
                && l.contains("e1: image cargo-shard/job-image-absent:1 is not present")),
        "{err}"
    );
    let (code, err) = run_in(dir.path(), &["hosts", "--hosts", hosts, "--only-host", "e1"], &[]);
    assert_eq!(code, 102, "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("host e1 (")
            && l.contains("image cargo-shard/job-image-absent:1 is missing and cannot be pulled: ")),
        "{err}"
    );
    // `--image` still wins over the job.
    let (code, err) = run_in(
        dir.path(),
        &[
            "hosts",
            "--hosts",
            hosts,
            "--only-host",
            "e1",
            "--image",
            "cargo-shard/base:latest",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
}

/// Hosts are connected while the tests are listed (and built). When none of them answers, the
/// listing still running is stopped rather than waited for or left behind, and the error is
/// the hosts'. The engine here accepts the connection and closes it a second later, so the
/// listing has started by then.
#[test]
fn hosts_that_fail_during_the_listing_stop_it_and_leave_nothing_running() {
    let engine = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = engine.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in engine.incoming().flatten() {
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_secs(1));
                drop(conn);
            });
        }
    });
    let dir = project_dir();
    let hosts = dir.path().join("hosts.toml");
    std::fs::write(
        &hosts,
        format!("[[host]]\nname = \"mute\"\ndocker_host = \"tcp://127.0.0.1:{port}\"\nslots = 1\n"),
    )
    .unwrap();
    let pid_file = dir.path().join("listing.pid");
    let list = format!("echo $$ > '{}'; exec sleep 60", pid_file.display());
    let (code, err) = run_in(
        dir.path(),
        &[
            "exec",
            "--hosts",
            hosts.to_str().unwrap(),
            "--list",
            &list,
            "--key-env",
            "K",
            "--",
            "true",
        ],
        &[],
    );
    assert_eq!(code, 102, "{err}");
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with("error: no usable host in ") && l.contains("mute")),
        "{err}"
    );
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("the listing never started ({e}): {err}"));
    let stat = format!("/proc/{}/stat", pid.trim());
    // Gone, or a zombie its new parent has yet to reap.
    let running = |s: String| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read_to_string(&stat).is_ok_and(running) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !std::fs::read_to_string(&stat).is_ok_and(running),
        "the listing (pid {}) still runs after cargo-shard exited",
        pid.trim()
    );
}
