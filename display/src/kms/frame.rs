//! What the scanout shows: a [`ScanoutFrame`] (a [`crate::Picture`], or a test's own frames), with its
//! capture time, trace record and, for a frame handed over while the GPU still writes it, its acquire fence.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use dmacam_capture::Dmabuf;

use crate::trace::FrameTrace;

/// The plane property that makes an atomic commit wait for a fence (a sync_file's fd).
pub(super) const IN_FENCE_FD: &str = "IN_FENCE_FD";

/// A frame the scanout can show. The frame is held (and its buffer kept from the producer) until the flip
/// that replaced it on screen has completed.
pub trait ScanoutFrame {
    /// The frame's memory.
    fn dmabuf(&self) -> &Dmabuf;
    /// When the frame was captured, on CLOCK_MONOTONIC, if known (for the latency statistics).
    fn capture_time(&self) -> Option<Duration>;
    /// The producer's sequence number, if any (gaps count as drops).
    fn sequence(&self) -> Option<u32> {
        None
    }
    /// The frame's trace record (`--trace`), filled in as it travels: framebuffer, commit, flip, replaced.
    fn trace(&self) -> Option<&Arc<FrameTrace>> {
        None
    }
    /// A sync_file that signals when the frame's pixels are written, for a frame handed over while its
    /// producer (the GPU) is still writing it: the flip waits for it (the plane's IN_FENCE_FD).
    fn acquire_fence(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// Waits on the CPU for [`ScanoutFrame::acquire_fence`], where a commit cannot take it (a modeset, a
    /// legacy flip); returns whether there was one.
    fn wait_acquire(&self) -> bool {
        false
    }
}

impl ScanoutFrame for crate::Picture {
    fn dmabuf(&self) -> &Dmabuf {
        &self.dmabuf
    }

    fn capture_time(&self) -> Option<Duration> {
        self.timestamp
    }

    fn sequence(&self) -> Option<u32> {
        Some(self.sequence)
    }

    fn trace(&self) -> Option<&Arc<FrameTrace>> {
        self.trace.as_ref()
    }

    fn acquire_fence(&self) -> Option<BorrowedFd<'_>> {
        self.fences.acquire.as_ref().map(|f| f.as_fd())
    }

    fn wait_acquire(&self) -> bool {
        self.fences.wait_acquire()
    }
}
