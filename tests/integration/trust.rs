//! Nothing a host or a user types can leak or lose a result (issue 13): secrets with XML and
//! HTML special characters masked after decoding, stale reports never left behind, bad numbers
//! and engine rejections as bad input, interrupts during the build, bounded output in JUnit,
//! report files that follow the umask, known_hosts checked the OpenSSH way.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::unique;

/// `cargo shard exec` with one key, the given hosts and job file, running `script` through
/// `sh -c`; returns (code, stdout, stderr, out dir).
fn exec(
    dir: &Path,
    hosts: &Path,
    job: &str,
    script: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> (i32, String, String, PathBuf) {
    exec_keys(dir, hosts, job, script, env, extra, "only\n")
}

/// [`exec`] with these keys (one a line).
fn exec_keys(
    dir: &Path,
    hosts: &Path,
    job: &str,
    script: &str,
    env: &[(&str, &str)],
    extra: &[&str],
    keys: &str,
) -> (i32, String, String, PathBuf) {
    let job_file = dir.join("shard.toml");
    std::fs::write(&job_file, job).unwrap();
    std::fs::write(dir.join("keys.txt"), keys).unwrap();
    let out = dir.join("out");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .envs(env.iter().copied())
        .arg("exec")
        .arg("--hosts")
        .arg(hosts)
        .arg("--job")
        .arg(&job_file)
        .arg("--dir")
        .arg(&src)
        .arg("--filters-file")
        .arg(dir.join("keys.txt"))
        .args([
            "--key-env",
            "KEY",
            "--no-progress",
            "--results",
            "junit.xml",
            "--out-dir",
        ])
        .arg(&out)
        .args(extra)
        .arg("--")
        .args(["sh", "-c", script])
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        out,
    )
}

fn local_hosts(dir: &Path) -> PathBuf {
    let hosts = dir.join("hosts.toml");
    std::fs::write(&hosts, "[[host]]\nname = \"here\"\ndocker_host = \"local://\"\n").unwrap();
    hosts
}

/// The test bed's e1 only, with its image.
fn e1_hosts(dir: &Path) -> PathBuf {
    let e1 = common::host("e1");
    let hosts = dir.join("hosts-e1.toml");
    let text = format!(
        "[[host]]\nname = \"e1\"\ndocker_host = \"{}\"\nimage = \"{}\"\nnetwork = \"none\"\n",
        e1.endpoint, e1.image
    );
    std::fs::write(&hosts, text).unwrap();
    hosts
}

const SECRET_JOB: &str = r#"
[job]
secrets = ["pw", "part"]
[[job.secret]]
name = "pw"
from_env = "TRUST_PW"
as_env = "PW"
[[job.secret]]
name = "part"
from_env = "TRUST_PART"
as_env = "PART"
"#;

/// Prints the secret raw, then writes a JUnit holding it XML-escaped (and `é` as a numeric
/// character reference, as Go's writers do) in a failure's message, text and system-out.
const LEAKY: &str = r#"
echo "raw: $PW"
esc() { printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' -e "s/'/\&apos;/g" -e 's/é/\&#233;/g'; }
e=$(esc "$PW")
p=$(esc "$PART")
cat > junit.xml <<XML
<testsuite name="s"><testcase classname="c" name="only" time="0.1"><failure message="bad $e">text $e</failure><system-out>out $e and $p</system-out><system-err>err $e</system-err></testcase></testsuite>
XML
exit 1
"#;

fn assert_no_secret(values: &[&str], out: &Path, stdout: &str, stderr: &str) {
    let mut files = Vec::new();
    common::files_under(out, &mut files);
    let escaped: Vec<String> = values
        .iter()
        .map(|v| {
            v.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&apos;")
        })
        .collect();
    for v in values.iter().map(|v| v.to_string()).chain(escaped) {
        for f in &files {
            let data = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
            assert!(!data.contains(&v), "{v:?} is in {}:\n{data}", f.display());
        }
        assert!(!stdout.contains(&v), "{v:?} is on stdout:\n{stdout}");
        assert!(!stderr.contains(&v), "{v:?} is on stderr:\n{stderr}");
    }
}

fn secrets_with_special_characters_are_masked_after_decoding(hosts: &Path, dir: &Path) {
    let pw = format!("Tk&9<Zq>\"x'é{}", unique("-"));
    // A secret that is part of another: the longer one is masked whole, the shorter wherever
    // it stands alone.
    let part = "Tk&9<Z".to_string();
    let (code, stdout, stderr, out) = exec(
        dir,
        hosts,
        SECRET_JOB,
        LEAKY,
        &[("TRUST_PW", &pw), ("TRUST_PART", &part)],
        &["--message-format", "json"],
    );
    assert_eq!(code, 100, "{stdout}\n{stderr}");
    assert_no_secret(
        &[&pw, &part, "Tk&amp;9&lt;Z", "x'é", "x&apos;&#233;"],
        &out,
        &stdout,
        &stderr,
    );
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("bad [redacted]"), "{junit}");
    assert!(junit.contains("out [redacted] and [redacted]"), "{junit}");
    // And the human summary, in a second run.
    let (code, stdout, stderr, out) = exec(
        dir,
        hosts,
        SECRET_JOB,
        LEAKY,
        &[("TRUST_PW", &pw), ("TRUST_PART", &part)],
        &[],
    );
    assert_eq!(code, 100, "{stdout}\n{stderr}");
    assert!(stderr.contains("bad [redacted]"), "{stderr}");
    assert_no_secret(&[&pw, &part], &out, &stdout, &stderr);
}

#[test]
fn secrets_with_special_characters_are_masked_locally() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = local_hosts(dir.path());
    secrets_with_special_characters_are_masked_after_decoding(&hosts, dir.path());
}

#[test]
fn secrets_with_special_characters_are_masked_on_an_engine() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = e1_hosts(dir.path());
    secrets_with_special_characters_are_masked_after_decoding(&hosts, dir.path());
}

/// A cargo workspace of one crate in `dir/name`: `lib` is its src/lib.rs, `build` its build.rs
/// (none when empty).
fn crate_at(dir: &Path, name: &str, lib: &str, build: &str) -> PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n"),
    )
    .unwrap();
    std::fs::write(root.join("src/lib.rs"), lib).unwrap();
    if !build.is_empty() {
        std::fs::write(root.join("build.rs"), build).unwrap();
    }
    root.join("Cargo.toml")
}

fn shard_cmd(manifest: &Path, out: &Path, hosts: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-shard"));
    cmd.env_remove("NEXTEST_PROFILE")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--out-dir")
        .arg(out)
        .arg("--hosts")
        .arg(hosts)
        .args(["--no-progress", "--quiet"]);
    cmd
}

fn run(mut cmd: Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Leaves a previous run's reports in `out`.
fn stale_reports(out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("junit.xml"), "<testsuites name=\"OLD\"/>").unwrap();
    std::fs::write(out.join("report.html"), "OLD").unwrap();
}

/// The one `<error>` case of a run that ended early, and its message.
fn early_error(out: &Path) -> String {
    let path = out.join("junit.xml");
    common::assert_valid_junit(&path);
    let report = cargo_shard::junit::read_file(&path).unwrap();
    let cases: Vec<_> = report.suites.iter().flat_map(|s| &s.cases).collect();
    assert_eq!(cases.len(), 1, "{report:?}");
    match &cases[0].status {
        cargo_shard::junit::CaseStatus::Error { message, .. } => message.clone().unwrap_or_default(),
        s => panic!("not an error: {s:?}"),
    }
}

#[test]
fn a_failed_build_replaces_the_previous_reports_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = crate_at(dir.path(), "broken", "pub fn f() -> u32 { \"no\" }\n", "");
    let out = dir.path().join("out");
    stale_reports(&out);
    let (code, err) = run(shard_cmd(&manifest, &out, &local_hosts(dir.path())));
    assert_eq!(code, 101, "{err}");
    assert!(
        !out.join("report.html").exists(),
        "the previous report.html is left"
    );
    let why = early_error(&out);
    assert!(why.starts_with("building or listing the tests failed: "), "{why}");
}

#[test]
fn no_usable_host_replaces_the_previous_reports_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    stale_reports(&out);
    let hosts = dir.path().join("closed.toml");
    std::fs::write(
        &hosts,
        "[[host]]\nname = \"closed\"\ndocker_host = \"tcp://127.0.0.4:1\"\n",
    )
    .unwrap();
    let (code, _, err, _) = exec(dir.path(), &hosts, "[job]\n", "exit 0", &[], &[]);
    assert_eq!(code, 102, "{err}");
    assert!(early_error(&out).starts_with("no usable host in "));
}

#[test]
fn nothing_selected_leaves_an_empty_report_not_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    stale_reports(&out);
    let hosts = local_hosts(dir.path());
    let (code, _, err, _) = exec_keys(dir.path(), &hosts, "[job]\n", "exit 0", &[], &[], "");
    assert_eq!(code, 0, "{err}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(!junit.contains("OLD"), "{junit}");
    common::assert_valid_junit(&out.join("junit.xml"));
    assert!(!out.join("report.html").exists());
}

#[test]
fn an_unwritable_junit_path_is_bad_input_before_the_build() {
    let dir = tempfile::tempdir().unwrap();
    // Would fail to compile: exit 1, not 101, shows nothing was built.
    let manifest = crate_at(dir.path(), "neverbuilt", "pub fn f() -> u32 { \"no\" }\n", "");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "").unwrap();
    let mut cmd = shard_cmd(&manifest, &dir.path().join("out"), &local_hosts(dir.path()));
    cmd.arg("--junit").arg(file.join("junit.xml"));
    let (code, err) = run(cmd);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: {}/junit.xml: cannot create", file.display())),
        "{err}"
    );
    assert!(!dir.path().join("neverbuilt/target").exists(), "the build ran");
}

#[test]
fn a_history_of_a_newer_version_is_left_untouched_by_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let newer = "{\"version\": 9, \"tests\": {\"g\": {\"kept\": [1.0]}}}\n";
    std::fs::write(out.join("history.json"), newer).unwrap();
    let hosts = local_hosts(dir.path());
    let (code, _, err, _) = exec(dir.path(), &hosts, "[job]\n", "exit 0", &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "format version 9 (this cargo-shard reads 1); planning without it and leaving the file untouched"
        ),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(out.join("history.json")).unwrap(), newer);
}

/// A build script that records its pid in `$TRUST_MARKER` and then takes a minute.
const SLOW_BUILD: &str = r#"fn main() {
    println!("cargo:rerun-if-env-changed=TRUST_MARKER");
    let marker = std::env::var("TRUST_MARKER").unwrap();
    std::fs::write(format!("{marker}.tmp"), std::process::id().to_string()).unwrap();
    std::fs::rename(format!("{marker}.tmp"), &marker).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(60));
}
"#;

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Starts a run whose build hangs in a build script, sends `signal` once the script runs
/// (to the whole process group, as a terminal's Ctrl-C does, or to cargo-shard alone), and
/// checks: exit 130 soon, the build script gone, a JUnit saying the run was interrupted.
fn interrupt_during_the_build(signal: i32, whole_group: bool) {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let name = format!("slowbuild{signal}");
    let manifest = crate_at(dir.path(), &name, "#[test]\nfn t() {}\n", SLOW_BUILD);
    let marker = dir.path().join("build-script.pid");
    let out = dir.path().join("out");
    stale_reports(&out);
    let mut cmd = shard_cmd(&manifest, &out, &local_hosts(dir.path()));
    cmd.env("TRUST_MARKER", &marker).process_group(0);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let start = std::time::Instant::now();
    while !marker.exists() {
        assert!(start.elapsed().as_secs() < 120, "the build script never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let script: i32 = std::fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    let target = if whole_group {
        -(child.id() as i32)
    } else {
        child.id() as i32
    };
    unsafe { libc::kill(target, signal) };
    let sent = std::time::Instant::now();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}: {err}");
    assert!(sent.elapsed().as_secs() < 10, "took {:?}", sent.elapsed());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!alive(script), "the build script {script} is still running");
    assert!(!out.join("report.html").exists());
    assert_eq!(early_error(&out), "the run was interrupted before any test ran");
}

#[test]
fn ctrl_c_during_the_build_exits_130_with_nothing_left() {
    interrupt_during_the_build(libc::SIGINT, true);
}

#[test]
fn sigterm_during_the_build_exits_130_with_nothing_left() {
    interrupt_during_the_build(libc::SIGTERM, false);
}

#[test]
fn an_engine_refusing_the_container_is_bad_input_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = e1_hosts(dir.path());
    let (code, _, err, out) = exec_keys(
        dir.path(),
        &hosts,
        "[job]\n",
        "exit 0",
        &[],
        &["--cpus", "1000", "--shard-retries", "3"],
        "a\nb\nc\n",
    );
    assert_eq!(code, 1, "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    assert!(
        line.starts_with("error: e1: the engine refused the shard's container: ")
            && line.contains("Range of CPUs"),
        "{line}"
    );
    assert!(!err.contains("attempt 2"), "retried:\n{err}");
    // Every key is in the report, none as passed.
    let statuses = common::junit_statuses(&out.join("junit.xml"));
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert!(statuses.values().all(|s| *s == "error"), "{statuses:?}");
}
