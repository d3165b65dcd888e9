//! Streaming JUnit reader: one pass over quick-xml events, no DOM, so 100,000 cases cost
//! little more than the cases themselves.
//!
//! Lenient about what real writers vary on (root element, missing times, `1,234.5`, CDATA
//! or escaped text, unknown elements), strict about what is not XML.

use std::path::Path;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::{Case, CaseStatus, JunitError, Report, Rerun, RerunKind, Suite};

/// Reads a JUnit file; invalid UTF-8 is replaced, not rejected.
pub fn read_file(path: &Path) -> Result<Report, JunitError> {
    let bytes = std::fs::read(path).map_err(|e| JunitError::io(path, e))?;
    read_bytes(&bytes, &path.display().to_string())
}

/// Reads JUnit from bytes; `origin` names the source in errors.
pub fn read_bytes(bytes: &[u8], origin: &str) -> Result<Report, JunitError> {
    read_str(&String::from_utf8_lossy(bytes), origin)
}

/// Reads JUnit from text; `origin` names the source in errors.
pub fn read_str(src: &str, origin: &str) -> Result<Report, JunitError> {
    let src = src.strip_prefix('\u{FEFF}').unwrap_or(src);
    let mut st = State {
        src,
        origin,
        report: Report::default(),
        suites: Vec::new(),
        open: Vec::new(),
        case: None,
        rerun: None,
        skip_text: String::new(),
        rerun_direct: String::new(),
        skip_depth: 0,
        seen_root: false,
    };
    let mut reader = Reader::from_str(src);
    loop {
        let pos = reader.buffer_position() as usize;
        let ev = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => return Err(st.err(reader.error_position() as usize, e.to_string())),
        };
        match ev {
            Event::Start(e) => st.start(&e, pos, false)?,
            Event::Empty(e) => {
                st.start(&e, pos, true)?;
                st.end(pos)?;
            }
            Event::End(_) => st.end(pos)?,
            Event::Text(t) => st.text(&t.xml10_content()),
            Event::CData(c) => st.text(&c.xml10_content()),
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(ch)) => ch.to_string(),
                    Ok(None) => match quick_xml::escape::resolve_predefined_entity(&r) {
                        Some(s) => s.to_string(),
                        None => return Err(st.err(pos, format!("unknown entity &{};", &*r))),
                    },
                    Err(e) => return Err(st.err(pos, format!("bad character reference &{};: {e}", &*r))),
                };
                st.text(&ch);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !st.open.is_empty() {
        return Err(st.err(
            src.len(),
            "unexpected end of file: elements left open (truncated file?)".into(),
        ));
    }
    if !st.seen_root {
        return Err(st.err(src.len(), "no <testsuites> or <testsuite> element".into()));
    }
    Ok(st.report)
}

/// What an open element means for the text inside it and for its end tag.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Elem {
    Suites,
    Suite,
    Case,
    Status,
    Rerun {
        flaky: bool,
    },
    StackTrace,
    Out(Owner),
    Err(Owner),
    /// `properties`, `property` and elements we do not know: their text is ignored.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Owner {
    Suite,
    Case,
    Rerun,
}

/// An element's attributes by local name, values unescaped.
struct Attrs(Vec<(String, String)>);

impl Attrs {
    fn get(&self, key: &str) -> Option<String> {
        self.0.iter().find(|(n, _)| n == key).map(|(_, v)| v.clone())
    }
}

struct State<'s> {
    src: &'s str,
    origin: &'s str,
    report: Report,
    /// Indexes into `report.suites` of the open `<testsuite>`s (nesting is flattened).
    suites: Vec<usize>,
    open: Vec<Elem>,
    case: Option<Case>,
    rerun: Option<Rerun>,
    skip_text: String,
    rerun_direct: String,
    /// Depth inside an element we do not know, whose whole content is ignored.
    skip_depth: usize,
    seen_root: bool,
}

impl State<'_> {
    fn err(&self, offset: usize, msg: String) -> JunitError {
        let end = offset.min(self.src.len());
        let line = self.src.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1;
        JunitError::At {
            path: self.origin.to_string(),
            line,
            msg,
        }
    }

    fn start(&mut self, e: &BytesStart<'_>, pos: usize, empty: bool) -> Result<(), JunitError> {
        if self.skip_depth > 0 {
            self.skip_depth += 1;
            self.open.push(Elem::Other);
            return Ok(());
        }
        let name = e.local_name();
        let name: &str = name.as_ref();
        if !self.seen_root && name != "testsuites" && name != "testsuite" {
            return Err(self.err(
                pos,
                format!("root element is <{name}>, not <testsuites> or <testsuite>"),
            ));
        }
        self.seen_root = true;
        let attrs = self.attrs(e, pos)?;
        let elem = self.element(name, &attrs, pos, empty)?;
        self.open.push(elem);
        Ok(())
    }

    /// What the element `name` means, with what its attributes say recorded.
    fn element(&mut self, name: &str, a: &Attrs, pos: usize, empty: bool) -> Result<Elem, JunitError> {
        let in_case = self.case.is_some() && self.rerun.is_none();
        Ok(match name {
            "testsuites" => {
                if self.report.name.is_empty() {
                    self.report.name = a.get("name").unwrap_or_default();
                }
                Elem::Suites
            }
            "testsuite" => self.open_suite(a, pos)?,
            "property" => {
                if let (None, Some(&i)) = (&self.case, self.suites.last()) {
                    let kv = (
                        a.get("name").unwrap_or_default(),
                        a.get("value").unwrap_or_default(),
                    );
                    self.report.suites[i].properties.push(kv);
                }
                Elem::Other
            }
            "properties" => Elem::Other,
            "testcase" => self.open_case(a, pos)?,
            "failure" | "error" | "skipped" if in_case => self.open_status(name, a),
            "flakyFailure" | "flakyError" | "rerunFailure" | "rerunError" if in_case => {
                self.open_rerun(name, a, pos)?
            }
            "stackTrace" if self.rerun.is_some() => Elem::StackTrace,
            "system-out" | "system-err" => self.open_output(name),
            _ => {
                if !empty {
                    self.skip_depth = 1;
                }
                Elem::Other
            }
        })
    }

    fn open_suite(&mut self, a: &Attrs, pos: usize) -> Result<Elem, JunitError> {
        let time = self.time(a.get("time"), pos)?;
        self.suites.push(self.report.suites.len());
        self.report.suites.push(Suite {
            name: a.get("name").unwrap_or_default(),
            time,
            timestamp: a.get("timestamp"),
            hostname: a.get("hostname"),
            ..Suite::default()
        });
        Ok(Elem::Suite)
    }

    fn open_case(&mut self, a: &Attrs, pos: usize) -> Result<Elem, JunitError> {
        if self.suites.is_empty() {
            return Err(self.err(pos, "<testcase> outside any <testsuite>".into()));
        }
        if self.case.is_some() {
            return Err(self.err(pos, "<testcase> inside another <testcase>".into()));
        }
        self.case = Some(Case {
            name: a.get("name").unwrap_or_default(),
            classname: a.get("classname").unwrap_or_default(),
            time: self.time(a.get("time"), pos)?,
            group: a.get("group"),
            ..Case::default()
        });
        Ok(Elem::Case)
    }

    /// `<failure>`, `<error>` or `<skipped>` of the open case (its text comes later).
    fn open_status(&mut self, name: &str, a: &Attrs) -> Elem {
        let (message, kind) = (a.get("message"), a.get("type"));
        let case = self.case.as_mut().expect("only inside a case");
        case.status = match name {
            "failure" => CaseStatus::Failure {
                message,
                kind,
                text: String::new(),
            },
            "error" => CaseStatus::Error {
                message,
                kind,
                text: String::new(),
            },
            _ => CaseStatus::Skipped { message },
        };
        self.skip_text.clear();
        Elem::Status
    }

    /// Surefire's `flaky…`/`rerun…` attempts of the open case.
    fn open_rerun(&mut self, name: &str, a: &Attrs, pos: usize) -> Result<Elem, JunitError> {
        self.rerun = Some(Rerun {
            kind: if name.ends_with("Error") {
                RerunKind::Error
            } else {
                RerunKind::Failure
            },
            error_type: a.get("type"),
            message: a.get("message"),
            time: self.time(a.get("time"), pos)?,
            ..Rerun::default()
        });
        Ok(Elem::Rerun {
            flaky: name.starts_with("flaky"),
        })
    }

    /// `<system-out>`/`<system-err>` of the innermost open rerun, case or suite.
    fn open_output(&self, name: &str) -> Elem {
        let owner = if self.rerun.is_some() {
            Owner::Rerun
        } else if self.case.is_some() {
            Owner::Case
        } else {
            Owner::Suite
        };
        if name == "system-out" {
            Elem::Out(owner)
        } else {
            Elem::Err(owner)
        }
    }

    fn end(&mut self, pos: usize) -> Result<(), JunitError> {
        let Some(elem) = self.open.pop() else {
            return Err(self.err(pos, "end tag without a start tag".into()));
        };
        if self.skip_depth > 0 {
            self.skip_depth -= 1;
            return Ok(());
        }
        match elem {
            Elem::Suite => {
                self.suites.pop();
            }
            Elem::Case => {
                let case = self.case.take().expect("a Case element holds a case");
                let i = *self.suites.last().expect("checked at <testcase>");
                self.report.suites[i].cases.push(case);
            }
            Elem::Status => {
                let case = self.case.as_mut().expect("a Status element is inside a case");
                match &mut case.status {
                    CaseStatus::Failure { text, .. } | CaseStatus::Error { text, .. } => blank_to_empty(text),
                    CaseStatus::Skipped { message } => {
                        let t = self.skip_text.trim();
                        if message.is_none() && !t.is_empty() {
                            *message = Some(t.to_string());
                        }
                    }
                    CaseStatus::Passed => {}
                }
            }
            Elem::Rerun { flaky } => {
                let mut rerun = self.rerun.take().expect("a Rerun element holds a rerun");
                // Text directly inside the element counts only without a <stackTrace>: otherwise
                // it is the indentation between the children.
                if rerun.text.is_empty() {
                    rerun.text = std::mem::take(&mut self.rerun_direct);
                }
                self.rerun_direct.clear();
                blank_to_empty(&mut rerun.text);
                let case = self.case.as_mut().expect("a Rerun element is inside a case");
                if flaky {
                    case.flaky.push(rerun);
                } else {
                    case.reruns.push(rerun);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn text(&mut self, t: &str) {
        if self.skip_depth > 0 {
            return;
        }
        let Some(&elem) = self.open.last() else { return };
        let target: &mut String = match elem {
            Elem::Status => match self.case.as_mut().map(|c| &mut c.status) {
                Some(CaseStatus::Failure { text, .. } | CaseStatus::Error { text, .. }) => text,
                Some(CaseStatus::Skipped { .. }) => &mut self.skip_text,
                _ => return,
            },
            Elem::Rerun { .. } => &mut self.rerun_direct,
            Elem::StackTrace => match self.rerun.as_mut() {
                Some(r) => &mut r.text,
                None => return,
            },
            Elem::Out(owner) | Elem::Err(owner) => {
                let out = matches!(elem, Elem::Out(_));
                let slot = match owner {
                    Owner::Rerun => self
                        .rerun
                        .as_mut()
                        .map(|r| if out { &mut r.stdout } else { &mut r.stderr }),
                    Owner::Case => self
                        .case
                        .as_mut()
                        .map(|c| if out { &mut c.stdout } else { &mut c.stderr }),
                    Owner::Suite => match self.suites.last() {
                        Some(&i) => {
                            let s = &mut self.report.suites[i];
                            Some(if out { &mut s.system_out } else { &mut s.system_err })
                        }
                        None => None,
                    },
                };
                match slot {
                    Some(slot) => slot.get_or_insert_with(String::new),
                    None => return,
                }
            }
            _ => return,
        };
        target.push_str(t);
    }

    fn attrs(&self, e: &BytesStart<'_>, pos: usize) -> Result<Attrs, JunitError> {
        let mut out = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|err| self.err(pos, err.to_string()))?;
            let local = a.key.local_name();
            let key = AsRef::<str>::as_ref(&local).to_string();
            let value = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| self.err(pos, format!("attribute {key}: {err}")))?;
            out.push((key, value.into_owned()));
        }
        Ok(Attrs(out))
    }

    fn time(&self, raw: Option<String>, pos: usize) -> Result<Option<f64>, JunitError> {
        parse_time(raw.as_deref()).map_err(|msg| self.err(pos, msg))
    }
}

fn blank_to_empty(s: &mut String) {
    if s.trim().is_empty() {
        s.clear();
    }
}

/// Parses a `time` attribute: seconds, with optional thousands commas (`1,234.5`, Surefire).
pub(crate) fn parse_time(raw: Option<&str>) -> Result<Option<f64>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let plain: String = t.chars().filter(|&c| c != ',').collect();
    match plain.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(format!("invalid time {raw:?} (expected seconds such as 1.25)")),
    }
}
