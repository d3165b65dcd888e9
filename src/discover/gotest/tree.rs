//! The part of a Go tree a shard needs beside the prebuilt test binaries: what the selected
//! packages' tests can read at run time, not the whole `--dir` (issue 11: five packages of
//! the standard library shipped 143 MB to every shard).
//!
//! A package's tests run in its directory, so they get:
//! - the files of the package's directory (not the packages below it);
//! - every directory `go` never builds (`testdata`, `_name`, `.name`), recursively, in the
//!   package's directory and in each directory above it up to the root, for tests reading
//!   `testdata/…`, `../testdata/…` or a shared `../../_fixtures`;
//! - the paths its test files name as `"../…"` string literals (a sibling's `testdata`, a
//!   file of the module root), when they stay inside the tree;
//! - the module files at the root (`go.mod`, `go.sum`, `go.work`, `go.work.sum`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::discover::files::normalize;

const MODULE_FILES: [&str; 4] = ["go.mod", "go.sum", "go.work", "go.work.sum"];

/// A selected package: its directory relative to the tree and its test files' sources.
pub struct Selected<'a> {
    /// The package's directory, relative to the tree root.
    pub rel_dir: &'a Path,
    /// The sources of its test files, read for `../` paths the tests open.
    pub test_sources: Vec<String>,
}

/// The files of `all` (relative to the tree root) that the `packages`' tests need.
pub fn package_files(all: Vec<PathBuf>, packages: &[Selected]) -> Vec<PathBuf> {
    let pkg_dirs: HashSet<&Path> = packages.iter().map(|p| p.rel_dir).collect();
    let owners: HashSet<&Path> = packages.iter().flat_map(|p| p.rel_dir.ancestors()).collect();
    let named: Vec<PathBuf> = packages
        .iter()
        .flat_map(|p| p.test_sources.iter().flat_map(|s| parent_refs(p.rel_dir, s)))
        .collect();
    all.into_iter()
        .filter(|f| {
            let parent = f.parent().unwrap_or(Path::new(""));
            let module_file =
                parent.as_os_str().is_empty() && MODULE_FILES.iter().any(|m| f.as_os_str() == *m);
            module_file
                || pkg_dirs.contains(parent)
                || named.iter().any(|n| f.starts_with(n))
                || in_unbuilt_dir(f, &owners)
        })
        .collect()
}

/// Whether `f` lies in a directory `go` never builds whose parent is one of `owners`.
fn in_unbuilt_dir(f: &Path, owners: &HashSet<&Path>) -> bool {
    f.ancestors().skip(1).any(|d| {
        let (Some(parent), Some(name)) = (d.parent(), d.file_name()) else {
            return false;
        };
        let name = name.to_string_lossy();
        let unbuilt = name == "testdata" || name.starts_with('_') || name.starts_with('.');
        unbuilt && owners.contains(parent)
    })
}

/// Paths a Go source names as `"../…"` (or raw `` `../…` ``) literals, resolved against the
/// package directory `rel_dir`; those that climb out of the tree are dropped.
pub fn parent_refs(rel_dir: &Path, source: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for quote in ['"', '`'] {
        let opener = format!("{quote}../");
        let mut rest = source;
        while let Some(at) = rest.find(&opener) {
            let body = &rest[at + 1..];
            let end = body.find([quote, '\n']).unwrap_or(body.len());
            let literal = body[..end].trim_end_matches('/');
            if let Some(p) = normalize(&rel_dir.join(literal))
                && !p.as_os_str().is_empty()
            {
                out.push(p);
            }
            rest = &body[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    fn tree() -> Vec<PathBuf> {
        paths(&[
            "go.mod",
            "go.sum",
            "README.md",
            "testdata/shared.txt",
            "_fixtures/deep/f.bin",
            "alpha/a.go",
            "alpha/a_test.go",
            "alpha/golden.json",
            "alpha/testdata/x/y.txt",
            "alpha/inner/i.go",
            "alpha/inner/testdata/z.txt",
            "beta/b.go",
            "beta/testdata/words.txt",
            "gamma/g_test.go",
            "big/vendor/blob.bin",
            "docs/testdata/not-an-ancestor.txt",
        ])
    }

    #[test]
    fn a_package_gets_its_files_its_and_its_ancestors_unbuilt_dirs_and_module_files() {
        let pkgs = [Selected {
            rel_dir: Path::new("alpha"),
            test_sources: vec![],
        }];
        assert_eq!(
            package_files(tree(), &pkgs),
            paths(&[
                "go.mod",
                "go.sum",
                "testdata/shared.txt",
                "_fixtures/deep/f.bin",
                "alpha/a.go",
                "alpha/a_test.go",
                "alpha/golden.json",
                "alpha/testdata/x/y.txt",
            ])
        );
    }

    #[test]
    fn a_root_package_does_not_take_the_packages_below_it() {
        let pkgs = [Selected {
            rel_dir: Path::new(""),
            test_sources: vec![],
        }];
        assert_eq!(
            package_files(tree(), &pkgs),
            paths(&[
                "go.mod",
                "go.sum",
                "README.md",
                "testdata/shared.txt",
                "_fixtures/deep/f.bin"
            ])
        );
    }

    #[test]
    fn literals_naming_parent_paths_bring_those_paths() {
        let src =
            r#"os.ReadFile("../beta/testdata/words.txt"); x := `../README.md`; y := "../../../etc/passwd""#;
        let pkgs = [Selected {
            rel_dir: Path::new("gamma"),
            test_sources: vec![src.to_string()],
        }];
        assert_eq!(
            package_files(tree(), &pkgs),
            paths(&[
                "go.mod",
                "go.sum",
                "README.md",
                "testdata/shared.txt",
                "_fixtures/deep/f.bin",
                "beta/testdata/words.txt",
                "gamma/g_test.go",
            ])
        );
    }

    #[test]
    fn parent_refs_resolve_against_the_package_and_stay_inside() {
        let refs = parent_refs(
            Path::new("a/b"),
            "\"../c/d.txt\" \"../../\" `../e/` \"../../../out\" \"./x\"",
        );
        assert_eq!(refs, paths(&["a/c/d.txt", "a/e"]));
    }
}
