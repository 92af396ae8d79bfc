//! Setting up an output `view` opens before the camera: the Wayland window, the null output. The window is
//! connected first (without a display there is nothing to do, and the camera is left alone), then the
//! camera is opened and the output chooses the path for its frames (`crate::pipeline::wayland`,
//! `crate::pipeline::null`).

use anyhow::Result;
use dmacam_capture::{FormatRequest, Source, StreamOptions};
use dmacam_display::{BufferMode, DisplayError, PathRequest, Summary, Viewer, ViewerOptions};

use super::plan::{Plan, Ready, Window};
use crate::gpu::GpuStage;
use crate::pipeline::wayland::WaylandSink;
use crate::pipeline::{Output, Start};

/// Camera buffers: the compositor holds up to two, one waits for the next frame callback: keep slack.
const VIEW_BUFFERS: u32 = 6;

fn one_line_display_error(e: DisplayError) -> anyhow::Error {
    match e {
        DisplayError::NoDisplay { .. } => anyhow::anyhow!(
            "{e}; `dmacam view` needs a Wayland compositor: use `dmacam dump` to write frames to a file, or --output kms to show them on a bare DRM/KMS display"
        ),
        e => anyhow::Error::new(e),
    }
}

/// The Wayland window (`--output wayland`).
pub fn connect(plan: &Plan, window: &Window) -> Result<Box<dyn Output>> {
    // wayland-backend and sctk report connection errors through the `log` crate; dmacam turns those errors
    // into its own one-line message, so their copies are only shown with -v.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        log::set_max_level(log::LevelFilter::Off);
    }
    let viewer = Viewer::connect(&ViewerOptions {
        display: window.display.clone(),
        title: "dmacam".into(),
        initial_size: plan.size.unwrap_or((640, 480)),
        fullscreen: window.fullscreen,
        mode: BufferMode::Dmabuf,
        allow_shm_fallback: plan.path == PathRequest::Auto,
        modifier_override: window.test_dmabuf_modifier,
        frame_actions: window.frame_actions.clone(),
    })
    .map_err(one_line_display_error)?;
    Ok(Box::new(WaylandSink::new(viewer)))
}

/// Opens the camera `plan` names for `out` (already open) and lets `out` choose the path for its frames.
pub fn open(plan: &Plan, mut out: Box<dyn Output>) -> Result<(Box<dyn Output>, Ready)> {
    let dev = crate::capture_opts::open(&plan.capture)?;
    let format = dev.negotiate(&FormatRequest {
        fourcc: plan.format,
        size: plan.size,
        fps: plan.fps,
    })?;
    let fps = dev.frame_interval().ok().map(|f| f.fps());
    let dev_path = dev.path().to_path_buf();
    let stream = Source::new(
        dev,
        format,
        &StreamOptions {
            buffers: VIEW_BUFFERS,
            io: plan.io,
        },
    )?;
    let camera = stream.format().fourcc;
    let title = format!(
        "dmacam: {} {} {}x{}{}",
        dev_path.display(),
        match stream.compressed_format() {
            Some(c) => format!("{} (decoded to {camera})", c.fourcc),
            None => camera.to_string(),
        },
        stream.format().width,
        stream.format().height,
        fps.map(|f| format!(" @ {f:.0} fps")).unwrap_or_default()
    );
    let gpu = out.start(
        &stream,
        &Start {
            path: plan.path,
            spec: plan.spec,
            dev: dev_path.clone(),
            title,
        },
    )?;
    let ready = Ready {
        stream,
        gpu,
        dev: dev_path,
        buffers: VIEW_BUFFERS,
        who: "view",
        announce: "view",
    };
    Ok((out, ready))
}

/// The statistics at the end; hands every frame back (the output first: it holds frames), then stops the
/// camera.
pub fn finish(
    out: Box<dyn Output>,
    result: Result<()>,
    stream: Option<Source>,
    gpu: &Option<GpuStage>,
    progress: &crate::pipeline::Progress,
) -> Result<Summary> {
    let mut summary = out.summary();
    summary.intake = Some(progress.intake.clone());
    if let Some(g) = gpu {
        // The render stage reads the camera's dma-bufs in place: anything it copied would be counted here.
        summary.cpu_bytes_copied_total += g.finish_report();
    }
    if let Some(s) = stream.as_ref() {
        crate::decoding::add_to(&mut summary, s);
    }
    drop(out);
    if let Some(mut stream) = stream {
        stream.stop().ok();
    }
    result?;
    Ok(summary)
}
