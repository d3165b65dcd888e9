//! The examples a new user copies: every `cargo shard …` command in examples/ and the README
//! parses with this cargo-shard's command line, the example hosts file parses, and the shard
//! image recipe builds on a real engine with the build machine's own cargo-nextest.

use crate::common;

use std::path::{Path, PathBuf};

use clap::Parser;

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Every `cargo shard …` command in `text`, as arguments after `cargo shard`: cut at the end
/// of the shell command (`||`, `;`, a closing quote), CI placeholders filled in.
fn commands(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(at) = line.find("cargo shard ") else {
            continue;
        };
        let mut cmd = &line[at + "cargo shard ".len()..];
        for end in ["||", ";", "`", "'  #", "  #"] {
            if let Some(i) = cmd.find(end) {
                cmd = &cmd[..i];
            }
        }
        let cmd = cmd
            .trim()
            .trim_end_matches('\'')
            .replace("${{ matrix.job }}", "2");
        out.push(split(&cmd));
    }
    out
}

/// Shell words: whitespace-separated, single or double quotes grouping and removed.
fn split(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[test]
fn every_example_command_parses() {
    let files = [
        ("examples/github-actions.yml", 2),
        ("examples/github-actions-partition.yml", 2),
        ("examples/gitlab-ci.yml", 4),
        ("examples/Jenkinsfile", 5),
        ("README.md", 5),
    ];
    for (file, at_least) in files {
        let text = std::fs::read_to_string(repo(file)).unwrap();
        let cmds = commands(&text);
        assert!(cmds.len() >= at_least, "{file}: found only {cmds:?}");
        for mut args in cmds {
            // The shell's redirections and `&&` end the command.
            if let Some(end) = args
                .iter()
                .position(|a| matches!(a.as_str(), ">" | ">>" | "<" | "&&"))
            {
                args.truncate(end);
            }
            // Syntax summaries (`[--format json]`, `a|b`, `…`, a `SHELL` placeholder) are not
            // commands to check.
            let placeholder = |a: &str| a.len() > 1 && a.chars().all(|c| c.is_ascii_uppercase() || c == '_');
            if args
                .iter()
                .any(|a| a.contains('…') || a.contains('|') || a.starts_with('[') || placeholder(a))
            {
                continue;
            }
            let full = std::iter::once("cargo-shard".to_string()).chain(args.iter().cloned());
            // `--help`/`--version` parse: clap reports them as an "error" that prints text.
            if let Err(e) = cargo_shard::cli::Cli::try_parse_from(full)
                && !matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                )
            {
                panic!("{file}: `cargo shard {}` does not parse:\n{e}", args.join(" "));
            }
        }
    }
}

#[test]
fn example_hosts_file_parses() {
    let path = repo("examples/ci/hosts.toml");
    let config = cargo_shard::config::HostsConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = config.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["build-01", "build-02"]);
    let tls = config.hosts[1].tls.as_ref().expect("build-02 uses TLS");
    assert_eq!(
        tls.ca.as_deref(),
        Some(repo("examples/ci/keys/tls/ca.pem").as_path())
    );
}

/// Runs the docker CLI against engine e1; returns (success, stdout, stderr).
fn docker(args: &[&str]) -> (bool, String, String) {
    let o = std::process::Command::new("docker")
        .arg("-H")
        .arg(common::host("e1").endpoint.to_string())
        .args(args)
        .output()
        .expect("docker CLI");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn nextest_version(cmd: &mut std::process::Command) -> String {
    let o = cmd.output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn shard_image_recipe_builds_with_the_build_machines_nextest() {
    // Offline here: build on the test bed's base image instead of debian:bookworm-slim.
    let context = tempfile::tempdir().unwrap();
    let local = which("cargo-nextest");
    std::fs::copy(&local, context.path().join("cargo-nextest")).unwrap();
    let tag = format!("cargo-shard-test/{}:1", common::unique("recipe"));
    let dockerfile = repo("examples/shard-image/Dockerfile");
    let (ok, _, err) = docker(&[
        "build",
        "--network",
        "none",
        "-q",
        "--build-arg",
        "BASE=cargo-shard/base:latest",
        "-f",
        dockerfile.to_str().unwrap(),
        "-t",
        &tag,
        context.path().to_str().unwrap(),
    ]);
    let run = ok.then(|| {
        docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            &tag,
            "/usr/local/bin/cargo-nextest",
            "nextest",
            "--version",
        ])
    });
    docker(&["rmi", "-f", &tag]);
    assert!(ok, "docker build: {err}");
    let (ran, stdout, err) = run.unwrap();
    assert!(ran, "{err}");
    let here = nextest_version(std::process::Command::new(&local).args(["nextest", "--version"]));
    assert_eq!(
        stdout.lines().next().unwrap_or(""),
        here,
        "the image runs this machine's nextest"
    );
}

fn which(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| Path::new(p).is_file())
        .unwrap_or_else(|| panic!("{name} not on PATH"))
}
