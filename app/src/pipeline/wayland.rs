//! The Wayland window as a [`Sink`]: the path frames take (passthrough of the camera's own dma-bufs, the
//! render stage's XRGB8888 dma-bufs, or wl_shm with one CPU copy) is chosen from what the compositor accepts;
//! with `auto`, a compositor that refuses the camera's dma-bufs mid-run moves the loop to the gpu path.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use anyhow::Result;
use dmacam_capture::{Source, DRM_FORMAT_MOD_LINEAR};
use dmacam_display::{
    colour_mismatch, select_path, BufferMode, BufferPath, PathInputs, PathRequest, Summary, Viewer,
};

use super::sink::{Acquire, Output, Picture, Sink, Start};
use crate::gpu::GpuStage;

/// A Wayland window fed by the loop.
pub struct WaylandSink {
    viewer: Viewer,
    /// The path chosen at start.
    path: Option<BufferPath>,
    /// `auto` chose passthrough: if the compositor refuses the camera's dma-bufs, try the gpu path next.
    may_fall_back: bool,
    /// That happened.
    fell_back_to_gpu: bool,
}

impl WaylandSink {
    pub fn new(viewer: Viewer) -> WaylandSink {
        WaylandSink {
            viewer,
            path: None,
            may_fall_back: false,
            fell_back_to_gpu: false,
        }
    }
}

impl Sink for WaylandSink {
    fn wait(&mut self, fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Vec<bool>> {
        Ok(self.viewer.poll(fds, Some(timeout))?)
    }

    fn submit(&mut self, picture: Picture) -> Result<()> {
        Ok(self.viewer.submit(picture)?)
    }

    fn shown(&self) -> u64 {
        self.viewer.stats().presented
    }

    fn in_flight(&self) -> bool {
        self.viewer.in_flight()
    }

    fn close_requested(&self) -> bool {
        self.viewer.close_requested()
    }

    fn close_reason(&self) -> Option<String> {
        self.viewer.close_reason().map(str::to_owned)
    }

    fn take_keys(&mut self) -> Vec<char> {
        self.viewer.take_keys()
    }

    fn release_frames(&mut self) -> Result<()> {
        self.viewer.release_frames();
        Ok(())
    }

    fn refused(&self) -> Option<String> {
        self.may_fall_back
            .then(|| self.viewer.fallback_reason().map(str::to_owned))
            .flatten()
    }

    fn fell_back(&mut self, why: &str, gpu: Result<(), String>) {
        // `auto` chose passthrough and the compositor refused the camera's dma-bufs: the next path for this
        // format is the render stage's, before wl_shm.
        self.may_fall_back = false;
        match gpu {
            Ok(()) => {
                eprintln!("dmacam view: {why}; next path: gpu (the render stage's XR24 dma-bufs)");
                self.viewer.resume_dmabuf();
                self.fell_back_to_gpu = true;
            }
            Err(e) => eprintln!(
                "dmacam view: {why}; the gpu path is unavailable too ({e}): staying on wl_shm"
            ),
        }
    }

    /// The compositor takes the GPU's fence with the buffer where it offers explicit sync; else the fence
    /// is attached to the dma-buf for its implicit sync. The wl_shm copy waits for the GPU itself.
    fn acquire(&self) -> Option<Acquire> {
        match (self.viewer.mode(), self.viewer.explicit_sync()) {
            (BufferMode::Dmabuf, true) => Some(Acquire::Explicit),
            (BufferMode::Dmabuf, false) => Some(Acquire::Implicit),
            (BufferMode::Shm, _) => None,
        }
    }
}

impl Output for WaylandSink {
    fn start(&mut self, stream: &Source, ask: &Start) -> Result<Option<GpuStage>> {
        let path_req = crate::capture_opts::path_for_source(stream, ask.path)?;
        // What the path choice is asked (the render stage's answer is filled in once it is known).
        let colour = dmacam_capture::colour::Colorimetry::of_ycbcr(stream.format());
        let mut inputs = PathInputs {
            camera: stream.format().fourcc,
            modifier: DRM_FORMAT_MOD_LINEAR,
            gpu: Err("not needed".into()),
            colour,
        };
        let colours_off = colour_mismatch(self.viewer.capabilities(), &inputs).is_some();
        let viewer = &mut self.viewer;
        let decide = |viewer: &Viewer, inputs: &PathInputs| {
            select_path(path_req, viewer.capabilities(), inputs)
                .map_err(|e| anyhow::anyhow!("{}: {e}", ask.dev.display()))
        };
        // The render stage (a Vulkan device) is only brought up when the path may need it: when the
        // compositor takes the camera's dma-bufs, `auto` shows them as they are.
        let mut decision = decide(viewer, &inputs);
        let mut gpu = None;
        let wants_gpu = match (&decision, path_req) {
            (_, PathRequest::Gpu) => true,
            // Passthrough would show wrong colours: the render stage may convert them right.
            (Ok(d), PathRequest::Auto) => d.path != BufferPath::Passthrough || colours_off,
            (Err(_), PathRequest::Auto) => true,
            _ => false,
        };
        if wants_gpu {
            let stage = GpuStage::new(stream.format(), ask.spec.unwrap_or_default());
            inputs.gpu = stage.as_ref().map(|_| ()).map_err(|e| e.to_string());
            decision = decide(viewer, &inputs);
            gpu = stage.ok();
        }
        let decision = decision?;
        eprintln!("dmacam view: path {}: {}", decision.path, decision.reason);
        match decision.path {
            BufferPath::Passthrough => {
                viewer.set_mode(BufferMode::Dmabuf, path_req == PathRequest::Auto);
                viewer.set_colorimetry(colour);
                gpu = None;
            }
            BufferPath::Shm => {
                viewer.set_mode(BufferMode::Shm, true);
                gpu = None;
            }
            BufferPath::Gpu => viewer.set_mode(BufferMode::Dmabuf, false),
        }
        tracing::info!("{}", ask.title);
        viewer.set_title(&ask.title);
        self.path = Some(decision.path);
        self.may_fall_back = path_req == PathRequest::Auto
            && decision.path == BufferPath::Passthrough
            && ask.spec.is_none();
        Ok(gpu)
    }

    fn summary(&self) -> Summary {
        let label = match (self.viewer.fallback_reason(), self.fell_back_to_gpu) {
            (Some(_), _) => "shm (fallback)".to_owned(),
            (None, true) => "gpu (fallback)".to_owned(),
            (None, false) => self.path.map(|p| p.to_string()).unwrap_or_default(),
        };
        self.viewer.stats().summary(&label)
    }
}
