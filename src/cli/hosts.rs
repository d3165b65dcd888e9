//! `cargo shard hosts`: check every engine at once and show what each offers, so a bad key or
//! a dead daemon is found before a run depends on it.

use std::time::Duration;

use futures_util::future::join_all;

use super::backend::HostsError;
use super::error::Error;
use super::{HostsArgs, HostsOpt};
use crate::config::registry::credentials;
use crate::config::{Host, PullPolicy};
use crate::engine::{Engine, EngineError, EngineInfo};
use crate::exit;

/// The hosts a subcommand works on: the hosts file (or the environment's default) narrowed
/// by `--only-host`.
pub(super) fn select_hosts(opt: &HostsOpt) -> Result<Vec<Host>, HostsError> {
    super::backend::load_hosts(opt).map(|(config, _)| config.hosts)
}

/// One line of the table: a host and what checking it gave.
#[derive(Debug, Clone)]
pub struct HostRow {
    pub name: String,
    pub endpoint: String,
    pub slots: usize,
    pub outcome: Result<EngineInfo, String>,
    /// For a missing image that may be pulled: whether its registry would serve it.
    pub pullable: Option<Result<(), String>>,
}

/// Checks every host; exit 102 when one cannot take a shard.
pub async fn run(a: HostsArgs) -> Result<u8, Error> {
    let mut hosts = select_hosts(&a.hosts)?;
    // The image a run would use: a `[job]` image beside the hosts replaces theirs.
    let job = super::job_setup::file_job(&a.hosts).map_err(HostsError::Config)?;
    super::job_setup::give_image(job.image.as_deref(), &a.hosts, &mut hosts);
    let rows = join_all(hosts.iter().map(|h| check(h, a.timeout))).await;
    print!("{}", render_table(&rows));
    let mut code = exit::OK;
    for (r, h) in rows.iter().zip(&hosts) {
        match &r.outcome {
            Err(reason) => eprintln!("host {} ({}): unreachable: {reason}", r.name, r.endpoint),
            // A shard sent there could not start: as unusable as an engine that is down.
            Ok(info) if !info.image_present => match &r.pullable {
                Some(Ok(())) => continue,
                Some(Err(reason)) => eprintln!(
                    "host {} ({}): image {} is missing and cannot be pulled: {reason}",
                    r.name, r.endpoint, h.image
                ),
                None => eprintln!(
                    "host {} ({}): image {} is missing and pull = \"never\"",
                    r.name, r.endpoint, h.image
                ),
            },
            Ok(_) => continue,
        }
        code = exit::INFRA_FAILED;
    }
    Ok(code)
}

/// Connects to one host and asks for its info, all within `timeout`.
pub(super) async fn check(h: &Host, timeout: Duration) -> HostRow {
    let work = async {
        let engine = Engine::connect_with_timeout(h, timeout).await?;
        let info = engine.info(&h.image).await?;
        let pullable = match &engine {
            Engine::Docker(d) if !info.image_present && h.pull != PullPolicy::Never => {
                Some(match credentials(&h.image, &h.registries) {
                    Ok(creds) => d.pullable(&h.image, creds.as_ref()).await,
                    Err(e) => Err(e),
                })
            }
            _ => None,
        };
        Ok::<_, EngineError>((info, pullable))
    };
    let (outcome, pullable) = match tokio::time::timeout(timeout, work).await {
        Ok(Ok((info, pullable))) => (Ok(info), pullable),
        Ok(Err(EngineError::Unreachable { reason, .. })) => (Err(reason), None),
        Ok(Err(e)) => (Err(e.to_string()), None),
        Err(_) => (Err(format!("timeout after {}s", timeout.as_secs_f64())), None),
    };
    HostRow {
        name: h.name.clone(),
        endpoint: h.endpoint.to_string(),
        slots: h.slots,
        outcome,
        pullable,
    }
}

/// The table `hosts` prints: one row per host, columns aligned, unknowns as `-`.
pub fn render_table(rows: &[HostRow]) -> String {
    let header = [
        "HOST",
        "ENDPOINT",
        "REACHABLE",
        "ENGINE",
        "API",
        "CPUS",
        "MEMORY",
        "SLOTS",
        "IMAGE",
        "RTT",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let mut row = vec![r.name.clone(), r.endpoint.clone()];
        match &r.outcome {
            Ok(i) => row.extend([
                "yes".to_string(),
                i.version.clone(),
                i.api_version.clone(),
                i.cpus.to_string(),
                gib(i.memory_bytes),
                r.slots.to_string(),
                match (i.image_present, &r.pullable) {
                    (true, _) => "present",
                    (false, Some(Ok(()))) => "pullable",
                    (false, _) => "missing",
                }
                .to_string(),
                format!("{} ms", i.round_trip.as_millis()),
            ]),
            Err(_) => {
                row.extend(["no", "-", "-", "-", "-"].map(String::from));
                row.push(r.slots.to_string());
                row.extend(["-", "-"].map(String::from));
            }
        }
        cells.push(row);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| cells.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn gib(bytes: u64) -> String {
    if bytes == 0 {
        return "-".to_string();
    }
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(version: &str, cpus: u64, mem: u64, present: bool, ms: u64) -> EngineInfo {
        EngineInfo {
            version: version.to_string(),
            api_version: "1.41".to_string(),
            cpus,
            memory_bytes: mem,
            image_present: present,
            round_trip: Duration::from_millis(ms),
        }
    }

    #[test]
    fn table_shows_reachable_and_unreachable_hosts() {
        let rows = vec![
            HostRow {
                name: "e1".into(),
                endpoint: "unix:///work/testbed/e1/docker.sock".into(),
                slots: 2,
                outcome: Ok(info("20.10.24+dfsg1", 2, 8 << 30, true, 1)),
                pullable: None,
            },
            HostRow {
                name: "e2".into(),
                endpoint: "tcp://127.0.0.2:2376".into(),
                slots: 1,
                outcome: Ok(info("20.10.24+dfsg1", 16, 3 * (1 << 29), false, 12)),
                pullable: None,
            },
            HostRow {
                name: "e3".into(),
                endpoint: "ssh://root@127.0.0.3:2222".into(),
                slots: 1,
                outcome: Err("ssh auth failed (key /k rejected for root@127.0.0.3:2222)".into()),
                pullable: None,
            },
        ];
        insta::assert_snapshot!(render_table(&rows));
    }

    #[test]
    fn unknown_only_host_names_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.toml");
        std::fs::write(
            &path,
            "[[host]]\nname = \"a\"\ndocker_host = \"local://\"\n[[host]]\nname = \"b\"\ndocker_host = \"local://\"\n",
        )
        .unwrap();
        let opt = HostsOpt {
            hosts: Some(path.clone()),
            only_host: vec!["b".into(), "zz".into()],
            ..Default::default()
        };
        let e = Error::from(select_hosts(&opt).unwrap_err());
        assert_eq!(e.exit_code(), exit::BAD_INPUT);
        assert_eq!(
            e.to_string(),
            format!("--only-host zz: no such host in {} (known: a, b)", path.display())
        );
        let opt = HostsOpt {
            hosts: Some(path),
            only_host: vec!["b".into()],
            ..Default::default()
        };
        let names: Vec<String> = select_hosts(&opt).unwrap().into_iter().map(|h| h.name).collect();
        assert_eq!(names, ["b"]);
    }
}
