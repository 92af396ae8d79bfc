//! `dmacam dump`: stream N frames from a V4L2 node or the built-in pattern to a .raw, .y4m or per-frame
//! .png/.ppm file, reading pixels only through the frames' dma-bufs. The options become a run of the one
//! loop (`crate::pipeline`): the camera, the render stage with `--process`, and the file writer as the sink
//! (`pipeline/file.rs`), taking every frame in order; then the final line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use dmacam_capture::format::PlaneFormat;
use dmacam_capture::format::{fourcc_name, parse_fourcc};
use dmacam_capture::stream::StreamError;
use dmacam_capture::{Format, Fourcc, PixelFormat, Source, StreamOptions};
use dmacam_render::{output_stride, ProcessSpec, OUTPUT_FOURCC};

use crate::capture_opts::{negotiate, open, require_dmabuf, CaptureOpts};
use crate::gpu::{GpuStage, StageError};
use crate::pipeline::file::FileOutput;
use crate::pipeline::{self, Progress, Sink, Stop};
use crate::sink::{FileSink, Kind};

fn parse_format(s: &str) -> Result<Fourcc> {
    parse_fourcc(s).map_err(|e| anyhow::anyhow!("--format: {e}"))
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub capture: CaptureOpts,
    /// Pixel format (fourcc such as YUYV, NV12, or NV12M for the multi-planar NM12).
    #[arg(long = "format", value_name = "FOURCC")]
    pub format_arg: Option<String>,
    /// Number of frames to write.
    #[arg(long, default_value_t = 1)]
    pub frames: u32,
    /// Output: NAME.raw (frames concatenated as v4l2-ctl --stream-to writes them), NAME.y4m (YUV formats),
    /// or a NAME containing '#' ending .png or .ppm (one RGB file per frame, '#' = sequence number).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Convert and process each frame on the GPU first and write the result (XRGB8888: .raw, .png or
    /// .ppm), read through the render stage's exported dma-buf. SPEC: `convert`, or a comma list of
    /// crop=WxH+X+Y, scale=WxH, rotate=90|180|270, mirror, flip, filter=nearest|linear.
    #[arg(long, value_name = "SPEC")]
    pub process: Option<String>,
    /// Soak runs: every --health-every frames, write a JSON line with the open fds, resident memory and
    /// render-stage import counts to FILE.
    #[arg(long, hide = true, value_name = "FILE")]
    pub health: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 1000, value_name = "N")]
    pub health_every: u64,
    /// Write one JSON line per frame to FILE: its dma-buf identities (camera export, and with --process the
    /// Vulkan import and GPU export), timestamps and CPU bytes copied between stages.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
}

/// Buffers of the camera.
const BUFFERS: u32 = 4;

/// Consecutive frames flagged V4L2_BUF_FLAG_ERROR after which `dump` gives up.
const MAX_ERRORED_IN_A_ROW: u32 = 30;

/// `V4L2_COLORSPACE_SRGB` and `V4L2_QUANTIZATION_FULL_RANGE`: what the render stage writes.
const COLORSPACE_SRGB: u32 = 8;
const QUANTIZATION_FULL_RANGE: u32 = 1;

/// The format of the render stage's output for camera frames of `camera`.
fn output_format(camera: &Format, spec: &ProcessSpec) -> Result<Format> {
    let (width, height) = spec
        .output_size(camera.width, camera.height)
        .map_err(|e| anyhow::anyhow!("--process: {e}"))?;
    Ok(Format {
        fourcc: OUTPUT_FOURCC,
        width,
        height,
        mplane: false,
        planes: vec![PlaneFormat {
            bytesperline: output_stride(width),
            sizeimage: output_stride(width) * height,
        }],
        colorspace: COLORSPACE_SRGB,
        ycbcr_enc: 0,
        quantization: QUANTIZATION_FULL_RANGE,
    })
}

/// The render stage of `dump --process` for `stream`'s frames (from `dev`), in dump's words when it cannot
/// run.
fn render_stage(stream: &Source, spec: ProcessSpec, dev: &Path) -> Result<GpuStage> {
    require_dmabuf(stream, "--process (GPU import)")?;
    GpuStage::for_cpu_reader(stream.format(), spec, "dmacam dump").map_err(|e| match e {
        StageError::Colour(e) => anyhow::anyhow!("--process on {}: {e}", dev.display()),
        StageError::Process(e) => anyhow::anyhow!("--process: {e}"),
        StageError::Device(e) => {
            anyhow::anyhow!("--process needs a Vulkan device that imports dma-bufs: {e}")
        }
    })
}

/// Where the frames went, for the final line: the file, or how many.
fn place(files: &[PathBuf]) -> String {
    match files {
        [one] => one.display().to_string(),
        _ => format!("{} files", files.len()),
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.frames == 0 {
        bail!("--frames must be at least 1");
    }
    // Reject a bad output name or option before touching the device.
    let kind = Kind::from_path(&args.output)?;
    if args.process.is_some() && kind == Kind::Y4m {
        bail!(
            "--process writes XRGB8888 frames, which {} (a .y4m file, YUV only) cannot hold; use .raw, .png or .ppm",
            args.output.display()
        );
    }
    let spec: Option<ProcessSpec> = args
        .process
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--process: {e}"))?;
    let fourcc = args.format_arg.as_deref().map(parse_format).transpose()?;
    let trace = args
        .trace
        .as_deref()
        .map(crate::trace::TraceFile::create)
        .transpose()?;
    let dev = open(&args.capture)?;
    let (format, interval) = negotiate(&dev, fourcc, &args.capture)?;
    let path = dev.path().to_path_buf();
    let io = args.capture.io()?;
    let mut stream = Source::new(
        dev,
        format,
        &StreamOptions {
            buffers: BUFFERS,
            io,
        },
    )?;
    let mut gpu = None;
    let (sink_format, sink_pixel) = match spec {
        None => (stream.format().clone(), stream.pixel_format()),
        Some(spec) => {
            let stage = render_stage(&stream, spec, &path)?;
            let out = output_format(stream.format(), &spec)?;
            gpu = Some(stage);
            let pixel = PixelFormat::lookup(OUTPUT_FOURCC).expect("XR24 is a known format");
            (out, pixel)
        }
    };
    if let (Some(c), Kind::Y4m) = (stream.compressed_format(), kind) {
        bail!(
            "{}: {} frames are decoded to XR24 (RGB), which {} (a .y4m file, YUV only) cannot hold; use .raw, .png or .ppm",
            path.display(),
            fourcc_name(c.fourcc),
            args.output.display()
        );
    }
    let writer = FileSink::create(&args.output, &sink_format, sink_pixel, interval)?;
    tracing::info!(device = %path.display(), format = %stream.format(), io = stream.io().as_str(), "dumping");
    crate::decoding::announce("dump", &stream);
    crate::signals::install()?;
    stream.start()?;
    let mut out = FileOutput::new(writer, crate::progress::Bar::frames(u64::from(args.frames)));
    let health = args
        .health
        .as_deref()
        .map(|p| crate::health::Health::create(p, args.health_every))
        .transpose()?;
    let mut progress = Progress::new(health);
    // Files take every frame, in order.
    let stop = Stop {
        accepted: Some(u64::from(args.frames)),
        ..Stop::default()
    };
    let cfg = pipeline::Loop {
        trace: trace.as_ref(),
        ..pipeline::Loop::every(
            "dump",
            &path,
            &args.capture,
            io,
            BUFFERS,
            stop,
            MAX_ERRORED_IN_A_ROW,
        )
    };
    // What the file writer reads, for the final line.
    let read_from = if gpu.is_some() {
        "the render stage's output"
    } else if stream.io() == dmacam_capture::IoMode::Memfd {
        "the pattern's memfds"
    } else {
        "the dma-bufs"
    };
    let (result, stream) = pipeline::run(&mut out, stream, &mut gpu, &cfg, &mut progress)?;
    let written = out.shown();
    let sink = out.into_writer();
    // A camera that went away ends the run with what was written; any other error ends it at once.
    let disconnected = match result {
        Ok(()) => None,
        Err(e)
            if e.downcast_ref::<StreamError>()
                .is_some_and(StreamError::is_source_gone) =>
        {
            Some(e)
        }
        Err(e) => return Err(e),
    };
    if let Some(g) = gpu.as_mut() {
        // Conversions still in flight (a stop by signal) are not written.
        g.drain();
        let st = g.renderer.stats();
        tracing::info!(
            frames = st.frames,
            imports = st.imports,
            cpu_bytes_copied = st.cpu_bytes_copied,
            "render stage"
        );
    }
    if let Some(mut stream) = stream {
        stream.stop()?;
        crate::decoding::report("dump", &stream);
    }
    let errored = progress.corrupt;
    if errored > 0 {
        eprintln!(
            "dmacam dump: {errored} frames flagged V4L2_BUF_FLAG_ERROR by {} were skipped (not written)",
            path.display()
        );
    }
    let frames = u64::from(args.frames);
    let stopped = crate::signals::stop_signal().filter(|_| written < frames);
    if disconnected.is_some() || stopped.is_some() {
        // The frames written so far stay a valid file (a Y4M stays playable), and so does the trace.
        if let Some(t) = &trace {
            t.finish()?;
        }
    }
    if let Some(e) = disconnected {
        // The run still failed.
        if written == 0 {
            bail!("{e}; no frame was written");
        }
        let files = sink.finish()?;
        bail!(
            "{e}; the {written} frames captured before (of {frames}) are in {}",
            place(&files)
        );
    }
    if let Some(sig) = stopped {
        // A requested stop: what was asked for is not all there, so the exit status says why (128 + signal).
        let place = if written == 0 {
            drop(sink);
            "nothing was written".to_owned()
        } else {
            let files = sink.finish()?;
            match files.as_slice() {
                [one] => format!("they are complete in {}", one.display()),
                _ => format!("they are complete in {} files", files.len()),
            }
        };
        eprintln!(
            "dmacam dump: stopped by {} after {written} of {frames} frames; {place}",
            crate::signals::name(sig),
        );
        return Ok(ExitCode::from((128 + sig) as u8));
    }
    let (sink_touched, work) = (sink.touched(), sink.cpu_work());
    let files = sink.finish()?;
    if let (Some(t), Some(p)) = (&trace, &args.trace) {
        let n = t.finish()?;
        tracing::info!("trace of {n} frames written to {}", p.display());
    }
    eprintln!(
        "dmacam dump: {}",
        cpu_report(sink_touched, work, read_from, &place(&files))
    );
    Ok(ExitCode::SUCCESS)
}

/// What the file writer did on the CPU, per frame written (`work` names it): the file is where zero-copy
/// ends, and what it costs is said, not hidden.
fn cpu_report(
    (frames, t): (u64, crate::sink::CpuTouch),
    work: &str,
    read_from: &str,
    place: &str,
) -> String {
    let per = |v: u64| v / frames.max(1);
    format!(
        "{frames} frames written to {place}; the CPU read {} bytes per frame out of {read_from} and wrote {} ({work})",
        per(t.read),
        per(t.written),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_report_counts_per_frame_written() {
        let t = crate::sink::CpuTouch {
            read: 3 * 460_800,
            written: 3 * 921_606,
            file: 3 * 460_806,
        };
        assert_eq!(
            cpu_report((3, t), "Y4M repack, file buffer", "the dma-bufs", "a.y4m"),
            "3 frames written to a.y4m; the CPU read 460800 bytes per frame out of the dma-bufs and wrote \
             921606 (Y4M repack, file buffer)"
        );
    }
}
