//! Per-target progress of a release. Input: lines from each target's worker (fetch, scan, the
//! child build's stage lines). Output: on a terminal, one live line per target (indicatif); in a
//! CI log, plain `klp-build: [target] line` lines. Invariant: shared by the worker threads
//! (`Sync`); nothing else of the release writes to stderr while it runs.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The release's progress display.
pub struct Lines {
    bars: Option<(MultiProgress, Vec<ProgressBar>)>,
    keys: Vec<String>,
    plain: Mutex<()>,
}

impl Lines {
    /// One line per target of `keys`; live lines only when stderr is a terminal.
    pub fn new(keys: &[String], quiet: bool) -> Lines {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let m = MultiProgress::new();
            let width = keys.iter().map(String::len).max().unwrap_or(0);
            let style = ProgressStyle::with_template(&format!(
                "{{spinner}} {{prefix:<{width}}} [{{elapsed:>4}}] {{wide_msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bars = keys
                .iter()
                .map(|k| {
                    let b = m.add(ProgressBar::new_spinner());
                    b.set_style(style.clone());
                    b.set_prefix(k.clone());
                    b.set_message("waiting");
                    b.enable_steady_tick(std::time::Duration::from_millis(200));
                    b
                })
                .collect();
            (m, bars)
        });
        Lines {
            bars,
            keys: keys.to_vec(),
            plain: Mutex::new(()),
        }
    }

    /// Target `i` says `message`.
    pub fn say(&self, i: usize, message: &str) {
        // The child build's lines quote patch and module text: escaped, as every text report.
        let message = crate::text::field_max(message.trim_end(), 800);
        let message = message.as_str();
        match &self.bars {
            Some((_, bars)) => {
                if let Some(b) = bars.get(i) {
                    b.set_message(message.to_string());
                }
            }
            None => {
                let _g = self.plain.lock();
                let key = self.keys.get(i).map_or("?", String::as_str);
                eprintln!("klp-build: [{key}] {message}");
            }
        }
    }

    /// Target `i` is done, with its final word.
    pub fn finish(&self, i: usize, message: &str) {
        match &self.bars {
            Some((_, bars)) => {
                if let Some(b) = bars.get(i) {
                    b.finish_with_message(message.to_string());
                }
            }
            None => self.say(i, message),
        }
    }
}
