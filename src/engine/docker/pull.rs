//! Pulling a host's image from its registry at the start of a run, with the registry's own
//! reason when it refuses (unauthorized, manifest unknown) and a line per finished layer.

#![warn(missing_docs)]

use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use super::DockerEngine;
use crate::config::registry::Credentials;

impl DockerEngine {
    /// Pulls `image` (`name[:tag]`, default tag `latest`). `progress` receives short status
    /// lines. The error is the registry's message, with the password masked should it echo it.
    pub async fn pull(
        &self,
        image: &str,
        creds: Option<&Credentials>,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<(), String> {
        let (name, tag) = split_tag(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(name)
            .tag(tag)
            .build();
        let auth = creds.map(|c| DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(c.server.clone()),
            ..Default::default()
        });
        let mask = |s: String| match creds {
            Some(c) if !c.password.is_empty() => s.replace(&c.password, "[redacted]"),
            _ => s,
        };
        let mut stream = self.client().create_image(Some(options), None, auth);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| mask(registry_reason(&e)))?;
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(mask(detail));
            }
            let status = info.status.unwrap_or_default();
            if status == "Pull complete" || status.starts_with("Digest:") || status.starts_with("Status:") {
                let id = info.id.map(|i| format!("{i}: ")).unwrap_or_default();
                progress(&mask(format!("{id}{status}")));
            }
        }
        Ok(())
    }
}

impl DockerEngine {
    /// Whether the registry would serve `image` with these credentials, without pulling it
    /// (the engine asks the registry for the image's manifest).
    pub async fn pullable(&self, image: &str, creds: Option<&Credentials>) -> Result<(), String> {
        let auth = creds.map(|c| DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(c.server.clone()),
            ..Default::default()
        });
        self.client()
            .inspect_registry_image(image, auth)
            .await
            .map(|_| ())
            .map_err(|e| match creds {
                Some(c) if !c.password.is_empty() => registry_reason(&e).replace(&c.password, "[redacted]"),
                _ => registry_reason(&e),
            })
    }
}

/// `name:tag` → (name, tag); a `:` in the registry's port is not a tag.
fn split_tag(image: &str) -> (&str, &str) {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

/// What the engine said the registry answered, without bollard's wrapping.
fn registry_reason(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn tags_split_from_names_but_not_from_ports() {
        assert_eq!(
            split_tag("127.0.0.6:5000/shard/base:1"),
            ("127.0.0.6:5000/shard/base", "1")
        );
        assert_eq!(
            split_tag("127.0.0.6:5000/shard/base"),
            ("127.0.0.6:5000/shard/base", "latest")
        );
        assert_eq!(split_tag("rust"), ("rust", "latest"));
    }
}
