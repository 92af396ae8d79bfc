//! The minimal viewer: camera frames to a Wayland window without a copy, through the public API of the
//! three library crates. Capture streams dma-bufs; when the compositor takes the camera's format they go to
//! it as they are (passthrough), else the render stage converts each into an XRGB8888 dma-buf it exports
//! (gpu), else the viewer copies into wl_shm buffers (shm, one counted copy per frame).
//!
//! ```sh
//! cargo run -p dmacam-display --example show_frames -- [DEVICE] [FRAMES] [FOURCC]
//! ```
//!
//! DEVICE defaults to /dev/video0, FRAMES (how many the compositor must present) to 30, FOURCC to the
//! device's current format. Needs a Wayland compositor (`WAYLAND_DISPLAY`). Gives up after 90 s.

use std::any::Any;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use dmacam_capture::{format::parse_fourcc, Device, FormatRequest, Input, Source, StreamError};
use dmacam_capture::{Dmabuf, StreamOptions, DRM_FORMAT_MOD_LINEAR};
use dmacam_display::{colour_mismatch, Picture, Viewer, ViewerOptions};
use dmacam_display::{select_path, BufferMode, BufferPath, PathInputs, PathRequest};
use dmacam_render::{Colorimetry, Options, ProcessSpec, RenderError, Renderer};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("show_frames: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/dev/video0".to_owned());
    let frames: u64 = match args.next() {
        Some(n) => n
            .parse()
            .map_err(|_| anyhow!("FRAMES must be a number, not '{n}'"))?,
        None => 30,
    };
    let fourcc = args.next().map(|f| parse_fourcc(&f)).transpose();
    let fourcc = fourcc.map_err(|e| anyhow!("FOURCC: {e}"))?;

    // The display first: without a compositor there is nothing to show, and the camera is left alone.
    let mut viewer = Viewer::connect(&ViewerOptions {
        title: "show_frames".into(),
        ..ViewerOptions::default()
    })?;
    let input = Input::Device(Device::open(&path)?);
    let request = FormatRequest {
        fourcc,
        ..FormatRequest::default()
    };
    let format = input.negotiate(&request)?;
    let mut source = Source::new(input, format, &StreamOptions::default())?;
    let format = source.format().clone();

    // Which path: the camera's own dma-bufs if the compositor takes them; the Vulkan device only if not.
    let inputs = |gpu| PathInputs {
        camera: format.fourcc,
        modifier: DRM_FORMAT_MOD_LINEAR,
        gpu,
        colour: dmacam_capture::colour::Colorimetry::of_ycbcr(&format),
    };
    let caps = viewer.capabilities().clone();
    let mut decision = select_path(PathRequest::Auto, &caps, &inputs(Err("not needed".into())));
    let mut gpu = None;
    // Passthrough with colours the compositor would get wrong is worth a Vulkan device too.
    let colours_off = colour_mismatch(&caps, &inputs(Ok(()))).is_some();
    if !matches!(&decision, Ok(d) if d.path == BufferPath::Passthrough && !colours_off) {
        let f = &format;
        let stage = Colorimetry::from_v4l2(f.fourcc, f.colorspace, f.ycbcr_enc, f.quantization)
            .and_then(|colour| Ok((Renderer::new(Options::default())?, colour)));
        let available = stage.as_ref().map(|_| ()).map_err(|e| e.to_string());
        decision = select_path(PathRequest::Auto, &caps, &inputs(available));
        gpu = stage.ok();
    }
    let decision = decision.map_err(|e| anyhow!("{path}: {e}"))?;
    println!(
        "{path}: {format}: path {}: {}",
        decision.path, decision.reason
    );
    if decision.path != BufferPath::Gpu {
        gpu = None;
    }
    match decision.path {
        BufferPath::Shm => viewer.set_mode(BufferMode::Shm, true),
        BufferPath::Passthrough => viewer.set_colorimetry(inputs(Ok(())).colour),
        BufferPath::Gpu => {}
    }

    source.start()?;
    let give_up = Instant::now() + Duration::from_secs(90);
    while viewer.stats().presented < frames && !viewer.close_requested() {
        if Instant::now() > give_up {
            bail!(
                "{path}: the compositor presented {} of {frames} frames in 90 s",
                viewer.stats().presented
            );
        }
        // One poll for both: Wayland events (frame callbacks, releases) and the camera's next frame.
        if !viewer.poll(&[source.fd()], Some(Duration::from_millis(100)))?[0] {
            continue;
        }
        let frame = match source.next_frame(Duration::ZERO) {
            Ok(f) => f,
            Err(StreamError::Timeout { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let (sequence, timestamp) = (frame.sequence(), frame.capture_time());
        // The holder goes back to its producer when the compositor releases the wl_buffer: the camera
        // frame itself (passthrough), or the render stage's output buffer (the camera frame is free once
        // `process` returns).
        let (dmabuf, holder): (Dmabuf, Box<dyn Any + Send>) = match gpu.as_mut() {
            None => (frame.dmabuf().clone(), Box::new(frame)),
            Some((renderer, colour)) => {
                let index = frame.index() as u32;
                match renderer.process(frame.dmabuf(), index, *colour, &ProcessSpec::default()) {
                    Ok(out) => {
                        let dmabuf = out.dmabuf().ok_or_else(|| anyhow!("no output dma-buf"))?;
                        (dmabuf.clone(), Box::new(out))
                    }
                    // Every output buffer is still on screen or queued: skip this camera frame.
                    Err(RenderError::RingExhausted { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        viewer.submit(Picture::new(dmabuf, sequence, timestamp, holder))?;
    }
    let s = viewer.stats();
    println!(
        "{path}: {} frames submitted, {} shown, {} replaced before the compositor took them, \
         {} CPU bytes copied",
        s.submitted, s.presented, s.replaced, s.cpu_bytes_copied
    );
    // The viewer holds frames until the compositor releases them: it goes first, then the camera.
    drop(viewer);
    drop(source);
    Ok(())
}
