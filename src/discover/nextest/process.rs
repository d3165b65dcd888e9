//! Runs cargo-nextest's build and list commands, keeping the end of cargo's stderr so a
//! failure can be told in one line.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use super::NextestError;

/// Runs `cmd`, returning its stdout; on failure the error carries the tail of its stderr.
pub(super) fn run(cmd: Command, echo: bool) -> Result<Vec<u8>, NextestError> {
    run_watching(cmd, echo, |_| {})
}

/// [`run`], telling `on_line` each line of stderr as it comes.
pub(super) fn run_watching(
    mut cmd: Command,
    echo: bool,
    mut on_line: impl FnMut(&str) + Send,
) -> Result<Vec<u8>, NextestError> {
    let command = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = crate::interrupt::spawn(&mut cmd).map_err(|source| NextestError::Spawn {
        program: command.clone(),
        source,
    })?;
    let stderr = child.stderr.take().expect("stderr is piped");
    // Read stderr on its own thread so neither pipe can fill up and stall the child.
    let (status, read, stdout, tail) = std::thread::scope(|scope| {
        let tail = scope.spawn(move || {
            let mut tail = VecDeque::new();
            for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                let line = String::from_utf8_lossy(&line).trim_end().to_owned();
                if echo {
                    eprintln!("{line}");
                }
                on_line(&line);
                if !line.trim().is_empty() {
                    tail.push_back(line);
                    if tail.len() > 40 {
                        tail.pop_front();
                    }
                }
            }
            tail
        });
        let mut stdout = Vec::new();
        let read = child
            .stdout
            .take()
            .expect("stdout is piped")
            .read_to_end(&mut stdout);
        let status = child.wait();
        crate::interrupt::release(&child);
        (status, read, stdout, tail.join().unwrap_or_default())
    });
    let status = status.map_err(|source| NextestError::Spawn {
        program: command.clone(),
        source,
    })?;
    let tail: Vec<String> = tail.into();
    if !status.success() || read.is_err() {
        let status = status
            .code()
            .map_or_else(|| status.to_string(), |c| format!("exit code {c}"));
        let tail = one_line(&summarize(&tail));
        return Err(NextestError::Failed {
            command,
            status,
            tail,
        });
    }
    Ok(stdout)
}

/// The last few `error` lines of cargo's stderr, or its last lines if none say `error`.
fn summarize(lines: &[String]) -> String {
    let errors: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("error"))
        .collect();
    let chosen: Vec<&str> = if errors.is_empty() {
        lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| l.chars().any(char::is_alphanumeric))
            .collect()
    } else {
        errors
    };
    chosen[chosen.len().saturating_sub(3)..].join(" | ")
}

fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    let program = program.file_name().unwrap_or(program.as_os_str());
    let mut words = vec![program.to_string_lossy().into_owned()];
    words.extend(cmd.get_args().take(2).map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn summary_prefers_error_lines() {
        let stderr = "   Compiling x\nerror[E0308]: mismatched types\n  |\n  | ^^^ expected\nerror: could not compile `x`\n";
        assert_eq!(
            summarize(&lines(stderr)),
            "error[E0308]: mismatched types | error: could not compile `x`"
        );
        assert_eq!(summarize(&lines("a\n  |\nb\nc\nd")), "b | c | d");
        assert_eq!(summarize(&[]), "");
    }
}
