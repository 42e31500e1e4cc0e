//! Text from files, modules and guests as a terminal may show it. Input: strings read from
//! untrusted places (module fields, console lines, task names, messages of tools). Output: the same
//! with control characters escaped and cut to a bound. Invariant: nothing these functions return
//! holds a control character, so a crafted module or guest cannot move the cursor, recolour the
//! terminal or forge a report line; JSON reports do not use them and carry fields exactly.

/// The most characters of one field (a name, a subject) a text report shows; the rest is said as
/// its size. JSON reports carry fields exactly.
pub const FIELD_MAX: usize = 200;

/// `s` as a text report may show it: control characters escaped (`\e` for ESC, `\r`, `\n`, `\t`,
/// `\xNN`, and `\u{NNNN}` for C1 controls and bidirectional overrides), so text read from a
/// module cannot move the cursor, recolour the terminal or forge a line; and cut to `max`
/// characters plus `… (N bytes)`, so a crafted field cannot print a 5 MB line.
pub fn field_max(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (shown, c) in s.chars().enumerate() {
        if shown >= max {
            out.push_str(&format!("… ({} bytes)", s.len()));
            return out;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// Pushes `c`, or its escape when it is a control character (see [`field_max`]).
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\x1b' => out.push_str("\\e"),
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        '\u{80}'..='\u{9f}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
        c => out.push(c),
    }
}

/// A message of klp-build's own for stderr (a note, a command line) that quotes names from the
/// tree, a patch or a tool: its lines and tabs kept, every other control character escaped as
/// in [`field_max`], nothing cut. A patch that creates `fs/proc/\x1b[2Jx.c` must not clear the
/// terminal of whoever runs `-v`.
pub fn message(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c => push_escaped(&mut out, c),
        }
    }
    out
}

/// A whole text report whose lines quote what a guest, a kernel or a module printed (console
/// lines, task names, stacks): each line through [`field_max`] (at four fields' length), so none
/// of it reaches the terminal as a control sequence. Idempotent: escaping adds no control
/// characters.
pub fn escape_lines(text: &str) -> String {
    let mut out = String::new();
    for l in text.lines() {
        out.push_str(&field_max(l, 4 * FIELD_MAX));
        out.push('\n');
    }
    out
}

/// [`field_max`] with [`FIELD_MAX`].
pub fn field(s: &str) -> String {
    field_max(s, FIELD_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest's console line with a colour escape and a carriage return cannot reach the
    /// terminal raw; lines stay lines; escaping twice changes nothing.
    #[test]
    fn escape_lines_escapes_controls_per_line_and_is_idempotent() {
        let raw = "verify x: FAIL\n      \x1b[31mWARNING\r forged\n  fail: tab\there\n";
        let once = escape_lines(raw);
        assert_eq!(
            once,
            "verify x: FAIL\n      \\e[31mWARNING\\r forged\n  fail: tab\\there\n"
        );
        assert_eq!(escape_lines(&once), once);
    }

    /// A message keeps its lines and tabs and its length; other controls are escaped.
    #[test]
    fn a_message_escapes_controls_but_keeps_lines_and_tabs() {
        let long = "x".repeat(2000);
        assert_eq!(message(&long), long);
        assert_eq!(
            message("fs/proc/\x1b[2Ja.c changed\n\tnext\r\u{202e}"),
            "fs/proc/\\e[2Ja.c changed\n\tnext\\r\\u{202e}"
        );
    }
}
