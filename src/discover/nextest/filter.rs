//! The per-shard nextest tool-config file: an exact test list as a `default-filter`, kept
//! out of argv because one argument is limited to 128 KiB.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::test_result::TestId;

/// The profile the shard's tool-config file defines and the run selects with `-P`.
pub const PROFILE: &str = "cargo-shard";
/// Tool name nextest reports in errors about the tool-config file.
pub const TOOL: &str = "cargo-shard";

/// Quotes `s` as a filterset name-matcher string, to follow `=` in `test(=…)`.
///
/// nextest reads such a string up to an unescaped `)` or `,` and accepts `\u{…}` escapes;
/// every character outside a small safe set is written that way, so parentheses, commas,
/// backslashes, slashes, spaces, control and non-ASCII characters all survive.
pub fn quote_matcher(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-' | '#' | '<' | '>') {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

/// A filterset matching exactly `tests`, grouped by binary to stay small:
/// `(binary_id(=B) & (test(=a) | test(=b))) | …`. An empty list matches nothing.
pub fn exact_filterset(tests: &[TestId]) -> String {
    let mut by_binary: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in tests {
        by_binary.entry(&t.group).or_default().push(&t.name);
    }
    if by_binary.is_empty() {
        return "none()".to_owned();
    }
    let groups: Vec<String> = by_binary
        .into_iter()
        .map(|(binary, names)| {
            let names: Vec<String> = names
                .iter()
                .map(|n| format!("test(={})", quote_matcher(n)))
                .collect();
            format!(
                "(binary_id(={}) & ({}))",
                quote_matcher(binary),
                names.join(" | ")
            )
        })
        .collect();
    groups.join(" | ")
}

/// The tool-config TOML for one shard: store under `root`, the exact filter, JUnit output,
/// no retries or fail-fast (the scheduler owns both), and a hard per-test timeout if set.
/// With `ordered`, nextest starts the tests in the order given ([`priority_overrides`]).
pub fn tool_config(root: &str, tests: &[TestId], test_timeout: Option<Duration>, ordered: bool) -> String {
    use toml::Value;
    let mut profile = shard_profile(tests, test_timeout);
    profile.insert("fail-fast".into(), Value::Boolean(false));
    profile.insert("retries".into(), Value::Integer(0));
    if ordered {
        profile.insert("overrides".into(), Value::Array(priority_overrides(tests)));
    }
    let mut doc = store_config(root);
    doc.insert("profile".into(), Value::Table(profiles(profile)));
    toml::to_string(&doc).expect("a table of strings, booleans and integers always serializes")
}

/// Under the user's profile `name`: the tool-config file holds only the store, and the
/// shard's copy of the workspace config (`repo_config`, parsed) gets our exact filter and
/// JUnit path in that very profile. nextest does not carry a profile's overrides through
/// `inherits`, so a profile of our own inheriting theirs would drop their per-test
/// settings; theirs, narrowed, keeps retries, timeouts, test groups and overrides. With
/// `ordered`, our priorities go after their overrides, which win.
pub fn with_user_profile(
    root: &str,
    tests: &[TestId],
    test_timeout: Option<Duration>,
    ordered: bool,
    name: &str,
    repo_config: &toml::Table,
) -> (String, String) {
    use toml::Value;
    let mut doc = repo_config.clone();
    let profiles = doc
        .entry("profile")
        .or_insert_with(|| Value::Table(toml::Table::new()));
    if let Value::Table(profiles) = profiles {
        let profile = profiles
            .entry(name)
            .or_insert_with(|| Value::Table(toml::Table::new()));
        if let Value::Table(profile) = profile {
            profile.extend(shard_profile(tests, test_timeout));
            if ordered {
                let overrides = profile
                    .entry("overrides")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(overrides) = overrides {
                    overrides.extend(priority_overrides(tests));
                }
            }
        }
    }
    let repo = toml::to_string(&doc).expect("a parsed TOML table serializes again");
    let tool = toml::to_string(&store_config(root)).expect("a table of strings always serializes");
    (tool, repo)
}

/// Per-test `priority` overrides under which nextest starts `tests` in the order given (the
/// planner's: longest expected first), so a shard running tests at once ends when its work
/// does, not when a long test that happened to sort last does (nextest's own order is by
/// name). Levels run from 100 down to -100; past 201 tests, neighbours share a level.
/// nextest reads `priority` from 0.9.91 on; older ones ignore the key.
pub fn priority_overrides(tests: &[TestId]) -> Vec<toml::Value> {
    let n = tests.len();
    if n < 2 {
        return Vec::new();
    }
    let mut levels: Vec<(i64, Vec<TestId>)> = Vec::new();
    for (i, t) in tests.iter().enumerate() {
        let level = 100 - (i * 201 / n) as i64;
        match levels.last_mut() {
            Some((l, same)) if *l == level => same.push(t.clone()),
            _ => levels.push((level, vec![t.clone()])),
        }
    }
    levels
        .into_iter()
        .map(|(level, same)| {
            let mut o = toml::Table::new();
            o.insert("filter".into(), toml::Value::String(exact_filterset(&same)));
            o.insert("priority".into(), toml::Value::Integer(level));
            toml::Value::Table(o)
        })
        .collect()
}

/// Whether a nextest config file orders tests itself (`priority` in any profile's
/// overrides): then the shards keep its order rather than impose the planner's.
pub fn sets_priorities(config: &toml::Table) -> bool {
    let Some(toml::Value::Table(profiles)) = config.get("profile") else {
        return false;
    };
    profiles.values().any(|p| {
        p.get("overrides")
            .and_then(toml::Value::as_array)
            .is_some_and(|os| os.iter().any(|o| o.get("priority").is_some()))
    })
}

fn shard_profile(tests: &[TestId], test_timeout: Option<Duration>) -> toml::Table {
    use toml::{Table, Value};
    let mut profile = Table::new();
    profile.insert("default-filter".into(), Value::String(exact_filterset(tests)));
    if let Some(timeout) = test_timeout {
        let mut slow = Table::new();
        slow.insert(
            "period".into(),
            Value::String(format!("{}ms", timeout.as_millis().max(1))),
        );
        slow.insert("terminate-after".into(), Value::Integer(1));
        slow.insert("grace-period".into(), Value::String("2s".into()));
        profile.insert("slow-timeout".into(), Value::Table(slow));
    }
    let mut junit = Table::new();
    junit.insert("path".into(), Value::String("junit.xml".into()));
    profile.insert("junit".into(), Value::Table(junit));
    profile
}

fn profiles(profile: toml::Table) -> toml::Table {
    let mut profiles = toml::Table::new();
    profiles.insert(PROFILE.into(), toml::Value::Table(profile));
    profiles
}

fn store_config(root: &str) -> toml::Table {
    let mut store = toml::Table::new();
    store.insert("dir".into(), toml::Value::String(store_dir(root)));
    let mut doc = toml::Table::new();
    doc.insert("store".into(), toml::Value::Table(store));
    doc
}

/// Where nextest keeps its run data in a shard (set by `[store] dir`, so it does not depend
/// on where the archive's target directory was).
pub fn store_dir(root: &str) -> String {
    format!("{root}/store")
}

/// The JUnit file a shard running under `profile` leaves behind.
pub fn junit_path(root: &str, profile: &str) -> String {
    format!("{}/{profile}/junit.xml", store_dir(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_stay_readable() {
        assert_eq!(quote_matcher("tests::nested::works"), "tests::nested::works");
        assert_eq!(quote_matcher("edge::r#type"), "edge::r#type");
    }

    #[test]
    fn special_characters_become_unicode_escapes() {
        assert_eq!(quote_matcher("a(b),c"), "a\\u{28}b\\u{29}\\u{2c}c");
        assert_eq!(quote_matcher("größe"), "gr\\u{f6}\\u{df}e");
        assert_eq!(quote_matcher(" x\\/|"), "\\u{20}x\\u{5c}\\u{2f}\\u{7c}");
    }

    #[test]
    fn filterset_groups_tests_by_binary() {
        let tests = [
            TestId::new("b::it", "x"),
            TestId::new("a", "t::one"),
            TestId::new("b::it", "y"),
        ];
        assert_eq!(
            exact_filterset(&tests),
            "(binary_id(=a) & (test(=t::one))) | (binary_id(=b::it) & (test(=x) | test(=y)))"
        );
        assert_eq!(exact_filterset(&[]), "none()");
    }

    #[test]
    fn tool_config_is_valid_toml_with_the_filter_intact() {
        let tests = [TestId::new("a", "q\"uote\\d")];
        let text = tool_config("/r o\"ot", &tests, Some(Duration::from_secs(30)), false);
        let doc: toml::Table = text.parse().unwrap();
        let profile = doc["profile"][PROFILE].as_table().unwrap();
        assert_eq!(
            profile["default-filter"].as_str().unwrap(),
            "(binary_id(=a) & (test(=q\\u{22}uote\\u{5c}d)))"
        );
        assert_eq!(profile["slow-timeout"]["period"].as_str(), Some("30000ms"));
        assert_eq!(profile["junit"]["path"].as_str(), Some("junit.xml"));
        assert_eq!(doc["store"]["dir"].as_str(), Some("/r o\"ot/store"));
        assert_eq!(profile["retries"].as_integer(), Some(0));
        assert!(profile.get("overrides").is_none());
    }

    #[test]
    fn priorities_follow_the_given_order_and_share_levels_only_past_201_tests() {
        let tests = [
            TestId::new("b", "long"),
            TestId::new("a", "mid"),
            TestId::new("a", "short"),
        ];
        let doc: toml::Table = tool_config("/r", &tests, None, true).parse().unwrap();
        let overrides = doc["profile"][PROFILE]["overrides"].as_array().unwrap();
        let got: Vec<(&str, i64)> = overrides
            .iter()
            .map(|o| (o["filter"].as_str().unwrap(), o["priority"].as_integer().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("(binary_id(=b) & (test(=long)))", 100),
                ("(binary_id(=a) & (test(=mid)))", 33),
                ("(binary_id(=a) & (test(=short)))", -34),
            ]
        );
        assert!(priority_overrides(&tests[..1]).is_empty());
        let many: Vec<TestId> = (0..1000).map(|i| TestId::new("a", format!("t{i:04}"))).collect();
        let levels: Vec<i64> = priority_overrides(&many)
            .iter()
            .map(|o| o["priority"].as_integer().unwrap())
            .collect();
        assert_eq!(levels.len(), 201);
        assert_eq!((levels[0], levels[200]), (100, -100));
        assert!(levels.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn a_user_profile_keeps_its_settings_and_gets_the_exact_filter() {
        let repo: toml::Table =
            "[profile.ci]\nretries = 2\n[[profile.ci.overrides]]\nfilter = \"test(x)\"\nretries = 5\n"
                .parse()
                .unwrap();
        let (tool, config) = with_user_profile("/r", &[TestId::new("a", "t")], None, true, "ci", &repo);
        let tool: toml::Table = tool.parse().unwrap();
        assert_eq!(tool["store"]["dir"].as_str(), Some("/r/store"));
        assert!(tool.get("profile").is_none());
        let doc: toml::Table = config.parse().unwrap();
        let ci = doc["profile"]["ci"].as_table().unwrap();
        assert_eq!(ci["retries"].as_integer(), Some(2), "theirs kept");
        assert_eq!(ci["overrides"][0]["retries"].as_integer(), Some(5));
        assert_eq!(
            ci["default-filter"].as_str(),
            Some("(binary_id(=a) & (test(=t)))")
        );
        assert_eq!(ci["junit"]["path"].as_str(), Some("junit.xml"));
        // Ours after theirs: for each setting nextest takes the first override that matches.
        let overrides = ci["overrides"].as_array().unwrap();
        assert_eq!(overrides.len(), 1, "one test: no order to impose");
        let two = [TestId::new("a", "t"), TestId::new("a", "u")];
        let (_, config) = with_user_profile("/r", &two, None, true, "ci", &repo);
        let doc: toml::Table = config.parse().unwrap();
        let overrides = doc["profile"]["ci"]["overrides"].as_array().unwrap();
        assert_eq!(overrides.len(), 3);
        assert_eq!(overrides[0]["retries"].as_integer(), Some(5));
        assert_eq!(overrides[1]["priority"].as_integer(), Some(100));
    }

    #[test]
    fn a_config_with_priorities_of_its_own_keeps_its_order() {
        let own: toml::Table = "[[profile.default.overrides]]\nfilter = \"test(smoke)\"\npriority = 50\n"
            .parse()
            .unwrap();
        assert!(sets_priorities(&own));
        let two = [TestId::new("a", "t"), TestId::new("a", "u")];
        let (_, config) = with_user_profile("/r", &two, None, !sets_priorities(&own), "ci", &own);
        let doc: toml::Table = config.parse().unwrap();
        assert!(doc["profile"]["ci"].get("overrides").is_none());
        let plain: toml::Table = "[profile.ci]\nretries = 2\n".parse().unwrap();
        assert!(!sets_priorities(&plain));
        assert!(!sets_priorities(&toml::Table::new()));
    }
}
