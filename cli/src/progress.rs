//! Progress bars (`indicatif`) for long runs: the bytes hashed of each file by `sign` and
//! `verify`, the content copied into an attached signature, the steps of `backup`/`restore`.
//! They are drawn on standard error only when it is a terminal and `--quiet` was not given;
//! otherwise the bars are hidden and write nothing (piped and scripted runs stay clean).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: no progress bars even on a terminal.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether bars are drawn: standard error is a terminal and `--quiet` was not given.
fn visible() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// A bar over `len` bytes, labelled `msg`; hidden unless [`visible`].
pub fn bytes(len: u64, msg: String) -> ProgressBar {
    if !visible() {
        return ProgressBar::hidden();
    }
    // cleared when dropped unfinished (an error), so the message stands alone
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
        .with_finish(ProgressFinish::AndClear);
    // fits 80 columns: the message is cut to what the terminal leaves (wide_msg)
    let style =
        ProgressStyle::with_template("{wide_msg} [{bar:20}] {bytes}/{total_bytes} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(msg);
    pb
}

/// A bar over `len` steps or objects, labelled `msg`, ticking on its own (for steps that take
/// long without reporting, such as the key derivation of a backup); hidden unless [`visible`].
pub fn steps(len: u64, msg: String) -> ProgressBar {
    if !visible() {
        return ProgressBar::hidden();
    }
    // cleared when dropped unfinished (an error), so the message stands alone
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
        .with_finish(ProgressFinish::AndClear);
    let style = ProgressStyle::with_template("{spinner} {wide_msg} [{bar:20}] {pos}/{len}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

#[cfg(test)]
mod tests {
    #[test]
    fn hidden_under_cargo_test_quiet() {
        super::set_quiet(true);
        assert!(super::bytes(10, "x".into()).is_hidden());
        assert!(super::steps(3, "x".into()).is_hidden());
        super::set_quiet(false);
    }
}
