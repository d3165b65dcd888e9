//! Process exit codes: documented in the README and stable across releases.

use std::process::ExitCode;

/// Every test passed (or nothing was selected).
pub const OK: u8 = 0;
/// Bad input: an invalid hosts file, history path, filters file or argument value.
pub const BAD_INPUT: u8 = 1;
/// Command-line usage error (clap's own code).
pub const USAGE: u8 = 2;
/// The run completed and at least one test failed (nextest uses the same number).
pub const TESTS_FAILED: u8 = 100;
/// Building or listing the tests failed.
pub const BUILD_FAILED: u8 = 101;
/// The run could not complete: no host reachable, or infrastructure failed beyond retries.
pub const INFRA_FAILED: u8 = 102;
/// Interrupted by SIGINT/SIGTERM; whatever ran was reported.
pub const INTERRUPTED: u8 = 130;

/// One of the codes above as the process's exit status.
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}
