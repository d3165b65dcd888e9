//! Unit tests for the hosts file: every error names the exact line and column.

use std::path::{Path, PathBuf};

use super::*;

fn parse(text: &str) -> Result<HostsConfig, ConfigError> {
    HostsConfig::parse(text, "hosts.toml", Path::new("/base"))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn unknown_key_points_at_the_key() {
    let text = "[[host]]\nname = \"e1\"\ndocker_host = \"unix:///s\"\nslot = 2\n";
    let e = err(text);
    assert!(e.starts_with("hosts.toml:4:1: unknown field `slot`"), "{e}");
}

#[test]
fn unknown_key_in_defaults() {
    let e = err("[defaults]\n  imag = \"x\"\n[[host]]\nname = \"e1\"\ndocker_host = \"local://\"\n");
    assert!(e.starts_with("hosts.toml:2:3: unknown field `imag`"), "{e}");
}

#[test]
fn duplicate_name_points_at_the_second() {
    let text = "[[host]]\nname = \"e1\"\ndocker_host = \"local://\"\n\n[[host]]\nname = \"e1\"\ndocker_host = \"local://\"\n";
    assert_eq!(err(text), "hosts.toml:6:8: duplicate host name \"e1\"");
}

#[test]
fn zero_slots_refused() {
    let text = "[[host]]\nname = \"e1\"\ndocker_host = \"local://\"\nslots = 0\n";
    assert_eq!(err(text), "hosts.toml:4:9: `slots` must be at least 1, got 0");
}

#[test]
fn zero_default_jobs_refused() {
    let text = "[defaults]\njobs = 0\n[[host]]\nname = \"e1\"\ndocker_host = \"local://\"\n";
    assert_eq!(err(text), "hosts.toml:2:8: `jobs` must be at least 1, got 0");
}

#[test]
fn malformed_url_points_at_the_value() {
    let text = "[[host]]\nname = \"e1\"\ndocker_host = \"tcp://127.0.0.1:notaport\"\n";
    assert_eq!(
        err(text),
        "hosts.toml:3:15: malformed docker_host \"tcp://127.0.0.1:notaport\": bad port \"notaport\""
    );
    let text = "[[host]]\nname = \"e1\"\ndocker_host = \"docker.example.com\"\n";
    assert_eq!(
        err(text),
        "hosts.toml:3:15: malformed docker_host \"docker.example.com\": expected unix://, tcp://, ssh:// or local://"
    );
}

#[test]
fn plain_tcp_to_non_loopback_needs_tls_or_insecure() {
    let text = "[[host]]\nname = \"far\"\ndocker_host = \"tcp://10.1.2.3:2375\"\n";
    assert_eq!(
        err(text),
        "hosts.toml:3:15: plain tcp to non-loopback 10.1.2.3 without TLS: set tls_verify/cert_path, or `insecure = true`"
    );
    let ok = parse(&format!("{text}insecure = true\n")).unwrap();
    assert!(ok.hosts[0].insecure);
    let tls = parse(&format!("{text}cert_path = \"certs\"\n")).unwrap();
    let t = tls.hosts[0].tls.as_ref().unwrap();
    assert_eq!(t.ca, Some(PathBuf::from("/base/certs/ca.pem")));
    assert!(t.verify);
    // Loopback needs neither.
    parse("[[host]]\nname = \"l\"\ndocker_host = \"tcp://127.0.0.2:2375\"\n").unwrap();
}

#[test]
fn tls_settings_are_complete_or_one_line_saying_what_is_missing() {
    let host = "[[host]]\nname = \"t\"\ndocker_host = \"tcp://127.0.0.5:2376\"\n";
    // Verifying needs the CA.
    assert_eq!(
        err(&format!("{host}cert = \"c.pem\"\nkey = \"k.pem\"\n")),
        "hosts.toml:3:15: TLS needs ca (or cert_path, a directory holding ca.pem, cert.pem and key.pem)"
    );
    assert_eq!(
        err(&format!("{host}tls_verify = true\n")),
        "hosts.toml:3:15: TLS needs ca, cert, key (or cert_path, a directory holding ca.pem, cert.pem and key.pem)"
    );
    // Without verification only the client certificate is needed.
    let c = parse(&format!(
        "{host}tls_verify = false\ncert = \"c.pem\"\nkey = \"k.pem\"\n"
    ))
    .unwrap();
    let t = c.hosts[0].tls.as_ref().unwrap();
    assert_eq!((t.verify, t.ca.as_ref()), (false, None));
    assert_eq!(t.cert, PathBuf::from("/base/c.pem"));
    // `tls_verify = false` alone is DOCKER_TLS_VERIFY=0: no TLS.
    let c = parse(&format!("{host}tls_verify = false\n")).unwrap();
    assert_eq!(c.hosts[0].tls, None);
}

#[test]
fn bad_host_key_policy_points_at_the_value() {
    let text = "[[host]]\nname = \"e3\"\ndocker_host = \"ssh://root@h:2222\"\nhost_key_check = \"maybe\"\n";
    assert_eq!(
        err(text),
        "hosts.toml:4:18: host_key_check must be \"strict\", \"accept-new\" or \"off\", got \"maybe\""
    );
}

#[test]
fn defaults_apply_and_hosts_override() {
    let text = "[defaults]\nimage = \"img\"\nslots = 3\nenv = { A = \"1\", B = \"2\" }\n\
        [[host]]\nname = \"a\"\ndocker_host = \"ssh://u@h\"\n\
        [[host]]\nname = \"b\"\ndocker_host = \"unix:///s\"\nslots = 1\nenv = { B = \"3\" }\nweight = 2.5\n";
    let c = parse(text).unwrap();
    let (a, b) = (&c.hosts[0], &c.hosts[1]);
    assert_eq!(
        (a.slots, a.test_threads, a.image.as_str(), a.network.as_str()),
        (3, 1, "img", "none")
    );
    assert_eq!(
        a.endpoint,
        Endpoint::Ssh {
            user: "u".into(),
            host: "h".into(),
            port: 22
        }
    );
    assert_eq!(a.ssh.host_key_check, SshHostKeyPolicy::AcceptNew);
    assert_eq!(a.ssh.remote_socket, "/var/run/docker.sock");
    assert_eq!((b.slots, b.weight), (1, 2.5));
    assert_eq!(b.env["A"], "1");
    assert_eq!(b.env["B"], "3");
    assert_eq!(c.total_slots(), 4);
}

#[test]
fn no_hosts_is_an_error() {
    assert_eq!(err("[defaults]\nslots = 2\n"), "hosts.toml: no [[host]] entries");
}

#[test]
fn example_file_parses() {
    let text = include_str!("../../hosts.example.toml");
    let c = HostsConfig::parse(text, "hosts.example.toml", Path::new("/base")).unwrap();
    let kinds: Vec<&str> = c
        .hosts
        .iter()
        .map(|h| match h.endpoint {
            Endpoint::Unix { .. } => "unix",
            Endpoint::Tcp { .. } if h.tls.is_some() => "tcp+tls",
            Endpoint::Tcp { .. } => "tcp",
            Endpoint::Ssh { .. } => "ssh",
            Endpoint::Local => "local",
        })
        .collect();
    for kind in ["unix", "tcp+tls", "tcp", "ssh", "local"] {
        assert!(kinds.contains(&kind), "example lacks a {kind} host: {kinds:?}");
    }
}

#[test]
fn jobs_unset_anywhere_is_derived_from_cpus_per_slot() {
    let text = "[[host]]\nname = \"a\"\ndocker_host = \"unix:///s\"\nslots = 3\n\
        [[host]]\nname = \"b\"\ndocker_host = \"unix:///t\"\njobs = 2\n";
    let mut c = parse(text).unwrap();
    assert!(c.hosts[0].test_threads_auto && !c.hosts[1].test_threads_auto);
    assert_eq!(
        c.hosts[0].test_threads, 1,
        "1 until the engine says how many CPUs it has"
    );
    for h in &mut c.hosts {
        h.derive_test_threads(16);
    }
    assert_eq!(
        (c.hosts[0].test_threads, c.hosts[1].test_threads),
        (5, 2),
        "16 CPUs / 3 slots; set stays set"
    );
    let mut d = parse("[defaults]\njobs = 3\n[[host]]\nname = \"a\"\ndocker_host = \"unix:///s\"\n").unwrap();
    d.hosts[0].derive_test_threads(64);
    assert_eq!(d.hosts[0].test_threads, 3, "[defaults] jobs counts as set");
}

#[test]
fn derived_jobs_stay_within_the_containers_cpu_limit() {
    let text = "[[host]]\nname = \"a\"\ndocker_host = \"unix:///s\"\n[[host]]\nname = \"b\"\ndocker_host = \"unix:///t\"\njobs = 8\n";
    let mut c = parse(text).unwrap();
    for h in &mut c.hosts {
        h.derive_test_threads(16);
        h.limit_test_threads_to(1.5);
    }
    assert_eq!(
        (c.hosts[0].test_threads, c.hosts[1].test_threads),
        (2, 8),
        "a set value is the user's choice"
    );
}

#[test]
fn jobs_from_cpus_is_at_least_one() {
    assert_eq!(jobs_from_cpus(8, 2), 4);
    assert_eq!(jobs_from_cpus(2, 4), 1);
    assert_eq!(jobs_from_cpus(0, 1), 1, "an engine that reports no CPU count");
    assert_eq!(jobs_from_cpus(7, 0), 7);
}

#[test]
fn pull_policy_and_registries_are_read_with_locations() {
    let text = "[defaults]\npull = \"always\"\n[[registry]]\nserver = \"r:5000\"\nusername = \"ci\"\npassword_file = \"pw\"\n[[host]]\nname = \"a\"\ndocker_host = \"local://\"\n[[host]]\nname = \"b\"\ndocker_host = \"local://\"\npull = \"never\"\n";
    let c = parse(text).unwrap();
    assert_eq!(c.hosts[0].pull, PullPolicy::Always);
    assert_eq!(c.hosts[1].pull, PullPolicy::Never);
    assert_eq!(
        c.hosts[0].registries,
        [RegistryAuth {
            server: "r:5000".into(),
            username: "ci".into(),
            password: registry::PasswordSource::File(PathBuf::from("/base/pw")),
        }]
    );
    assert_eq!(
        err("[[host]]\nname = \"a\"\ndocker_host = \"local://\"\npull = \"sometimes\"\n"),
        "hosts.toml:4:8: pull must be \"missing\", \"always\" or \"never\", got \"sometimes\""
    );
    assert_eq!(
        err(
            "[[registry]]\nserver = \"r\"\nusername = \"u\"\n[[host]]\nname = \"a\"\ndocker_host = \"local://\"\n"
        ),
        "hosts.toml:2:10: a [[registry]] needs exactly one of `password_env` or `password_file`"
    );
    assert_eq!(
        parse("[[host]]\nname = \"a\"\ndocker_host = \"local://\"\n")
            .unwrap()
            .hosts[0]
            .pull,
        PullPolicy::Missing
    );
}

#[test]
fn slots_and_jobs_beyond_what_a_host_can_hold_are_refused() {
    // Memory grows with slots: 99999999999999 once took 11 GB before anything ran.
    let text = "[[host]]\nname = \"e1\"\ndocker_host = \"local://\"\nslots = 99999999999999\n";
    assert_eq!(
        err(text),
        "hosts.toml:4:9: `slots` must be at most 1024, got 99999999999999"
    );
    let text = "[defaults]\njobs = 5000\n[[host]]\nname = \"e1\"\ndocker_host = \"local://\"\n";
    assert_eq!(err(text), "hosts.toml:2:8: `jobs` must be at most 1024, got 5000");
}

#[test]
fn early_slots_by_default_only_where_the_engine_runs_elsewhere() {
    let text = "[[host]]\nname = \"a\"\ndocker_host = \"unix:///run/d.sock\"\n\
                [[host]]\nname = \"b\"\ndocker_host = \"tcp://127.0.0.2:2375\"\n\
                [[host]]\nname = \"c\"\ndocker_host = \"ssh://ci@build-7.example:22\"\n\
                [[host]]\nname = \"d\"\ndocker_host = \"ssh://root@[::1]:2222\"\n\
                [[host]]\nname = \"e\"\ndocker_host = \"unix:///run/d.sock\"\nearly_slots = true\n";
    let hosts = parse(text).unwrap().hosts;
    let early: Vec<bool> = hosts.iter().map(|h| h.opens_slots_early()).collect();
    assert_eq!(early, [false, false, true, false, true]);
    let off = parse("[defaults]\nearly_slots = false\n[[host]]\nname = \"c\"\ndocker_host = \"ssh://ci@build-7.example\"\n")
        .unwrap();
    assert!(!off.hosts[0].opens_slots_early());
}

#[test]
fn shared_container_runs_a_hosts_slots_as_threads_unless_the_file_says_no() {
    let text = "[defaults]\njobs = 2\n\
                [[host]]\nname = \"a\"\ndocker_host = \"unix:///a.sock\"\nslots = 3\n\
                [[host]]\nname = \"b\"\ndocker_host = \"unix:///b.sock\"\nslots = 3\nshare_container = false\n\
                [[host]]\nname = \"c\"\ndocker_host = \"unix:///c.sock\"\n";
    let mut hosts = parse(text).unwrap().hosts;
    for h in &mut hosts {
        h.share_one_container();
    }
    let shape: Vec<(usize, usize, usize)> = hosts
        .iter()
        .map(|h| (h.slots, h.test_threads, h.slots_shared))
        .collect();
    // Tests at once stay slots × jobs on every host.
    assert_eq!(shape, [(1, 6, 3), (3, 2, 1), (1, 2, 1)]);
    let off = parse("[defaults]\nshare_container = false\n[[host]]\nname = \"a\"\ndocker_host = \"unix:///a.sock\"\nslots = 2\n")
        .unwrap();
    let mut h = off.hosts[0].clone();
    h.share_one_container();
    assert_eq!((h.slots, h.test_threads), (2, 1));
    let e = err("[[host]]\nname = \"a\"\ndocker_host = \"unix:///a.sock\"\nshare_container = \"yes\"\n");
    assert!(e.starts_with("hosts.toml:4:19"), "{e}");
}

#[test]
fn cache_size_defaults_per_host_and_validated() {
    let text = "[defaults]\ncache_size = \"2GiB\"\n[[host]]\nname = \"e1\"\ndocker_host = \"local://\"\n\
                [[host]]\nname = \"e2\"\ndocker_host = \"local://\"\ncache_size = \"500 MB\"\n";
    let hosts = parse(text).unwrap().hosts;
    assert_eq!(hosts[0].cache_size, 2 << 30);
    assert_eq!(hosts[1].cache_size, 500_000_000);
    let plain = parse("[[host]]\nname = \"e1\"\ndocker_host = \"local://\"\n").unwrap();
    assert_eq!(plain.hosts[0].cache_size, DEFAULT_CACHE_SIZE);
    let e = err("[[host]]\nname = \"e1\"\ndocker_host = \"local://\"\ncache_size = \"10 parsecs\"\n");
    assert!(
        e.starts_with("hosts.toml:4:14: `cache_size`: unknown unit \"parsecs\""),
        "{e}"
    );
    assert_eq!(parse_size("0").unwrap(), 0);
    assert!(parse_size("lots").is_err());
}
