//! `--filters-file`: run exactly the tests named in a file, and say which names match
//! nothing (a typo must not silently shrink the run).

use std::collections::BTreeSet;
use std::path::Path;

use crate::test_result::TestId;

/// Why a filters file cannot select the tests.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The file cannot be read.
    #[error("{path}: cannot read filters file: {source}")]
    Read {
        /// The filters file.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Names that match no listed test: a typo would otherwise run nothing silently.
    #[error("{path}: {count} name(s) match no test: {names}")]
    Unmatched {
        /// The filters file.
        path: String,
        /// How many names matched nothing.
        count: usize,
        /// The first ten of them, quoted, and how many more.
        names: String,
    },
}

/// Exact test names: one per line, `#` starts a comment line, blank lines are ignored,
/// surrounding whitespace is trimmed. A name matches a test's `name` or `group name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// The names, deduplicated.
    pub names: BTreeSet<String>,
}

/// The tests a filter selected (indexes into the input, in input order) and the filter
/// names that matched no test (sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selected {
    /// Indexes of the selected tests in the input.
    pub indices: Vec<usize>,
    /// Names that matched no test, sorted.
    pub unmatched: Vec<String>,
}

impl Filters {
    /// The names in a filters file's text.
    pub fn parse(text: &str) -> Self {
        let names = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        Self { names }
    }

    /// Reads a filters file (invalid UTF-8 replaced).
    pub fn read(path: &Path) -> Result<Self, FilterError> {
        let bytes = std::fs::read(path).map_err(|source| FilterError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// The tests the names select, and the names that select nothing.
    pub fn select(&self, tests: &[TestId]) -> Selected {
        let mut used: BTreeSet<&str> = BTreeSet::new();
        let mut indices = Vec::new();
        for (i, t) in tests.iter().enumerate() {
            let full = t.to_string();
            let hit = [t.name.as_str(), full.as_str()]
                .into_iter()
                .find_map(|k| self.names.get(k).map(String::as_str));
            if let Some(k) = hit {
                used.insert(k);
                indices.push(i);
            }
            // A test may be named both ways in the file: count both as used.
            if let Some(k) = self.names.get(full.as_str()) {
                used.insert(k);
            }
        }
        let unmatched = self
            .names
            .iter()
            .filter(|n| !used.contains(n.as_str()))
            .cloned()
            .collect();
        Selected { indices, unmatched }
    }
}

impl Selected {
    /// An error naming up to ten unmatched names, or `Ok` when every name matched.
    pub fn check(&self, path: &Path) -> Result<(), FilterError> {
        if self.unmatched.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = self.unmatched.iter().take(10).map(|n| format!("{n:?}")).collect();
        if self.unmatched.len() > 10 {
            names.push(format!("… and {} more", self.unmatched.len() - 10));
        }
        Err(FilterError::Unmatched {
            path: path.display().to_string(),
            count: self.unmatched.len(),
            names: names.join(", "),
        })
    }
}
