//! `dmacam view`: the camera in a Wayland window (or, `--output kms`, on a bare display). This file checks
//! the options, opens the output and the camera and reports at the end; the path choice for the window is
//! `crate::pipeline::wayland`, and the streaming loop that feeds every output is `crate::pipeline`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use dmacam_capture::format::parse_fourcc;
use dmacam_capture::{FormatRequest, Source, StreamOptions};
use dmacam_display::{BufferMode, DisplayError, PathRequest, Viewer, ViewerOptions};
use dmacam_render::ProcessSpec;

use super::dump::CaptureOpts;
use crate::pipeline::wayland::WaylandSink;
use crate::pipeline::{self, Output, Start};

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
    /// Where to show frames: wayland (a window), kms (a bare DRM/KMS display, no compositor; same as
    /// `dmacam kms-view`) or null (nowhere: each picture is let go at once; measures the pipeline).
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

/// What the key help of `view --help` says.
pub const KEY_HELP: &str = "Keys in the window: q or Esc quit; f or F11 toggle fullscreen; b / B step the \
camera's brightness down / up, c / C its contrast (one sixteenth of the control's range per press; the new \
value is printed on stderr).";

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
    // The output is opened after the options are checked, before the camera.
    let open: fn(&Args, PathRequest) -> Result<Box<dyn Output>> = match args.output.as_str() {
        "wayland" => connect,
        "null" => |_, _| Ok(Box::<crate::pipeline::null::NullSink>::default()),
        "kms" => {
            if args.display.is_some() {
                bail!("--display names a Wayland display; it does not go with --output kms (use --card)");
            }
            return super::kms::run(super::kms::Args {
                capture: args.capture,
                format: args.format,
                path: args.path,
                process: args.process,
                // KMS counts frames on the screen (page flips): --until-shown is just that.
                frames: args.until_shown.or(args.frames),
                duration: args.duration,
                stats: args.stats,
                stats_json: args.stats_json,
                trace: args.trace,
                reconnect: args.reconnect,
                kms: args.kms,
            });
        }
        o => bail!("--output: unknown output '{o}' (use wayland, kms or null)"),
    };
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
    // The display first: without one there is nothing to do, and the camera is left alone.
    let mut out = open(&args, path_req)?;

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
    let mut gpu = out.start(
        &stream,
        &Start {
            path: path_req,
            spec,
            dev: dev_path.clone(),
            title,
        },
    )?;

    crate::decoding::announce("view", &stream);
    crate::signals::install()?;
    stream.start()?;
    let mut progress = pipeline::Progress::new(
        args.health
            .as_deref()
            .map(|p| crate::health::Health::create(p, args.health_every))
            .transpose()?,
    );
    let cfg = pipeline::Loop {
        who: "view",
        dev: &dev_path,
        capture: &args.capture,
        io,
        buffers: VIEW_BUFFERS,
        reconnect: args.reconnect,
        stop: pipeline::Stop {
            taken: args.frames,
            shown: args.until_shown,
            duration: args.duration,
        },
        trace: trace.as_ref(),
        keys: args.keys.clone(),
    };
    let (result, stream) = pipeline::run(out.as_mut(), stream, &mut gpu, &cfg, &mut progress)?;
    let mut summary = out.summary();
    summary.intake = Some(progress.intake.clone());
    if let Some(g) = &gpu {
        // The render stage reads the camera's dma-bufs in place: anything it copied would be counted here.
        summary.cpu_bytes_copied_total += g.finish_report();
    }
    if let Some(d) = stream.as_ref().and_then(crate::decoding::summary) {
        summary.add_decode(d);
    }
    // Hand every frame back (the output first: it holds frames), then stop the camera.
    drop(out);
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

/// The Wayland window (`--output wayland`).
fn connect(args: &Args, path_req: PathRequest) -> Result<Box<dyn Output>> {
    // wayland-backend and sctk report connection errors through the `log` crate; dmacam turns those errors
    // into its own one-line message, so their copies are only shown with -v.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        log::set_max_level(log::LevelFilter::Off);
    }
    let viewer = Viewer::connect(&ViewerOptions {
        display: args.display.clone(),
        title: "dmacam".into(),
        initial_size: args.capture.size()?.unwrap_or((640, 480)),
        fullscreen: args.fullscreen,
        mode: BufferMode::Dmabuf,
        allow_shm_fallback: path_req == PathRequest::Auto,
        modifier_override: args.test_dmabuf_modifier,
    })
    .map_err(one_line_display_error)?;
    Ok(Box::new(WaylandSink::new(viewer)))
}
