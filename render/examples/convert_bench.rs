//! Render, one layer, for measuring: convert N synthetic frames in host-memory mode (no camera, no dma-bufs,
//! so it runs on a desktop's lavapipe) and say how long the conversions took. Time the whole process from
//! outside and subtract a run of `--frames 1` (start-up, the first frame and its shader compile): the rest,
//! divided by N - 1, is the CPU of one conversion. `--frames 0` sets up and converts nothing.
//!
//! ```sh
//! cargo run --release -p dmacam-render --example convert_bench -- \
//!     --format YUYV --size 1280x720 --frames 200 [--spec scale=1920x1080]
//! ```

use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use dmacam_capture::format::parse_fourcc;
use dmacam_render::{
    Colorimetry, HostFrame, HostPlane, ImportPreference, Mode, Options, ProcessSpec, Renderer,
    SourceFormat,
};

fn main() -> anyhow::Result<()> {
    let (mut fourcc, mut size, mut frames, mut spec) = ("YUYV".to_owned(), (1280, 720), 200, "");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--format" => fourcc = value.clone(),
            "--size" => {
                let (w, h) = value.split_once('x').context("--size WxH")?;
                size = (w.parse()?, h.parse()?);
            }
            "--frames" => frames = value.parse()?,
            "--spec" => spec = value,
            _ => bail!("unknown flag {flag} (--format, --size, --frames, --spec)"),
        }
    }
    let fourcc = parse_fourcc(&fourcc).map_err(|e| anyhow!("--format: {e}"))?;
    let format = SourceFormat::require(fourcc)?;
    let spec: ProcessSpec = if spec.is_empty() {
        ProcessSpec::default()
    } else {
        spec.parse()?
    };
    let (width, height) = size;
    // Deterministic, detailed content: every byte differs from its neighbours.
    let planes: Vec<(Vec<u8>, u32)> = (0..format.planes())
        .map(|i| {
            let (row, rows) = format.plane_extent(i, width, height);
            let data = (0..row * rows)
                .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x10)
                .collect();
            (data, row)
        })
        .collect();
    let frame = HostFrame {
        width,
        height,
        fourcc,
        planes: planes
            .iter()
            .map(|(data, stride)| HostPlane {
                data,
                stride: *stride,
            })
            .collect(),
    };
    let mut renderer = Renderer::new(Options {
        mode: Mode::HostMemory,
        import: ImportPreference::Buffer,
        ring: 2,
    })?;
    let colour = Colorimetry::BT601_LIMITED;
    let start = Instant::now();
    let mut checksum = 0u32;
    for _ in 0..frames {
        let out = renderer.process_host(&frame, colour, &spec)?;
        let px = out.host_pixels().context("host-visible output")?;
        checksum = checksum.wrapping_add(u32::from(px[px.len() / 2]));
    }
    let took = start.elapsed();
    println!(
        "{frames} frames {fourcc} {width}x{height} [{spec}] on {}: {:.2} ms wall per frame (checksum {checksum})",
        renderer.device_name(),
        took.as_secs_f64() * 1000.0 / f64::from(frames.max(1)),
    );
    Ok(())
}
