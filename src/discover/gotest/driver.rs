//! The shard driver: one fixed `sh` script that runs several test binaries (or commands) in
//! turn, each in its own directory with its output captured to its own file and, where the
//! image has `tee`, also streamed to the shard's output as it comes (live progress, the
//! shard's log, and results kept when the shard is cut short).
//!
//! A shard's `argv` is a single exec array, so running one binary per Go package needs a
//! shell. No test name is ever written into the script text: the script is a constant and
//! every variable (paths, regexes, flags) arrives as a positional parameter, which the shell
//! never re-parses.

/// The driver script. Positional parameters: `OUT JOBS` then, per job, `NAME DIR N ARG1..ARGN`.
/// Each job runs `ARG1..ARGN` in `DIR` with stdout and stderr in `OUT/NAME.out` and the exit
/// status in `OUT/NAME.code`; up to `JOBS` jobs run at once. Exits 0 when every job did.
pub const SCRIPT: &str = r#"out=$1 jobs=$2
shift 2
mkdir -p "$out" || exit 70
if [ -n "${TMPDIR:-}" ]; then mkdir -p "$TMPDIR"; fi
tee=
if command -v tee >/dev/null 2>&1; then tee=1; fi
run() {
	name=$1 dir=$2 n=$3
	shift 3
	c=$# i=0
	for a do
		if [ "$i" -lt "$n" ]; then set -- "$@" "$a"; fi
		i=$((i + 1))
	done
	shift "$c"
	if [ -n "$tee" ]; then
		{
			(cd "$dir" && exec "$@") 2>&1 </dev/null
			echo "$?" >"$out/$name.code"
		} | tee "$out/$name.out"
	else
		(cd "$dir" && exec "$@") >"$out/$name.out" 2>&1 </dev/null
		echo "$?" >"$out/$name.code"
	fi
}
running=0
while [ "$#" -gt 0 ]; do
	if [ "$#" -lt 3 ]; then echo "cargo-shard driver: truncated job list" >&2; exit 70; fi
	n=$3
	run "$@" &
	shift $((3 + n))
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then wait; running=0; fi
done
wait
status=0
for f in "$out"/*.code; do
	[ -f "$f" ] || continue
	read -r c <"$f"
	[ "$c" = 0 ] || status=1
done
exit "$status"
"#;

/// The shell that runs [`SCRIPT`]; an absolute path because imported images carry no `PATH`.
pub const SHELL: &str = "/bin/sh";

/// One command for the driver to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverJob {
    /// File stem of its output (`OUT/NAME.out`, `OUT/NAME.code`).
    pub name: String,
    /// Absolute working directory.
    pub dir: String,
    /// The exec array the driver runs, never through a shell.
    pub argv: Vec<String>,
}

/// The exec array running `jobs` through the driver, `parallel` at a time.
pub fn driver_argv(out_dir: &str, parallel: usize, jobs: &[DriverJob]) -> Vec<String> {
    let mut argv = vec![
        SHELL.to_string(),
        "-c".to_string(),
        SCRIPT.to_string(),
        "cargo-shard-driver".to_string(),
        out_dir.to_string(),
        parallel.max(1).to_string(),
    ];
    for job in jobs {
        argv.push(job.name.clone());
        argv.push(job.dir.clone());
        argv.push(job.argv.len().to_string());
        argv.extend(job.argv.iter().cloned());
    }
    argv
}

/// Escapes every character Go's `regexp.QuoteMeta` escapes, so `s` matches only itself.
pub fn go_quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        if r"\.+*?()|[]{}^$".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// `^(k1|k2|…)$` with every key escaped: matches exactly the given names and nothing that
/// merely starts with one (`-test.run TestFoo` alone would also run `TestFooBar`).
pub fn anchored_alternation<S: AsRef<str>>(keys: &[S]) -> String {
    let mut out = String::from("^(");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        out.push_str(&go_quote_meta(k.as_ref()));
    }
    out.push_str(")$");
    out
}

/// Linux refuses a single argument over 128 KiB; stay well below it.
pub const MAX_PATTERN_BYTES: usize = 100_000;

/// Splits `names` into runs whose [`anchored_alternation`] stays under [`MAX_PATTERN_BYTES`].
pub fn chunk_for_pattern(names: &[String]) -> Vec<Vec<String>> {
    let mut chunks: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = 4;
    for name in names {
        let add = go_quote_meta(name).len() + 1;
        if !current.is_empty() && size + add > MAX_PATTERN_BYTES {
            chunks.push(std::mem::take(&mut current));
            size = 4;
        }
        size += add;
        current.push(name.clone());
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_meta_escapes_every_regex_metacharacter() {
        assert_eq!(
            go_quote_meta(r"a.b+c*d?e(f)g|h[i]j{k}l^m$n\o"),
            r"a\.b\+c\*d\?e\(f\)g\|h\[i\]j\{k\}l\^m\$n\\o"
        );
        assert_eq!(go_quote_meta("Suite.TestA"), r"Suite\.TestA");
        assert_eq!(go_quote_meta("plain_Name-1 /x"), "plain_Name-1 /x");
    }

    #[test]
    fn alternation_is_anchored() {
        assert_eq!(anchored_alternation(&["TestFoo", "S.T$"]), r"^(TestFoo|S\.T\$)$");
        let re = regex::Regex::new(&anchored_alternation(&["TestFoo", "a.b"])).unwrap();
        assert!(re.is_match("TestFoo"));
        assert!(!re.is_match("TestFooBar"));
        assert!(re.is_match("a.b"));
        assert!(!re.is_match("axb"));
    }

    #[test]
    fn chunks_respect_the_argument_limit() {
        let names: Vec<String> = (0..20_000).map(|i| format!("TestNumber{i:06}")).collect();
        let chunks = chunk_for_pattern(&names);
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(anchored_alternation(c).len() <= MAX_PATTERN_BYTES);
        }
        assert_eq!(chunks.concat(), names);
    }

    #[test]
    fn argv_carries_each_job_as_positional_parameters() {
        let jobs = [
            DriverJob {
                name: "a".into(),
                dir: "/r/src".into(),
                argv: vec!["/r/bin/a".into(), "-x".into()],
            },
            DriverJob {
                name: "b".into(),
                dir: "/r".into(),
                argv: vec!["echo".into()],
            },
        ];
        let argv = driver_argv("/r/out", 0, &jobs);
        assert_eq!(&argv[..2], &[SHELL.to_string(), "-c".to_string()]);
        assert_eq!(
            &argv[3..],
            &[
                "cargo-shard-driver",
                "/r/out",
                "1",
                "a",
                "/r/src",
                "2",
                "/r/bin/a",
                "-x",
                "b",
                "/r",
                "1",
                "echo"
            ]
        );
    }

    /// Runs the real script with awkward arguments: quotes, `$`, globs, spaces and newlines
    /// must reach the command unchanged, and parallel jobs must each get their own output.
    #[test]
    fn script_passes_arguments_through_unchanged() {
        let streamed = script_passes_arguments_through(&[], None);
        // With `tee` the jobs' output also streams to the driver's own output.
        assert_eq!(streamed.matches("[a b][$(touch pwned)]").count(), 3, "{streamed}");
    }

    #[test]
    fn without_tee_output_goes_to_the_files_only() {
        let bin = tempfile::tempdir().unwrap();
        for tool in ["mkdir", "printf", "false"] {
            let real = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| std::path::Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap();
            std::os::unix::fs::symlink(real, bin.path().join(tool)).unwrap();
        }
        let streamed = script_passes_arguments_through(&[], Some(bin.path()));
        assert_eq!(streamed, "");
    }

    /// The images run busybox's `sh`, not the host's: the same script must work there.
    #[test]
    fn script_passes_arguments_through_unchanged_in_busybox_sh() {
        let streamed = script_passes_arguments_through(&["busybox", "sh"], None);
        assert_eq!(streamed.matches("[a b][$(touch pwned)]").count(), 3, "{streamed}");
    }

    /// Runs three printing jobs and a failing one; returns what the driver itself printed.
    fn script_passes_arguments_through(shell: &[&str], path: Option<&std::path::Path>) -> String {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let weird = ["a b", "$(touch pwned)", "*", "'\"", "x\ny", "", "-n"];
        let mut jobs = Vec::new();
        for i in 0..3 {
            let mut argv = vec!["printf".to_string(), "[%s]".to_string()];
            argv.extend(weird.iter().map(|s| s.to_string()));
            jobs.push(DriverJob {
                name: format!("j{i}"),
                dir: tmp.path().display().to_string(),
                argv,
            });
        }
        jobs.push(DriverJob {
            name: "fails".into(),
            dir: "/".into(),
            argv: vec!["false".into()],
        });
        let mut argv = driver_argv(&out.display().to_string(), 2, &jobs);
        if !shell.is_empty() {
            argv.splice(0..1, shell.iter().map(|s| s.to_string()));
        }
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        if let Some(path) = path {
            cmd.env("PATH", path);
        }
        let run = cmd.output().unwrap();
        assert_eq!(run.status.code(), Some(1), "one job failed, so the driver fails");
        for i in 0..3 {
            let got = std::fs::read_to_string(out.join(format!("j{i}.out"))).unwrap();
            assert_eq!(got, "[a b][$(touch pwned)][*]['\"][x\ny][][-n]");
            assert_eq!(
                std::fs::read_to_string(out.join(format!("j{i}.code"))).unwrap(),
                "0\n"
            );
        }
        assert_eq!(std::fs::read_to_string(out.join("fails.code")).unwrap(), "1\n");
        assert!(!tmp.path().join("pwned").exists());
        String::from_utf8(run.stdout).unwrap()
    }
}
