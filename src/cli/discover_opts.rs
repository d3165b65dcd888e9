//! Turns command-line arguments into each discoverer's options.

use std::path::Path;

use super::nextest_flags::NextestRun;
use super::{NextestRunArgs, RunIgnored};
use crate::discover::nextest::{NextestOptions, RunIgnored as NxIgnored};

pub fn nextest(a: &NextestRunArgs, checked: &NextestRun, out_dir: &Path, quiet: bool) -> NextestOptions {
    let s = &a.select;
    NextestOptions {
        // cargo-nextest runs from the workspace root: a relative path would not resolve there.
        manifest_path: s
            .manifest_path
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        packages: s.package.clone(),
        workspace: s.workspace,
        features: s.features.clone(),
        all_features: s.all_features,
        no_default_features: s.no_default_features,
        release: s.release,
        cargo_profile: s.cargo_profile.clone(),
        filtersets: s.filterset.clone(),
        run_ignored: match (checked.ignored, s.run_ignored) {
            // libtest's `-- --ignored` / `-- --include-ignored`, as nextest reads them.
            (Some(false), _) => NxIgnored::Only,
            (Some(true), _) => NxIgnored::All,
            (None, RunIgnored::Default) => NxIgnored::Default,
            (None, RunIgnored::Only) => NxIgnored::Only,
            (None, RunIgnored::All) => NxIgnored::All,
        },
        // The run's fail-fast also stops each shard's nextest at the same count.
        passthrough: checked
            .max_fail
            .map(|n| vec!["--max-fail".to_string(), n.to_string()])
            .unwrap_or_default(),
        list_filters: checked.list_filters.clone(),
        profile: checked.profile.clone(),
        out_dir: Some(out_dir.to_path_buf()),
        build_jobs: None,
        echo_build_output: !quiet,
        doctests: a.nextest.doctests,
    }
}
