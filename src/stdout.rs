//! The one writer of stdout. Input: a report's text (or JSON document). Output: the bytes on
//! stdout, through a locked, buffered writer flushed before returning. Invariant: a write error
//! is an error, never a panic (`println!` panics, and a panic exits 101): a reader that went away
//! (`klp-build diff a.o b.o | head -1`, EPIPE) is [`Closed`], which ends the program quietly with
//! exit 141 as if SIGPIPE had killed it (what shells report for `yes | true`); any other failure
//! (`> /dev/full`) is `writing the report to stdout: <reason>`, exit 1.

use std::io::Write as _;

/// Exit code after stdout's reader went away: 128 + SIGPIPE, as a shell reports a process that
/// SIGPIPE killed, so pipelines see what they would from other tools.
pub const EXIT_CLOSED: u8 = 141;

/// Stdout's reader closed the pipe; nothing more can be said there, and nothing is said on stderr.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct Closed;

/// Writes `text` to stdout and flushes it.
pub fn write(text: &str) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            // Drop the buffer's rest instead of a second failing flush on drop.
            let _ = out.into_parts();
            Err(Closed.into())
        }
        Err(e) => {
            let _ = out.into_parts();
            anyhow::bail!(
                "writing the report to stdout: {}; free space on the device or write elsewhere",
                crate::input::io_reason(&e)
            )
        }
    }
}

/// Writes `text` and a newline (a JSON document's end).
pub fn writeln(text: &str) -> anyhow::Result<()> {
    write(&format!("{text}\n"))
}
