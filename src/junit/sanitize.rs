//! Text hygiene for XML output: what a test prints is arbitrary bytes, and XML 1.0 cannot
//! carry most control characters even as character references.

use std::borrow::Cow;

/// Decodes a test's raw output, replacing invalid UTF-8 with U+FFFD.
pub fn text_from_bytes(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Makes `s` representable in XML 1.0: ANSI escape sequences (colours, cursor moves) are
/// removed, other characters XML forbids (C0 controls except tab/LF/CR, U+FFFE, U+FFFF)
/// become a visible `\xNN` / `\u{FFFE}` so the reader of a report still sees them.
pub fn sanitize_text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_work) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if !skip_escape_sequence(&mut chars) {
                out.push_str("\\x1b");
            }
        } else if is_illegal(c) {
            if (c as u32) < 0x100 {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                out.push_str(&format!("\\u{{{:X}}}", c as u32));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_work(c: char) -> bool {
    c == '\u{1b}' || is_illegal(c)
}

/// Characters outside XML 1.0's `Char` production.
fn is_illegal(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

/// Consumes the rest of an escape sequence after ESC; false when what follows is not one.
/// The one ANSI scanner: the JUnit writer and the plain-text reports both use it.
pub(crate) fn skip_escape_sequence(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> bool {
    match chars.peek().copied() {
        // CSI: parameters, intermediates, one final byte (`ESC[1;31m`, `ESC[2K`).
        Some('[') => {
            chars.next();
            while let Some(&c) = chars.peek() {
                chars.next();
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
                if !('\u{20}'..='\u{3f}').contains(&c) {
                    break;
                }
            }
            true
        }
        // OSC (hyperlinks, titles): up to BEL or ESC `\`.
        Some(']') => {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    if chars.peek() == Some(&'\\') {
                        chars.next();
                    }
                    break;
                }
            }
            true
        }
        // Character-set selection and friends: intermediates then one final (`ESC(B`).
        Some(c) if ('\u{20}'..='\u{2f}').contains(&c) => {
            while let Some(&c) = chars.peek() {
                chars.next();
                if !('\u{20}'..='\u{2f}').contains(&c) {
                    break;
                }
            }
            true
        }
        // Two-character sequences (`ESC M`, `ESC 7`, `ESC =`).
        Some(c) if ('\u{30}'..='\u{7e}').contains(&c) => {
            chars.next();
            true
        }
        _ => false,
    }
}

/// Escapes character data: markup characters, `>` so `]]>` cannot appear, and CR so it
/// survives end-of-line normalisation.
pub(crate) fn escape_text(s: &str) -> String {
    escape(s, false)
}

/// Escapes an attribute value: as text, plus quotes and the whitespace that attribute
/// normalisation would otherwise turn into spaces.
pub(crate) fn escape_attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, attr: bool) -> String {
    let s = sanitize_text(s);
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '"' if attr => out.push_str("&quot;"),
            '\t' if attr => out.push_str("&#9;"),
            '\n' if attr => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_colour_is_stripped_and_controls_are_shown() {
        assert_eq!(sanitize_text("\u{1b}[31mred\u{1b}[0m ok"), "red ok");
        assert_eq!(sanitize_text("a\u{1}b\u{8}c"), "a\\x01b\\x08c");
        assert_eq!(sanitize_text("x\u{ffff}"), "x\\u{FFFF}");
        assert_eq!(
            sanitize_text("\u{1b}]8;;http://x\u{7}link\u{1b}]8;;\u{7}"),
            "link"
        );
        assert_eq!(sanitize_text("end\u{1b}"), "end\\x1b");
        assert!(matches!(sanitize_text("plain\ttext\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn escaping_keeps_cdata_end_and_newlines_safe() {
        assert_eq!(escape_text("a]]>b<&\r"), "a]]&gt;b&lt;&amp;&#13;");
        assert_eq!(escape_attr("x\"\ny"), "x&quot;&#10;y");
    }
}
