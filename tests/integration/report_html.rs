//! The HTML report of a real run of `fixtures/rust-sample` across the test bed, loaded in
//! headless Chromium: its DOM holds exactly one timeline bar per shard attempt the JSON
//! events reported, its header names the start time, version, commit and command line, and a
//! screenshot of it is a real PNG of the asked size.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian's `chromium` on PATH; the test fails (never skips) without it.
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium is missing: install it with `apt-get install chromium` (scripts/testbed up does)"
            )
        })
}

/// Runs headless Chromium on `page` with `args`, in a fresh profile, with nothing that
/// reaches for the network; kills it after two minutes.
fn headless(page: &Path, args: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every `<g>` whose class list holds `bar`: (shard, attempt) from its data attributes.
fn bars(dom: &str) -> Vec<(u64, u64)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(tag[start..].split('"').next()?.to_string())
    };
    dom.match_indices("<g ")
        .map(|(i, _)| &dom[i..i + dom[i..].find('>').expect("tag ends")])
        .filter(|tag| attr(tag, "class").is_some_and(|c| c.split_whitespace().any(|w| w == "bar")))
        .map(|tag| {
            let num = |n| {
                attr(tag, n)
                    .and_then(|v| v.parse().ok())
                    .expect("bar has data-shard/attempt")
            };
            (num("data-shard"), num("data-attempt"))
        })
        .collect()
}

#[test]
fn report_renders_one_bar_per_shard_attempt_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    // More shards than slots, so some slot runs two containers one after the other.
    let output = common::run_rust_sample(&out_dir, &["--shards", "8"]);

    // (shard, attempt) of every container the events say finished, with its host.
    let mut attempts = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["type"] == "shard-finished" {
            let key = (v["shard"].as_u64().unwrap(), v["attempt"].as_u64().unwrap());
            assert!(
                attempts.insert(key, v["host"].clone()).is_none(),
                "{key:?} reported twice"
            );
        }
    }
    assert!(attempts.len() >= 8, "every planned shard ran: {attempts:?}");

    let page = out_dir.join("report.html");
    let html = std::fs::read_to_string(&page).expect("report.html written");
    assert!(!html.contains("<script"), "no scripts");
    assert!(!html.contains("<link"), "no external stylesheets");
    let outside: Vec<&str> = html
        .match_indices("http")
        .map(|(i, _)| &html[i..(i + 40).min(html.len())])
        .filter(|s| !s.starts_with("http://www.w3.org/2000/svg"))
        .collect();
    assert!(outside.is_empty(), "the page points outside itself: {outside:?}");

    let dom = String::from_utf8(headless(&page, &["--dump-dom"]).stdout).expect("utf-8 DOM");
    assert!(dom.contains("<svg"), "the timeline is in the rendered DOM");
    let mut drawn = bars(&dom);
    let count = drawn.len();
    drawn.sort();
    drawn.dedup();
    assert_eq!(count, drawn.len(), "one bar per attempt, no duplicates");
    assert_eq!(
        drawn,
        attempts.keys().copied().collect::<Vec<_>>(),
        "bars = attempts in the events"
    );
    assert!(
        dom.contains("class=\"bar fail\""),
        "failing shards are drawn as such"
    );

    // The header says when, with what, from which commit, and how the run was started.
    let version = format!("cargo-shard {}", env!("CARGO_PKG_VERSION"));
    assert!(dom.contains(&version), "{version} in the header");
    let stamp = dom
        .split("<time datetime=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a <time datetime> in the header");
    let year = stamp.get(..4).and_then(|y| y.parse::<u32>().ok());
    assert!(
        stamp.len() == 20 && stamp.ends_with('Z') && year.is_some_and(|y| y >= 2024),
        "an RFC 3339 UTC start time: {stamp}"
    );
    let head = Command::new("git").args(["rev-parse", "HEAD"]).output().unwrap();
    let commit = String::from_utf8(head.stdout).unwrap().trim().to_string();
    assert!(
        dom.contains(&format!("commit <code>{commit}</code>")),
        "the checkout's commit {commit} in the header"
    );
    let cmd = dom
        .split("command <code>")
        .nth(1)
        .and_then(|c| c.split("</code>").next())
        .expect("the command line in the header");
    assert!(
        cmd.contains("--shards 8") && cmd.contains("--message-format json"),
        "the command line as given: {cmd}"
    );

    let shot = dir.path().join("report.png");
    headless(
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,900",
        ],
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let dim = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((dim(16), dim(20)), (1200, 900), "the asked window size");
    assert!(
        png.len() > 20_000,
        "a page with content, not a blank one: {} bytes",
        png.len()
    );
}
