//! `dmacam dump`: stream N frames from a V4L2 node or the built-in pattern to a .raw, .y4m or per-frame
//! .png/.ppm file, reading pixels only through the frames' dma-bufs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dmacam_capture::format::PlaneFormat;
use dmacam_capture::format::{fourcc_name, parse_fourcc};
use dmacam_capture::{Format, Fourcc, Mapping, PixelFormat, Source, StreamOptions};
use dmacam_render::{output_stride, Colorimetry, ProcessSpec, Renderer, OUTPUT_FOURCC};

use crate::capture_opts::{negotiate, open, require_dmabuf, CaptureOpts};
use crate::sink::{FileSink, Kind, MappedFrame};

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
    /// .ppm), read through the render stage's exported dma-buf (or its Vulkan mapping where the driver
    /// cannot export). SPEC: `convert`, or a comma list of
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

/// The render stage of `dump --process`, with a CPU mapping of each output buffer (made once).
struct Gpu {
    renderer: Renderer,
    colour: Colorimetry,
    spec: ProcessSpec,
    maps: Vec<Option<Mapping>>,
}

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
    let mut stream = Source::new(
        dev,
        format,
        &StreamOptions {
            buffers: 4,
            io: args.capture.io()?,
        },
    )?;
    let mut gpu = None;
    let (sink_format, sink_pixel) = match spec {
        None => (stream.format().clone(), stream.pixel_format()),
        Some(spec) => {
            require_dmabuf(&stream, "--process (GPU import)")?;
            let f = stream.format();
            let colour =
                Colorimetry::from_v4l2(f.fourcc, f.colorspace, f.ycbcr_enc, f.quantization)
                    .map_err(|e| anyhow::anyhow!("--process on {}: {e}", path.display()))?;
            let out = output_format(f, &spec)?;
            let renderer = crate::gpu::renderer_for_cpu_reader(2, "dmacam dump").map_err(|e| {
                anyhow::anyhow!("--process needs a Vulkan device that imports dma-bufs: {e}")
            })?;
            tracing::info!(
                device = renderer.device_name(),
                import = renderer.import_path().name(),
                "render stage: {}",
                renderer.import_path_reason()
            );
            gpu = Some(Gpu {
                renderer,
                colour,
                spec,
                maps: Vec::new(),
            });
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
    let mut sink = FileSink::create(&args.output, &sink_format, sink_pixel, interval)?;
    tracing::info!(device = %path.display(), format = %stream.format(), io = stream.io().as_str(), "dumping");
    crate::decoding::announce("dump", &stream);
    crate::signals::install()?;
    stream.start()?;
    let progress = crate::progress::Bar::frames(u64::from(args.frames));
    let timeout = Duration::from_secs(args.capture.timeout.max(1));
    let mut health = args
        .health
        .as_deref()
        .map(|p| crate::health::Health::create(p, args.health_every))
        .transpose()?;
    let mut written = 0u32;
    let mut errored = 0u32;
    let mut errored_in_a_row = 0u32;
    let mut disconnected = None;
    while written < args.frames {
        let frame = match crate::signals::next_frame(&mut stream, timeout) {
            Ok(Some(f)) => f,
            // Ctrl-C: the frames written so far are finished below, as at the end of a full run.
            Ok(None) => break,
            Err(e) if e.is_source_gone() => {
                disconnected = Some(e);
                break;
            }
            Err(e) => return Err(e.into()),
        };
        if frame.is_error() {
            // The driver says this buffer holds corrupt data: it is not written, only counted.
            errored += 1;
            errored_in_a_row += 1;
            tracing::debug!(
                sequence = frame.sequence(),
                "V4L2_BUF_FLAG_ERROR: frame skipped"
            );
            if errored_in_a_row >= MAX_ERRORED_IN_A_ROW {
                bail!(
                    "{}: {errored_in_a_row} frames in a row came back with V4L2_BUF_FLAG_ERROR (the driver reports corrupt data)",
                    path.display()
                );
            }
            continue;
        }
        errored_in_a_row = 0;
        written += 1;
        if let Some(h) = health.as_mut() {
            h.tick(u64::from(written), gpu.as_ref().map(|g| &g.renderer));
        }
        let mut record = trace
            .as_ref()
            .map(|_| crate::trace::FrameRecord::dequeued(&frame));
        match gpu.as_mut() {
            None => {
                let touch = sink.write(&frame)?;
                if let Some(r) = record.as_mut() {
                    r.touched_by_the_writer(touch);
                }
            }
            Some(g) => {
                let out = g
                    .renderer
                    .process(frame.dmabuf(), frame.index() as u32, g.colour, &g.spec)
                    .with_context(|| format!("{}: render stage", path.display()))?;
                let sequence = frame.sequence();
                // The GPU has finished reading the camera buffer: back to V4L2 with it.
                drop(frame);
                let touch = match out.dmabuf() {
                    // Not exported (the driver cannot): read through the renderer's own mapping.
                    None => sink.write(&crate::gpu::HostOutput {
                        out: &out,
                        sequence,
                    })?,
                    Some(dmabuf) => write_mapped(&mut sink, &mut g.maps, &out, dmabuf, sequence)?,
                };
                if let Some(r) = record.as_mut() {
                    let index = r.v4l2_index as u32;
                    r.gpu = Some(crate::trace::GpuRecord::new(&g.renderer, index, &out));
                    r.touched_by_the_writer(touch);
                }
            }
        }
        if let (Some(t), Some(r)) = (&trace, &record) {
            t.write(r);
        }
        progress.set(u64::from(written));
    }
    progress.finish();
    if let Some(g) = &gpu {
        let st = g.renderer.stats();
        tracing::info!(
            frames = st.frames,
            imports = st.imports,
            cpu_bytes_copied = st.cpu_bytes_copied,
            "render stage"
        );
    }
    stream.stop()?;
    crate::decoding::report("dump", &stream);
    if errored > 0 {
        eprintln!(
            "dmacam dump: {errored} frames flagged V4L2_BUF_FLAG_ERROR by {} were skipped (not written)",
            path.display()
        );
    }
    let stopped = crate::signals::stop_signal().filter(|_| written < args.frames);
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
        let place = match files.as_slice() {
            [one] => one.display().to_string(),
            _ => format!("{} files", files.len()),
        };
        bail!(
            "{e}; the {written} frames captured before (of {}) are in {place}",
            args.frames
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
            "dmacam dump: stopped by {} after {written} of {} frames; {place}",
            crate::signals::name(sig),
            args.frames
        );
        return Ok(ExitCode::from((128 + sig) as u8));
    }
    let (sink_touched, work) = (sink.touched(), sink.cpu_work());
    let files = sink.finish()?;
    if let (Some(t), Some(p)) = (&trace, &args.trace) {
        let n = t.finish()?;
        tracing::info!("trace of {n} frames written to {}", p.display());
    }
    let place = match files.as_slice() {
        [one] => one.display().to_string(),
        _ => format!("{} files", files.len()),
    };
    eprintln!("dmacam dump: {}", cpu_report(sink_touched, work, &place));
    Ok(ExitCode::SUCCESS)
}

/// Writes a render-stage output through a CPU mapping of its exported dma-buf (made once per buffer).
fn write_mapped(
    sink: &mut FileSink,
    maps: &mut Vec<Option<Mapping>>,
    out: &dmacam_render::OutputFrame,
    dmabuf: &dmacam_capture::Dmabuf,
    sequence: u32,
) -> Result<crate::sink::CpuTouch> {
    let i = out.buffer_index();
    if maps.len() <= i {
        maps.resize_with(i + 1, || None);
    }
    if maps[i].is_none() {
        let m = Mapping::new(dmabuf.planes[0].fd.clone(), false)
            .context("cannot map the render stage's output dma-buf")?;
        maps[i] = Some(m);
    }
    let map = maps[i].as_ref().expect("mapped above");
    sink.write(&MappedFrame {
        map,
        sequence,
        len: out.stride() * out.height(),
    })
}

/// What the file writer did on the CPU, per frame written (`work` names it): the file is where zero-copy
/// ends, and what it costs is said, not hidden.
fn cpu_report((frames, t): (u64, crate::sink::CpuTouch), work: &str, place: &str) -> String {
    let per = |v: u64| v / frames.max(1);
    format!(
        "{frames} frames written to {place}; the CPU read {} bytes per frame out of the dma-bufs and wrote {} ({work})",
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
            cpu_report((3, t), "Y4M repack, file buffer", "a.y4m"),
            "3 frames written to a.y4m; the CPU read 460800 bytes per frame out of the dma-bufs and wrote \
             921606 (Y4M repack, file buffer)"
        );
    }
}
