//! Images from a real registry (Debian's `docker-registry`, TLS and htpasswd basic auth, started
//! by this test on a loopback port) pulled through the test bed's engine e2 at the start of a
//! run: with the docker CLI's credentials, with wrong ones, and for a tag that does not exist;
//! and the registry `scripts/testbed up` runs for the whole test bed (`hosts-registry.toml`).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const USER: &str = "ci";
const PASSWORD: &str = "reg-s3cret-pw";

/// A registry process this test started, stopped (by its handle) when dropped.
struct Registry {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn start_registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let d = &dir.path().to_path_buf();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    run(Command::new("openssl").current_dir(d).args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
    ]));
    let htpasswd = run(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
    std::fs::write(d.join("htpasswd"), htpasswd).unwrap();
    let config = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\nhttp:\n  addr: {addr}\n  tls:\n    certificate: {root}/cert.pem\n    key: {root}/key.pem\nauth:\n  htpasswd:\n    realm: test\n    path: {root}/htpasswd\n",
        root = d.display()
    );
    std::fs::write(d.join("config.yml"), config).unwrap();
    let log = std::fs::File::create(d.join("registry.log")).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(d.join("config.yml"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("docker-registry (apt-get install docker-registry)");
    let reg = Registry { child, addr, dir };
    for _ in 0..100 {
        if std::net::TcpStream::connect(&reg.addr).is_ok() {
            return reg;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "registry did not listen: {}",
        std::fs::read_to_string(d.join("registry.log")).unwrap_or_default()
    );
}

/// The docker CLI against engine `name`, with its own config dir (the login's `auths`).
fn docker(name: &str, config: &Path) -> Command {
    let mut c = Command::new("docker");
    c.arg("--config")
        .arg(config)
        .arg("-H")
        .arg(common::host(name).endpoint.to_string());
    c
}

/// Logs in, pushes the test bed's base image from e1 as `<registry>/shard/base:<tag>`.
fn push_base(reg: &Registry, cli: &Path, tag: &str) -> String {
    let image = format!("{}/shard/base:{tag}", reg.addr);
    let mut login = docker("e1", cli)
        .args(["login", &reg.addr, "-u", USER, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(login.stdin.as_mut().unwrap(), PASSWORD.as_bytes()).unwrap();
    drop(login.stdin.take());
    let out = login.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "login: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    run(docker("e1", cli).args(["tag", "cargo-shard/base:latest", &image]));
    run(docker("e1", cli).args(["push", &image]));
    run(docker("e1", cli).args(["rmi", &image]));
    image
}

/// A hosts file naming e2 alone with `image`, plus `extra` TOML.
fn hosts(dir: &Path, file: &str, image: &str, extra: &str) -> PathBuf {
    let e2 = common::host("e2");
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "[[host]]\nname = \"e2\"\ndocker_host = \"{}\"\nimage = \"{image}\"\n{extra}",
            e2.endpoint
        ),
    )
    .unwrap();
    path
}

/// `cargo shard exec` of one passing key on `hosts`; returns (code, stderr).
fn shard(dir: &Path, hosts: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .current_dir(dir)
        .args([
            "exec",
            "--list",
            "echo a",
            "--key-env",
            "K",
            "--no-progress",
            "--hosts",
        ])
        .arg(hosts)
        .args(["--", "true"])
        .env_remove("DOCKER_CONFIG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn images_are_pulled_from_a_registry_with_its_reasons_when_it_refuses() {
    let reg = start_registry();
    let cli = reg.dir.path().join("cli");
    let tag = common::unique("t").replace(['-'], "");
    let image = push_base(&reg, &cli, &tag);
    let work = reg.dir.path();
    let cleanup = || {
        let _ = docker("e2", &cli).args(["rmi", "-f", &image]).output();
    };
    cleanup();

    // The docker CLI's own login (DOCKER_CONFIG's config.json `auths`) is used.
    let ok = hosts(work, "ok.toml", &image, "");
    let (code, err) = shard(work, &ok, &[("DOCKER_CONFIG", cli.to_str().unwrap())]);
    cleanup();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("pull: {image} on e2 done in ")), "{err}");

    // Wrong credentials from the hosts file: e2 is left out with the registry's reason.
    let wrong = hosts(
        work,
        "wrong.toml",
        &image,
        &format!(
            "[[registry]]\nserver = \"{}\"\nusername = \"{USER}\"\npassword_env = \"REG_PW\"\n",
            reg.addr
        ),
    );
    let (code, err) = shard(work, &wrong, &[("REG_PW", "not-the-password")]);
    assert_eq!(code, 102, "{err}");
    let line = err.lines().last().unwrap_or("");
    assert!(
        line.starts_with(&format!(
            "error: no usable host in {}: e2: image {image} is not present and pulling it failed: ",
            wrong.display()
        )) && (line.contains("unauthorized") || line.contains("authentication required")),
        "{err}"
    );
    assert!(
        !err.contains("not-the-password"),
        "the secret is never printed:\n{err}"
    );

    // The right password in a file, but a tag the registry does not have.
    std::fs::write(work.join("pw"), format!("{PASSWORD}\n")).unwrap();
    let missing = format!("{}/shard/base:no-such-tag", reg.addr);
    let absent = hosts(
        work,
        "absent.toml",
        &missing,
        &format!(
            "[[registry]]\nserver = \"{}\"\nusername = \"{USER}\"\npassword_file = \"pw\"\n",
            reg.addr
        ),
    );
    let (code, err) = shard(work, &absent, &[]);
    assert_eq!(code, 102, "{err}");
    assert!(
        err.contains(&format!(
            "e2: image {missing} is not present and pulling it failed: "
        )) && (err.contains("manifest unknown") || err.contains("not found")),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");

    // `cargo shard hosts` says so without pulling, and exits non-zero.
    let o = Command::new(env!("CARGO_BIN_EXE_cargo-shard"))
        .args(["hosts", "--hosts"])
        .arg(&absent)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(102), "{err}");
    assert!(
        err.contains(&format!("image {missing} is missing and cannot be pulled: ")),
        "{err}"
    );
}

#[test]
fn the_test_beds_registry_serves_its_base_image_to_a_pull_always_host() {
    // scripts/testbed up runs a registry of its own (TLS from the bed's CA, basic auth) with the
    // base image pushed; hosts-registry.toml pulls it on e2 at every run, password from a file.
    let bed = common::testbed_dir();
    let hosts = bed.join("hosts-registry.toml");
    let text = std::fs::read_to_string(&hosts).expect("hosts-registry.toml (scripts/testbed up)");
    let image = text
        .lines()
        .find_map(|l| l.strip_prefix("image = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("an image line")
        .to_string();
    let password = std::fs::read_to_string(bed.join("registry/password")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let (code, err) = shard(work.path(), &hosts, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("pull: {image} on e2 done in ")), "{err}");
    assert!(!err.contains(password.trim()), "{err}");
}
