//! Progress bars for long operations: drawn on stderr only when it is a terminal and
//! `-q` was not given, so scripts and pipes see nothing but the results.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar that may be switched off.
#[derive(Debug)]
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar of `len` units of `unit` ("pages", "bytes") labelled `what`, shown if
    /// `show`.
    #[must_use]
    pub fn new(show: bool, what: &str, len: u64, bytes: bool) -> Bar {
        if !show {
            return Bar(None);
        }
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        let template = if bytes {
            "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg:>10} [{bar:40}] {pos}/{len} eta {eta}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message(what.to_owned());
        Bar(Some(pb))
    }

    /// Whether bars are shown: stderr is a terminal and not `quiet`.
    #[must_use]
    pub fn wanted(quiet: bool) -> bool {
        !quiet && std::io::stderr().is_terminal()
    }

    /// Sets the length (once known).
    pub fn set_len(&self, len: u64) {
        if let Some(pb) = &self.0 {
            pb.set_length(len);
        }
    }

    /// Sets the position.
    pub fn set(&self, pos: u64) {
        if let Some(pb) = &self.0 {
            pb.set_position(pos);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}
