//! The hosts file's raw tables checked and resolved into [`Host`]s: `[defaults]` and
//! `[[registry]]` once, then each `[[host]]`, one step per setting.

use std::path::Path;

use toml::Spanned;

use super::{
    ConfigError, DEFAULT_CACHE_SIZE, DEFAULT_IMAGE, Endpoint, Host, PullPolicy, RawDefaults, RawFile,
    RawHost, RawRegistry, RegistryAuth, SshHostKeyPolicy, SshOptions, absolute, parse_size, registry,
    resolve_tls,
};

/// `slots` and `jobs` share one bound, so one message names it for both.
const MAX_PER_HOST: usize = {
    assert!(crate::limits::MAX_SLOTS == crate::limits::MAX_JOBS);
    crate::limits::MAX_SLOTS
};

/// The hosts file's text and place: errors point into it, relative paths resolve against it.
pub(super) struct Resolver<'a> {
    pub text: &'a str,
    pub origin: &'a str,
    pub base: &'a Path,
}

/// `[defaults]` and `[[registry]]`, checked once and applied to every host.
pub(super) struct Defaults<'a> {
    raw: &'a RawDefaults,
    pull: PullPolicy,
    registries: Vec<RegistryAuth>,
    slots: usize,
    jobs: Option<usize>,
    cache_size: u64,
}

impl Resolver<'_> {
    fn at(&self, span: std::ops::Range<usize>, msg: String) -> ConfigError {
        ConfigError::at(self.text, self.origin, span, msg)
    }

    /// A count between 1 and [`MAX_PER_HOST`].
    fn positive(&self, v: &Option<Spanned<i64>>, what: &str) -> Result<Option<usize>, ConfigError> {
        match v {
            None => Ok(None),
            Some(s) if *s.get_ref() > MAX_PER_HOST as i64 => Err(self.at(
                s.span(),
                format!("`{what}` must be at most {MAX_PER_HOST}, got {}", s.get_ref()),
            )),
            Some(s) if *s.get_ref() >= 1 => Ok(Some(*s.get_ref() as usize)),
            Some(s) => Err(self.at(
                s.span(),
                format!("`{what}` must be at least 1, got {}", s.get_ref()),
            )),
        }
    }

    fn pull(&self, v: &Option<Spanned<String>>) -> Result<Option<PullPolicy>, ConfigError> {
        v.as_ref()
            .map(|s| PullPolicy::parse(s.get_ref()).map_err(|e| self.at(s.span(), e.to_string())))
            .transpose()
    }

    fn size(&self, v: &Option<Spanned<String>>) -> Result<Option<u64>, ConfigError> {
        v.as_ref()
            .map(|s| parse_size(s.get_ref()).map_err(|msg| self.at(s.span(), format!("`cache_size`: {msg}"))))
            .transpose()
    }

    pub(super) fn defaults<'r>(&self, raw: &'r RawFile) -> Result<Defaults<'r>, ConfigError> {
        let d = &raw.defaults;
        let pull = self.pull(&d.pull)?.unwrap_or_default();
        let registries = raw
            .registry
            .iter()
            .map(|r| self.registry(r))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Defaults {
            raw: d,
            pull,
            registries,
            slots: self.positive(&d.slots, "slots")?.unwrap_or(1),
            jobs: self.positive(&d.jobs, "jobs")?,
            cache_size: self.size(&d.cache_size)?.unwrap_or(DEFAULT_CACHE_SIZE),
        })
    }

    fn registry(&self, r: &RawRegistry) -> Result<RegistryAuth, ConfigError> {
        let password = match (&r.password_env, &r.password_file) {
            (Some(v), None) => Ok(registry::PasswordSource::Env(v.clone())),
            (None, Some(p)) => Ok(registry::PasswordSource::File(absolute(self.base, p))),
            _ => Err(self.at(
                r.server.span(),
                "a [[registry]] needs exactly one of `password_env` or `password_file`".to_string(),
            )),
        }?;
        Ok(RegistryAuth {
            server: r.server.get_ref().clone(),
            username: r.username.clone(),
            password,
        })
    }

    /// One `[[host]]` with `d` filled in; `earlier` are the hosts before it, for duplicates.
    pub(super) fn host(&self, h: &RawHost, d: &Defaults, earlier: &[Host]) -> Result<Host, ConfigError> {
        let name = self.host_name(h, earlier)?;
        let endpoint = Endpoint::parse(h.docker_host.get_ref())
            .map_err(|e| self.at(h.docker_host.span(), e.to_string()))?;
        let weight = self.weight(h)?;
        let ssh = self.ssh_options(h)?;
        let insecure = h.insecure.unwrap_or(false);
        let tls = resolve_tls(h, self.base).map_err(|msg| self.at(h.docker_host.span(), msg))?;
        self.check_plain_tcp(h, &endpoint, tls.is_some() || insecure)?;
        let r = d.raw;
        Ok(Host {
            name,
            endpoint,
            slots: self.positive(&h.slots, "slots")?.unwrap_or(d.slots),
            test_threads: self.positive(&h.jobs, "jobs")?.or(d.jobs).unwrap_or(1),
            test_threads_auto: h.jobs.is_none() && d.jobs.is_none(),
            weight,
            image: (h.image.clone().or_else(|| r.image.clone())).unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
            network: (h.network.clone().or_else(|| r.network.clone())).unwrap_or_else(|| "none".to_string()),
            cache_size: self.size(&h.cache_size)?.unwrap_or(d.cache_size),
            early_slots: h.early_slots.or(r.early_slots),
            share_container: h.share_container.or(r.share_container),
            slots_shared: 1,
            env: r.env.clone().into_iter().chain(h.env.clone()).collect(),
            labels: r.labels.clone().into_iter().chain(h.labels.clone()).collect(),
            insecure,
            tls,
            ssh,
            pull: self.pull(&h.pull)?.unwrap_or(d.pull),
            registries: d.registries.clone(),
        })
    }

    fn host_name(&self, h: &RawHost, earlier: &[Host]) -> Result<String, ConfigError> {
        let name = h.name.get_ref().trim().to_string();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(self.at(
                h.name.span(),
                format!(
                    "host name {:?} must be non-empty and without spaces",
                    h.name.get_ref()
                ),
            ));
        }
        if earlier.iter().any(|o| o.name == name) {
            return Err(self.at(h.name.span(), format!("duplicate host name \"{name}\"")));
        }
        Ok(name)
    }

    fn weight(&self, h: &RawHost) -> Result<f64, ConfigError> {
        match &h.weight {
            None => Ok(1.0),
            Some(w) if w.get_ref().is_finite() && *w.get_ref() > 0.0 => Ok(*w.get_ref()),
            Some(w) => Err(self.at(
                w.span(),
                format!("`weight` must be a positive number, got {}", w.get_ref()),
            )),
        }
    }

    fn ssh_options(&self, h: &RawHost) -> Result<SshOptions, ConfigError> {
        let host_key_check = match &h.host_key_check {
            None => SshHostKeyPolicy::AcceptNew,
            Some(s) => SshHostKeyPolicy::parse(s.get_ref()).map_err(|e| self.at(s.span(), e.to_string()))?,
        };
        Ok(SshOptions {
            identity: h.identity.as_ref().map(|p| absolute(self.base, p)),
            known_hosts: h.known_hosts.as_ref().map(|p| absolute(self.base, p)),
            host_key_check,
            remote_socket: h
                .remote_socket
                .clone()
                .unwrap_or_else(|| "/var/run/docker.sock".to_string()),
        })
    }

    /// Plain tcp only to a loopback address, unless TLS is set up or `insecure = true`.
    fn check_plain_tcp(&self, h: &RawHost, endpoint: &Endpoint, secured: bool) -> Result<(), ConfigError> {
        let Endpoint::Tcp { host, .. } = endpoint else {
            return Ok(());
        };
        if secured || super::endpoint::is_loopback(host) {
            return Ok(());
        }
        Err(self.at(
            h.docker_host.span(),
            format!(
                "plain tcp to non-loopback {host} without TLS: set tls_verify/cert_path, or `insecure = true`"
            ),
        ))
    }
}
