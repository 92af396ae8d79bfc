//! `dmacam view`: the camera in a Wayland window. The path frames take (passthrough of the camera's own
//! dma-bufs, the GPU stage's XRGB8888 dma-bufs, or wl_shm with one CPU copy) is chosen from what the
//! compositor accepts and printed at start. One poll loop watches the Wayland fd and the V4L2 fd together.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dmacam_capture::format::parse_fourcc;
use dmacam_capture::stream::{StreamError, BUF_FLAG_TIMESTAMP_MASK, BUF_FLAG_TIMESTAMP_MONOTONIC};
use dmacam_capture::{FormatRequest, Fourcc, Stream, StreamOptions, DRM_FORMAT_MOD_LINEAR};
use dmacam_display::{
    select_path, BufferMode, BufferPath, DisplayError, Frame, PathInputs, PathRequest, Viewer,
    ViewerOptions,
};

use super::dump::CaptureOpts;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub capture: CaptureOpts,
    /// Pixel format (fourcc such as YUYV or NV12; NV12M for the multi-planar NM12).
    #[arg(long, value_name = "FOURCC")]
    pub format: Option<String>,
    /// Buffer path: auto, passthrough (the camera's dma-bufs to the compositor), gpu (converted by the
    /// render stage) or shm (one CPU copy per frame).
    #[arg(long, default_value = "auto", value_name = "PATH")]
    pub path: String,
    /// Stop after this many frames from the camera.
    #[arg(long, conflicts_with = "duration")]
    pub frames: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Start fullscreen (f or F11 toggles; q or Esc quits).
    #[arg(long)]
    pub fullscreen: bool,
    /// Print statistics at exit: frames shown, drops, fps, latency percentiles, CPU bytes copied per frame.
    #[arg(long)]
    pub stats: bool,
    /// Also write the statistics as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// The Wayland display (default: $WAYLAND_DISPLAY).
    #[arg(long)]
    pub display: Option<String>,
}

/// The seam for the GPU path: `Ok` once the render stage can convert this camera format into XRGB8888
/// dma-bufs for the window. Not wired into `view` yet, so `auto` never picks it.
fn gpu_stage(_camera: Fourcc) -> Result<(), String> {
    Err("the render stage is not wired into `dmacam view` yet".into())
}

fn one_line_display_error(e: DisplayError) -> anyhow::Error {
    match e {
        DisplayError::NoDisplay { .. } => anyhow::anyhow!(
            "{e}; `dmacam view` needs a Wayland compositor: use `dmacam dump` to write frames to a file, or --output kms to show them on a bare DRM/KMS display"
        ),
        e => anyhow::Error::new(e),
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    // Every option is checked before anything is opened; a bad one is one line.
    let size = args.capture.size()?;
    let fps_req = args.capture.fps()?;
    let io = args.capture.io()?;
    let fourcc = args
        .format
        .as_deref()
        .map(parse_fourcc)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--format: {e}"))?;
    let path_req: PathRequest = args
        .path
        .parse()
        .map_err(|e| anyhow::anyhow!("--path: {e}"))?;
    if args.frames == Some(0) {
        bail!("--frames must be at least 1");
    }
    if let Some(d) = args.duration {
        if !(d > 0.0 && d.is_finite()) {
            bail!("--duration must be a positive number of seconds, not {d}");
        }
    }
    if let Some(p) = &args.stats_json {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            bail!(
                "--stats-json {}: directory {} does not exist",
                p.display(),
                dir.display()
            );
        }
    }
    // wayland-backend and sctk report connection errors through the `log` crate; dmacam turns those errors
    // into its own one-line message, so their copies are only shown with -v.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        log::set_max_level(log::LevelFilter::Off);
    }
    // The display first: without one there is nothing to do, and the camera is left alone.
    let mut viewer = Viewer::connect(&ViewerOptions {
        display: args.display.clone(),
        title: "dmacam".into(),
        initial_size: size.unwrap_or((640, 480)),
        fullscreen: args.fullscreen,
        mode: BufferMode::Dmabuf,
        allow_shm_fallback: path_req == PathRequest::Auto,
    })
    .map_err(one_line_display_error)?;

    let dev = super::dump::open(&args.capture)?;
    let format = dev.negotiate(&FormatRequest {
        fourcc,
        size,
        fps: fps_req,
    })?;
    let fps = dev.frame_interval().ok().map(|f| f.fps());
    let dev_path = dev.path().to_path_buf();
    let mut stream = Stream::new(
        dev,
        format,
        &StreamOptions {
            // The compositor holds up to two buffers, one waits for the next frame callback: keep slack.
            buffers: 6,
            io,
        },
    )?;
    let camera = stream.format().fourcc;
    let decision = select_path(
        path_req,
        viewer.capabilities(),
        &PathInputs {
            camera,
            modifier: DRM_FORMAT_MOD_LINEAR,
            gpu: gpu_stage(camera),
        },
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", dev_path.display()))?;
    eprintln!("dmacam view: path {}: {}", decision.path, decision.reason);
    match decision.path {
        BufferPath::Passthrough => {
            viewer.set_mode(BufferMode::Dmabuf, path_req == PathRequest::Auto)
        }
        BufferPath::Shm => viewer.set_mode(BufferMode::Shm, true),
        BufferPath::Gpu => bail!("the gpu path is selected but not wired into `dmacam view` yet"),
    }
    let title = format!(
        "dmacam: {} {} {}x{}{}",
        dev_path.display(),
        camera,
        stream.format().width,
        stream.format().height,
        fps.map(|f| format!(" @ {f:.0} fps")).unwrap_or_default()
    );
    tracing::info!("{title}");
    viewer.set_title(&title);

    stream.start()?;
    let result = stream_loop(&args, &mut viewer, &mut stream, &dev_path);
    let path_label = match viewer.fallback_reason() {
        Some(_) => "shm (fallback)".to_owned(),
        None => decision.path.to_string(),
    };
    let summary = viewer.stats().summary(&path_label);
    // Hand every frame back (viewer first: it holds frames), then stop the camera.
    drop(viewer);
    stream.stop().ok();
    result?;
    if args.stats {
        println!("{summary}");
    }
    if let Some(p) = &args.stats_json {
        let text = serde_json::to_string_pretty(&summary)?;
        let tmp = p.with_extension("json.partial");
        std::fs::write(&tmp, text + "\n")
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, p).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn stream_loop(
    args: &Args,
    viewer: &mut Viewer,
    stream: &mut Stream,
    dev: &std::path::Path,
) -> Result<()> {
    let start = Instant::now();
    let stall = Duration::from_secs(args.capture.timeout.max(1));
    let mut last_frame = Instant::now();
    let mut received = 0u64;
    let mut finishing: Option<Instant> = None;
    loop {
        if viewer.close_requested() {
            return Ok(());
        }
        let done = args.frames.is_some_and(|n| received >= n)
            || args
                .duration
                .is_some_and(|d| start.elapsed().as_secs_f64() >= d);
        if done {
            // Let the last frames reach the screen (their presentation feedback), at most one second.
            let t = *finishing.get_or_insert_with(Instant::now);
            if !viewer.in_flight() || t.elapsed() > Duration::from_secs(1) {
                return Ok(());
            }
            viewer.poll(&[], Some(Duration::from_millis(20)))?;
            continue;
        }
        let ready = viewer.poll(&[stream.device().as_fd()], Some(Duration::from_millis(100)))?;
        if !ready[0] {
            if last_frame.elapsed() > stall {
                bail!(
                    "{}: no frame in {} s (is the device streaming?)",
                    dev.display(),
                    stall.as_secs()
                );
            }
            continue;
        }
        let frame = match stream.next_frame(Duration::ZERO) {
            Ok(f) => f,
            Err(StreamError::Timeout { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        last_frame = Instant::now();
        received += 1;
        if frame.is_error() {
            tracing::warn!(
                "{}: frame {} flagged corrupt by the driver; not shown",
                dev.display(),
                frame.sequence()
            );
            continue;
        }
        let monotonic = frame.flags() & BUF_FLAG_TIMESTAMP_MASK == BUF_FLAG_TIMESTAMP_MONOTONIC;
        viewer.submit(Frame {
            dmabuf: frame.dmabuf().clone(),
            sequence: frame.sequence(),
            timestamp: monotonic.then(|| frame.timestamp()),
            holder: Some(Box::new(frame)),
        })?;
    }
}
