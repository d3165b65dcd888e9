//! `cargo shard gc`: remove what runs left behind (containers, networks, volumes carrying our
//! run label) on every host at once; with `--cache`, the hosts' payload caches instead.

use futures_util::future::join_all;

use super::GcArgs;
use super::error::Error;
use super::hosts::select_hosts;
use crate::config::Host;
use crate::engine::{CONNECT_TIMEOUT, Engine, EngineError, Removed};
use crate::exit;

/// Cleans every host at once; exit 102 when one could not be reached or cleaned.
pub async fn run(a: GcArgs) -> Result<u8, Error> {
    let hosts = select_hosts(&a.hosts)?;
    let run = a.run.as_deref();
    let results = join_all(hosts.iter().map(|h| gc_host(h, run, a.cache))).await;
    let mut code = exit::OK;
    for (h, r) in hosts.iter().zip(results) {
        match r {
            Ok(removed) => println!("{}", summary(&h.name, &removed)),
            Err(EngineError::Unreachable { reason, .. }) => {
                eprintln!("host {} ({}): unreachable: {reason}", h.name, h.endpoint);
                code = exit::INFRA_FAILED;
            }
            Err(e) => {
                eprintln!("host {} ({}): {e}", h.name, h.endpoint);
                code = exit::INFRA_FAILED;
            }
        }
    }
    Ok(code)
}

/// Per-run objects, or with `--cache` only the payload caches (which carry no run label):
/// emptying a cache must not stop runs in progress, whose parts stay held until they end.
async fn gc_host(h: &Host, run: Option<&str>, cache: bool) -> Result<Removed, EngineError> {
    let engine = Engine::connect_with_timeout(h, CONNECT_TIMEOUT).await?;
    if cache {
        return Ok(Removed {
            volumes: engine.remove_cache().await?,
            ..Default::default()
        });
    }
    engine.remove_labelled(run).await
}

/// `e1: removed 2 containers (a, b), 0 networks, 1 volume (v)`.
pub fn summary(host: &str, r: &Removed) -> String {
    let part = |n: &[String], one: &str, many: &str| {
        let word = if n.len() == 1 { one } else { many };
        if n.is_empty() {
            format!("0 {word}")
        } else {
            format!("{} {word} ({})", n.len(), n.join(", "))
        }
    };
    format!(
        "{host}: removed {}, {}, {}",
        part(&r.containers, "container", "containers"),
        part(&r.networks, "network", "networks"),
        part(&r.volumes, "volume", "volumes")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_names() {
        let r = Removed {
            containers: vec!["a".into(), "b".into()],
            networks: vec![],
            volumes: vec!["v".into()],
        };
        assert_eq!(
            summary("e1", &r),
            "e1: removed 2 containers (a, b), 0 networks, 1 volume (v)"
        );
    }
}
