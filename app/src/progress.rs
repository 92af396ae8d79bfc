//! The progress bar a run draws on stderr while it works through a known number of frames (`dump`), built on
//! `indicatif`.
//!
//! It is drawn only when stderr is a terminal: otherwise nothing at all is written, so logs and tests read the
//! same lines as without it. Redraws are limited to ten a second once indicatif's allowance for a short burst
//! (20 draws) is spent: a redraw per frame at 60 fps floods a slow terminal or a serial console. The last
//! state is always drawn. However the run ends, by [`Bar::finish`]
//! or by an error dropping the bar, the bar is left where it stopped and its line ended, so the summary or
//! the one-line error that follows starts on a line of its own.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Redraws per second at most, in the long run.
const REDRAW_HZ: u8 = 10;

/// A `[####......] done/total frames` bar on stderr, or nothing when stderr is not a terminal.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar for `total` frames, not drawn until the first [`Bar::set`].
    pub fn frames(total: u64) -> Self {
        // indicatif hides a stderr target that is not a terminal by itself; asking first also spares the
        // bar's state and makes the promise above independent of that.
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let style = ProgressStyle::with_template("[{bar:30}] {pos}/{len} frames")
            .expect("the template is valid")
            .progress_chars("#.");
        let bar = ProgressBar::with_draw_target(
            Some(total),
            ProgressDrawTarget::stderr_with_hz(REDRAW_HZ),
        )
        .with_style(style);
        Self(Some(bar))
    }

    /// `done` frames so far; drawn if the last redraw was long enough ago.
    pub fn set(&self, done: u64) {
        if let Some(b) = &self.0 {
            b.set_position(done);
        }
    }

    /// Draws the final state and ends the bar's line; dropping the bar (on an error) does the same.
    pub fn finish(self) {}
}

impl Drop for Bar {
    fn drop(&mut self) {
        let Some(b) = self.0.take() else { return };
        if b.position() == 0 {
            // Never drawn: nothing to leave on the terminal.
            b.finish_and_clear();
        } else {
            // indicatif leaves the cursor on the bar's line; what follows gets a line of its own.
            b.abandon();
            eprintln!();
        }
    }
}
