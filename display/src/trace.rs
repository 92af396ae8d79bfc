//! The display stage's part of a per-frame trace (`dmacam view --trace`): which buffer a frame went to, when
//! it was committed, presented or discarded, and what the CPU copied. The producer attaches a [`FrameTrace`]
//! to a [`crate::Picture`]; the viewer fills it in as the frame travels. When the last reference goes — the
//! compositor released the buffer (the producer's holder is dropped) and the presentation feedback is in —
//! the producer's `on_done` runs with the finished record.

use std::sync::{Arc, Mutex};

/// What happened to one frame in the display stage.
#[derive(Debug, Clone, Default)]
pub struct DisplayRecord {
    /// `dmabuf` (a zwp_linux_dmabuf_v1 wl_buffer over the frame's own dma-buf), `shm` (a copy), or `kms` (a
    /// framebuffer over the PRIME-imported dma-buf).
    pub kind: Option<&'static str>,
    /// The wl_buffer's protocol id.
    pub wl_buffer: Option<u32>,
    /// The KMS framebuffer id (`dmacam view --output kms`).
    pub kms_fb: Option<u32>,
    /// The inodes of the dma-bufs the wl_buffer was created from (fstat of the fds sent to the compositor).
    pub inodes: Vec<u64>,
    /// When the surface was committed with this frame, CLOCK_MONOTONIC nanoseconds.
    pub committed_ns: Option<u64>,
    /// When the compositor presented it (wp_presentation), moved onto CLOCK_MONOTONIC; on KMS, the time of
    /// the page flip that put it on screen.
    pub presented_ns: Option<u64>,
    /// What the compositor said of the presentation, in wp_presentation_feedback's own words (`vsync`,
    /// `hw_clock`, `hw_completion`, `zero_copy`: it scanned the buffer out as is rather than compositing
    /// it); empty on KMS, where the page flip of the frame's own framebuffer is the word.
    pub presentation_flags: Vec<&'static str>,
    /// The latency the display stage counted for it in its statistics: presentation (or page flip) minus the
    /// capture time the frame was submitted with.
    pub latency_ns: Option<u64>,
    /// The compositor reported it discarded (never shown).
    pub discarded: bool,
    /// Replaced by a newer frame before it was committed (never shown).
    pub replaced: bool,
    /// Bytes the CPU copied for it (the shm path).
    pub cpu_bytes_copied: u64,
    /// How the output learnt that a picture handed over in flight was written: `explicit` (the acquire fence
    /// went to the compositor, zwp_linux_explicit_synchronization_v1, or to KMS as IN_FENCE_FD) or `cpu-wait`
    /// (the output waited for it itself: the shm copy). `None` when the picture came finished.
    pub sync: Option<&'static str>,
}

type OnDone = Box<dyn FnOnce(&DisplayRecord) + Send>;

/// A frame's display record, shared by the viewer and the producer's holder.
pub struct FrameTrace {
    record: Mutex<DisplayRecord>,
    on_done: Mutex<Option<OnDone>>,
}

impl FrameTrace {
    /// A new, empty record; `on_done` runs with it when the last reference is dropped.
    pub fn new(on_done: impl FnOnce(&DisplayRecord) + Send + 'static) -> Arc<FrameTrace> {
        Arc::new(FrameTrace {
            record: Mutex::new(DisplayRecord::default()),
            on_done: Mutex::new(Some(Box::new(on_done))),
        })
    }

    /// Changes the record.
    pub fn update(&self, f: impl FnOnce(&mut DisplayRecord)) {
        let mut r = self.record.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut r);
    }
}

impl std::fmt::Debug for FrameTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameTrace")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl Drop for FrameTrace {
    fn drop(&mut self) {
        let record = self.record.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(done) = self
            .on_done
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            done(record);
        }
    }
}
