//! Secret values taken out of everything a shard, service or step prints, before it is written
//! anywhere (logs, results, JUnit, events, HTML). One central place so no writer forgets.
//!
//! Raw bytes (logs, collected files, artifacts) are masked for each value and its XML/HTML and
//! JSON escaped forms; results are masked again once decoded ([`Secrets::scrub_result`]), so a
//! value a JUnit file held as `&amp;`, `&#233;` or CDATA is caught after parsing. What cannot
//! be masked: a value printed in pieces (one character per line, split by other output),
//! transformed (base64, hex, reversed, percent-encoded), or inside compressed artifacts.

use std::sync::Arc;

/// What a secret's value becomes.
pub const MASK: &[u8] = b"[redacted]";

/// The secret values of a run. Cheap to clone; empty when the job has no secrets.
#[derive(Clone, Default)]
pub struct Secrets(Arc<Vec<Vec<u8>>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values themselves.
        write!(f, "Secrets({} values)", self.0.len())
    }
}

impl Secrets {
    /// Empty values are dropped: there is nothing to hide in them.
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut v: Vec<Vec<u8>> = values
            .into_iter()
            .filter(|s| !s.is_empty())
            .flat_map(|s| encoded_forms(&s))
            .map(String::into_bytes)
            .collect();
        // Longest first, so a secret containing another is masked whole.
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        v.dedup();
        Self(Arc::new(v))
    }

    /// Masks a result's decoded text (message, output, subtests): what a runner's report held
    /// escaped is plain here.
    pub fn scrub_result(&self, r: &mut crate::test_result::TestResult) {
        if self.is_empty() {
            return;
        }
        if let Some(m) = r.message.as_mut() {
            self.scrub(m);
        }
        self.scrub(&mut r.detail);
        self.scrub(&mut r.stdout);
        self.scrub(&mut r.stderr);
        for s in &mut r.subtests {
            self.scrub_result(s);
        }
    }

    /// No secrets to mask: output passes through untouched.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn longest(&self) -> usize {
        self.0.first().map(Vec::len).unwrap_or(0)
    }

    /// `data` with every secret value replaced by [`MASK`].
    pub fn redact(&self, data: &[u8]) -> Vec<u8> {
        if self.is_empty() {
            return data.to_vec();
        }
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        'scan: while i < data.len() {
            for s in self.0.iter() {
                if data[i..].starts_with(s) {
                    out.extend_from_slice(MASK);
                    i += s.len();
                    continue 'scan;
                }
            }
            out.push(data[i]);
            i += 1;
        }
        out
    }

    /// `text` with every secret value replaced by [`MASK`].
    pub fn redact_str(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        String::from_utf8_lossy(&self.redact(text.as_bytes())).into_owned()
    }

    /// Redacts in place.
    pub fn scrub(&self, text: &mut String) {
        if !self.is_empty() {
            *text = self.redact_str(text);
        }
    }

    /// A redactor for output that arrives in chunks, where a value may be split across two.
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor {
            secrets: self.clone(),
            held: Vec::new(),
        }
    }
}

/// A value as written raw and as XML/HTML and JSON writers escape it.
fn encoded_forms(value: &str) -> Vec<String> {
    let xml = |quot: &str, apos: &str| {
        value
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', quot)
            .replace('\'', apos)
    };
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json
        .get(1..json.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string();
    let mut forms = vec![
        value.to_string(),
        xml("&quot;", "&apos;"),
        xml("&#34;", "&#39;"),
        xml("\"", "'"),
        json,
    ];
    forms.retain(|f| !f.is_empty());
    forms
}

/// Holds back the last few bytes of each chunk (fewer than the longest secret) until the next
/// chunk shows whether they start a secret.
pub struct StreamRedactor {
    secrets: Secrets,
    held: Vec<u8>,
}

impl StreamRedactor {
    /// The redacted bytes that are safe to write now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.secrets.is_empty() {
            return chunk.to_vec();
        }
        self.held.extend_from_slice(chunk);
        let keep = self.secrets.longest().saturating_sub(1);
        let limit = self.held.len().saturating_sub(keep);
        // Never cut inside a value: move the cut before any secret that straddles it.
        let mut cut = limit;
        for start in limit.saturating_sub(keep)..limit {
            for s in self.secrets.0.iter() {
                if start + s.len() > limit && self.held[start..].starts_with(s) {
                    cut = cut.min(start);
                }
            }
        }
        let ready: Vec<u8> = self.held.drain(..cut).collect();
        self.secrets.redact(&ready)
    }

    /// Everything still held, redacted.
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.held);
        self.secrets.redact(&rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_value_longest_first() {
        let s = Secrets::new(["hunter2".to_string(), "hunter2-extra".to_string(), String::new()]);
        assert_eq!(
            s.redact_str("pw=hunter2 and hunter2-extra."),
            "pw=[redacted] and [redacted]."
        );
        assert_eq!(format!("{s:?}"), "Secrets(2 values)");
    }

    #[test]
    fn values_split_across_chunks_are_still_masked() {
        let s = Secrets::new(["s3cr3t-value".to_string()]);
        let text = b"before s3cr3t-value middle s3cr3t-value after";
        for split in 1..text.len() {
            let mut r = s.stream();
            let mut out = r.push(&text[..split]);
            out.extend(r.push(&text[split..]));
            out.extend(r.finish());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "before [redacted] middle [redacted] after",
                "split at {split}"
            );
        }
        let mut r = s.stream();
        let mut out = Vec::new();
        for b in text {
            out.extend(r.push(&[*b]));
        }
        out.extend(r.finish());
        assert_eq!(out, b"before [redacted] middle [redacted] after");
    }

    #[test]
    fn escaped_forms_and_decoded_results_are_masked() {
        let s = Secrets::new(["Tk&9<Zq>\"x'é".to_string(), "Tk&9".to_string()]);
        assert_eq!(format!("{s:?}"), "Secrets(7 values)");
        let raw = "a Tk&9<Zq>\"x'é b Tk&amp;9&lt;Zq&gt;&quot;x&apos;é c Tk&amp;9&lt;Zq&gt;&#34;x&#39;é d Tk&9<Zq>\\\"x'é e Tk&9 f Tk&amp;9";
        assert_eq!(
            s.redact_str(raw),
            "a [redacted] b [redacted] c [redacted] d [redacted] e [redacted] f [redacted]"
        );
        let mut r = crate::test_result::TestResult {
            id: crate::test_result::TestId::new("g", "t"),
            status: crate::test_result::TestStatus::Failed,
            duration: std::time::Duration::ZERO,
            message: Some("bad Tk&9<Zq>\"x'é!".into()),
            stdout: "üTk&9<Zq>\"x'éü".into(),
            stderr: "Tk&9<".into(),
            detail: "panicked: Tk&9<Zq>\"x'é\n  left: 1".into(),
            subtests: vec![],
        };
        r.subtests.push(r.clone());
        s.scrub_result(&mut r);
        assert_eq!(r.message.as_deref(), Some("bad [redacted]!"));
        assert_eq!(r.stdout, "ü[redacted]ü");
        assert_eq!(r.stderr, "[redacted]<");
        assert_eq!(r.detail, "panicked: [redacted]\n  left: 1");
        assert_eq!(r.subtests[0].stdout, "ü[redacted]ü");
    }

    #[test]
    fn no_secrets_is_a_copy() {
        let s = Secrets::default();
        assert_eq!(s.redact(b"abc"), b"abc");
        assert_eq!(s.stream().push(b"abc"), b"abc");
    }
}
