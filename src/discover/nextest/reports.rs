//! The JUnit report nextest itself wrote in an earlier run, where the workspace's nextest
//! config asks for one (`[profile.P.junit] path`): a first cargo-shard run in a workspace
//! that already runs nextest plans from those timings instead of from estimates.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The most recently written of the reports `config` makes nextest write, under its store
/// directory (`[store] dir`, relative to the workspace root; else `<target>/nextest`).
pub fn newest(config: &toml::Table, workspace_root: &Path, target_dir: &Path) -> Option<PathBuf> {
    let store = config
        .get("store")
        .and_then(|s| s.get("dir"))
        .and_then(toml::Value::as_str)
        .map_or_else(|| target_dir.join("nextest"), |dir| workspace_root.join(dir));
    candidates(config, &store)
        .into_iter()
        .filter_map(|path| {
            let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
            Some((meta.modified().ok()?, path))
        })
        .max_by_key(|(written, _)| *written)
        .map(|(_, path)| path)
}

/// Where each profile of `config` writes its JUnit report: `<store>/<profile>/<path>`, the
/// path its own `junit.path`, else that of the profile it `inherits`, else the default
/// profile's, which every profile inherits.
fn candidates(config: &toml::Table, store: &Path) -> Vec<PathBuf> {
    let profiles = config.get("profile").and_then(toml::Value::as_table);
    let profile = |name: &str| profiles.and_then(|ps| ps.get(name));
    let own = |p: &toml::Value| {
        p.get("junit")
            .and_then(|j| j.get("path"))
            .and_then(toml::Value::as_str)
            .map(str::to_owned)
    };
    let path_of = |name: &str| {
        let mut at = name.to_owned();
        // A chain of `inherits`, bounded: a cycle is nextest's to report, not ours to follow.
        for _ in 0..8 {
            let Some(p) = profile(&at) else { break };
            if let Some(path) = own(p) {
                return Some(path);
            }
            match p.get("inherits").and_then(toml::Value::as_str) {
                Some(parent) => at = parent.to_owned(),
                None => break,
            }
        }
        profile("default").and_then(own)
    };
    let mut names: BTreeSet<&str> = profiles
        .map(|ps| ps.keys().map(String::as_str).collect())
        .unwrap_or_default();
    names.insert("default");
    names
        .into_iter()
        .filter_map(|name| Some(store.join(name).join(path_of(name)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn each_profile_writes_where_its_own_or_inherited_junit_path_says() {
        let c = config(
            "[profile.default.junit]\npath = \"junit.xml\"\n\
             [profile.ci.junit]\npath = \"reports/ci.xml\"\n\
             [profile.nightly]\ninherits = \"ci\"\n\
             [profile.quick]\nretries = 1\n",
        );
        let store = Path::new("/w/target/nextest");
        assert_eq!(
            candidates(&c, store),
            [
                store.join("ci/reports/ci.xml"),
                store.join("default/junit.xml"),
                store.join("nightly/reports/ci.xml"),
                store.join("quick/junit.xml"),
            ]
        );
        assert_eq!(
            candidates(&config("[profile.ci]\nretries = 2\n"), store),
            Vec::<PathBuf>::new()
        );
        assert_eq!(candidates(&toml::Table::new(), store), Vec::<PathBuf>::new());
    }

    #[test]
    fn the_newest_report_that_exists_is_taken_from_the_store_the_config_names() {
        let dir = tempfile::tempdir().unwrap();
        let c =
            config("[store]\ndir = \"out/nx\"\n[profile.default.junit]\npath = \"j.xml\"\n[profile.ci]\n");
        let (root, target) = (dir.path(), dir.path().join("target"));
        assert_eq!(newest(&c, root, &target), None, "nothing written yet");
        let write = |profile: &str| {
            let p = root.join("out/nx").join(profile).join("j.xml");
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "<testsuites/>").unwrap();
            p
        };
        let old = write("default");
        let new = write("ci");
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(past)
            .unwrap();
        assert_eq!(newest(&c, root, &target), Some(new));
        // Without `[store] dir`, the store is the target directory's.
        let plain = config("[profile.default.junit]\npath = \"j.xml\"\n");
        assert_eq!(newest(&plain, root, &target), None);
    }
}
