//! Waiting for an fd to become readable: the card's DRM events, a writeback fence.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags};

use super::error::KmsError;

/// Polls `fd` for input up to `timeout`; true if readable. EINTR counts as not readable (the caller loops and
/// checks its stop flag).
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> Result<bool, KmsError> {
    let ms = timeout.as_millis().clamp(1, u128::from(u16::MAX)) as u16;
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    match nix::poll::poll(&mut fds, ms) {
        Ok(0) => Ok(false),
        Ok(_) => Ok(fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(KmsError::Ioctl {
            path: std::path::PathBuf::from("(poll)"),
            what: "poll",
            source: e.into(),
        }),
    }
}
