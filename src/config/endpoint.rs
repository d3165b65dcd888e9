//! Engine addresses as `DOCKER_HOST` spells them: `unix://`, `tcp://`, `ssh://`, plus `local://`
//! for running shards as local processes.

/// Where an engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix {
        path: String,
    },
    Tcp {
        host: String,
        port: u16,
    },
    Ssh {
        user: String,
        host: String,
        port: u16,
    },
    /// No engine: shards run as child processes of `cargo shard`.
    Local,
}

impl Endpoint {
    /// Parses a `DOCKER_HOST`-style URL; the error is a message without location.
    pub fn parse(url: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("malformed docker_host {url:?}: {why}");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected unix://, tcp://, ssh:// or local://"))?;
        match scheme {
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(bad("unix socket path must be absolute"));
                }
                Ok(Endpoint::Unix {
                    path: rest.to_string(),
                })
            }
            "tcp" | "http" | "https" => {
                let (host, port) = split_host_port(rest.trim_end_matches('/'), 2375).map_err(|w| bad(&w))?;
                Ok(Endpoint::Tcp { host, port })
            }
            "ssh" => {
                let (user, hostport) = match rest.rsplit_once('@') {
                    Some((u, h)) if !u.is_empty() => (u.to_string(), h),
                    Some(_) => return Err(bad("empty user before '@'")),
                    None => (std::env::var("USER").unwrap_or_else(|_| "root".to_string()), rest),
                };
                let (host, port) =
                    split_host_port(hostport.trim_end_matches('/'), 22).map_err(|w| bad(&w))?;
                Ok(Endpoint::Ssh { user, host, port })
            }
            "local" => Ok(Endpoint::Local),
            other => Err(bad(&format!("unknown scheme {other:?}"))),
        }
    }
}

fn split_host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    if s.is_empty() {
        return Err("missing host".to_string());
    }
    if s.contains('/') {
        return Err("unexpected path after host".to_string());
    }
    // [v6]:port
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("unclosed '['")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
            None if after.is_empty() => default_port,
            None => return Err("junk after ']'".to_string()),
        };
        return Ok((h.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => {
            if h.is_empty() {
                return Err("missing host".to_string());
            }
            let port: u16 = p.parse().map_err(|_| format!("bad port {p:?}"))?;
            if port == 0 {
                return Err("port 0".to_string());
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
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "strict" | "yes" => Ok(Self::Strict),
            "accept-new" => Ok(Self::AcceptNew),
            "off" | "no" => Ok(Self::Off),
            other => Err(format!(
                "host_key_check must be \"strict\", \"accept-new\" or \"off\", got {other:?}"
            )),
        }
    }
}
