//! What an application hands the viewer: its [`ViewerOptions`] and [`BufferMode`], and each [`Picture`] to show.

use std::any::Any;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use dmacam_capture::fence::ReleaseFence;
use dmacam_capture::{Dmabuf, Fourcc};

use super::frame::FrameScript;
use crate::trace::FrameTrace;

/// How the viewer hands frames to the compositor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferMode {
    /// zwp_linux_dmabuf_v1 wl_buffers over the frames' own dma-bufs.
    Dmabuf,
    /// wl_shm buffers filled by one CPU copy per frame.
    Shm,
}

/// Options of a viewer window.
#[derive(Debug, Clone)]
pub struct ViewerOptions {
    /// The Wayland display (socket name or absolute path); `None` uses `WAYLAND_DISPLAY`.
    pub display: Option<String>,
    /// Window title.
    pub title: String,
    /// The window's size before the first frame (the frame size, normally).
    pub initial_size: (u32, u32),
    /// Start fullscreen.
    pub fullscreen: bool,
    /// Initial buffer mode; [`Viewer::set_mode`](super::Viewer::set_mode) changes it.
    pub mode: BufferMode,
    /// In dma-buf mode, fall back to shm (with a warning) if the compositor fails to import a buffer.
    pub allow_shm_fallback: bool,
    /// Test aid: announce this modifier for every dma-buf of this format instead of its own (the import
    /// then fails).
    pub modifier_override: Option<(Fourcc, u64)>,
    /// Test aid: frame actions (close, maximise, a resize…) run as if the user had used the window's frame,
    /// from the first frame shown on.
    pub frame_actions: FrameScript,
}

impl Default for ViewerOptions {
    fn default() -> Self {
        ViewerOptions {
            display: None,
            title: "dmacam".into(),
            initial_size: (640, 480),
            fullscreen: false,
            mode: BufferMode::Dmabuf,
            allow_shm_fallback: true,
            modifier_override: None,
            frame_actions: FrameScript::default(),
        }
    }
}

/// One picture to show, on any output (the viewer, the KMS scanout): a dma-buf with the sequence and capture
/// time of the very frame it comes from. `holder` keeps the producer's buffer busy: the output drops it when it
/// lets the picture go (the viewer when the compositor releases the wl_buffer, or right after the copy in shm
/// mode; the scanout after the flip that replaced it), which returns the buffer to its producer.
pub struct Picture {
    pub dmabuf: Dmabuf,
    pub sequence: u32,
    /// Capture time on CLOCK_MONOTONIC, for the latency measurement.
    pub timestamp: Option<Duration>,
    pub holder: Option<Box<dyn Any + Send>>,
    /// The frame's display record for `--trace`, filled in by the viewer (see [`crate::trace`]).
    pub trace: Option<Arc<FrameTrace>>,
    /// The fences of a picture handed over before its producer (the GPU) has finished writing it.
    pub fences: Fences,
}

impl Picture {
    /// A finished picture with no trace: `dmabuf`, the sequence and capture time of its frame, and the holder
    /// that keeps its buffer busy.
    pub fn new(
        dmabuf: Dmabuf,
        sequence: u32,
        timestamp: Option<Duration>,
        holder: Box<dyn Any + Send>,
    ) -> Picture {
        Picture {
            dmabuf,
            sequence,
            timestamp,
            holder: Some(holder),
            trace: None,
            fences: Fences::default(),
        }
    }
}

/// The fences that come with a [`Picture`] handed over while its producer is still writing it: the output
/// must not read the pixels before `acquire` has signalled (a compositor is given it as an acquire fence,
/// KMS as the plane's IN_FENCE_FD; an output that can do neither waits for it), and puts the fence it lets the
/// buffer go with, if any, into `release`. Both empty for a finished picture.
#[derive(Debug, Clone, Default)]
pub struct Fences {
    /// A sync_file that signals when the pixels are written.
    pub acquire: Option<Arc<OwnedFd>>,
    /// Where the output puts its release fence (the producer writes the buffer again only once it signalled).
    pub release: Option<Arc<ReleaseFence>>,
}

impl Fences {
    /// How long an output that cannot hand the acquire fence on waits for it at most.
    const ACQUIRE_WAIT: Duration = Duration::from_secs(10);

    /// Waits (on the CPU, up to [`Self::ACQUIRE_WAIT`]) for the acquire fence, for an output that cannot
    /// hand it on; returns whether there was one to wait for.
    pub fn wait_acquire(&self) -> bool {
        use std::os::fd::AsFd;
        let Some(fd) = &self.acquire else {
            return false;
        };
        // A failed poll or a fence past the bound: the output reads what is there (as a timed-out
        // implicit-sync reader would).
        let _ = dmacam_capture::fence::poll_signalled(fd.as_fd(), Self::ACQUIRE_WAIT);
        true
    }
}

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picture")
            .field("dmabuf", &self.dmabuf)
            .field("sequence", &self.sequence)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}
