//! The render stage as the streaming loop (`crate::pipeline`) runs it for `view`: the Vulkan renderer for one
//! camera format, its colorimetry and processing spec, and a count of the camera frames skipped because every
//! output buffer was still on (or on its way to) the screen.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dmacam_capture::stream::StreamError;
use dmacam_capture::{Dmabuf, Format, Frame, Source};
use dmacam_display::Intake;
use dmacam_render::{Colorimetry, OutputFrame, ProcessSpec, RenderError, Renderer, SpecError};

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

/// The render stage of the gpu path.
pub struct GpuStage {
    pub renderer: Renderer,
    pub colour: Colorimetry,
    pub spec: ProcessSpec,
    /// Camera frames skipped because every output buffer was still held.
    pub ring_full: u64,
}

impl GpuStage {
    /// The render stage for camera frames of `format`, processed by `spec`.
    pub fn new(format: &Format, spec: ProcessSpec) -> Result<GpuStage, StageError> {
        let colour = Colorimetry::from_v4l2(
            format.fourcc,
            format.colorspace,
            format.ycbcr_enc,
            format.quantization,
        )
        .map_err(StageError::Colour)?;
        spec.output_size(format.width, format.height)
            .map_err(StageError::Process)?;
        let renderer = Renderer::new(dmacam_render::Options {
            ring: GPU_RING,
            ..Default::default()
        })
        .map_err(StageError::Device)?;
        tracing::info!(
            device = renderer.device_name(),
            import = renderer.import_path().name(),
            "render stage: {}",
            renderer.import_path_reason()
        );
        Ok(GpuStage {
            renderer,
            colour,
            spec,
            ring_full: 0,
        })
    }

    /// Converts and processes `frame` into an output buffer; `None` when every output buffer is still held
    /// (the frame is skipped and counted; the next frame's sequence gap makes it a drop).
    pub fn process(&mut self, frame: &Frame) -> Result<Option<OutputFrame>, RenderError> {
        let index = frame.index() as u32;
        match self
            .renderer
            .process(frame.dmabuf(), index, self.colour, &self.spec)
        {
            Ok(out) => Ok(Some(out)),
            Err(RenderError::RingExhausted { ring }) => {
                self.ring_full += 1;
                tracing::debug!(
                    sequence = frame.sequence(),
                    ring,
                    "all output buffers held; frame skipped"
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
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

    /// The streaming loop's step: processes `frame` from `dev`, hands the camera buffer back to its producer
    /// as soon as the GPU is done with it, and fills in the GPU part of the frame's trace `record`. Returns
    /// the output and its dma-buf, or `None` when the frame was skipped (counted as passed over in `intake`;
    /// its record is written as it is).
    pub fn convert(
        &mut self,
        frame: Frame,
        dev: &Path,
        trace: Option<&Arc<TraceFile>>,
        record: &mut Option<FrameRecord>,
        intake: &mut Intake,
    ) -> anyhow::Result<Option<(OutputFrame, Dmabuf)>> {
        let index = frame.index() as u32;
        let Some(out) = self
            .process(&frame)
            .map_err(|e| anyhow::anyhow!("{}: render stage: {e}", dev.display()))?
        else {
            intake.passed_over_by_dmacam += 1;
            if let (Some(t), Some(r)) = (trace, record.as_ref()) {
                t.write(r);
            }
            return Ok(None);
        };
        // The GPU has finished reading the camera buffer: back to V4L2 with it.
        drop(frame);
        let dmabuf = out
            .dmabuf()
            .context("the render stage exported no dma-buf")?
            .clone();
        if let Some(r) = record.as_mut() {
            r.gpu = Some(GpuRecord::new(&self.renderer, index, &out));
        }
        Ok(Some((out, dmabuf)))
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
