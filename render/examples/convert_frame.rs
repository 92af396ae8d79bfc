//! Render, one layer: take one frame from a camera (or the built-in pattern source), convert it to
//! XRGB8888 in Vulkan's compute shader, and print the converted pixels across the picture as RGBA.
//!
//! ```sh
//! cargo run -p dmacam-render --example convert_frame -- [SOURCE] [FOURCC]
//! ```
//!
//! SOURCE is a V4L2 node or `pattern` (the default; `pattern:gradient`, `pattern:noise`); FOURCC a format
//! the source offers (YUYV, NV12, ...). When the frame is a dma-buf and the Vulkan device imports dma-bufs,
//! the GPU reads it in place and the result is read through the exported output dma-buf. Otherwise (the
//! pattern on a machine without udmabuf or DMA-BUF heaps, e.g. with lavapipe on a desktop) the frame is
//! uploaded from CPU memory and read back through a Vulkan mapping: host-memory mode, one counted copy.
//! For the pattern each pixel is checked against the pattern's own description; a mismatch exits 1.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use dmacam_capture::{format::parse_fourcc, pattern::parse_source_name};
use dmacam_capture::{Device, FormatRequest, Input, Mapping, Source, StreamOptions};
use dmacam_render::{
    Colorimetry, HostFrame, HostPlane, ImportPreference, Mode, Options, ProcessSpec, Renderer,
};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("convert_frame: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "pattern".to_owned());
    let fourcc = args.next().map(|f| parse_fourcc(&f)).transpose();
    let fourcc = fourcc.map_err(|e| anyhow!("FOURCC: {e}"))?;
    let input = match parse_source_name(&name) {
        Some(kind) => Input::pattern(kind?),
        None => Input::Device(Device::open(&name)?),
    };
    let request = FormatRequest {
        fourcc,
        ..FormatRequest::default()
    };
    let format = input.negotiate(&request)?;
    let mut source = Source::new(input, format, &StreamOptions::default())?;
    let format = source.format().clone();
    let colour = Colorimetry::from_v4l2(
        format.fourcc,
        format.colorspace,
        format.ycbcr_enc,
        format.quantization,
    )?;
    source.start()?;
    let frame = source.next_frame(Duration::from_secs(5))?;
    let spec = ProcessSpec::default();

    // The dma-buf path needs dma-buf frames and a device that imports them; host-memory mode runs anywhere.
    let gpu = match source.not_dmabuf_reason() {
        Some(why) => Err(anyhow!("{why}")),
        None => Renderer::new(Options::default()).map_err(|e| anyhow!("{e}")),
    };
    let (renderer, out) = match gpu {
        Ok(mut r) => {
            let out = r.process(frame.dmabuf(), frame.index() as u32, colour, &spec)?;
            (r, out)
        }
        Err(why) => {
            println!("host-memory mode: {why}");
            let mut r = Renderer::new(Options {
                mode: Mode::HostMemory,
                import: ImportPreference::Buffer,
                ring: 2,
            })?;
            let pixel = source.pixel_format();
            let out = frame.read(|memory| {
                let planes = (0..pixel.color_planes())
                    .map(|i| {
                        let (m, offset, stride) = format.color_plane_location(pixel, i);
                        HostPlane {
                            data: &memory[m][offset as usize..],
                            stride,
                        }
                    })
                    .collect();
                let host = HostFrame {
                    width: format.width,
                    height: format.height,
                    fourcc: format.fourcc,
                    planes,
                };
                r.process_host(&host, colour, &spec)
            })??;
            (r, out)
        }
    };
    let how = match out.dmabuf() {
        Some(_) => "dma-buf import and export",
        None => "host memory",
    };
    println!(
        "{}: {} {}x{} frame {} → {}x{} XRGB8888 on {} ({how}), {} CPU bytes copied",
        source.path().display(),
        format.fourcc,
        format.width,
        format.height,
        frame.sequence(),
        out.width(),
        out.height(),
        renderer.device_name(),
        renderer.stats().cpu_bytes_copied
    );

    // XRGB8888 is B, G, R, X in memory. On the dma-buf path read it through the exported dma-buf.
    let mapping = out
        .dmabuf()
        .map(|d| Mapping::new(d.planes[0].fd.clone(), false))
        .transpose()?;
    let guard = mapping.as_ref().map(Mapping::read).transpose()?;
    let pixels = match &guard {
        Some(g) => &g[..],
        None => out
            .host_pixels()
            .ok_or_else(|| anyhow!("the output is not host-visible"))?,
    };
    let picture = source.pattern().map(|p| p.picture());
    let y = out.height() / 4;
    let mut wrong = 0;
    for bar in 0..8 {
        let x = out.width() * (2 * bar + 1) / 16;
        let i = (y * out.stride() + x * 4) as usize;
        let rgba = [pixels[i + 2], pixels[i + 1], pixels[i], 255];
        let want = picture.map(|p| p.rgb(x, y, frame.sequence()));
        let ok = want.is_none_or(|w| (0..3).all(|c| rgba[c].abs_diff(w[c]) <= 8));
        wrong += usize::from(!ok);
        let expected = want
            .map(|w| format!(", expected {w:?}"))
            .unwrap_or_default();
        println!(
            "pixel ({x}, {y}): RGBA {rgba:?}{expected}{}",
            if ok { "" } else { " MISMATCH" }
        );
    }
    let why = "pixels differ from the pattern by more than 8 levels";
    anyhow::ensure!(wrong == 0, "{wrong} of 8 {why}");
    Ok(())
}
