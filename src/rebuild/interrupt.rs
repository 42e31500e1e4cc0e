//! Ctrl-C (SIGINT, SIGTERM, SIGHUP) while the source tree is modified. Input: the signals.
//! Output: a flag the build polls, and exit code 130. Invariant: while a [`Modifying`] token lives
//! the process never dies of the signal: the build stops its make and its guard restores the tree
//! first; without one, the signal ends the process at once, as it would without a handler.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// The exit code of a process ended by Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The error of a run stopped by a signal, after the tree was restored; `main` exits with
/// [`EXIT_INTERRUPTED`] for it.
#[derive(Debug, thiserror::Error)]
#[error("interrupted{0}")]
pub struct Interrupted(pub String);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static MODIFYING: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

/// Installs the handler, once per process. Failing to (another handler is installed) is said on
/// stderr: the build still works, but Ctrl-C can then leave the tree modified.
pub fn install() {
    INSTALL.call_once(|| {
        if let Err(e) = ctrlc::set_handler(on_signal) {
            eprintln!(
                "klp-build: warning: cannot handle Ctrl-C ({e}); an interrupted build may leave the source tree \
                 modified (the next build restores it from its journal)"
            );
        }
    });
}

fn on_signal() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    if MODIFYING.load(Ordering::SeqCst) == 0 {
        eprintln!("klp-build: interrupted");
        std::process::exit(EXIT_INTERRUPTED);
    }
}

/// A signal arrived since the process started.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Held while the tree is modified: a signal then only sets the flag.
#[derive(Debug)]
pub struct Modifying(());

impl Modifying {
    /// Marks the tree as being modified until the token drops.
    pub fn start() -> Modifying {
        MODIFYING.fetch_add(1, Ordering::SeqCst);
        Modifying(())
    }
}

impl Drop for Modifying {
    fn drop(&mut self) {
        MODIFYING.fetch_sub(1, Ordering::SeqCst);
    }
}
