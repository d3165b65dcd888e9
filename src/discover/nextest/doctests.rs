//! Counts the doctests of the selected crates, which nextest (and so every shard) does not
//! run, so a run can say how many are left out instead of dropping them silently.

use std::path::Path;
use std::process::{Command, Stdio};

use super::NextestOptions;

/// How many doctests `cargo test --doc` would run for the selection; `None` when they cannot
/// be listed (no library target, a build error): the count is advice, never a failure.
pub fn count(workspace_root: &Path, opts: &NextestOptions) -> Option<usize> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root)
        .args(["test", "--doc", "--color", "never"]);
    super::selection_args(&mut cmd, opts, "--profile");
    let out = cmd
        .args(["--", "--list", "--format", "terse"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| count_listed(&String::from_utf8_lossy(&out.stdout)))
}

/// libtest's terse listing: `src/lib.rs - Version::new (line 376): test`.
fn count_listed(text: &str) -> usize {
    text.lines().filter(|l| l.ends_with(": test")).count()
}

/// The line to print when doctests are left out.
pub fn notice(count: usize) -> Option<String> {
    (count > 0).then(|| {
        format!(
            "{count} doctest{} of the selected crates will not run: nextest, and so every shard, runs no doctests (run `cargo test --doc` beside cargo shard)",
            if count == 1 { "" } else { "s" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terse_listing_lines_are_counted() {
        let text = "src/lib.rs - (line 19): test\nsrc/lib.rs - Version::new (line 376): test\n\
                    src/lib.rs - bench (line 3): bench\n";
        assert_eq!(count_listed(text), 2);
        assert_eq!(notice(0), None);
        assert!(
            notice(4)
                .unwrap()
                .starts_with("4 doctests of the selected crates will not run")
        );
    }
}
