//! The seam through which the stages say what they are doing. Input: stage names, notes, warnings
//! and the command lines of the programs they run. Output: whatever the [`Progress`] given to
//! them does with those (the presenter prints them on stderr at the chosen verbosity; a release
//! or a test passes [`Quiet`]). Invariant: stage code never prints; it only calls a `Progress`.

use std::process::Command;

/// Where a stage says what it is doing; the presenter decides how it looks and what is shown.
pub trait Progress {
    /// A stage starts.
    fn stage(&mut self, name: &str);
    /// Something worth saying within a stage.
    fn note(&mut self, message: &str);
    /// Something the user should look at, also in the report (a hunk applied with fuzz).
    fn warning(&mut self, message: &str) {
        self.note(&format!("warning: {message}"));
    }
    /// A program is about to run, as a shell would spell its command line.
    fn command(&mut self, _line: &str) {}
    /// How a stage went about its work (a cached original and why another was not), for `-v`.
    fn detail(&mut self, _message: &str) {}
}

/// Progress that goes nowhere (for callers that only want the value).
pub struct Quiet;

impl Progress for Quiet {
    fn stage(&mut self, _: &str) {}
    fn note(&mut self, _: &str) {}
    fn warning(&mut self, _: &str) {}
}

/// How much the build says on stderr (`-q`, default, `-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    /// Errors only (the report on stdout is the result).
    Quiet,
    /// Stages, notes and warnings.
    #[default]
    Normal,
    /// Also every command run.
    Verbose,
}

/// `cmd` as a shell would spell it: the program, then each argument, quoted when it holds
/// anything but plain characters (`make -C /src -j2 'KCFLAGS=-ffunction-sections -fdata-sections'`).
pub fn command_line(cmd: &Command) -> String {
    let mut words = vec![quote(&cmd.get_program().to_string_lossy())];
    words.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    if let Some(dir) = cmd.get_current_dir() {
        words.insert(0, format!("(cd {} &&", quote(&dir.to_string_lossy())));
        words.push(")".into());
    }
    words.join(" ")
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let mut c = Command::new("make");
        c.arg("-C")
            .arg("/src/linux")
            .arg("KCFLAGS=-ffunction-sections -fdata-sections")
            .arg("it's");
        assert_eq!(
            command_line(&c),
            "make -C /src/linux 'KCFLAGS=-ffunction-sections -fdata-sections' 'it'\\''s'"
        );
        c.current_dir("/tmp/x y");
        assert!(command_line(&c).starts_with("(cd '/tmp/x y' && make"));
    }
}
