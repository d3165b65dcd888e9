//! Turns command-line arguments into each discoverer's options.

use std::path::Path;

use super::{NextestRunArgs, RunIgnored};
use crate::discover::nextest::{NextestOptions, RunIgnored as NxIgnored};

pub fn nextest(a: &NextestRunArgs, out_dir: &Path, quiet: bool) -> NextestOptions {
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
        run_ignored: match s.run_ignored {
            RunIgnored::Default => NxIgnored::Default,
            RunIgnored::Only => NxIgnored::Only,
            RunIgnored::All => NxIgnored::All,
        },
        passthrough: a.passthrough.clone(),
        out_dir: Some(out_dir.to_path_buf()),
        build_jobs: None,
        echo_build_output: !quiet,
    }
}
