//! `dmacam view`: the camera in a Wayland window. The path frames take (passthrough of the camera's own
//! dma-bufs, the GPU stage's XRGB8888 dma-bufs, or wl_shm with one CPU copy) is chosen from what the
//! compositor accepts and printed at start. One poll loop watches the Wayland fd and the V4L2 fd together.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dmacam_capture::format::parse_fourcc;
use dmacam_capture::stream::StreamError;
use dmacam_capture::{FormatRequest, Source, StreamOptions, DRM_FORMAT_MOD_LINEAR};
use dmacam_display::{
    select_path, BufferMode, BufferPath, DisplayError, Frame, Intake, PathInputs, PathRequest,
    Viewer, ViewerOptions,
};
use dmacam_render::ProcessSpec;

use super::dump::CaptureOpts;
use crate::gpu::GpuStage;

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
    /// Process on the GPU before display, e.g. `scale=640x360,mirror` (crop=WxH+X+Y, scale=WxH,
    /// rotate=90|180|270, mirror, flip, filter=nearest|linear). Implies --path gpu.
    #[arg(long, value_name = "SPEC")]
    pub process: Option<String>,
    /// Stop after this many frames from the camera.
    #[arg(long, conflicts_with = "duration")]
    pub frames: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop once the compositor has presented this many frames (its presentation feedback); with
    /// --duration, whichever comes first.
    #[arg(long, conflicts_with = "frames")]
    pub until_shown: Option<u64>,
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
    /// Write one JSON line per frame to FILE: its dma-buf identities at each stage (camera export, Vulkan
    /// import, GPU export, wl_buffer), timestamps and CPU bytes copied (see `dmacam check --zero-copy`).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Where to show frames: wayland (a window) or kms (a bare DRM/KMS display, no compositor; same as
    /// `dmacam kms-view`).
    #[arg(long, default_value = "wayland", value_name = "OUTPUT")]
    pub output: String,
    #[command(flatten, next_help_heading = "KMS output (--output kms)")]
    pub kms: super::kms::KmsOpts,
    /// When the camera is disconnected mid-stream (unplugged; vivid's Disconnect control), wait for it to
    /// come back and resume, with the same format and --set settings; the last frame stays shown meanwhile
    /// (both outputs). `--reconnect false` exits with an error instead.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub reconnect: bool,
    /// Soak runs: every --health-every frames, write a JSON line with the open fds, resident memory and
    /// render-stage import counts to FILE.
    #[arg(long, hide = true, value_name = "FILE")]
    pub health: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 1000, value_name = "N")]
    pub health_every: u64,
    /// Act on these keys as if pressed once the first frame is shown (for scripted runs and tests).
    #[arg(long, hide = true, value_name = "KEYS")]
    pub keys: Option<String>,
    /// Test aid: FOURCC:MODIFIER (hex) announces that DRM format modifier for every dma-buf of that format
    /// instead of the buffer's own, so the compositor's import fails (zwp_linux_buffer_params_v1.failed)
    /// and the fallback can be seen.
    #[arg(long, hide = true, value_name = "FOURCC:MODIFIER", value_parser = parse_modifier)]
    pub test_dmabuf_modifier: Option<(dmacam_capture::Fourcc, u64)>,
}

fn parse_modifier(s: &str) -> Result<(dmacam_capture::Fourcc, u64), String> {
    let (fourcc, m) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not FOURCC:MODIFIER"))?;
    let m = u64::from_str_radix(m.trim_start_matches("0x"), 16)
        .map_err(|e| format!("'{m}' is not a hex modifier: {e}"))?;
    Ok((fourcc.parse()?, m))
}

/// Keys that step a camera control in the window: lower case steps down, upper case up.
pub const CONTROL_KEYS: [(char, &str, i64); 4] = [
    ('b', "brightness", -1),
    ('B', "brightness", 1),
    ('c', "contrast", -1),
    ('C', "contrast", 1),
];

/// What the key help of `view --help` says.
pub const KEY_HELP: &str = "Keys in the window: q or Esc quit; f or F11 toggle fullscreen; b / B step the \
camera's brightness down / up, c / C its contrast (one sixteenth of the control's range per press; the new \
value is printed on stderr).";

/// Steps the control `key` is bound to (see [`CONTROL_KEYS`]) by a sixteenth of its range, and says so.
fn step_control(stream: &Source, key: char) {
    let Some(&(_, name, dir)) = CONTROL_KEYS.iter().find(|(k, ..)| *k == key) else {
        return;
    };
    // The camera's own device, behind the MJPEG decoder too.
    let Some(dev) = stream.device() else {
        eprintln!(
            "dmacam view: {} has no {name} control",
            stream.path().display()
        );
        return;
    };
    let stepped = || -> Result<i64, dmacam_capture::ControlError> {
        let c = dev.control(name)?;
        let now = i64::from(dev.get_control(&c)?);
        let unit = (c.step as i64).max(1);
        let step = ((c.maximum - c.minimum) / 16 / unit).max(1) * unit;
        let value = (now + dir * step).clamp(c.minimum, c.maximum);
        dev.set_control(&c, value as i32)?;
        Ok(value)
    };
    match stepped() {
        Ok(v) => eprintln!("dmacam view: {name} {v}"),
        Err(e) => eprintln!("dmacam view: {e}"),
    }
}

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

pub fn run(args: Args) -> Result<ExitCode> {
    match args.output.as_str() {
        "wayland" => {}
        "kms" => {
            if args.display.is_some() {
                bail!("--display names a Wayland display; it does not go with --output kms (use --card)");
            }
            return super::kms::run(super::kms::Args {
                capture: args.capture,
                format: args.format,
                path: args.path,
                process: args.process,
                frames: args.frames,
                duration: args.duration,
                stats: args.stats,
                stats_json: args.stats_json,
                trace: args.trace,
                reconnect: args.reconnect,
                kms: args.kms,
            });
        }
        o => bail!("--output: unknown output '{o}' (use wayland or kms)"),
    }
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
    let spec: Option<ProcessSpec> = args
        .process
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--process: {e}"))?;
    let path_req = match (path_req, &spec) {
        (PathRequest::Auto | PathRequest::Gpu, Some(_)) => PathRequest::Gpu,
        (_, Some(_)) => bail!(
            "--process runs on the GPU: it needs --path gpu (or auto), not --path {}",
            args.path
        ),
        (p, None) => p,
    };
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
    let trace = args
        .trace
        .as_deref()
        .map(crate::trace::TraceFile::create)
        .transpose()?;
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
        modifier_override: args.test_dmabuf_modifier,
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
    let mut stream = Source::new(
        dev,
        format,
        &StreamOptions {
            buffers: VIEW_BUFFERS,
            io,
        },
    )?;
    let path_req = super::dump::path_for_source(&stream, path_req)?;
    let camera = stream.format().fourcc;
    let decide = |gpu: Result<(), String>| {
        select_path(
            path_req,
            viewer.capabilities(),
            &PathInputs {
                camera,
                modifier: DRM_FORMAT_MOD_LINEAR,
                gpu,
            },
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", dev_path.display()))
    };
    // The render stage (a Vulkan device) is only brought up when the path may need it: when the compositor
    // takes the camera's dma-bufs, `auto` shows them as they are.
    let mut decision = decide(Err("not needed".into()));
    let mut gpu = None;
    let wants_gpu = match (&decision, path_req) {
        (_, PathRequest::Gpu) => true,
        (Ok(d), PathRequest::Auto) => d.path != BufferPath::Passthrough,
        (Err(_), PathRequest::Auto) => true,
        _ => false,
    };
    if wants_gpu {
        let stage = GpuStage::new(stream.format(), spec.unwrap_or_default());
        decision = decide(stage.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        gpu = stage.ok();
    }
    let decision = decision?;
    eprintln!("dmacam view: path {}: {}", decision.path, decision.reason);
    match decision.path {
        BufferPath::Passthrough => {
            viewer.set_mode(BufferMode::Dmabuf, path_req == PathRequest::Auto);
            gpu = None;
        }
        BufferPath::Shm => {
            viewer.set_mode(BufferMode::Shm, true);
            gpu = None;
        }
        BufferPath::Gpu => viewer.set_mode(BufferMode::Dmabuf, false),
    }
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
    tracing::info!("{title}");
    viewer.set_title(&title);

    crate::decoding::announce("view", &stream);
    crate::signals::install()?;
    stream.start()?;
    let mut progress = Progress {
        start: Instant::now(),
        intake: Intake::default(),
        health: args
            .health
            .as_deref()
            .map(|p| crate::health::Health::create(p, args.health_every))
            .transpose()?,
        gpu_fallback: path_req == PathRequest::Auto
            && decision.path == BufferPath::Passthrough
            && spec.is_none(),
        fell_back_to_gpu: false,
    };
    let (result, stream) = loop {
        let r = stream_loop(
            &args,
            &mut viewer,
            &mut stream,
            &mut gpu,
            trace.as_ref(),
            &dev_path,
            &mut progress,
        );
        if !(crate::reconnect::is_disconnect(&r) && args.reconnect) {
            break (r, Some(stream));
        }
        crate::reconnect::say_waiting("view", &dev_path);
        // Every frame of the old stream goes back; the compositor keeps showing the last one.
        viewer.release_frames();
        // Keeps the window responsive (and its last frame shown) while waiting.
        let service = |wait| {
            viewer.poll(&[], Some(wait))?;
            Ok(!viewer.close_requested())
        };
        let reopened = crate::reconnect::reopen(
            &args.capture,
            &dev_path,
            io,
            VIEW_BUFFERS,
            stream,
            &mut gpu,
            service,
        )?;
        stream = match reopened {
            Some(s) => s,
            None => break (Ok(()), None),
        };
        progress.intake.restart();
        crate::reconnect::say_back("view", &dev_path);
    };
    let path_label = match (viewer.fallback_reason(), progress.fell_back_to_gpu) {
        (Some(_), _) => "shm (fallback)".to_owned(),
        (None, true) => "gpu (fallback)".to_owned(),
        (None, false) => decision.path.to_string(),
    };
    let mut summary = viewer.stats().summary(&path_label);
    summary.intake = Some(progress.intake.clone());
    if let Some(g) = &gpu {
        // The render stage reads the camera's dma-bufs in place: anything it copied would be counted here.
        summary.cpu_bytes_copied_total += g.finish_report();
    }
    if let Some(d) = stream.as_ref().and_then(crate::decoding::summary) {
        summary.add_decode(d);
    }
    // Hand every frame back (viewer first: it holds frames), then stop the camera.
    drop(viewer);
    if let Some(mut stream) = stream {
        stream.stop().ok();
    }
    result?;
    if let (Some(t), Some(p)) = (&trace, &args.trace) {
        let n = t.finish()?;
        tracing::info!("trace of {n} frames written to {}", p.display());
    }
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

/// How far the run has got, across reconnections.
struct Progress {
    start: Instant,
    /// Frames taken from the camera, and whose drops the gaps are.
    intake: Intake,
    /// `--health`.
    health: Option<crate::health::Health>,
    /// `auto` chose passthrough: if the compositor refuses the camera's dma-bufs, try the gpu path next.
    gpu_fallback: bool,
    /// That happened.
    fell_back_to_gpu: bool,
}

fn stream_loop(
    args: &Args,
    viewer: &mut Viewer,
    stream: &mut Source,
    gpu: &mut Option<GpuStage>,
    trace: Option<&std::sync::Arc<crate::trace::TraceFile>>,
    dev: &std::path::Path,
    progress: &mut Progress,
) -> Result<()> {
    let start = progress.start;
    let stall = Duration::from_secs(args.capture.timeout.max(1));
    let mut last_frame = Instant::now();
    let mut finishing: Option<Instant> = None;
    let mut scripted_keys = args.keys.clone();
    loop {
        if viewer.close_requested() || crate::signals::stop_requested() {
            return Ok(());
        }
        let done = args
            .frames
            .is_some_and(|n| progress.intake.frames_taken >= n)
            || args
                .until_shown
                .is_some_and(|n| viewer.stats().presented >= n)
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
        let ready = viewer.poll(&[stream.fd()], Some(Duration::from_millis(100)))?;
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
        progress.intake.take(frame.sequence());
        if let Some(h) = progress.health.as_mut() {
            h.tick(
                progress.intake.frames_taken,
                gpu.as_ref().map(|g| &g.renderer),
            );
        }
        if frame.is_error() {
            tracing::warn!(
                "{}: frame {} flagged corrupt by the driver; not shown",
                dev.display(),
                frame.sequence()
            );
            continue;
        }
        if progress.gpu_fallback && gpu.is_none() {
            if let Some(why) = viewer.fallback_reason().map(str::to_owned) {
                // `auto` chose passthrough and the compositor refused the camera's dma-bufs: the next path
                // for this format is the render stage's, before wl_shm.
                progress.gpu_fallback = false;
                match GpuStage::new(stream.format(), ProcessSpec::default()) {
                    Ok(g) => {
                        eprintln!(
                            "dmacam view: {why}; next path: gpu (the render stage's XR24 dma-bufs)"
                        );
                        viewer.resume_dmabuf();
                        progress.fell_back_to_gpu = true;
                        *gpu = Some(g);
                    }
                    Err(e) => eprintln!(
                        "dmacam view: {why}; the gpu path is unavailable too ({e}): staying on wl_shm"
                    ),
                }
            }
        }
        let mut record = trace.map(|_| crate::trace::FrameRecord::dequeued(&frame));
        // The sequence and capture time shown with the picture are always those of the frame that picture
        // comes from: on the gpu path a newer frame waiting may take this one's place.
        let (dmabuf, sequence, timestamp, holder): (_, _, _, Box<dyn std::any::Any + Send>) =
            match gpu.as_mut() {
                None => (
                    frame.dmabuf().clone(),
                    frame.sequence(),
                    frame.capture_time(),
                    Box::new(frame),
                ),
                Some(g) => {
                    let frame =
                        g.newest(frame, stream, trace, &mut record, &mut progress.intake)?;
                    let (sequence, timestamp) = (frame.sequence(), frame.capture_time());
                    if let Some(h) = progress.health.as_mut() {
                        h.tick(progress.intake.frames_taken, Some(&g.renderer));
                    }
                    let Some((out, dmabuf)) =
                        g.convert(frame, dev, trace, &mut record, &mut progress.intake)?
                    else {
                        // The compositor still holds every output buffer: this camera frame is skipped.
                        continue;
                    };
                    (dmabuf, sequence, timestamp, Box::new(out))
                }
            };
        let (holder, display_trace) = match (trace, record) {
            (Some(t), Some(r)) => {
                let vt = crate::trace::ViewTrace::start(t, r);
                (vt.holder(holder), Some(vt.display.clone()))
            }
            _ => (holder, None),
        };
        viewer.submit(Frame {
            dmabuf,
            sequence,
            timestamp,
            holder: Some(holder),
            trace: display_trace,
        })?;
        for key in scripted_keys.take().unwrap_or_default().chars() {
            step_control(stream, key);
        }
        for key in viewer.take_keys() {
            step_control(stream, key);
        }
    }
}
