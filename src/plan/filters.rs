//! `--filters-file`: run exactly the tests named in a file, and say which names match
//! nothing (a typo must not silently shrink the run).

use std::collections::BTreeSet;
use std::path::Path;

use crate::discover::TestId;

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{path}: cannot read filters file: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {count} name(s) match no test: {names}")]
    Unmatched { path: String, count: usize, names: String },
}

/// Exact test names: one per line, `#` starts a comment line, blank lines are ignored,
/// surrounding whitespace is trimmed. A name matches a test's `name` or `group name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub names: BTreeSet<String>,
}

/// The tests a filter selected (indexes into the input, in input order) and the filter
/// names that matched no test (sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selected {
    pub indices: Vec<usize>,
    pub unmatched: Vec<String>,
}

impl Filters {
    pub fn parse(text: &str) -> Self {
        let names = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        Self { names }
    }

    pub fn read(path: &Path) -> Result<Self, FilterError> {
        let bytes = std::fs::read(path).map_err(|source| FilterError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::parse(&String::from_utf8_lossy(&bytes)))
    }

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
        let unmatched = self.names.iter().filter(|n| !used.contains(n.as_str())).cloned().collect();
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
