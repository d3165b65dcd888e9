//! What crosses the seam between a runner and an engine for one shard: the files placed
//! before it starts, how it runs, and what came back. `discover` produces these and `engine`
//! consumes them; neither imports the other.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Files to place in every shard's container before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upload {
    /// A local file, copied to `dest` (a path relative to the shard root).
    File {
        /// The file on this machine.
        src: PathBuf,
        /// Where it lands, relative to the shard root.
        dest: String,
        /// Its Unix permission bits (0o755 for a binary).
        mode: u32,
    },
    /// A local directory tree limited to `files` (paths relative to `src`), placed under `dest`.
    Tree {
        /// The directory on this machine the paths in `files` are relative to.
        src: PathBuf,
        /// The files to ship: never everything under `src`, only what the suite needs.
        files: Vec<PathBuf>,
        /// Where the tree lands, relative to the shard root.
        dest: String,
    },
}

/// How to run one shard: an exec array (never a shell string), its environment, files
/// generated for this shard only, and the paths to download once it exits.
#[derive(Debug, Clone, Default)]
pub struct ShardSpec {
    /// The command, program first.
    pub argv: Vec<String>,
    /// The command's environment; the job adds its variables and secrets here.
    pub env: Vec<(String, String)>,
    /// Working directory, absolute (under the shard root).
    pub workdir: String,
    /// Generated files: path relative to the shard root → contents.
    pub files: Vec<(String, Vec<u8>)>,
    /// Absolute paths (files or directories) to bring back after the shard exits.
    pub collect: Vec<String>,
}

/// What came back from a shard: its exit code, its combined output (secrets masked) and the
/// collected files (absolute container path → contents; directories are flattened into their
/// files), as the shard wrote them: masking raw bytes before a JUnit or JSON file is decoded
/// can cut an escaped value in half, so results are masked once decoded and artifacts when
/// they are saved.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// The exit code of the shard's command; `None` if it never exited (killed, lost).
    pub exit_code: Option<i64>,
    /// Its stdout and stderr as one log, secrets masked.
    pub output: Vec<u8>,
    /// The files the [`ShardSpec`] asked to collect, by absolute path.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The kernel killed a process of the shard for memory: maybe a test binary (its
    /// runner reports it as a crash), maybe the runner itself (then no report is left).
    pub oom_killed: bool,
}

/// Which of a shard's output streams a line came from (a container's stdout and stderr are
/// kept apart; the log file interleaves them for humans).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The shard's stdout.
    Out,
    /// The shard's stderr.
    Err,
}
