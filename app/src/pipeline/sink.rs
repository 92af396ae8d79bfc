//! The sink seam: what the streaming loop ([`super::run`]) needs of an output (a Wayland window, a KMS plane,
//! nothing at all, files). Each takes a [`Picture`] (a dma-buf, the sequence and capture time of the very
//! frame it comes from, the holder that keeps the producer's buffer, the trace record) and drops its holder
//! when it lets the picture go (released: shown and replaced, or written).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use dmacam_capture::{Frame, Source};
use dmacam_display::{PathRequest, Summary};
use dmacam_render::ProcessSpec;

use crate::gpu::GpuStage;
use crate::trace::{FrameRecord, TraceFile, ViewTrace};

pub use dmacam_display::Picture;

/// An output the streaming loop feeds.
pub trait Sink {
    /// Waits up to `timeout` for the sink's own events together with the loop's `fds` (the camera's, the
    /// render stage's completions; none: the sink's alone, e.g. while the camera is away), handles the
    /// sink's, and returns for each of `fds` whether it is readable (or in error, so that the next read
    /// reports it).
    fn wait(&mut self, fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Vec<bool>>;
    /// Shows `picture` (or queues it, replacing an older one still waiting); its holder is dropped when the
    /// sink lets it go.
    fn submit(&mut self, picture: Picture) -> Result<()>;
    /// Takes `picture` with its `--trace` record, if the run is traced. A display sink (this default) has
    /// the display fill in its part of the record, and the line is written when it lets the picture go; a
    /// sink that is done with a picture at once (the file writer) adds its own part and writes the line.
    fn deliver(
        &mut self,
        mut picture: Picture,
        traced: Option<(&Arc<TraceFile>, FrameRecord)>,
    ) -> Result<()> {
        if let Some((file, record)) = traced {
            let vt = ViewTrace::start(file, record);
            picture.holder = picture.holder.map(|h| vt.holder(h));
            picture.trace = Some(vt.display.clone());
        }
        self.submit(picture)
    }
    /// Takes a render-stage output that stayed in host memory (the Vulkan driver cannot export it): only a
    /// sink that reads on the CPU (the file writer) can; a display needs a dma-buf.
    fn deliver_host(
        &mut self,
        out: dmacam_render::OutputFrame,
        sequence: u32,
        _traced: Option<(&Arc<TraceFile>, FrameRecord)>,
    ) -> Result<()> {
        drop(out);
        anyhow::bail!(
            "frame {sequence}: the render stage's output is in host memory (the Vulkan driver cannot export it), \
             and this output needs a dma-buf"
        )
    }
    /// The source gave `frame` flagged corrupt by the driver: it is not shown. For a sink that checks the
    /// stream (`check`) or passes the flag on (`serve`); others need not know (dropping it gives it back).
    fn corrupt(&mut self, _frame: Frame) {}
    /// Pictures presented so far.
    fn shown(&self) -> u64;
    /// Pictures the sink holds now: the loop asks the source for more only while it has more buffers.
    fn held(&self) -> usize {
        0
    }
    /// Whether pictures are still on their way (presentation feedback due): the loop gives them a moment
    /// at the end.
    fn in_flight(&self) -> bool {
        false
    }
    /// The user asked to quit (a window's close button, q or Esc).
    fn close_requested(&self) -> bool {
        false
    }
    /// Why the user quit, once [`Sink::close_requested`] says so (e.g. "the window's close button was
    /// pressed").
    fn close_reason(&self) -> Option<String> {
        None
    }
    /// Keys pressed for the loop to act on (camera controls).
    fn take_keys(&mut self) -> Vec<char> {
        Vec::new()
    }
    /// Hands every picture back (the source is going away), keeping the last one shown if the sink can.
    fn release_frames(&mut self) -> Result<()>;
    /// The sink refused the camera's own dma-bufs and would take the render stage's (`view --path auto` on a
    /// compositor that cannot import them): why. Asked while the loop runs without the render stage; the
    /// answer is acted on once, through [`Sink::fell_back`].
    fn refused(&self) -> Option<String> {
        None
    }
    /// After [`Sink::refused`]: the render stage was brought up (`Ok`, it converts from now on) or cannot
    /// be (`Err`, why).
    fn fell_back(&mut self, _why: &str, _gpu: Result<(), String>) {}
    /// Whether the sink takes a picture the GPU is still writing, and how it learns when it is written
    /// ([`Acquire`]); `None` (this default): the loop hands pictures over only once the GPU is done.
    fn acquire(&self) -> Option<Acquire> {
        None
    }
}

/// How a display learns that a picture handed over in flight is written (its `Fences::acquire`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// It hands the fence on itself: a compositor with explicit sync, KMS's IN_FENCE_FD (trace: `explicit`).
    Explicit,
    /// It reads the dma-buf with implicit sync: the loop attaches the fence to the dma-buf
    /// (DMA_BUF_IOCTL_IMPORT_SYNC_FILE; trace: `implicit-attached`).
    Implicit,
}

impl Acquire {
    /// What `DMACAM_DISPLAY_SYNC` asks instead of the sink's own answer (a diagnostic switch: `cpu-wait`
    /// hands pictures over only once the GPU is done, `implicit` attaches the fence even where the
    /// compositor takes it explicitly); `None`: not set.
    pub fn forced() -> Option<Option<Acquire>> {
        match std::env::var("DMACAM_DISPLAY_SYNC").ok()?.as_str() {
            "" => None,
            "cpu-wait" => Some(None),
            "implicit" => Some(Some(Acquire::Implicit)),
            "explicit" => Some(Some(Acquire::Explicit)),
            other => {
                tracing::warn!(
                    "DMACAM_DISPLAY_SYNC={other}: not cpu-wait, implicit or explicit; ignored"
                );
                None
            }
        }
    }
}

/// For sinks whose events come on an fd: polls `fds` for reading for up to `timeout` and returns each one's
/// `revents` (all 0 when the poll was interrupted by a signal: the loop then looks at its stop rules).
pub fn poll_fds(fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Vec<libc::c_short>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pollfds` is a valid array of pollfds for the duration of the call, and its fds are open
    // (borrowed for it).
    let r = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            bail!("poll: {e}");
        }
        return Ok(vec![0; fds.len()]);
    }
    Ok(pollfds.iter().map(|p| p.revents).collect())
}

/// [`Sink::wait`] for a sink with no events of its own: polls `fds` (sleeps when there are none).
pub fn wait_fds(fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Vec<bool>> {
    if fds.is_empty() {
        std::thread::sleep(timeout);
        return Ok(Vec::new());
    }
    Ok(poll_fds(fds, timeout)?.iter().map(|&r| r != 0).collect())
}

/// A sink `view` sets up around a source it opened itself (the Wayland window, the null sink; the KMS output
/// chooses the camera's format with its plane, in `crate::show`'s `kms.rs`).
pub trait Output: Sink {
    /// Chooses the buffer path for `stream`'s frames as asked (`--path`, `--process`), says it on stderr and
    /// returns the render stage if the path has one.
    fn start(&mut self, stream: &Source, ask: &Start) -> Result<Option<GpuStage>>;
    /// The statistics of the run so far (the caller adds the intake, the render stage and the decode).
    fn summary(&self) -> Summary;
}

/// What [`Output::start`] is asked.
pub struct Start {
    /// `--path`, made `gpu` by `--process`.
    pub path: PathRequest,
    pub spec: Option<ProcessSpec>,
    /// The source's node, for messages.
    pub dev: PathBuf,
    /// What is shown: source, format, size, rate (a window's title).
    pub title: String,
}
