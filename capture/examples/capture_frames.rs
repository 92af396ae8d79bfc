//! Capture, one layer: open a V4L2 device, negotiate a format, stream frames as dma-bufs (MMAP buffers
//! exported once each with VIDIOC_EXPBUF) and print what each frame is made of.
//!
//! ```sh
//! cargo run -p dmacam-capture --example capture_frames -- [DEVICE] [FRAMES] [FOURCC]
//! ```
//!
//! DEVICE defaults to /dev/video0, FRAMES to 10, FOURCC to the device's current format. Each frame prints
//! one line: its sequence number, the V4L2 buffer index and per plane the dma-buf's inode and exporter (the
//! same inode for every frame in that buffer: the frames are the driver's own buffers, never copied).
//! Errors are one line on stderr, naming the device, and a non-zero exit status.

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use dmacam_capture::dmabuf::identity;
use dmacam_capture::format::parse_fourcc;
use dmacam_capture::{Device, FormatRequest, Input, IoMode, Source, StreamOptions};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The library errors already name the device and hold their cause: one line.
            eprintln!("capture_frames: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/dev/video0".to_owned());
    let frames: u32 = match args.next() {
        Some(n) => n
            .parse()
            .map_err(|_| anyhow!("FRAMES must be a whole number, not '{n}'"))?,
        None => 10,
    };
    let fourcc = args
        .next()
        .map(|f| parse_fourcc(&f))
        .transpose()
        .map_err(|e| anyhow!("FOURCC: {e}"))?;

    // The typed device: VIDIOC_QUERYCAP says it is a capture node.
    let input = Input::Device(Device::open(&path)?);
    // VIDIOC_S_FMT with what was asked, the device's current setting for the rest.
    let format = input.negotiate(&FormatRequest {
        fourcc,
        ..FormatRequest::default()
    })?;
    let fps = input.frame_interval().map(|f| f.fps()).unwrap_or(0.0);
    println!("{path}: {format} at {fps:.1} fps");

    // REQBUFS (MMAP), then VIDIOC_EXPBUF once per buffer: every frame is a dma-buf from here on.
    let opts = StreamOptions {
        buffers: 4,
        io: IoMode::Mmap,
    };
    let mut source = Source::new(input, format, &opts)?;
    source.start()?;
    for _ in 0..frames {
        let frame = source.next_frame(Duration::from_secs(5))?;
        let mut planes = Vec::new();
        for (i, plane) in frame.dmabuf().planes.iter().enumerate() {
            let id = identity(plane.fd.as_fd())
                .map_err(|e| anyhow!("{path}: plane {i} of frame {}: {e}", frame.sequence()))?;
            planes.push(format!(
                "plane {i}: inode {} exporter {} offset {} stride {}",
                id.inode, id.exp_name, plane.offset, plane.stride
            ));
        }
        println!(
            "frame {} buffer {} ({} bytes){}: {}",
            frame.sequence(),
            frame.index(),
            frame.bytesused().iter().sum::<u32>(),
            if frame.is_error() {
                " (flagged corrupt)"
            } else {
                ""
            },
            planes.join("; ")
        );
        // Dropping `frame` queues its buffer again (VIDIOC_QBUF).
    }
    source.stop()?;
    Ok(())
}
