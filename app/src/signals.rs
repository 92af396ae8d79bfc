//! SIGINT/SIGTERM as a request to stop: the streaming loops of `view` and `kms-view` check
//! [`stop_requested`], finish cleanly (stats printed, display restored, camera stopped) and exit 0, as
//! `gst-launch-1.0 -e` and `cam` do on Ctrl-C.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};

/// Set by SIGINT/SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT/SIGTERM handler (without SA_RESTART, so a blocked poll returns EINTR).
pub fn install() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler only stores to an
        // atomic, which is async-signal-safe.
        let r = unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut())
        };
        if r != 0 {
            bail!(
                "cannot install a signal handler: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived since [`install`].
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
