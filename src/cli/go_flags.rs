//! `go test`'s own flags after `cargo shard go … --`, read the way `go test` reads them:
//! build flags (`-tags`, `-race`) go to the build, run flags (`-short`, `-count`, `-timeout`,
//! `-cpu`) become the test binaries' `-test.*` flags, and the binaries' own flags (`-test.*`,
//! `-check.*`) pass as they are. Anything else is refused before anything is built.

/// What the flags ask of the build and of every test binary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoFlags {
    /// For `go list` and `go test -c` (`-tags …`, `-race`).
    pub build: Vec<String>,
    /// For every test binary (`-test.short`, `-test.count=N`, `-check.v`…).
    pub run: Vec<String>,
    /// `-race` needs cgo.
    pub race: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GoFlagError {
    #[error("`{0}` needs a value")]
    MissingValue(String),
    #[error(
        "`{0}` is not a `go test` flag cargo shard passes on: use -tags, -race, -short, -count, -timeout, -cpu, -failfast, -v, or a test binary's own -test.* / -check.* flags"
    )]
    Unknown(String),
    #[error("-race needs cgo and a C compiler on this machine (none of {0} was found on PATH)")]
    NoCompiler(String),
}

/// Reads `args` (what followed `--`).
pub fn parse(args: &[String]) -> Result<GoFlags, GoFlagError> {
    let mut flags = GoFlags::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        // `-flag=value` and `--flag` are the same flag to Go's flag package.
        let bare = arg.trim_start_matches('-');
        let (name, inline) = match bare.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (bare, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| GoFlagError::MissingValue(arg.clone()))
        };
        match name {
            "tags" => flags.build.extend(["-tags".to_string(), value()?]),
            "race" => {
                flags.build.push("-race".into());
                flags.race = true;
            }
            // Shards always run with -test.v: their results are read from it.
            "v" => {}
            "short" | "failfast" => flags.run.push(format!("-test.{name}")),
            "count" | "timeout" | "cpu" => flags.run.push(format!("-test.{name}={}", value()?)),
            n if n.starts_with("test.") || n.starts_with("check.") => flags.run.push(arg.clone()),
            _ => return Err(GoFlagError::Unknown(arg.clone())),
        }
    }
    Ok(flags)
}

/// `-race` builds with cgo: a C compiler must be here (the binaries then need the image's libc).
pub fn check_compiler(flags: &GoFlags, on_path: impl Fn(&str) -> bool) -> Result<(), GoFlagError> {
    const COMPILERS: [&str; 3] = ["cc", "gcc", "clang"];
    let wanted = std::env::var("CC").ok();
    let found = match &wanted {
        Some(cc) => on_path(cc),
        None => COMPILERS.iter().any(|c| on_path(c)),
    };
    if flags.race && !found {
        return Err(GoFlagError::NoCompiler(
            wanted.unwrap_or_else(|| COMPILERS.join(", ")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn build_and_run_flags_go_where_go_test_puts_them() {
        let f = parse(&args(&[
            "-tags",
            "integration",
            "-short",
            "-count=1",
            "-timeout",
            "30s",
            "--cpu",
            "1,2",
            "-check.v",
            "-test.v",
        ]))
        .unwrap();
        assert_eq!(f.build, ["-tags", "integration"]);
        assert_eq!(
            f.run,
            [
                "-test.short",
                "-test.count=1",
                "-test.timeout=30s",
                "-test.cpu=1,2",
                "-check.v",
                "-test.v"
            ]
        );
        assert!(!f.race);
        let f = parse(&args(&["-race"])).unwrap();
        assert!(f.race && f.build == ["-race"]);
    }

    #[test]
    fn unknown_flags_and_missing_values_are_named() {
        assert_eq!(
            parse(&args(&["-json"])),
            Err(GoFlagError::Unknown("-json".into()))
        );
        assert_eq!(parse(&args(&["-v"])).unwrap(), GoFlags::default());
        assert_eq!(
            parse(&args(&["-count"])),
            Err(GoFlagError::MissingValue("-count".into()))
        );
        assert!(parse(&args(&["./..."])).is_err());
    }

    #[test]
    fn race_without_a_compiler_is_a_clear_error() {
        let race = GoFlags {
            race: true,
            ..Default::default()
        };
        if std::env::var_os("CC").is_none() {
            let err = check_compiler(&race, |_| false).unwrap_err().to_string();
            assert!(err.contains("-race needs cgo and a C compiler"), "{err}");
            assert!(check_compiler(&race, |c| c == "gcc").is_ok());
        }
        assert!(check_compiler(&GoFlags::default(), |_| false).is_ok());
    }
}
