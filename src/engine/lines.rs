//! A tap on a shard's output streams: every complete line, as it arrives, goes to a sink the
//! runner chose (live per-test progress, results kept when the shard is cut short), tagged
//! with the stream it came from; stdout and stderr are split and masked apart, so a line of
//! one never absorbs bytes of the other.

use std::sync::Arc;

use super::redact::{Secrets, StreamRedactor};
use crate::shard::Stream;

type LineFn = Arc<dyn Fn(Stream, &str) + Send + Sync>;

/// Receives each complete output line (lossy UTF-8, without its newline) and its stream.
#[derive(Clone, Default)]
pub struct LineSink(Option<LineFn>);

impl LineSink {
    /// A sink calling `f` with each line and the stream it came from.
    pub fn new(f: impl Fn(Stream, &str) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    /// A splitter feeding this sink the lines of `stream`; a no-op when the sink is empty.
    pub fn splitter(&self, stream: Stream) -> LineSplitter {
        LineSplitter {
            sink: self.clone(),
            stream,
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
    stream: Stream,
    partial: Vec<u8>,
}

/// Longest line kept whole: a runaway line without newlines must not grow without bound.
const MAX_LINE: usize = 64 * 1024;

impl LineSplitter {
    /// Feeds a chunk of output; each line it completes goes to the sink.
    pub fn push(&mut self, bytes: &[u8]) {
        let Some(sink) = &self.sink.0 else { return };
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            self.partial.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") || self.partial.len() >= MAX_LINE {
                let line = String::from_utf8_lossy(&self.partial);
                sink(self.stream, line.trim_end_matches(['\n', '\r']));
                self.partial.clear();
            }
        }
    }

    /// Hands the sink the last line when the stream ended without a newline.
    pub fn finish(&mut self) {
        if let Some(sink) = &self.sink.0
            && !self.partial.is_empty()
        {
            sink(self.stream, &String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
    }
}

/// A shard's two output streams on their way out: each masked and cut into lines on its
/// own; the masked bytes go back to the caller for the log and the combined output.
pub struct OutputTap {
    out: (StreamRedactor, LineSplitter),
    err: (StreamRedactor, LineSplitter),
}

impl OutputTap {
    /// A tap masking `secrets` in both streams and feeding their lines to `sink`.
    pub fn new(secrets: &Secrets, sink: &LineSink) -> Self {
        Self {
            out: (secrets.stream(), sink.splitter(Stream::Out)),
            err: (secrets.stream(), sink.splitter(Stream::Err)),
        }
    }

    /// Masks a chunk of `stream`, feeds its complete lines to the sink, returns it masked.
    pub fn push(&mut self, stream: Stream, bytes: &[u8]) -> Vec<u8> {
        let (redactor, lines) = match stream {
            Stream::Out => &mut self.out,
            Stream::Err => &mut self.err,
        };
        let masked = redactor.push(bytes);
        lines.push(&masked);
        masked
    }

    /// What both streams still held back (a possible secret's start, a last line).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        for (redactor, lines) in [&mut self.out, &mut self.err] {
            let tail = redactor.finish();
            lines.push(&tail);
            lines.finish();
            rest.extend_from_slice(&tail);
        }
        rest
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
        let sink = LineSink::new(move |_, l| s.lock().unwrap().push(l.to_string()));
        let mut split = sink.splitter(Stream::Out);
        split.push(b"first li");
        split.push(b"ne\r\nsecond\nthi");
        split.push(b"rd \xff");
        split.finish();
        assert_eq!(*seen.lock().unwrap(), ["first line", "second", "third \u{fffd}"]);
    }

    #[test]
    fn an_empty_sink_costs_nothing() {
        let mut split = LineSink::default().splitter(Stream::Err);
        split.push(b"a\nb");
        split.finish();
        assert!(split.partial.is_empty());
    }

    #[test]
    fn streams_are_split_and_masked_apart() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let sink = LineSink::new(move |stream, l| s.lock().unwrap().push((stream, l.to_string())));
        let mut tap = OutputTap::new(&Secrets::new(["hunter2".to_string()]), &sink);
        let mut all = tap.push(Stream::Out, b"{\"a\":1");
        all.extend(tap.push(Stream::Err, b"human hun"));
        all.extend(tap.push(Stream::Out, b"}\n"));
        all.extend(tap.push(Stream::Err, b"ter2 line\n"));
        all.extend(tap.finish());
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (Stream::Out, "{\"a\":1}".to_string()),
                (Stream::Err, "human [redacted] line".to_string())
            ]
        );
        assert!(!String::from_utf8_lossy(&all).contains("hunter2"));
    }
}
