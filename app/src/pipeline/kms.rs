//! The KMS scanout as a [`Sink`]: page-flip events pace the loop, and a picture's holder is dropped after
//! the flip that replaced it on screen (`display/src/kms/scanout.rs`).

use std::os::fd::BorrowedFd;
use std::time::Duration;

use anyhow::Result;
use dmacam_display::kms::Scanout;

use super::sink::{poll_fds, Acquire, Picture, Sink};

/// How long a disconnect waits for the flip in flight before the pictures go back.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

impl Sink for Scanout<Picture> {
    fn wait(&mut self, fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Vec<bool>> {
        let all: Vec<BorrowedFd<'_>> = std::iter::once(self.fd())
            .chain(fds.iter().copied())
            .collect();
        let revents = poll_fds(&all, timeout)?;
        if revents[0] & libc::POLLIN != 0 {
            self.dispatch()?;
        }
        Ok(revents[1..].iter().map(|&r| r != 0).collect())
    }

    fn submit(&mut self, picture: Picture) -> Result<()> {
        Ok(Scanout::submit(self, picture)?)
    }

    fn shown(&self) -> u64 {
        self.stats().shown
    }

    fn held(&self) -> usize {
        Scanout::held(self)
    }

    fn release_frames(&mut self) -> Result<()> {
        Ok(Scanout::release_frames(self, RELEASE_WAIT)?)
    }

    /// The flip waits for the GPU (IN_FENCE_FD) where the commit is atomic; the scanout waits on the CPU
    /// where it is not, and the trace says which.
    fn acquire(&self) -> Option<Acquire> {
        Some(Acquire::Explicit)
    }
}
