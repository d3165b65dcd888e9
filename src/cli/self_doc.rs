//! The CLI describing itself from its own definitions: shell completions (clap_complete) and
//! man pages (clap_mangen), so neither can drift from the flags.

use std::path::Path;

use clap::CommandFactory;

use super::error::Error;
use super::{Cli, CompletionsArgs, ManArgs};
use crate::exit;

pub fn completions(a: CompletionsArgs) -> u8 {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "cargo-shard", &mut std::io::stdout());
    exit::OK
}

/// The man page on stdout, or one page per command in `--dir`.
pub fn man(a: ManArgs) -> Result<u8, Error> {
    let result = match &a.dir {
        Some(dir) => write_pages(dir),
        None => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout().lock()),
    };
    result.map_err(|source| Error::Man {
        path: a.dir.unwrap_or_default(),
        source,
    })?;
    Ok(exit::OK)
}

/// `cargo-shard.1` and `cargo-shard-COMMAND.1` per subcommand.
fn write_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command().name("cargo-shard"), dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_know_every_subcommand_and_flag() {
        let mut buf = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "cargo-shard",
            &mut buf,
        );
        let bash = String::from_utf8(buf).unwrap();
        for word in [
            "show",
            "completions",
            "man",
            "--message-format",
            "--shard-retries",
            "--filters-file",
        ] {
            assert!(bash.contains(word), "{word} missing from the bash completions");
        }
    }

    #[test]
    fn man_pages_cover_every_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        write_pages(dir.path()).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for page in [
            "cargo-shard.1",
            "cargo-shard-run.1",
            "cargo-shard-show.1",
            "cargo-shard-exec.1",
        ] {
            assert!(names.iter().any(|n| n == page), "{page} in {names:?}");
        }
        let main = std::fs::read_to_string(dir.path().join("cargo-shard.1")).unwrap();
        assert!(main.starts_with(".ie \\n(.g .ds Aq"), "roff: {}", &main[..40]);
        assert!(main.contains("Spread a slow test suite"));
    }

    /// Every argument of every command, by its command path, that has no help text.
    fn undescribed(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let builtin = matches!(a.get_id().as_str(), "help" | "version");
            if !builtin && a.get_help().is_none() && a.get_long_help().is_none() {
                out.push(format!("{path} {}", a.get_id()));
            }
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            assert!(
                sub.get_about().is_some(),
                "{path} {} has no description",
                sub.get_name()
            );
            undescribed(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_flag_is_described() {
        let mut missing = Vec::new();
        undescribed(&Cli::command(), "cargo shard", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }

    /// What `cargo shard [COMMAND] --help` prints, pinned for every command, so a flag
    /// without a description or under the wrong heading shows in review.
    #[test]
    fn every_commands_help_is_pinned() {
        let mut cmd = Cli::command();
        cmd.build();
        insta::assert_snapshot!("help", cmd.render_long_help().to_string());
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .filter(|n| n != "help")
            .collect();
        for name in names {
            let sub = cmd.find_subcommand_mut(&name).expect("listed");
            insta::assert_snapshot!(format!("help-{name}"), sub.render_long_help().to_string());
        }
    }
}
