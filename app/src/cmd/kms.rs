//! `dmacam view --output kms` (also `dmacam kms-view`): the camera on a bare DRM/KMS display, no compositor.
//! Passthrough: each camera buffer is imported into the card once (PRIME) and scanned out directly. Gpu: the
//! render stage converts (and scales to the mode, or as `--process` says) into XRGB8888 dma-bufs, which are
//! imported the same way. Page-flip events pace the loop (`crate::pipeline`, the scanout as a sink in
//! `pipeline/kms.rs`) and a buffer goes back to its producer only after the flip that replaced it. On exit, Ctrl-C included, the CRTC configuration found at start is restored.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dmacam_capture::decode::{frames_format, frames_fourcc};
use dmacam_capture::format::parse_fourcc;
use dmacam_capture::{Format, FormatRequest, Fourcc, Input, Source, StreamOptions};
use dmacam_display::kms::{
    drm_format_for, Card, KmsError, KmsSummary, ModeRequest, OutputRequest, Scanout,
};
use dmacam_render::{ProcessSpec, SourceFormat, OUTPUT_FOURCC};

use super::dump::CaptureOpts;
use crate::gpu::{GpuStage, StageError};
use crate::pipeline::{self, Picture};

/// The KMS output's own options (shared with `view --output kms`).
#[derive(clap::Args, Clone, Debug)]
pub struct KmsOpts {
    /// The DRM card to show on.
    #[arg(long, default_value = "/dev/dri/card0", value_name = "PATH")]
    pub card: PathBuf,
    /// The connector, as the kernel names it (e.g. HDMI-A-1, DP-2, Virtual-1); default: the first connected.
    #[arg(long, value_name = "NAME")]
    pub connector: Option<String>,
    /// The mode, WIDTHxHEIGHT or WIDTHxHEIGHT@HZ; default: the connector's preferred mode.
    #[arg(long, value_name = "WxH[@R]")]
    pub mode: Option<String>,
    /// After the last frame, capture what the CRTC composed through the card's writeback connector and
    /// write it as a PPM image (verification; needs an atomic driver with a writeback connector, e.g. vkms).
    #[arg(long, value_name = "FILE.ppm")]
    pub writeback: Option<PathBuf>,
    /// Use legacy modesetting (SETCRTC + PAGE_FLIP) even if the driver offers atomic.
    #[arg(long, hide = true)]
    pub legacy: bool,
}

impl Default for KmsOpts {
    fn default() -> Self {
        KmsOpts {
            card: PathBuf::from("/dev/dri/card0"),
            connector: None,
            mode: None,
            writeback: None,
            legacy: false,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub capture: CaptureOpts,
    /// Pixel format; default: the first format the camera offers that the display plane scans out (XR24...),
    /// else (gpu path) the first the render stage reads.
    #[arg(long, value_name = "FOURCC")]
    pub format: Option<String>,
    /// Buffer path: auto (passthrough when a plane scans out the camera's format, else gpu), passthrough
    /// (the camera's dma-bufs to the plane) or gpu (converted by the render stage into XRGB8888).
    #[arg(long, default_value = "auto", value_name = "PATH")]
    pub path: String,
    /// Process on the GPU first, e.g. `scale=640x360,mirror` (see `dmacam view --help`). Implies --path gpu.
    /// Without it the gpu path scales frames larger than the mode down to fit, keeping the aspect ratio.
    #[arg(long, value_name = "SPEC")]
    pub process: Option<String>,
    /// Stop after this many frames have reached the screen (page flips completed).
    #[arg(long, conflicts_with = "duration")]
    pub frames: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Print statistics at exit: frames shown, drops, fps, latency percentiles (capture to page flip), CPU
    /// bytes copied per frame.
    #[arg(long)]
    pub stats: bool,
    /// Also write the statistics as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Write one JSON line per frame to FILE: its dma-buf identities (camera export, and on the gpu path the
    /// Vulkan import and GPU export), the framebuffer it went to, timestamps, CPU bytes copied.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// When the camera is disconnected mid-stream (unplugged; vivid's Disconnect control), keep its last
    /// frame on the display, wait for it to come back and resume with the same format and --set settings.
    /// `--reconnect false` exits with an error instead.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub reconnect: bool,
    #[command(flatten)]
    pub kms: KmsOpts,
}

/// Camera buffers: the display holds up to three (active, queued, pending); keep the camera fed besides.
const KMS_BUFFERS: u32 = 6;

/// What the KMS output asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KmsPath {
    Auto,
    Passthrough,
    Gpu,
}

/// `spec`, or when the frame is larger than the mode and no output size was asked for, `spec` with a scale
/// to fit the mode keeping the aspect ratio (vkms's planes do not scale; the render stage does).
fn fit_to_mode(spec: ProcessSpec, frame: (u32, u32), mode: (u32, u32)) -> Result<ProcessSpec> {
    let (w, h) = spec
        .output_size(frame.0, frame.1)
        .map_err(|e| anyhow::anyhow!("--process: {e}"))?;
    if spec.scale.is_some() || (w <= mode.0 && h <= mode.1) {
        return Ok(spec);
    }
    let k = f64::min(
        f64::from(mode.0) / f64::from(w),
        f64::from(mode.1) / f64::from(h),
    );
    let fit = |v: u32| ((f64::from(v) * k).floor() as u32).max(1);
    Ok(ProcessSpec {
        scale: Some((fit(w), fit(h))),
        ..spec
    })
}

fn check_output_file(opt: &str, p: &Path) -> Result<()> {
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!(
            "{opt} {}: directory {} does not exist",
            p.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file, so no half-written file is ever left.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(args: Args) -> Result<ExitCode> {
    // Every option is checked before anything is opened; a bad one is one line.
    let size = args.capture.size()?;
    let fps = args.capture.fps()?;
    let io = args.capture.io()?;
    let fourcc = args
        .format
        .as_deref()
        .map(parse_fourcc)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--format: {e}"))?;
    let mode: Option<ModeRequest> = args
        .kms
        .mode
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
    let spec: Option<ProcessSpec> = args
        .process
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--process: {e}"))?;
    let path = match (args.path.as_str(), &spec) {
        ("auto" | "gpu", Some(_)) | ("gpu", None) => KmsPath::Gpu,
        ("auto", None) => KmsPath::Auto,
        ("passthrough", None) => KmsPath::Passthrough,
        ("passthrough", Some(_)) => {
            bail!(
                "--process runs on the GPU: it needs --path gpu (or auto), not --path passthrough"
            )
        }
        (p, _) => {
            bail!("--path: unknown path '{p}' for the KMS output (use auto, passthrough or gpu)")
        }
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
        check_output_file("--stats-json", p)?;
    }
    let trace = args
        .trace
        .as_deref()
        .map(crate::trace::TraceFile::create)
        .transpose()?;
    if let Some(p) = &args.kms.writeback {
        check_output_file("--writeback", p)?;
        if args.kms.legacy {
            bail!("--writeback needs atomic modesetting; drop --legacy");
        }
    }
    let request = OutputRequest {
        connector: args.kms.connector.clone(),
        mode,
    };

    // The display first: without master on a card there is nothing to do, and the camera is left alone.
    let card = Card::open(&args.kms.card, args.kms.legacy)?;
    let dev = super::dump::open(&args.capture)?;
    let (format, mut scanout, mut gpu) =
        negotiate(&dev, &card, &request, fourcc, size, fps, path, spec)?;
    let dev_path = dev.path().to_path_buf();
    let mut stream = Source::new(
        dev,
        format,
        &StreamOptions {
            buffers: KMS_BUFFERS,
            io,
        },
    )?;
    super::dump::require_dmabuf(&stream, "KMS scanout (PRIME import)")?;
    let how = match &gpu {
        None => "passthrough: PRIME import of the camera's dma-bufs, no copy".to_owned(),
        Some(g) => {
            let (w, h) = g
                .spec
                .output_size(stream.format().width, stream.format().height)?;
            format!(
                "gpu: the render stage converts into {w}x{h} XR24 dma-bufs ({}), PRIME import, no copy",
                g.renderer.import_path().name()
            )
        }
    };
    eprintln!(
        "dmacam kms: {} {} {}x{} -> {} {} {} ({} plane, {}); path {how}",
        dev_path.display(),
        stream.format().fourcc,
        stream.format().width,
        stream.format().height,
        card.path().display(),
        scanout.output().connector_name,
        scanout.output().mode_name(),
        scanout.output().plane_kind.as_str(),
        if card.info().atomic {
            "atomic"
        } else {
            "legacy"
        },
    );
    crate::decoding::announce("view --output kms", &stream);
    crate::signals::install()?;
    stream.start()?;
    let mut progress = pipeline::Progress::new(None);
    let cfg = pipeline::Loop {
        who: "kms",
        dev: &dev_path,
        capture: &args.capture,
        io,
        buffers: KMS_BUFFERS,
        reconnect: args.reconnect,
        stop: pipeline::Stop {
            taken: None,
            shown: args.frames,
            duration: args.duration,
        },
        trace: trace.as_ref(),
        keys: None,
    };
    let (result, stream) = pipeline::run(&mut scanout, stream, &mut gpu, &cfg, &mut progress)?;
    let writeback = match (&result, &args.kms.writeback) {
        (Ok(()), Some(p)) => Some(
            scanout
                .capture_writeback(Duration::from_secs(5))
                .map(|img| (p.clone(), img)),
        ),
        _ => None,
    };
    // Restore the display (this also hands every frame back), then stop the camera.
    let finished = scanout.finish();
    let mut stream = stream;
    if let Some(s) = stream.as_mut() {
        s.stop().ok();
    }
    result?;
    let mut summary = finished?;
    summary.intake = Some(progress.intake);
    if let Some(g) = &gpu {
        summary.path = "gpu (the render stage's XR24 dma-bufs, PRIME import, no copy)".into();
        summary.cpu_bytes_copied_total += g.finish_report();
    }
    if let Some(d) = stream.as_ref().and_then(crate::decoding::summary) {
        summary.add_decode(d);
    }
    if let Some(wb) = writeback {
        let (path, img) = wb?;
        write_atomically(&path, &img.to_ppm())?;
        tracing::info!("writeback image written to {}", path.display());
    }
    report(&args, &summary)?;
    if let (Some(t), Some(p)) = (&trace, &args.trace) {
        let n = t.finish()?;
        tracing::info!("trace of {n} frames written to {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Picks the camera format and the output: passthrough with the format asked for (or the first the camera
/// offers that a plane scans out), else — for `auto` and `gpu` — the render stage's XR24 on the primary plane
/// with the format asked for (or the first the shaders read).
#[allow(clippy::too_many_arguments)]
fn negotiate(
    dev: &Input,
    card: &std::sync::Arc<Card>,
    request: &OutputRequest,
    fourcc: Option<Fourcc>,
    size: Option<(u32, u32)>,
    fps: Option<u32>,
    path: KmsPath,
    spec: Option<ProcessSpec>,
) -> Result<(Format, Scanout<Picture>, Option<GpuStage>)> {
    let offered = dev.formats()?;
    let mut last = None;
    if path != KmsPath::Gpu {
        let candidates: Vec<Fourcc> = match fourcc {
            Some(f) => vec![f],
            None => offered
                .iter()
                .filter(|d| d.supported && drm_format_for(d.fourcc).is_some())
                .map(|d| d.fourcc)
                .collect(),
        };
        for f in &candidates {
            // MJPEG frames reach the scanout decoded (XR24).
            match Scanout::new(card.clone(), request, frames_fourcc(*f)) {
                Ok(scanout) => {
                    let format = dev.negotiate(&FormatRequest {
                        fourcc: Some(*f),
                        size,
                        fps,
                    })?;
                    scanout.check_frame_size(format.width, format.height)?;
                    return Ok((format, scanout, None));
                }
                Err(e @ (KmsError::NoPlane { .. } | KmsError::UnknownFormat { .. })) => {
                    last = Some(e)
                }
                Err(e) => return Err(e.into()),
            }
        }
        if path == KmsPath::Passthrough {
            return match (last, fourcc) {
                (Some(e), Some(_)) => Err(anyhow::Error::new(e)
                    .context("--path passthrough is impossible; try --path gpu")),
                _ => bail!(
                    "{}: none of the camera's formats can be scanned out by {} as is; try --path gpu",
                    dev.path().display(),
                    card.path().display()
                ),
            };
        }
    }
    // The gpu path.
    let camera = match fourcc {
        Some(f) => f,
        None => offered
            .iter()
            .find(|d| d.supported && SourceFormat::from_fourcc(d.fourcc).is_some())
            .map(|d| d.fourcc)
            .with_context(|| {
                format!(
                    "{}: none of the camera's formats can be shown on {}: no plane scans them out and the render stage reads none of them",
                    dev.path().display(),
                    card.path().display()
                )
            })?,
    };
    let scanout = Scanout::new(card.clone(), request, OUTPUT_FOURCC)?;
    let format = dev.negotiate(&FormatRequest {
        fourcc: Some(camera),
        size,
        fps,
    })?;
    let spec = fit_to_mode(
        spec.unwrap_or_default(),
        (format.width, format.height),
        scanout.output().mode_size(),
    )?;
    let (w, h) = spec.output_size(format.width, format.height)?;
    scanout.check_frame_size(w, h)?;
    let gpu = GpuStage::new(&frames_format(&format), spec)
        .map_err(|e| match e {
            StageError::Device(e) => anyhow::Error::new(e)
                .context("the gpu path needs a Vulkan device that imports dma-bufs"),
            e => anyhow::Error::new(e),
        })
        .with_context(|| format!("{}: {camera} on the gpu path", dev.path().display()))?;
    if let Some(e) = last {
        tracing::info!("passthrough impossible ({e}); the render stage converts instead");
    }
    Ok((format, scanout, Some(gpu)))
}

fn report(args: &Args, summary: &KmsSummary) -> Result<()> {
    if args.stats {
        println!("{summary}");
    }
    if let Some(p) = &args.stats_json {
        let text = serde_json::to_string_pretty(summary)?;
        write_atomically(p, (text + "\n").as_bytes())?;
    }
    Ok(())
}
