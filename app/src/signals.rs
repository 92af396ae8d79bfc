//! SIGINT/SIGTERM as a request to stop, on `signal-hook`: every streaming mode checks [`stop_requested`]
//! between frames and finishes cleanly (the frame in hand completed, files and traces complete, display
//! restored, camera stopped), as `gst-launch-1.0 -e` and `cam` do on Ctrl-C. A second signal while stopping
//! ends the process at once (exit 128 + signal number), for a stop that does not come.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};

/// The signal that asked to stop (0: none yet).
static STOP: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Installs the SIGINT/SIGTERM handlers (idempotent).
pub fn install() -> Result<()> {
    if STOP.get().is_some() {
        return Ok(());
    }
    let stop = STOP.get_or_init(|| Arc::new(AtomicUsize::new(0)));
    let asked = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // Handlers run in the order registered: the shutdown looks at `asked` before this signal sets it.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, asked.clone())
            .and_then(|_| signal_hook::flag::register(sig, asked.clone()))
            .and_then(|_| signal_hook::flag::register_usize(sig, stop.clone(), sig as usize))
            .context("cannot install a SIGINT/SIGTERM handler")?;
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived since [`install`].
pub fn stop_requested() -> bool {
    stop_signal().is_some()
}

/// The signal that asked to stop, if one did.
pub fn stop_signal() -> Option<i32> {
    match STOP.get()?.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig as i32),
    }
}

/// The signal's name, for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
