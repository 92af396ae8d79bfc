//! `dmacam kms-view` (to become `dmacam view --output kms`): the camera on a bare DRM/KMS display, no
//! compositor. Each camera buffer is imported into the card once (PRIME) and scanned out directly; page-flip
//! events pace the loop and a buffer goes back to the camera only after the flip that replaced it. On exit,
//! Ctrl-C included, the CRTC configuration found at start is restored.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dmacam_capture::format::parse_fourcc;
use dmacam_capture::stream::StreamError;
use dmacam_capture::{Device, Format, FormatRequest, Fourcc, Frame, Stream, StreamOptions};
use dmacam_display::kms::{
    drm_format_for, Card, KmsError, KmsSummary, ModeRequest, OutputRequest, Scanout,
};

use super::dump::CaptureOpts;

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

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub capture: CaptureOpts,
    /// Pixel format; default: the first format the camera offers that the display plane scans out (XR24...).
    #[arg(long, value_name = "FOURCC")]
    pub format: Option<String>,
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
    #[command(flatten)]
    pub kms: KmsOpts,
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
    let (format, mut scanout) = negotiate(&dev, &card, &request, fourcc, size, fps)?;
    let dev_path = dev.path().to_path_buf();
    let mut stream = Stream::new(
        dev,
        format,
        &StreamOptions {
            // The display holds up to three (active, queued, pending); keep the camera fed besides.
            buffers: 6,
            io,
        },
    )?;
    eprintln!(
        "dmacam kms: {} {} {}x{} -> {} {} {} ({} plane, {}, PRIME import, no copy)",
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
    crate::signals::install()?;
    stream.start()?;
    let result = stream_loop(&args, &mut scanout, &mut stream, &dev_path);
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
    stream.stop().ok();
    result?;
    let summary = finished?;
    if let Some(wb) = writeback {
        let (path, img) = wb?;
        write_atomically(&path, &img.to_ppm())?;
        tracing::info!("writeback image written to {}", path.display());
    }
    report(&args, &summary)?;
    Ok(ExitCode::SUCCESS)
}

/// Picks the camera format (the one asked for, or the first the camera offers that a plane scans out) and
/// the output for it.
fn negotiate(
    dev: &Device,
    card: &std::sync::Arc<Card>,
    request: &OutputRequest,
    fourcc: Option<Fourcc>,
    size: Option<(u32, u32)>,
    fps: Option<u32>,
) -> Result<(Format, Scanout<Frame>)> {
    let candidates: Vec<Fourcc> = match fourcc {
        Some(f) => vec![f],
        None => dev
            .formats()?
            .into_iter()
            .filter(|d| d.supported && drm_format_for(d.fourcc).is_some())
            .map(|d| d.fourcc)
            .collect(),
    };
    let mut last = None;
    for f in &candidates {
        match Scanout::new(card.clone(), request, *f) {
            Ok(scanout) => {
                let format = dev.negotiate(&FormatRequest {
                    fourcc: Some(*f),
                    size,
                    fps,
                })?;
                scanout.check_frame_size(format.width, format.height)?;
                return Ok((format, scanout));
            }
            Err(e @ (KmsError::NoPlane { .. } | KmsError::UnknownFormat { .. })) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    match (last, fourcc) {
        (Some(e), Some(_)) => Err(e.into()),
        _ => bail!(
            "{}: none of the camera's formats can be scanned out by {} as is, and the GPU conversion is not \
             wired into the KMS output yet; pick a camera format the plane takes (e.g. --format XR24)",
            dev.path().display(),
            card.path().display()
        ),
    }
}

fn stream_loop(
    args: &Args,
    scanout: &mut Scanout<Frame>,
    stream: &mut Stream,
    dev: &Path,
) -> Result<()> {
    let start = Instant::now();
    let stall = Duration::from_secs(args.capture.timeout.max(1));
    let mut last_frame = Instant::now();
    let buffers = stream.buffer_count();
    loop {
        if crate::signals::stop_requested() {
            tracing::info!("signal received: stopping");
            return Ok(());
        }
        let done = args.frames.is_some_and(|n| scanout.stats().shown >= n)
            || args
                .duration
                .is_some_and(|d| start.elapsed().as_secs_f64() >= d);
        if done {
            return Ok(());
        }
        // Ask the camera only while it has a buffer queued: the display holds at most three.
        let want_camera = scanout.held() < buffers;
        let mut fds = vec![libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&scanout.fd()),
            events: libc::POLLIN,
            revents: 0,
        }];
        if want_camera {
            fds.push(libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&stream.device().as_fd()),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `fds` is a valid array of pollfds for the duration of the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            bail!("poll: {e}");
        }
        if fds[0].revents & libc::POLLIN != 0 {
            scanout.dispatch()?;
        }
        let camera_ready = fds.get(1).is_some_and(|p| p.revents != 0);
        if !camera_ready {
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
        if frame.is_error() {
            tracing::warn!(
                "{}: frame {} has V4L2_BUF_FLAG_ERROR; not shown",
                dev.display(),
                frame.sequence()
            );
            continue;
        }
        scanout.submit(frame)?;
    }
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
