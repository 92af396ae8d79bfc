//! The render stage as the streaming loop (`crate::pipeline`) runs it for `view` and `dump`: the Vulkan renderer for one
//! camera format, its colorimetry and processing spec, and a count of the camera frames skipped because every
//! output buffer was still on (or on its way to) the screen.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dmacam_capture::monotonic_ns;
use dmacam_capture::stream::StreamError;
use dmacam_capture::{Dmabuf, Format, Frame, Source};
use dmacam_display::{Fences, Intake};
use dmacam_render::{
    Colorimetry, Mode, OutputFrame, Pending, ProcessSpec, RenderError, Renderer, SpecError,
};

use crate::pipeline::Acquire;
use crate::trace::{FrameRecord, GpuRecord, TraceFile};

/// Output buffers: one on screen, one committed and waiting for release (or a flip), one pending, one being
/// drawn.
pub const GPU_RING: usize = 4;

/// Why the render stage cannot run for a format, in the words the path decision shows; the render crate's
/// error stays the source.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The camera's colorimetry is not one the shaders convert.
    #[error(transparent)]
    Colour(RenderError),
    /// The `--process` spec does not fit the frame.
    #[error("--process: {0}")]
    Process(SpecError),
    /// No Vulkan device that imports dma-bufs.
    #[error(transparent)]
    Device(RenderError),
}

/// Conversions on the GPU at once: one finishing while the next is already submitted.
pub const IN_FLIGHT: usize = 2;

/// A conversion on the GPU and the camera frame it reads.
struct InFlight {
    // Field order is drop order: the conversion is waited for before the camera buffer goes back.
    pending: Pending,
    frame: Frame,
    index: u32,
    record: Option<FrameRecord>,
    /// Its output was handed over at submission with the GPU's fence ([`GpuStage::start`]): when it is
    /// done, only the camera buffer goes back.
    handed_over: bool,
}

/// A finished conversion: the output, its dma-buf, and the sequence, capture time and trace record of the
/// camera frame it was made from.
pub struct Converted {
    pub out: OutputFrame,
    /// The output as a dma-buf; `None` when it stays in host memory ([`GpuStage::for_cpu_reader`]).
    pub dmabuf: Option<Dmabuf>,
    pub sequence: u32,
    pub timestamp: Option<Duration>,
    pub record: Option<FrameRecord>,
    /// For an output handed over while the GPU is still writing it: its acquire fence and the slot for the
    /// display's release fence. Empty for a finished one.
    pub fences: Fences,
}

/// The render stage of the gpu path.
pub struct GpuStage {
    // Field order is drop order: conversions in flight finish before the renderer goes.
    in_flight: VecDeque<InFlight>,
    pub renderer: Renderer,
    pub colour: Colorimetry,
    pub spec: ProcessSpec,
    /// Camera frames skipped because every output buffer was still held.
    pub ring_full: u64,
    /// Attaching the GPU's fence to an output dma-buf failed (said once).
    attach_failed: bool,
    /// Whether the driver's exported fences are kernel sync_files: learnt from the first one (a driver's
    /// fences are all of one kind), said once if not.
    sync_files: Option<bool>,
    /// Fences go to the display even when already signalled (`DMACAM_DISPLAY_SYNC`: [`Self::force_fences`]).
    forced: bool,
}

impl GpuStage {
    /// The render stage for camera frames of `format`, processed by `spec`.
    pub fn new(format: &Format, spec: ProcessSpec) -> Result<GpuStage, StageError> {
        GpuStage::with(format, spec, || {
            Renderer::new(dmacam_render::Options {
                ring: GPU_RING,
                ..Default::default()
            })
        })
    }

    /// The render stage for a consumer that reads the output on the CPU (`dump --process`): see
    /// [`renderer_for_cpu_reader`]; its conversions may come without a dma-buf.
    pub fn for_cpu_reader(
        format: &Format,
        spec: ProcessSpec,
        who: &str,
    ) -> Result<GpuStage, StageError> {
        GpuStage::with(format, spec, || renderer_for_cpu_reader(GPU_RING, who))
    }

    fn with(
        format: &Format,
        spec: ProcessSpec,
        renderer: impl FnOnce() -> Result<Renderer, RenderError>,
    ) -> Result<GpuStage, StageError> {
        let colour = Colorimetry::from_v4l2(
            format.fourcc,
            format.colorspace,
            format.ycbcr_enc,
            format.quantization,
        )
        .map_err(StageError::Colour)?;
        spec.output_size(format.width, format.height)
            .map_err(StageError::Process)?;
        let renderer = renderer().map_err(StageError::Device)?;
        tracing::info!(
            device = renderer.device_name(),
            import = renderer.import_path().name(),
            "render stage: {}",
            renderer.import_path_reason()
        );
        Ok(GpuStage {
            in_flight: VecDeque::new(),
            renderer,
            colour,
            spec,
            ring_full: 0,
            attach_failed: false,
            sync_files: None,
            forced: false,
        })
    }

    /// The frame to convert next: `frame`, or the newest of those already waiting in `stream` behind it. A
    /// conversion can take longer than a frame period (lavapipe under emulation takes seconds): converting
    /// the oldest frame queued would show the camera late by the whole queue, so the older ones go straight
    /// back to the camera, counted as passed over in `intake` and written to the trace as frames not shown. `record` follows the frame returned; `intake` counts
    /// every frame taken from the stream and those passed over.
    pub fn newest(
        &mut self,
        mut frame: Frame,
        stream: &mut Source,
        trace: Option<&Arc<TraceFile>>,
        record: &mut Option<FrameRecord>,
        intake: &mut Intake,
    ) -> Result<Frame, StreamError> {
        loop {
            let newer = match stream.next_frame(Duration::ZERO) {
                Ok(f) => f,
                Err(StreamError::Timeout { .. }) => return Ok(frame),
                Err(e) => return Err(e),
            };
            intake.take(newer.sequence());
            if newer.is_error() {
                tracing::warn!(
                    "{}: frame {} flagged corrupt by the driver; not shown",
                    stream.path().display(),
                    newer.sequence()
                );
                continue;
            }
            intake.passed_over_by_dmacam += 1;
            if let (Some(t), Some(r)) = (trace, record.as_ref()) {
                t.write(r);
            }
            *record = trace.map(|_| FrameRecord::dequeued(&newer));
            frame = newer;
        }
    }

    /// Whether another conversion may start: fewer than [`IN_FLIGHT`] are on the GPU.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < IN_FLIGHT
    }

    /// Whether conversions are on the GPU: the loop then listens on [`GpuStage::completion_fd`].
    pub fn busy(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Readable when a conversion in flight has finished; `None` while none is in flight. The loop polls it
    /// with the sink's and the source's fds, and never waits on the GPU itself.
    pub fn completion_fd(&self) -> Option<BorrowedFd<'_>> {
        // The GPU finishes in submission order: the oldest conversion's sync_file, where the driver exported
        // one, else the waiter thread's eventfd.
        let front = self.in_flight.front()?;
        front
            .pending
            .completion_fd()
            .or_else(|| self.renderer.completion_fd())
    }

    /// Starts converting `frame` (from `dev`) on the GPU; its camera buffer is held until the conversion is
    /// done. When every output buffer is still held, the frame is skipped instead: counted as passed over
    /// in `intake`, its trace `record` written as it is.
    ///
    /// For a display that takes a picture the GPU is still writing (`acquire`), and where the driver exported
    /// the submission's fence as a sync_file, the output is returned at once with that fence (the display
    /// waits for it, not the loop); else it comes from [`GpuStage::finished`] once the GPU is done.
    pub fn start(
        &mut self,
        frame: Frame,
        dev: &Path,
        trace: Option<&Arc<TraceFile>>,
        mut record: Option<FrameRecord>,
        intake: &mut Intake,
        acquire: Option<Acquire>,
    ) -> anyhow::Result<Option<Converted>> {
        let index = frame.index() as u32;
        let submitted = monotonic_ns();
        match self
            .renderer
            .submit(frame.dmabuf(), index, self.colour, &self.spec)
        {
            Ok(pending) => {
                if let Some(r) = record.as_mut() {
                    r.t_gpu_submit_ns = Some(submitted);
                }
                let early = acquire.and_then(|a| self.hand_over(&pending, a));
                let Some((out, fences, sync)) = early else {
                    self.in_flight.push_back(InFlight {
                        pending,
                        frame,
                        index,
                        record,
                        handed_over: false,
                    });
                    return Ok(None);
                };
                if let Some(r) = record.as_mut() {
                    let mut g = GpuRecord::new(&self.renderer, index, &out);
                    g.completion = pending.completion().into();
                    g.display_sync = sync.into();
                    g.gpu_busy_at_handover = Some(!pending.is_done());
                    r.gpu = Some(g);
                }
                let converted = Converted {
                    dmabuf: out.dmabuf().cloned(),
                    out,
                    sequence: frame.sequence(),
                    timestamp: frame.capture_time(),
                    record,
                    fences,
                };
                self.in_flight.push_back(InFlight {
                    pending,
                    frame,
                    index,
                    record: None,
                    handed_over: true,
                });
                Ok(Some(converted))
            }
            Err(RenderError::RingExhausted { ring }) => {
                self.ring_full += 1;
                tracing::debug!(
                    sequence = frame.sequence(),
                    ring,
                    "all output buffers held; frame skipped"
                );
                intake.passed_over_by_dmacam += 1;
                if let (Some(t), Some(r)) = (trace, record.as_ref()) {
                    t.write(r);
                }
                Ok(None)
            }
            Err(e) => Err(anyhow::anyhow!("{}: render stage: {e}", dev.display())),
        }
    }

    /// Hands the GPU's fences to the display however the run asked (`DMACAM_DISPLAY_SYNC`), even where the
    /// driver's export waits for the GPU or the fence has signalled by the time of the handover: to exercise
    /// the display's fence mechanisms.
    pub fn force_fences(&mut self) {
        if !self.forced {
            self.forced = true;
            self.renderer.keep_exporting_fences();
        }
    }

    /// The output of `pending` with its fences, for a display that takes it before the GPU is done, and the
    /// trace's word for how (`explicit`, `implicit-attached`; `signalled` when the GPU had finished before
    /// the fence could be exported); `None` where that cannot be (the driver exports no sync_files, the
    /// output has no dma-buf, the fence could not be attached).
    fn hand_over(
        &mut self,
        pending: &dmacam_render::Pending,
        acquire: Acquire,
    ) -> Option<(OutputFrame, Fences, &'static str)> {
        if pending.done_at_export() {
            // Finished before its fence could be exported: a finished picture, nothing to wait for.
            let out = self.renderer.output_in_flight(pending)?;
            out.dmabuf()?;
            return Some((out, Fences::default(), "signalled"));
        }
        let sync = pending.sync_file()?;
        let sync_files = *self.sync_files.get_or_insert_with(|| {
            let is = dmacam_capture::fence::is_sync_file(sync);
            if !is {
                tracing::warn!(
                    "the Vulkan driver's SYNC_FD fence is not a kernel sync_file; pictures go to the display \
                     once the GPU is done"
                );
            }
            is
        });
        if !sync_files {
            // A compositor posts a protocol error for a fence that is not a kernel sync_file, and KMS
            // refuses the commit.
            return None;
        }
        let out = self.renderer.output_in_flight(pending)?;
        let dmabuf = out.dmabuf()?;
        if !self.forced && dmacam_capture::fence::is_signalled(sync) {
            // Done already: a finished picture (a compositor's fence path has a cost of its own).
            return Some((out, Fences::default(), "signalled"));
        }
        let fence = match sync.try_clone_to_owned() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(
                    "cannot duplicate the GPU's sync_file ({e}); waiting for the GPU instead"
                );
                return None;
            }
        };
        let (word, fence) = match acquire {
            Acquire::Explicit => ("explicit", Some(fence)),
            Acquire::Implicit => {
                // The output is one dma-buf (XRGB8888, one plane).
                let plane = dmabuf.planes.first()?;
                if let Err(e) = dmacam_capture::fence::attach_write_fence(plane.fd.as_fd(), sync) {
                    if !self.attach_failed {
                        tracing::warn!(
                            "cannot attach the GPU's fence to the output dma-buf (DMA_BUF_IOCTL_IMPORT_SYNC_FILE: \
                             {e}); pictures go to the display once the GPU is done"
                        );
                    }
                    self.attach_failed = true;
                    return None;
                }
                // The fence rides on the dma-buf: the display is not given it.
                ("implicit-attached", None)
            }
        };
        let fences = Fences {
            acquire: fence.map(Arc::new),
            release: Some(out.release_fence()),
        };
        Some((out, fences, word))
    }

    /// The conversions that have finished, in the order they were started: each camera buffer goes back to
    /// its producer here, and each output comes with its frame's own sequence, capture time and trace
    /// record (its GPU part filled in).
    pub fn finished(&mut self, dev: &Path) -> anyhow::Result<Vec<Converted>> {
        self.renderer.clear_completions();
        let mut done = Vec::new();
        while self.in_flight.front().is_some_and(|f| f.pending.is_done()) {
            let f = self.in_flight.pop_front().expect("checked above");
            if f.handed_over {
                // Its output is with the display already; the camera buffer goes back now.
                self.renderer
                    .retire(f.pending)
                    .map_err(|e| anyhow::anyhow!("{}: render stage: {e}", dev.display()))?;
                continue;
            }
            let completion = f.pending.completion();
            let out = self
                .renderer
                .finish(f.pending)
                .map_err(|e| anyhow::anyhow!("{}: render stage: {e}", dev.display()))?;
            let (sequence, timestamp) = (f.frame.sequence(), f.frame.capture_time());
            // The GPU has finished reading the camera buffer: back to its producer with it.
            drop(f.frame);
            let dmabuf = out.dmabuf().cloned();
            let mut record = f.record;
            if let Some(r) = record.as_mut() {
                let mut g = GpuRecord::new(&self.renderer, f.index, &out);
                g.completion = completion.into();
                r.gpu = Some(g);
            }
            done.push(Converted {
                out,
                dmabuf,
                sequence,
                timestamp,
                record,
                fences: Fences::default(),
            });
        }
        Ok(done)
    }

    /// Lets every conversion in flight finish and gives its camera buffer back (the source is going away,
    /// or the run ends); their outputs are not shown.
    pub fn drain(&mut self) {
        self.in_flight.clear();
    }

    /// Logs what the stage did (at exit); returns the CPU bytes it copied (0: it reads the camera's
    /// dma-bufs in place).
    pub fn finish_report(&self) -> u64 {
        let r = self.renderer.stats();
        tracing::info!(
            frames = r.frames,
            imports = r.imports,
            ring_full = self.ring_full,
            "render stage"
        );
        r.cpu_bytes_copied
    }
}

/// The render stage for a consumer that reads its output on the CPU (`dump --process`): outputs exported as
/// dma-bufs where the Vulkan driver can export them (read through a mapping of the dma-buf, as any consumer
/// would), else kept in host-visible Vulkan memory and read through the renderer's own mapping (a CPU reader
/// needs no dma-buf; lavapipe cannot export without `/dev/udmabuf`). The second is said on stderr, after
/// `who` (`dmacam dump`), with the reason.
pub fn renderer_for_cpu_reader(ring: usize, who: &str) -> Result<Renderer, RenderError> {
    let opts = |mode| dmacam_render::Options {
        mode,
        ring,
        ..Default::default()
    };
    match Renderer::new(opts(Mode::Dmabuf)) {
        Err(e @ RenderError::ExportUnavailable { .. }) => {
            eprintln!(
                "{who}: the render stage's output stays in host memory, read through its Vulkan mapping \
                 (one CPU read per frame, as from a dma-buf): {e}"
            );
            Renderer::new(opts(Mode::ImportOnly))
        }
        r => r,
    }
}

/// A render-stage output kept in host memory ([`Mode::ImportOnly`]), written by a file sink through the
/// renderer's mapping.
pub struct HostOutput<'a> {
    pub out: &'a OutputFrame,
    pub sequence: u32,
}

impl HostOutput<'_> {
    fn len(&self) -> u32 {
        self.out.stride() * self.out.height()
    }
}

impl crate::sink::SinkFrame for HostOutput<'_> {
    fn sequence(&self) -> u32 {
        self.sequence
    }
    fn bytesused(&self) -> Vec<u32> {
        vec![self.len()]
    }
    fn data_offset(&self) -> Vec<u32> {
        vec![0]
    }
    fn read<R>(&self, f: impl FnOnce(&[&[u8]]) -> R) -> anyhow::Result<R> {
        let px = self
            .out
            .host_pixels()
            .context("the render stage's output is not host-visible")?;
        Ok(f(&[&px[..self.len() as usize]]))
    }
}
