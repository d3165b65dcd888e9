//! known_hosts read and checked the way OpenSSH does (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"):
//! comma-separated host patterns with `*` and `?`, `!negation`, `[host]:port`, hashed names
//! (`|1|salt|HMAC-SHA1`), several keys per host, `@revoked` (refused) and `@cert-authority`
//! (refused: ssh2 shows us no certificate to check). libssh2's own check knows none of the
//! patterns and markers, so cargo-shard does it itself.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// What known_hosts says about a server's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A plain entry for the host holds this key.
    Match,
    /// The key is marked `@revoked` for the host (line number).
    Revoked(usize),
    /// The host is pinned only by `@cert-authority` lines (first line number).
    CertAuthority(usize),
    /// Entries for the host exist, none with this key (first line number).
    Mismatch(usize),
    /// Nothing names the host.
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Plain,
    Revoked,
    CertAuthority,
}

#[derive(Debug)]
enum Hosts {
    Patterns(Vec<String>),
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Debug)]
struct Entry {
    line: usize,
    marker: Marker,
    hosts: Hosts,
    key: Vec<u8>,
}

/// A parsed known_hosts file; lines it cannot read are skipped, as OpenSSH does.
#[derive(Debug, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// How known_hosts names a server: `host`, or `[host]:port` off port 22.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// One line for a new entry: `NAME TYPE BASE64`, the type read from the key blob itself.
pub fn entry_line(name: &str, key: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    let kind = std::str::from_utf8(key.get(4..4 + len)?).ok()?;
    Some(format!("{name} {kind} {}", STANDARD.encode(key)))
}

impl KnownHosts {
    /// Reads an OpenSSH `known_hosts` text; a line it cannot read is skipped, never fatal.
    pub fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| parse_line(i + 1, l))
            .collect();
        Self { entries }
    }

    /// The verdict for `key` (the server's key blob) of `host` on `port`: a revoked key first,
    /// then a plain entry holding it, then CA-only pins, then any other entry for the host.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> Verdict {
        let name = host_name(host, port).to_ascii_lowercase();
        let mine: Vec<&Entry> = self.entries.iter().filter(|e| e.hosts.matches(&name)).collect();
        if let Some(e) = mine.iter().find(|e| e.marker == Marker::Revoked && e.key == key) {
            return Verdict::Revoked(e.line);
        }
        let plain: Vec<&&Entry> = mine.iter().filter(|e| e.marker == Marker::Plain).collect();
        if plain.iter().any(|e| e.key == key) {
            return Verdict::Match;
        }
        if let Some(e) = plain.first() {
            return Verdict::Mismatch(e.line);
        }
        match mine.iter().find(|e| e.marker == Marker::CertAuthority) {
            Some(e) => Verdict::CertAuthority(e.line),
            None => Verdict::NotFound,
        }
    }
}

fn parse_line(line: usize, text: &str) -> Option<Entry> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    let mut words = text.split_whitespace();
    let mut first = words.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::Plain,
    };
    if marker != Marker::Plain {
        first = words.next()?;
    }
    let _kind = words.next()?;
    let key = STANDARD.decode(words.next()?).ok()?;
    let hosts = match first.strip_prefix("|1|") {
        Some(hashed) => {
            let (salt, hash) = hashed.split_once('|')?;
            Hosts::Hashed {
                salt: STANDARD.decode(salt).ok()?,
                hash: STANDARD.decode(hash).ok()?,
            }
        }
        None => Hosts::Patterns(first.split(',').map(str::to_ascii_lowercase).collect()),
    };
    Some(Entry {
        line,
        marker,
        hosts,
        key,
    })
}

impl Hosts {
    /// OpenSSH's `match_hostname`: a negated pattern that matches excludes the host whatever
    /// else matches; otherwise any positive match counts.
    fn matches(&self, name: &str) -> bool {
        match self {
            Hosts::Hashed { salt, hash } => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
                ring::hmac::verify(&key, name.as_bytes(), hash).is_ok()
            }
            Hosts::Patterns(patterns) => {
                let mut positive = false;
                for p in patterns {
                    match p.strip_prefix('!') {
                        Some(neg) if glob(neg.as_bytes(), name.as_bytes()) => return false,
                        Some(_) => {}
                        None => positive |= glob(p.as_bytes(), name.as_bytes()),
                    }
                }
                positive
            }
        }
    }
}

/// `*` (any run) and `?` (one character) over the whole name, as OpenSSH's `match_pattern`;
/// backtracking only to the last `*`, so no pattern in a file can make it slow.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if pattern.get(p) == Some(&b'*') {
            star = Some((p, n));
            p += 1;
        } else if pattern.get(p).is_some_and(|&c| c == b'?' || c == name[n]) {
            p += 1;
            n += 1;
        } else if let Some((sp, sn)) = star {
            star = Some((sp, sn + 1));
            p = sp + 1;
            n = sn + 1;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake key blob of type `ssh-ed25519`.
    fn key(tag: u8) -> Vec<u8> {
        let mut k = 11u32.to_be_bytes().to_vec();
        k.extend_from_slice(b"ssh-ed25519");
        k.extend_from_slice(&[tag; 32]);
        k
    }

    fn b64(tag: u8) -> String {
        STANDARD.encode(key(tag))
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
        let tag = ring::hmac::sign(&k, name.as_bytes());
        format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(tag.as_ref()))
    }

    fn check(text: &str, host: &str, port: u16, k: u8) -> Verdict {
        KnownHosts::parse(text).check(host, port, &key(k))
    }

    #[test]
    fn patterns_wildcards_and_ports() {
        let kh = format!(
            "[10.0.7.*]:2222 ssh-ed25519 {}\nweb?.example.org ssh-ed25519 {}\n",
            b64(1),
            b64(2)
        );
        assert_eq!(check(&kh, "10.0.7.9", 2222, 1), Verdict::Match);
        assert_eq!(
            check(&kh, "10.0.7.9", 22, 1),
            Verdict::NotFound,
            "the port is part of the name"
        );
        assert_eq!(
            check(&kh, "WEB1.example.org", 22, 2),
            Verdict::Match,
            "names compare without case"
        );
        assert_eq!(
            check(&kh, "web12.example.org", 22, 2),
            Verdict::NotFound,
            "? is one character"
        );
        assert_eq!(check(&kh, "10.0.7.9", 2222, 3), Verdict::Mismatch(1));
    }

    #[test]
    fn globs_match_the_whole_name() {
        for (p, n, m) in [
            ("*", "", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("*.org", "x.org", true),
            ("?", "", false),
            ("a?c*", "abcdef", true),
            ("**a", "bbba", true),
        ] {
            assert_eq!(glob(p.as_bytes(), n.as_bytes()), m, "{p} {n}");
        }
        let hostile = "*a".repeat(200);
        assert!(!glob(hostile.as_bytes(), "b".repeat(10_000).as_bytes()));
    }

    #[test]
    fn a_negated_pattern_excludes_whatever_else_matches() {
        let kh = format!("*.example.org,!secret.example.org ssh-ed25519 {}\n", b64(1));
        assert_eq!(check(&kh, "a.example.org", 22, 1), Verdict::Match);
        assert_eq!(check(&kh, "secret.example.org", 22, 1), Verdict::NotFound);
        // A negation alone matches nothing.
        let kh = format!("!a.example.org ssh-ed25519 {}\n", b64(1));
        assert_eq!(check(&kh, "b.example.org", 22, 1), Verdict::NotFound);
    }

    #[test]
    fn hashed_names_match_their_host_only() {
        let kh = format!(
            "{} ssh-ed25519 {}\n",
            hashed("[127.0.0.3]:2222", b"salt-0123456789abcd"),
            b64(1)
        );
        assert_eq!(check(&kh, "127.0.0.3", 2222, 1), Verdict::Match);
        assert_eq!(check(&kh, "127.0.0.3", 22, 1), Verdict::NotFound);
        assert_eq!(check(&kh, "127.0.0.3", 2222, 2), Verdict::Mismatch(1));
    }

    #[test]
    fn several_keys_revoked_and_cert_authority() {
        let several = format!("h ssh-ed25519 {}\nh ssh-ed25519 {}\n", b64(1), b64(2));
        assert_eq!(check(&several, "h", 22, 2), Verdict::Match);
        let revoked = format!("{several}@revoked * ssh-ed25519 {}\n", b64(2));
        assert_eq!(check(&revoked, "h", 22, 2), Verdict::Revoked(3));
        assert_eq!(check(&revoked, "h", 22, 1), Verdict::Match);
        let ca = format!("@cert-authority *.example.org ssh-ed25519 {}\n", b64(9));
        assert_eq!(check(&ca, "a.example.org", 22, 1), Verdict::CertAuthority(1));
        assert_eq!(check(&ca, "other", 22, 1), Verdict::NotFound);
    }

    #[test]
    fn comments_blank_and_broken_lines_are_skipped() {
        let kh = format!(
            "# c\n\n@weird h ssh-ed25519 {}\nh ssh-ed25519 !!notbase64\nh ssh-ed25519 {}\n",
            b64(1),
            b64(1)
        );
        assert_eq!(check(&kh, "h", 22, 1), Verdict::Match);
        assert_eq!(
            entry_line("[h]:2", &key(1)),
            Some(format!("[h]:2 ssh-ed25519 {}", b64(1)))
        );
        assert_eq!(entry_line("h", b"\0\0"), None);
    }
}
