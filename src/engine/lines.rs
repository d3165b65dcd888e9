//! A tap on a shard's output stream: every complete line, as it arrives, goes to a sink the
//! runner chose (to announce failing tests before the shard ends).

use std::sync::Arc;

type LineFn = Arc<dyn Fn(&str) + Send + Sync>;

/// Receives each complete output line (lossy UTF-8, without its newline).
#[derive(Clone, Default)]
pub struct LineSink(Option<LineFn>);

impl LineSink {
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    /// A splitter feeding this sink; a no-op when the sink is empty.
    pub fn splitter(&self) -> LineSplitter {
        LineSplitter {
            sink: self.clone(),
            partial: Vec::new(),
        }
    }
}

impl std::fmt::Debug for LineSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "LineSink(set)"
        } else {
            "LineSink(none)"
        })
    }
}

/// Cuts a byte stream into lines for a [`LineSink`].
pub struct LineSplitter {
    sink: LineSink,
    partial: Vec<u8>,
}

/// Longest line kept whole: a runaway line without newlines must not grow without bound.
const MAX_LINE: usize = 64 * 1024;

impl LineSplitter {
    pub fn push(&mut self, bytes: &[u8]) {
        let Some(sink) = &self.sink.0 else { return };
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            self.partial.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") || self.partial.len() >= MAX_LINE {
                let line = String::from_utf8_lossy(&self.partial);
                sink(line.trim_end_matches(['\n', '\r']));
                self.partial.clear();
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some(sink) = &self.sink.0
            && !self.partial.is_empty()
        {
            sink(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn lines_arrive_whole_across_chunks() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let sink = LineSink::new(move |l| s.lock().unwrap().push(l.to_string()));
        let mut split = sink.splitter();
        split.push(b"first li");
        split.push(b"ne\r\nsecond\nthi");
        split.push(b"rd \xff");
        split.finish();
        assert_eq!(*seen.lock().unwrap(), ["first line", "second", "third \u{fffd}"]);
    }

    #[test]
    fn an_empty_sink_costs_nothing() {
        let mut split = LineSink::default().splitter();
        split.push(b"a\nb");
        split.finish();
        assert!(split.partial.is_empty());
    }
}
