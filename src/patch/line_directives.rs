//! `#line` directives that keep unchanged code at its original line numbers. Input: a file's
//! original and patched text. Output: the patched text with `#line N` before the first line of
//! each unchanged run that would otherwise be numbered differently. Invariant: the preprocessor
//! numbers every unchanged line as in the original, so `__LINE__` in unchanged functions (the line
//! of every WARN_ON/BUG entry in `__bug_table`) compiles to the same bytes; a directive is never
//! put inside a macro continuation, a comment or a string, where it would break the code or do
//! nothing.

use similar::{Algorithm, DiffOp};

/// The lexical state at the start of each line of `text`: `true` when a preprocessor directive may
/// start there (not inside a block comment, not continuing the previous line with `\`).
pub fn safe_line_starts(text: &str) -> Vec<bool> {
    #[derive(Clone, Copy, PartialEq)]
    enum St {
        Code,
        Block,
        Line,
        Str(u8),
    }
    let mut st = St::Code;
    // The previous line ended in `\`: this one is part of it (a macro body, a `//` comment or a
    // string that goes on), lexed in the state the previous one left.
    let mut continued = false;
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        let b = line.strip_suffix('\n').unwrap_or(line).as_bytes();
        let b = b.strip_suffix(b"\r").unwrap_or(b);
        out.push(st == St::Code && !continued);
        let mut i = 0;
        while i < b.len() {
            match st {
                St::Code => match b[i] {
                    b'/' if b.get(i + 1) == Some(&b'*') => {
                        st = St::Block;
                        i += 1;
                    }
                    b'/' if b.get(i + 1) == Some(&b'/') => st = St::Line,
                    q @ (b'"' | b'\'') => st = St::Str(q),
                    _ => {}
                },
                St::Block => {
                    if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        st = St::Code;
                        i += 1;
                    }
                }
                St::Line => {}
                St::Str(q) => {
                    if b[i] == b'\\' {
                        i += 1;
                    } else if b[i] == q {
                        st = St::Code;
                    }
                }
            }
            i += 1;
        }
        continued = b.last() == Some(&b'\\');
        if !continued && matches!(st, St::Line | St::Str(_)) {
            st = St::Code;
        }
    }
    out
}

/// A conditional directive (`#if`, `#ifdef`, `#ifndef`, `#elif`, `#else`, `#endif`): the line after
/// it may start a group whose lines the preprocessor numbers from a `#line` of its own.
fn is_conditional(line: &str) -> bool {
    let Some(rest) = line.trim_start().strip_prefix('#') else {
        return false;
    };
    let word: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    matches!(
        word.as_str(),
        "if" | "ifdef" | "ifndef" | "elif" | "elifdef" | "elifndef" | "else" | "endif"
    )
}

/// For each line of `patched`, its 1-based line number in `orig` when it is an unchanged line.
fn original_numbers(orig: &str, patched: &str) -> Vec<Option<usize>> {
    let old: Vec<&str> = orig.split_inclusive('\n').collect();
    let new: Vec<&str> = patched.split_inclusive('\n').collect();
    let mut map = vec![None; new.len()];
    for op in similar::capture_diff_slices(Algorithm::Myers, &old, &new) {
        if let DiffOp::Equal {
            old_index,
            new_index,
            len,
        } = op
        {
            for k in 0..len {
                map[new_index + k] = Some(old_index + k + 1);
            }
        }
    }
    map
}

/// The patched text with `#line` directives; unchanged when the patch only changes lines in place
/// (no line moves).
pub fn inject(orig: &str, patched: &str) -> String {
    let numbers = original_numbers(orig, patched);
    let safe = safe_line_starts(patched);
    let mut out = String::with_capacity(patched.len() + 64);
    // The number the preprocessor gives the next line, given the directives inserted so far (in
    // an active group).
    let mut next = 1;
    // A change happened above: numbering may be off in groups where an earlier directive sat in
    // an inactive `#if` branch and was skipped.
    let mut dirty = false;
    // The previous safe line was a conditional directive after a change: renumber after it even
    // when `next` looks right, since the group it opens may follow a skipped directive.
    let mut after_conditional = false;
    for (i, line) in patched.split_inclusive('\n').enumerate() {
        match numbers[i] {
            Some(n) if safe[i] => {
                if n != next || (after_conditional && dirty) {
                    out.push_str(&format!("#line {n}\n"));
                    next = n;
                }
                after_conditional = false;
            }
            Some(n) if n != next => dirty = true,
            None => dirty = true,
            Some(_) => {}
        }
        if numbers[i] != Some(i + 1) {
            dirty = true;
        }
        if safe[i] && dirty && is_conditional(line) {
            after_conditional = true;
        }
        out.push_str(line);
        next += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers lines as cpp does with `#line`: (line number, text) of every non-directive line.
    fn cpp_numbers(text: &str) -> Vec<(usize, String)> {
        let mut n = 1;
        let mut out = Vec::new();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("#line ") {
                n = v.trim().parse().unwrap();
                continue;
            }
            out.push((n, line.to_string()));
            n += 1;
        }
        out
    }

    fn orig_numbers(orig: &str) -> Vec<(usize, String)> {
        orig.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_string()))
            .collect()
    }

    #[test]
    fn insertion_keeps_later_lines() {
        let orig = "a\nb\nc\nWARN_ON(x);\n";
        let patched = "a\nnew1\nnew2\nb\nc\nWARN_ON(x);\n";
        let out = inject(orig, patched);
        assert_eq!(out, "a\nnew1\nnew2\n#line 2\nb\nc\nWARN_ON(x);\n");
        let got = cpp_numbers(&out);
        assert!(got.contains(&(4, "WARN_ON(x);".into())));
    }

    #[test]
    fn deletion_keeps_later_lines() {
        let orig = "a\nb\nc\nd\n";
        let out = inject(orig, "a\nd\n");
        assert_eq!(out, "a\n#line 4\nd\n");
    }

    #[test]
    fn in_place_change_needs_nothing() {
        assert_eq!(inject("a\nb\nc\n", "a\nB\nc\n"), "a\nB\nc\n");
    }

    #[test]
    fn not_inside_a_macro_continuation() {
        let orig = "#define M(x) \\\n\tdo { \\\n\t\tf(x); \\\n\t} while (0)\nint y;\n";
        let patched =
            "#define M(x) \\\n\tdo { \\\n\t\tg(x); \\\n\t\tf(x); \\\n\t} while (0)\nint y;\n";
        let out = inject(orig, patched);
        assert_eq!(out, "#define M(x) \\\n\tdo { \\\n\t\tg(x); \\\n\t\tf(x); \\\n\t} while (0)\n#line 5\nint y;\n");
    }

    #[test]
    fn not_inside_a_block_comment() {
        let orig = "/* a\n * b\n */\nint x;\n";
        let patched = "/* a\n * new\n * b\n */\nint x;\n";
        assert_eq!(
            inject(orig, patched),
            "/* a\n * new\n * b\n */\n#line 4\nint x;\n"
        );
    }

    #[test]
    fn comment_markers_inside_strings_and_chars_are_code() {
        let text = "s = \"/*\";\nc = '\"';\nt = \"a\\\"/*\";\nint x; // /* not a block\nint y;\n/* x */ int z; /*\n*/\nw;\n";
        assert_eq!(
            safe_line_starts(text),
            vec![true, true, true, true, true, true, false, true]
        );
    }

    #[test]
    fn line_comment_and_string_continued_by_backslash() {
        let text = "// a \\\nstill comment\nint x;\nchar *s = \"a\\\nb\";\nint y;\n";
        assert_eq!(
            safe_line_starts(text),
            vec![true, false, true, true, false, true]
        );
    }

    #[test]
    fn renumbers_after_conditionals_past_a_change() {
        // A change inside `#ifdef CONFIG_FOO`: if FOO is off, the `#line` right after the change is
        // skipped with the group, so the `#endif` gets one of its own.
        let orig = "#ifdef CONFIG_FOO\nfoo();\n#endif\nWARN_ON(1);\n";
        let patched = "#ifdef CONFIG_FOO\nfoo();\nbar();\n#endif\nWARN_ON(1);\n";
        let out = inject(orig, patched);
        assert_eq!(
            out,
            "#ifdef CONFIG_FOO\nfoo();\nbar();\n#line 3\n#endif\n#line 4\nWARN_ON(1);\n"
        );
        // Before any change nothing is added.
        assert_eq!(
            inject("#if A\nx\n#endif\ny\n", "#if A\nx\n#endif\ny\nz\n"),
            "#if A\nx\n#endif\ny\nz\n"
        );
    }

    #[test]
    fn every_unchanged_safe_line_keeps_its_number() {
        let orig: String = (1..=60).map(|i| format!("l{i}\n")).collect();
        let mut lines: Vec<String> = orig.lines().map(String::from).collect();
        lines.insert(50, "n3".into());
        lines.remove(30);
        lines.remove(30);
        lines.insert(10, "n1".into());
        lines.insert(10, "n2".into());
        lines[3] = "changed".into();
        let patched = lines.join("\n") + "\n";
        let got = cpp_numbers(&inject(&orig, &patched));
        let want = orig_numbers(&orig);
        for (n, text) in got.iter().filter(|(_, t)| t.starts_with('l')) {
            assert!(want.contains(&(*n, text.clone())), "{text} numbered {n}");
        }
    }
}
