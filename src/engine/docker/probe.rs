//! Probe answers kept on the host: whether an image (by id, its content hash) has a tool,
//! as the labels of an empty volume. A CI job starts without the last run's output
//! directory, so answers kept only on the build machine were asked again by every run: a
//! container created, filled, started, waited for and removed per host while the build
//! still needs the CPUs. An image id never changes its content, so an answer stays true;
//! the volumes carry the cache label, so `gc --cache` removes them, and eviction leaves them
//! alone (they hold nothing).

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::models::VolumeCreateRequest;

use super::DockerEngine;
use crate::config::CACHE_LABEL;
use crate::engine::EngineError;

/// Every probe volume's name starts so.
pub const PROBE_PREFIX: &str = "cargo-shard-probe-";
/// The cache label's value on a probe volume.
const PROBE_KIND: &str = "probe";
/// Labels: what was asked (`<image id> <tool>`) and the answer (`true` or `false`).
const ASKED_LABEL: &str = "dev.cargo-shard.probe";
const ANSWER_LABEL: &str = "dev.cargo-shard.probe-has";

/// The volume holding the answer for `tool` in image `image_id`.
pub fn probe_volume(image_id: &str, tool: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{image_id}\0{tool}").as_bytes());
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    format!("{PROBE_PREFIX}{hex}")
}

impl DockerEngine {
    /// The kept answer to "has image `image_id` got `tool`?", `None` when none is kept (or
    /// the volume found does not say it answers exactly that).
    pub async fn kept_probe(&self, image_id: &str, tool: &str) -> Result<Option<bool>, EngineError> {
        match self.docker.inspect_volume(&probe_volume(image_id, tool)).await {
            Ok(v) => Ok(answer(&v.labels, image_id, tool)),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.failed("inspect probe volume", e)),
        }
    }

    /// Keeps `has` as the answer for `tool` in image `image_id`. Two runs keeping the same
    /// answer at once both succeed (Docker returns the volume that exists).
    pub async fn keep_probe(&self, image_id: &str, tool: &str, has: bool) -> Result<(), EngineError> {
        let request = VolumeCreateRequest {
            name: Some(probe_volume(image_id, tool)),
            labels: Some(labels(image_id, tool, has)),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| self.failed("create probe volume", e))
    }
}

fn labels(image_id: &str, tool: &str, has: bool) -> HashMap<String, String> {
    HashMap::from([
        (CACHE_LABEL.to_string(), PROBE_KIND.to_string()),
        (ASKED_LABEL.to_string(), format!("{image_id} {tool}")),
        (ANSWER_LABEL.to_string(), has.to_string()),
    ])
}

/// The answer `labels` hold for exactly (`image_id`, `tool`).
fn answer(labels: &HashMap<String, String>, image_id: &str, tool: &str) -> Option<bool> {
    if labels.get(ASKED_LABEL)? != &format!("{image_id} {tool}") {
        return None;
    }
    labels.get(ANSWER_LABEL)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_read_back_only_for_the_question_it_answers() {
        let kept = labels("sha256:abc", "cargo-nextest", false);
        assert_eq!(answer(&kept, "sha256:abc", "cargo-nextest"), Some(false));
        assert_eq!(
            answer(&labels("sha256:abc", "go", true), "sha256:abc", "go"),
            Some(true)
        );
        assert_eq!(
            answer(&kept, "sha256:abd", "cargo-nextest"),
            None,
            "another image"
        );
        assert_eq!(answer(&kept, "sha256:abc", "go"), None, "another tool");
        let mut broken = kept.clone();
        broken.insert(ANSWER_LABEL.to_string(), "maybe".to_string());
        assert_eq!(answer(&broken, "sha256:abc", "cargo-nextest"), None);
        assert_eq!(answer(&HashMap::new(), "sha256:abc", "cargo-nextest"), None);
    }

    #[test]
    fn each_question_has_its_own_volume() {
        let a = probe_volume("sha256:abc", "cargo-nextest");
        assert!(a.starts_with(PROBE_PREFIX));
        assert_ne!(a, probe_volume("sha256:abc", "go"));
        assert_ne!(a, probe_volume("sha256:abd", "cargo-nextest"));
        assert_eq!(a, probe_volume("sha256:abc", "cargo-nextest"));
    }
}
