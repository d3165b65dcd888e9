//! Engine addresses as `DOCKER_HOST` spells them: `unix://`, `tcp://`, `ssh://`, plus `local://`
//! for running shards as local processes.

/// Where an engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `unix:///path/to/docker.sock`.
    Unix {
        /// The socket, absolute.
        path: String,
    },
    /// `tcp://host[:port]` (2375 unless given), plain or TLS.
    Tcp {
        /// Name or address.
        host: String,
        /// The engine's port.
        port: u16,
    },
    /// `ssh://[user@]host[:port]`: the engine's socket through an ssh tunnel.
    Ssh {
        /// Login name (`$USER` unless given).
        user: String,
        /// Name or address.
        host: String,
        /// sshd's port (22 unless given).
        port: u16,
    },
    /// No engine: shards run as child processes of `cargo shard`.
    Local,
}

impl Endpoint {
    /// Whether the engine runs on this machine: a unix socket, or a loopback address (ssh
    /// included), or local processes.
    pub fn is_on_this_machine(&self) -> bool {
        match self {
            Endpoint::Unix { .. } | Endpoint::Local => true,
            Endpoint::Tcp { host, .. } | Endpoint::Ssh { host, .. } => is_loopback(host),
        }
    }
}

/// `localhost` or a loopback address.
pub(crate) fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// A `docker_host` that is not an address; the caller adds the file's location.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed docker_host {url:?}: {why}")]
pub struct EndpointError {
    /// The address as written.
    pub url: String,
    /// What is wrong with it.
    pub why: AddressError,
}

/// What is wrong with an engine address.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AddressError {
    /// No `scheme://`.
    #[error("expected unix://, tcp://, ssh:// or local://")]
    NoScheme,
    /// A scheme other than unix, tcp, ssh or local.
    #[error("unknown scheme {0:?}")]
    UnknownScheme(String),
    /// `unix://` with a relative path.
    #[error("unix socket path must be absolute")]
    RelativeSocket,
    /// `ssh://@host`.
    #[error("empty user before '@'")]
    EmptyUser,
    /// No host before the port.
    #[error("missing host")]
    MissingHost,
    /// `tcp://host/path`.
    #[error("unexpected path after host")]
    PathAfterHost,
    /// `[v6` without `]`.
    #[error("unclosed '['")]
    UnclosedBracket,
    /// Text after `[v6]` that is not `:port`.
    #[error("junk after ']'")]
    JunkAfterBracket,
    /// A port that is not a number up to 65535.
    #[error("bad port {0:?}")]
    BadPort(String),
    /// Port 0.
    #[error("port 0")]
    PortZero,
}

impl Endpoint {
    /// Parses a `DOCKER_HOST`-style URL; the error has no location.
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        let bad = |why: AddressError| EndpointError {
            url: url.to_string(),
            why,
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad(AddressError::NoScheme))?;
        match scheme {
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(bad(AddressError::RelativeSocket));
                }
                Ok(Endpoint::Unix {
                    path: rest.to_string(),
                })
            }
            "tcp" | "http" | "https" => {
                let (host, port) = split_host_port(rest.trim_end_matches('/'), 2375).map_err(bad)?;
                Ok(Endpoint::Tcp { host, port })
            }
            "ssh" => {
                let (user, hostport) = match rest.rsplit_once('@') {
                    Some((u, h)) if !u.is_empty() => (u.to_string(), h),
                    Some(_) => return Err(bad(AddressError::EmptyUser)),
                    None => (std::env::var("USER").unwrap_or_else(|_| "root".to_string()), rest),
                };
                let (host, port) = split_host_port(hostport.trim_end_matches('/'), 22).map_err(bad)?;
                Ok(Endpoint::Ssh { user, host, port })
            }
            "local" => Ok(Endpoint::Local),
            other => Err(bad(AddressError::UnknownScheme(other.to_string()))),
        }
    }
}

fn split_host_port(s: &str, default_port: u16) -> Result<(String, u16), AddressError> {
    if s.is_empty() {
        return Err(AddressError::MissingHost);
    }
    if s.contains('/') {
        return Err(AddressError::PathAfterHost);
    }
    // [v6]:port
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or(AddressError::UnclosedBracket)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| AddressError::BadPort(p.to_string()))?,
            None if after.is_empty() => default_port,
            None => return Err(AddressError::JunkAfterBracket),
        };
        return Ok((h.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => {
            if h.is_empty() {
                return Err(AddressError::MissingHost);
            }
            let port: u16 = p.parse().map_err(|_| AddressError::BadPort(p.to_string()))?;
            if port == 0 {
                return Err(AddressError::PortZero);
            }
            Ok((h.to_string(), port))
        }
        None => Ok((s.to_string(), default_port)),
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix { path } => write!(f, "unix://{path}"),
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Ssh { user, host, port } => write!(f, "ssh://{user}@{host}:{port}"),
            Endpoint::Local => f.write_str("local://"),
        }
    }
}

/// What to do with an ssh server's host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshHostKeyPolicy {
    /// The key must already be in known_hosts.
    Strict,
    /// Unknown keys are added to known_hosts; changed keys are refused.
    AcceptNew,
    /// Any key is accepted (test beds only).
    Off,
}

impl SshHostKeyPolicy {
    /// `host_key_check` as written in the hosts file.
    pub fn parse(s: &str) -> Result<Self, ChoiceError> {
        match s {
            "strict" | "yes" => Ok(Self::Strict),
            "accept-new" => Ok(Self::AcceptNew),
            "off" | "no" => Ok(Self::Off),
            other => Err(ChoiceError {
                key: "host_key_check",
                allowed: "\"strict\", \"accept-new\" or \"off\"",
                got: other.to_string(),
            }),
        }
    }
}

/// A key whose value must be one of a few words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key} must be {allowed}, got {got:?}")]
pub struct ChoiceError {
    /// The key.
    pub key: &'static str,
    /// The words it takes, as the message lists them.
    pub allowed: &'static str,
    /// What was written.
    pub got: String,
}
