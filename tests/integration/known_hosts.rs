//! known_hosts checked the way OpenSSH does, against the test bed's real sshd on
//! 127.0.0.3:2222: wildcard patterns, negation, hashed names, several keys, `@revoked`,
//! `@cert-authority`, conflicts that must never be appended over, and an unwritable file.
//! Every known_hosts here is our own copy: the test bed's is never touched.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cargo_shard::config::SshHostKeyPolicy;
use cargo_shard::engine::ssh::{SshTarget, open_session};

/// The test bed's sshd host key line (`[127.0.0.3]:2222 ssh-ed25519 AAAA…`): (type, base64).
fn server_key() -> (String, String) {
    let text = std::fs::read_to_string(common::testbed_file("ssh/known_hosts")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("[127.0.0.3]:2222 "))
        .expect("the test bed's known_hosts names its sshd");
    let mut words = line.split_whitespace().skip(1);
    (
        words.next().unwrap().to_string(),
        words.next().unwrap().to_string(),
    )
}

/// Another ed25519 key, never the server's.
fn other_key(dir: &Path) -> String {
    let key = dir.join("other");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen");
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    pubkey.split_whitespace().nth(1).unwrap().to_string()
}

fn target(known_hosts: PathBuf, policy: SshHostKeyPolicy) -> SshTarget {
    SshTarget {
        user: "root".into(),
        host: "127.0.0.3".into(),
        port: 2222,
        identity: common::testbed_file("ssh/id_ed25519"),
        known_hosts,
        policy,
        remote_socket: "/run/cargo-shard-e3.sock".into(),
        timeout: Duration::from_secs(10),
    }
}

fn connect(dir: &Path, known_hosts: &str, policy: SshHostKeyPolicy) -> (Result<(), String>, String) {
    let path = dir.join("known_hosts");
    std::fs::write(&path, known_hosts).unwrap();
    let r = open_session(&target(path.clone(), policy)).map(drop);
    (r, std::fs::read_to_string(&path).unwrap())
}

#[test]
fn wildcard_negated_hashed_and_several_keys_match_as_in_openssh() {
    let dir = tempfile::tempdir().unwrap();
    let (kind, key) = server_key();
    let other = other_key(dir.path());
    use SshHostKeyPolicy::Strict;
    // A wildcard pin.
    let (r, _) = connect(dir.path(), &format!("[127.0.0.*]:2222 {kind} {key}\n"), Strict);
    assert_eq!(r, Ok(()), "wildcard");
    // `?` and a list of patterns, the matching one last.
    let (r, _) = connect(
        dir.path(),
        &format!("example.org,[127.0.0.?]:2222 {kind} {key}\n"),
        Strict,
    );
    assert_eq!(r, Ok(()), "pattern list");
    // Negation wins over a wildcard.
    let (r, _) = connect(
        dir.path(),
        &format!("[127.0.0.*]:2222,![127.0.0.3]:2222 {kind} {key}\n"),
        Strict,
    );
    assert!(r.as_ref().unwrap_err().contains("not in"), "{r:?}");
    // Several keys for the host: another key of the same type, then the right one.
    let (r, _) = connect(
        dir.path(),
        &format!("[127.0.0.3]:2222 {kind} {other}\n[127.0.0.3]:2222 {kind} {key}\n"),
        Strict,
    );
    assert_eq!(r, Ok(()), "several keys");
    // A hashed entry, as `ssh-keygen -H` writes it.
    let path = dir.path().join("hashed");
    std::fs::write(&path, format!("[127.0.0.3]:2222 {kind} {key}\n")).unwrap();
    let ok = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    let hashed = std::fs::read_to_string(&path).unwrap();
    assert!(hashed.starts_with("|1|"), "{hashed}");
    let (r, _) = connect(dir.path(), &hashed, Strict);
    assert_eq!(r, Ok(()), "hashed");
}

#[test]
fn revoked_and_cert_authority_keys_are_refused_and_never_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (kind, key) = server_key();
    use SshHostKeyPolicy::{AcceptNew, Strict};
    let revoked = format!("@revoked [127.0.0.*]:2222 {kind} {key}\n[127.0.0.3]:2222 {kind} {key}\n");
    for policy in [Strict, AcceptNew] {
        let (r, after) = connect(dir.path(), &revoked, policy);
        let e = r.unwrap_err();
        assert!(e.contains("revoked"), "{e}");
        assert_eq!(after, revoked, "the file changed");
    }
    let only_revoked = format!("@revoked [127.0.0.3]:2222 {kind} {key}\n");
    let (r, after) = connect(dir.path(), &only_revoked, AcceptNew);
    assert!(r.unwrap_err().contains("revoked"));
    assert_eq!(after, only_revoked);
    // A CA we cannot check certificates against: refused, not trusted on first use.
    let ca = format!("@cert-authority [127.0.0.*]:2222 {kind} {key}\n");
    let (r, after) = connect(dir.path(), &ca, AcceptNew);
    let e = r.unwrap_err();
    assert!(e.contains("@cert-authority"), "{e}");
    assert_eq!(after, ca);
}

#[test]
fn accept_new_never_appends_over_a_conflicting_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (kind, key) = server_key();
    let other = other_key(dir.path());
    use SshHostKeyPolicy::AcceptNew;
    for pinned in [
        format!("[127.0.0.*]:2222 {kind} {other}\n"),
        format!("[127.0.0.3]:2222 ssh-rsa {other}\n"),
    ] {
        let (r, after) = connect(dir.path(), &pinned, AcceptNew);
        let e = r.unwrap_err();
        assert!(e.contains("host key mismatch"), "{e}");
        assert_eq!(after, pinned, "appended over a conflicting entry");
    }
    // A host nobody pinned is added, once.
    let unrelated = format!("example.org {kind} {other}\n");
    let (r, after) = connect(dir.path(), &unrelated, AcceptNew);
    assert_eq!(r, Ok(()));
    assert_eq!(after, format!("{unrelated}[127.0.0.3]:2222 {kind} {key}\n"));
}

#[test]
fn an_unwritable_known_hosts_is_a_warning_not_a_silent_skip() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "").unwrap();
    // The binary prints the warning: `cargo shard hosts` with an ssh host whose known_hosts
    // cannot be created.
    let identity = common::testbed_file("ssh/id_ed25519");
    let hosts = dir.path().join("hosts.toml");
    std::fs::write(
        &hosts,
        format!(
            "[[host]]\nname = \"e3\"\ndocker_host = \"ssh://root@127.0.0.3:2222\"\nidentity = \"{}\"\nknown_hosts = \"{}/known_hosts\"\nhost_key_check = \"accept-new\"\nremote_socket = \"/run/cargo-shard-e3.sock\"\n",
            identity.display(),
            file.display()
        ),
    )
    .unwrap();
    let (code, out, err) = common::cargo_shard(&["hosts", "--hosts", hosts.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    let warning = format!(
        "warning: cannot record the host key of [127.0.0.3]:2222 in {}/known_hosts: ",
        file.display()
    );
    assert_eq!(err.matches(&warning).count(), 1, "{err}");
}
