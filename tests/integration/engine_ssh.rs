//! The ssh tunnel's host key policies against the test bed's real sshd (e3): accept-new
//! records an unknown key, strict refuses it, a changed key is a mismatch, off accepts all.

use crate::common;

use cargo_shard::config::{Host, SshHostKeyPolicy};
use cargo_shard::engine::{Engine, EngineError};
use common::{host, testbed_file};

fn e3_with(known_hosts: &std::path::Path, policy: SshHostKeyPolicy) -> Host {
    let mut h = host("e3");
    h.ssh.known_hosts = Some(known_hosts.to_path_buf());
    h.ssh.host_key_check = policy;
    h
}

async fn reason(h: &Host) -> String {
    match Engine::connect(h).await {
        Err(EngineError::Unreachable { reason, .. }) => reason,
        Err(e) => panic!("expected unreachable, got {e}"),
        Ok(_) => panic!("expected unreachable, got connected"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_records_the_key_and_strict_then_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("sub/known_hosts");
    let strict = e3_with(&kh, SshHostKeyPolicy::Strict);
    let r = reason(&strict).await;
    assert!(
        r.starts_with("host key for [127.0.0.3]:2222 not in ") && r.contains("strict"),
        "{r}"
    );

    let engine = Engine::connect(&e3_with(&kh, SshHostKeyPolicy::AcceptNew))
        .await
        .expect("accept-new");
    drop(engine);
    let recorded = std::fs::read_to_string(&kh).unwrap();
    let server_key = std::fs::read_to_string(testbed_file("ssh/host_ed25519.pub")).unwrap();
    let key_b64 = server_key.split_whitespace().nth(1).unwrap();
    assert!(
        recorded.starts_with("[127.0.0.3]:2222 ssh-ed25519 ") && recorded.contains(key_b64),
        "{recorded}"
    );
    let engine = Engine::connect(&strict)
        .await
        .expect("strict with the recorded key");
    assert!(engine.info(&host("e3").image).await.unwrap().image_present);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_key_is_a_mismatch_under_every_checking_policy() {
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    // Another ed25519 key claiming to be the server's.
    let other = std::fs::read_to_string(testbed_file("ssh/unauthorized_ed25519.pub")).unwrap();
    let other_b64 = other.split_whitespace().nth(1).unwrap();
    std::fs::write(&kh, format!("[127.0.0.3]:2222 ssh-ed25519 {other_b64}\n")).unwrap();
    for policy in [SshHostKeyPolicy::Strict, SshHostKeyPolicy::AcceptNew] {
        let r = reason(&e3_with(&kh, policy)).await;
        assert!(
            r.starts_with("host key mismatch for [127.0.0.3]:2222"),
            "{policy:?}: {r}"
        );
    }
    // accept-new must not have overwritten the recorded key.
    assert!(std::fs::read_to_string(&kh).unwrap().contains(other_b64));
    Engine::connect(&e3_with(&kh, SshHostKeyPolicy::Off))
        .await
        .expect("off accepts any key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_remote_socket_is_reported() {
    let mut h = host("e3");
    h.ssh.remote_socket = "/run/cargo-shard-no-such.sock".to_string();
    let r = reason(&h).await;
    assert!(
        r.starts_with("remote socket /run/cargo-shard-no-such.sock unreachable over ssh"),
        "{r}"
    );
}

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_engine_stops_the_proxy() {
    let engine = Engine::connect(&host("e3")).await.unwrap();
    let Engine::Docker(d) = &engine else {
        panic!("e3 is not docker")
    };
    let socket = d
        .proxy_socket()
        .expect("an ssh engine has a proxy socket")
        .to_path_buf();
    assert!(socket.exists());
    engine.info("x").await.unwrap();
    assert!(threads_named("ssh-proxy") >= 1);
    drop(engine);
    assert!(!socket.exists(), "proxy socket {} left behind", socket.display());
    // The listener thread is joined on drop; connection threads end within a poll interval.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while threads_named("ssh-proxy") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "proxy threads still running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
