//! Human-facing output of real runs pinned by insta snapshots: the plain live lines (default,
//! `-v`, `-q`), GitHub Actions and GitLab output, the summary and `cargo shard show`, the plan
//! table, the JSON events and the HTML report's structure. Each drives the built binary over a
//! few tests of `fixtures/rust-sample` on one local slot running one test at a time, so the
//! order of lines is the runner's; times, ids, thread numbers and paths are normalised by
//! insta filters. The last test does the same on a test-bed engine.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Two passing unit tests, a passing and a failing integration test in another binary, a
/// failure with messy output (escape codes, control and invalid bytes) and an ignored test.
const SAMPLE: &str = "test(/^tests::quick_0[12]$/) | test(=counts_words) | test(=assertion_fails) \
                      | test(=fails_with_messy_output) | test(=tests::ignored_unit)";

/// A scratch directory with a hosts file of one local slot that runs one test at a time.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let hosts = "[[host]]\nname = \"local\"\ndocker_host = \"local://\"\nslots = 1\njobs = 1\n";
        std::fs::write(dir.path().join("hosts.toml"), hosts).unwrap();
        Self { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// cargo-shard with `args` over the sample on the hosts in `hosts`, standard error
/// piped (plain mode), in an environment of no CI unless `env` names one.
fn cargo_shard(hosts: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-shard"));
    cmd.arg("--hosts")
        .arg(hosts)
        .arg("--manifest-path")
        .arg(common::fixture("rust-sample/Cargo.toml"))
        .args(["-E", SAMPLE])
        // Whole shards: which slot takes a batch is timing, and these pin the words only.
        .arg("--no-steal")
        .args(args);
    for var in [
        "CI",
        "GITHUB_ACTIONS",
        "GITHUB_STEP_SUMMARY",
        "GITLAB_CI",
        "NO_COLOR",
        "CARGO_TERM_COLOR",
        "NEXTEST_PROFILE",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    // A backtrace's frames differ between toolchains; the panic line does not.
    cmd.env("RUST_BACKTRACE", "0").env("TERM", "dumb");
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run cargo-shard");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A run of the sample on the scratch directory's local slot with `--out-dir <scratch>/out`.
fn run_local(s: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let out = s.path("out");
    let all = [&["--out-dir", out.to_str().unwrap()], args].concat();
    let ran = cargo_shard(&s.path("hosts.toml"), &all, env);
    assert_eq!(
        ran.code,
        Some(100),
        "the sample fails two tests on purpose; stderr:\n{}",
        ran.stderr
    );
    ran
}

/// Filters for what changes from run to run: times, ids, thread numbers, paths, and cargo's
/// own build lines (present or not depending on what was built before).
fn filters(s: &Scratch) -> Vec<(String, String)> {
    let repo = env!("CARGO_MANIFEST_DIR");
    let scratch = s.dir.path().to_str().unwrap();
    let exe = env!("CARGO_BIN_EXE_cargo-shard");
    let version = format!("cargo-shard {}", env!("CARGO_PKG_VERSION"));
    [
        (regex::escape(exe).as_str(), "[EXE]"),
        (regex::escape(&version).as_str(), "cargo-shard [VERSION]"),
        (r"\b[0-9a-f]{40}\b", "[COMMIT]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[DATE]"),
        (
            r"(?m)^ +(Compiling|Finished|Archiving|Archived|Blocking|Locking|Fresh)\b.*\n",
            "",
        ),
        (&regex::escape(scratch), "[SCRATCH]"),
        (&regex::escape(repo), "[REPO]"),
        (r"/tmp/cargo-shard-[A-Za-z0-9]+", "[SHARD_DIR]"),
        (r"\[ *\d+\.\d+s\]", "[T]"),
        (r"\d+\.\d+m?s\b", "[D]"),
        (r"\d+m\d+s\b", "[D]"),
        (r"\([+-]?\d+%", "([%]"),
        // Column-aligned, so the padding goes with the width of the number.
        (r" +[+-]?\d+%(\s|$)", "  [%]$1"),
        (
            r"section_(start|end):\d+:cargo_shard_\d+-",
            "section_$1:[EPOCH]:cargo_shard_[PID]-",
        ),
        (r"\b[0-9a-f]{12}\b", "[RUN]"),
        (r"thread '([^']+)' \(\d+\)", "thread '$1' ([TID])"),
        (r"cargo-shard-\d+-(\d+)-(\d+)\b", "cargo-shard-[PID]-$1-$2"),
        (
            r"balance \(slowest / mean shard\)(:?) \d+\.\d+",
            "balance (slowest / mean shard)$1 [B]",
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

/// Escape and carriage-return bytes made visible, so the snapshot file keeps them.
fn visible(s: &str) -> String {
    s.replace('\x1b', "\\e").replace('\r', "\\r")
}

/// What timing decides, put in an order that does not depend on it: the body of each folded
/// shard log (nextest's two streams interleave as they were read) becomes one line once it is
/// checked to be the log, line by line; the slowest tests are sorted by name; the periodic
/// progress line, printed every 30 s without a terminal, is left out (a loaded machine takes
/// that long; its form is pinned by `report::progress`'s unit tests).
fn settle(text: &str) -> String {
    let time = regex::Regex::new(r"\d+\.\d+s").unwrap();
    let heartbeat =
        regex::Regex::new(r"^\[ *\d+\.\d+s\] \d+/\d+ tests, \d+ failed; \d+ shards? running").unwrap();
    let mut out: Vec<String> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if heartbeat.is_match(line) {
            continue;
        }
        out.push(line.to_string());
        if line.starts_with("::stop-commands::") || line.contains("section_start:") {
            let body: Vec<&str> = std::iter::from_fn(|| {
                lines.next_if(|l| !(l.starts_with("::cargo-shard-") || l.contains("section_end:")))
            })
            .collect();
            assert!(
                body.iter()
                    .any(|l| l.trim_start().starts_with("PASS [") && l.contains("(1/5)"))
                    && body.len() > 20,
                "a fold holds the shard's log line by line:\n{}",
                body.join("\n")
            );
            out.push("[the shard's log, line by line]".into());
        }
        if line.starts_with("Slowest ") || line.starts_with("#### Slowest ") {
            if line.starts_with('#') && lines.next_if(|l| l.is_empty()).is_some() {
                out.push(String::new());
            }
            let block = std::iter::from_fn(|| lines.next_if(|l| !l.is_empty()));
            let (head, mut rows): (Vec<&str>, Vec<&str>) =
                block.partition(|r| r.starts_with("| time") || r.starts_with("|-"));
            rows.sort_by_key(|r| time.replace(r, "").into_owned());
            out.extend(head.into_iter().chain(rows).map(str::to_string));
        }
    }
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    joined
}

/// Pins `text` under `name` with the scratch directory's filters.
fn pin(s: &Scratch, name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    for (re, with) in filters(s) {
        settings.add_filter(&re, with);
    }
    settings.bind(|| insta::assert_snapshot!(name, visible(&settle(text))));
}

#[test]
fn plain_lines_summary_and_show() {
    let s = Scratch::new();
    let ran = run_local(&s, &[], &[]);
    pin(&s, "plain", &ran.stderr);
    let out = s.path("out");
    let show = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(["show", "--color", "never", "--out-dir"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        show.status.code(),
        Some(0),
        "show succeeds whatever the run found"
    );
    pin(&s, "show", &String::from_utf8_lossy(&show.stdout));
    pin(&s, "html_structure", &html_outline(&out.join("report.html")));
}

#[test]
fn plain_lines_verbose() {
    let s = Scratch::new();
    pin(&s, "plain_verbose", &run_local(&s, &["-v"], &[]).stderr);
}

#[test]
fn plain_lines_quiet() {
    let s = Scratch::new();
    pin(&s, "plain_quiet", &run_local(&s, &["-q"], &[]).stderr);
}

#[test]
fn github_actions_folds_annotations_and_job_summary() {
    let s = Scratch::new();
    let summary = s.path("step-summary.md");
    let env = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ];
    let ran = run_local(&s, &[], &env);
    pin(&s, "github_actions", &ran.stderr);
    let written = std::fs::read_to_string(&summary).expect("the job summary file");
    pin(&s, "github_step_summary", &written);
}

#[test]
fn gitlab_sections() {
    let s = Scratch::new();
    pin(&s, "gitlab", &run_local(&s, &[], &[("GITLAB_CI", "true")]).stderr);
}

#[test]
fn json_events_of_a_run() {
    let s = Scratch::new();
    let ran = run_local(&s, &["--message-format", "json"], &[]);
    let events: Vec<String> = ran
        .stdout
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            normalise_event(&mut v);
            serde_json::to_string(&v).unwrap()
        })
        .collect();
    pin(&s, "json_events", &events.join("\n"));
}

/// Replaces what differs between runs with its kind: wall-clock stamps, measured seconds,
/// bytes; the rest (types, names, statuses, counts, the plan) stays as it is.
fn normalise_event(v: &mut serde_json::Value) {
    const MEASURED: [&str; 6] = ["time", "duration", "started", "finished", "wall", "stage"];
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if MEASURED.contains(&k.as_str()) && (val.is_number() || val.is_string()) {
                    *val = serde_json::Value::String(format!("[{k}]"));
                } else if k == "phases" {
                    if let Some(phases) = val.as_object_mut() {
                        phases.values_mut().for_each(|p| *p = "[s]".into());
                    }
                } else {
                    normalise_event(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(normalise_event),
        _ => {}
    }
}

#[test]
fn plan_table() {
    let s = Scratch::new();
    let history = s.path("no-history.json");
    let ran = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .env_remove("NEXTEST_PROFILE")
        .env_remove("CI")
        .arg("plan")
        .arg("--hosts")
        .arg(s.path("hosts.toml"))
        .arg("--manifest-path")
        .arg(common::fixture("rust-sample/Cargo.toml"))
        .args(["-E", SAMPLE, "--shards", "2", "--history"])
        .arg(&history)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr),
    );
    assert_eq!(ran.status.code(), Some(0), "{stderr}");
    let mut settings = insta::Settings::clone_current();
    for (re, with) in filters(&s).into_iter().take(8) {
        settings.add_filter(&re, with);
    }
    settings.bind(|| insta::assert_snapshot!("plan", format!("{stderr}---\n{stdout}")));
}

/// The report's outline: title, headings, table headers and the header's paragraphs (date,
/// version, commit, command line, counts), one per line, tags stripped.
fn html_outline(page: &Path) -> String {
    let html = std::fs::read_to_string(page).expect("report.html");
    let tag = regex::Regex::new(
        r#"(?s)<(title|h[1-6]|th|p class="(?:meta|cmd|counts|facts)[^"]*")>(.*?)</(?:title|h[1-6]|th|p)>"#,
    )
    .unwrap();
    let strip = regex::Regex::new(r"(?s)<[^>]+>").unwrap();
    let mut out = String::new();
    for c in tag.captures_iter(&html) {
        let text = c[2].replace("</span><span", "</span> | <span");
        let text = strip.replace_all(&text, "");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let what = c[1].split(' ').next().unwrap_or_default();
        out.push_str(&format!("{what}: {text}\n"));
    }
    out
}

/// On a test-bed engine: the staging line and a shard in a container instead of a process.
#[test]
fn plain_verbose_on_a_testbed_engine() {
    let s = Scratch::new();
    let out = s.path("out");
    let args = [
        "--only-host",
        "e1",
        "--shards",
        "1",
        "-j",
        "1",
        "-v",
        "--out-dir",
        out.to_str().unwrap(),
    ];
    let ran = cargo_shard(&common::hosts_file(), &args, &[]);
    assert_eq!(ran.code, Some(100), "{}", ran.stderr);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(
        &regex::escape(common::testbed_dir().to_str().unwrap()),
        "[TESTBED]",
    );
    // A second test bed (CARGO_SHARD_TESTBED_SLOT) has sockets of other names.
    settings.add_filter(r"unix:///run/cargo-shard-[a-z0-9-]+\.sock", "unix://[E1_SOCKET]");
    // What a host had cached already depends on the runs before this one.
    settings.add_filter(r"STAGE e1: .*", "STAGE e1: [uploaded and from cache]");
    settings.bind(|| pin(&s, "plain_verbose_testbed", &ran.stderr));
}
