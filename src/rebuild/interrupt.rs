//! Ctrl-C (SIGINT, SIGTERM, SIGHUP) while klp-build has something to undo. Input: the signals.
//! Output: a flag that the build and its make runs poll, and the typed error [`Interrupted`] that
//! `main` turns into exit code 130. Invariant: while a [`Defer`] token lives (the source tree is
//! modified, or a make of ours runs) a signal only sets the flag: the code that holds the token
//! stops its make, restores the tree and returns [`Interrupted`]; without a token the signal ends
//! the process at once, as if there were no handler (default disposition, signal re-raised).
//! Nothing here calls `process::exit`.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Once;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The exit code of an interrupted run (128 + SIGINT), as shells report a Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The signal that arrived (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static DEFERRING: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

/// The run was stopped by a signal after klp-build put the tree back (and stopped its make).
#[derive(Debug, Clone, thiserror::Error)]
#[error("interrupted by {} {during}", signal_name(*.signal))]
pub struct Interrupted {
    /// The signal number (SIGINT, SIGTERM or SIGHUP).
    pub signal: i32,
    /// What was running, for the message: `while building the patched objects`.
    pub during: String,
}

/// `SIGINT` for 2, and so on for the signals handled here.
pub fn signal_name(signal: i32) -> String {
    match signal {
        SIGINT => "SIGINT".into(),
        SIGTERM => "SIGTERM".into(),
        SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

/// Installs the handler, once per process. Failing to is said on stderr: the build still works,
/// but a signal then kills klp-build at once (the next build replays the journal and stops the
/// orphaned make, see `guard::recover`).
pub fn install() {
    INSTALL.call_once(|| {
        let signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "klp-build: warning: cannot handle Ctrl-C ({e}); an interrupted build leaves the source tree \
                     modified until the next build restores it from its journal"
                );
                return;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("klp-build-signals".into())
            .spawn(move || {
                let mut signals = signals;
                for signal in signals.forever() {
                    on_signal(signal);
                }
            });
        if let Err(e) = spawned {
            eprintln!("klp-build: warning: cannot handle Ctrl-C ({e})");
        }
    });
}

/// Runs on the signal thread (not in a signal handler: anything may be called).
fn on_signal(signal: i32) {
    // The flag first, then the count: `Defer::start` increments the count and then reads the
    // flag, so (both SeqCst) either the holder sees the flag or this sees the holder.
    let _ = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    if DEFERRING.load(Ordering::SeqCst) == 0 {
        eprintln!("klp-build: interrupted by {}", signal_name(signal));
        // Die of the signal, as without a handler: the parent (a shell, a supervisor) sees
        // "killed by SIGINT" and stops too. Only fails for signals with no default action.
        let _ = signal_hook::low_level::emulate_default_handler(signal);
    }
}

/// The signal that arrived since the handler was installed, if any.
pub fn signal() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// A signal arrived since the handler was installed.
pub fn interrupted() -> bool {
    signal().is_some()
}

/// `Err(Interrupted)` when a signal arrived; `during` says what was running.
pub fn check(during: &str) -> Result<(), Interrupted> {
    match signal() {
        None => Ok(()),
        Some(signal) => Err(Interrupted {
            signal,
            during: during.to_string(),
        }),
    }
}

/// Held while klp-build has something to undo or stop before it may die: a signal then only
/// sets the flag.
#[derive(Debug)]
pub struct Defer(());

impl Defer {
    /// Defers signals until the token drops. The holder must check [`interrupted`] before it
    /// changes anything: a signal may have arrived just before.
    pub fn start() -> Defer {
        DEFERRING.fetch_add(1, Ordering::SeqCst);
        Defer(())
    }
}

impl Drop for Defer {
    fn drop(&mut self) {
        DEFERRING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether `e` (or an error it wraps) is an [`Interrupted`].
pub fn is_interrupted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<Interrupted>().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_the_signal_and_survives_context() {
        let e = anyhow::Error::new(Interrupted {
            signal: SIGTERM,
            during: "while building the patched objects".into(),
        })
        .context("building fs/proc/cmdline.o");
        assert!(is_interrupted(&e));
        assert_eq!(
            format!("{e:#}"),
            "building fs/proc/cmdline.o: interrupted by SIGTERM while building the patched objects"
        );
        assert!(!is_interrupted(&anyhow::anyhow!("other")));
    }
}
