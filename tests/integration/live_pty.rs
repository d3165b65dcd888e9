//! The live progress as a person sees it: a real run inside a tmux pane (a pseudo-terminal),
//! its screen captured while the run goes on, showing the per-test count move before the
//! shard ends. tmux runs on a server of its own (`-L`), killed when the test ends.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A tmux server of this test's own; killed (by its socket name) when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(conf: &Path, argv: &[&str]) -> Self {
        let tmux = Self {
            socket: common::unique("cargo-shard-pty"),
        };
        // The command's words are passed as tmux's own arguments, so they run without a shell.
        let out = tmux.cmd(
            &["new-session", "-d", "-s", "run", "-x", "160", "-y", "40"],
            argv,
            Some(conf),
        );
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn cmd(&self, args: &[&str], more: &[&str], conf: Option<&Path>) -> Output {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket]);
        if let Some(conf) = conf {
            cmd.arg("-f").arg(conf);
        }
        cmd.args(args)
            .args(more)
            .output()
            .expect("tmux must be installed (`apt-get install tmux`; scripts/testbed up does)")
    }

    /// The pane's visible text, without escape codes.
    fn screen(&self) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", "run"], &[], None);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `Some(exit status)` once the run's process has ended (the pane stays: remain-on-exit).
    fn exited(&self) -> Option<i32> {
        let out = self.cmd(
            &[
                "display-message",
                "-p",
                "-t",
                "run",
                "#{pane_dead} #{pane_dead_status}",
            ],
            &[],
            None,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        match (words.next(), words.next()) {
            (Some("1"), Some(code)) => code.parse().ok(),
            _ => None,
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"], &[], None);
    }
}

/// The overall bar's counts on a screen: (tests done, tests planned, shards done).
fn bar_counts(screen: &str) -> Option<(usize, usize, usize)> {
    let re = regex::Regex::new(r"(\d+)/(\d+) tests, .*; \d+ shards? running, (\d+)/\d+ done").unwrap();
    let c = re.captures(screen)?;
    let n = |i: usize| c[i].parse::<usize>().ok();
    Some((n(1)?, n(2)?, n(3)?))
}

#[test]
fn the_test_count_moves_on_a_terminal_before_the_shard_ends() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("tmux.conf");
    // The pane outlives the run, so its last screen and exit status can still be read.
    std::fs::write(&conf, "set -g remain-on-exit on\n").unwrap();
    let hosts = dir.path().join("hosts.toml");
    let local = "[[host]]\nname = \"local\"\ndocker_host = \"local://\"\nslots = 1\njobs = 1\n";
    std::fs::write(&hosts, local).unwrap();
    let (out, manifest) = (dir.path().join("out"), common::fixture("rust-sample/Cargo.toml"));
    // alpha::slow: four tests of 0.5 to 2 s, one after the other in a single shard.
    #[rustfmt::skip]
    let argv = [
        // A CI variable would turn the bars off, as it should on CI.
        "env", "-u", "CI", "-u", "NEXTEST_PROFILE", "-u", "NO_COLOR",
        env!("CARGO_BIN_EXE_cargo-shard"),
        "--hosts", hosts.to_str().unwrap(),
        "--manifest-path", manifest.to_str().unwrap(),
        "--out-dir", out.to_str().unwrap(),
        "-E", "binary(slow)",
        // One shard whole: batches would end (and be counted) before the last test.
        "--no-steal",
    ];
    // The run's own exit status, written by a wrapper once it ends: the pane is only marked
    // dead once every process holding its terminal has gone, which a slow grandchild (a
    // compiler of cargo's) may delay well past the run's end.
    let exit_file = dir.path().join("exit-status");
    let wrapped: Vec<&str> = [
        "sh",
        "-c",
        "\"$@\"; echo $? > \"$0\"",
        exit_file.to_str().unwrap(),
    ]
    .into_iter()
    .chain(argv)
    .collect();
    let tmux = Tmux::start(&conf, &wrapped);

    // Every distinct count the bar showed while no shard had ended.
    let mut seen: Vec<usize> = Vec::new();
    let mut last = String::new();
    // Below CI's 300 s limit for an integration test, so this message is the one seen.
    let deadline = Instant::now() + Duration::from_secs(240);
    let code = loop {
        if Instant::now() >= deadline {
            // What is still running, to tell a run that hangs from a terminal held open.
            let ps = Command::new("ps")
                .args(["-eo", "pid,ppid,pgid,stat,etime,args"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let ours: Vec<&str> = ps
                .lines()
                .filter(|l| {
                    ["cargo", "rustc", "rustdoc", "nextest", "sh -c"]
                        .iter()
                        .any(|w| l.contains(w))
                })
                .collect();
            panic!(
                "no end within 4 minutes (exit status written: {}); the screen:\n{last}\nprocesses:\n{}",
                exit_file.exists(),
                ours.join("\n")
            );
        }
        last = tmux.screen();
        if let Some((done, planned, 0)) = bar_counts(&last) {
            assert_eq!(planned, 4, "{last}");
            if seen.last() != Some(&done) {
                seen.push(done);
            }
        }
        let ended = std::fs::read_to_string(&exit_file)
            .ok()
            .filter(|t| t.ends_with('\n'))
            .and_then(|t| t.trim().parse::<i32>().ok());
        if let Some(code) = ended.or_else(|| tmux.exited()) {
            // The screen read above may predate the run's last lines (the summary), and tmux
            // reads the terminal on its own time: read again until the summary shows (bounded).
            let until = Instant::now() + Duration::from_secs(10);
            last = tmux.screen();
            while !last.contains(" passed, ") && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
                last = tmux.screen();
            }
            break code;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, 0, "alpha::slow passes; the last screen:\n{last}");
    eprintln!("counts on the bar before the shard ended: {seen:?}");
    let moving: Vec<usize> = seen.iter().copied().filter(|n| (1..4).contains(n)).collect();
    assert!(
        moving.len() >= 2 && moving.windows(2).all(|w| w[0] < w[1]),
        "the count rose test by test while the shard ran; counts seen: {seen:?}; last screen:\n{last}"
    );
    // The bars are gone at the end: the summary's count line is what is left.
    assert!(last.contains("4 passed, 0 failed"), "{last}");
    assert!(bar_counts(&last).is_none(), "a bar left on the screen:\n{last}");
}
