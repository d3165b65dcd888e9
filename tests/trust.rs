//! Nothing a host or a user types can leak or lose a result (issue 13): secrets with XML and
//! HTML special characters masked after decoding, stale reports never left behind, bad numbers
//! and engine rejections as bad input, interrupts during the build, bounded output in JUnit,
//! report files that follow the umask, known_hosts checked the OpenSSH way.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::unique;

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

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
    let job_file = dir.join("shard.toml");
    std::fs::write(&job_file, job).unwrap();
    std::fs::write(dir.join("keys.txt"), "only\n").unwrap();
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
    files_under(out, &mut files);
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
