//! Colour for human output (`--color`, `NO_COLOR`): status words painted on a terminal, plain
//! text in pipes, files and CI logs unless `--color always` asks otherwise.

/// What the user asked for with `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorWhen {
    /// Paint only on a terminal that is not `dumb`, with `NO_COLOR` unset.
    #[default]
    Auto,
    /// Paint even into pipes and files.
    Always,
    /// Never paint.
    Never,
}

/// Paints words with ANSI colours, or hands them back untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paint {
    /// Whether words get ANSI colours.
    pub enabled: bool,
}

impl Paint {
    /// A painter that never colours, for files and tests.
    pub const PLAIN: Paint = Paint { enabled: false };

    /// `always` paints, `never` does not; `auto` paints only on a terminal that is not `dumb`
    /// and when `NO_COLOR` is unset or empty (<https://no-color.org>).
    pub fn resolve(when: ColorWhen, terminal: bool, no_color: bool, dumb: bool) -> Self {
        let enabled = match when {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => terminal && !no_color && !dumb,
        };
        Paint { enabled }
    }

    /// Resolves against standard error, where all human output goes.
    pub fn detect(when: ColorWhen) -> Self {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Self::resolve(when, std::io::stderr().is_terminal(), no_color, dumb)
    }

    fn sgr(&self, code: &str, s: &str) -> String {
        if self.enabled && !s.is_empty() {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Failures and errors: bold red.
    pub fn fail(&self, s: &str) -> String {
        self.sgr("1;31", s)
    }

    /// Passes: green.
    pub fn pass(&self, s: &str) -> String {
        self.sgr("32", s)
    }

    /// Flaky, skipped, lost hosts: yellow.
    pub fn warn(&self, s: &str) -> String {
        self.sgr("33", s)
    }

    /// Secondary detail (output tails, paths): dim.
    pub fn dim(&self, s: &str) -> String {
        self.sgr("2", s)
    }

    /// Headings: bold.
    pub fn bold(&self, s: &str) -> String {
        self.sgr("1", s)
    }

    /// A count painted by what it means: `bad` when it is non-zero and bad news.
    pub fn count(&self, n: usize, word: &str, bad: fn(&Paint, &str) -> String) -> String {
        let text = format!("{n} {word}");
        if n == 0 { text } else { bad(self, &text) }
    }
}

/// `word`, with an `s` unless there is exactly one: "1 error", "2 errors", "0 tests".
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_paints_only_a_colourful_terminal() {
        assert!(Paint::resolve(ColorWhen::Auto, true, false, false).enabled);
        assert!(!Paint::resolve(ColorWhen::Auto, false, false, false).enabled);
        assert!(!Paint::resolve(ColorWhen::Auto, true, true, false).enabled);
        assert!(!Paint::resolve(ColorWhen::Auto, true, false, true).enabled);
    }

    #[test]
    fn always_and_never_win() {
        assert!(Paint::resolve(ColorWhen::Always, false, true, true).enabled);
        assert!(!Paint::resolve(ColorWhen::Never, true, false, false).enabled);
    }

    #[test]
    fn plain_paint_changes_nothing() {
        assert_eq!(Paint::PLAIN.fail("FAIL"), "FAIL");
        assert_eq!(Paint { enabled: true }.fail("FAIL"), "\x1b[1;31mFAIL\x1b[0m");
        assert_eq!(Paint { enabled: true }.pass(""), "");
    }

    #[test]
    fn counts_are_painted_only_when_non_zero() {
        let p = Paint { enabled: true };
        assert_eq!(p.count(0, "failed", Paint::fail), "0 failed");
        assert_eq!(p.count(2, "failed", Paint::fail), "\x1b[1;31m2 failed\x1b[0m");
    }
}
