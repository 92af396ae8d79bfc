//! The driver run of `dmacam check` for one format: the format is streamed through the one loop
//! (`crate::pipeline`, every frame in order) into [`CheckSink`], which checks each frame as it is handed over
//! (sequence numbers, CLOCK_MONOTONIC timestamps, bytesused against sizeimage, and the pixels of a known
//! picture) and lets it go at once.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use anyhow::{Context, Result};
use dmacam_capture::pattern::Picture as PatternPicture;
use dmacam_capture::{
    Device, Format, FormatRequest, Fourcc, Frame, Input, PatternKind, PixelFormat, Source,
    StreamOptions,
};

use super::{
    fail, Args, CaseResult, Expect, BARS, JPEG_TOLERANCE, TIMESTAMP_AGE, TIMESTAMP_LEAD, TOLERANCE,
};
use crate::capture_opts::open;
use crate::pipeline::sink::wait_fds;
use crate::pipeline::{self, Picture, Progress, Sink, Stop};
use crate::pixels::{Csc, Sample, View};

/// Camera buffers of a driver run.
const BUFFERS: u32 = 4;

/// Frames flagged V4L2_BUF_FLAG_ERROR beyond the frames asked for after which a case fails.
const ERRORED_SLACK: u32 = 30;

/// Streams `fourcc` and checks every frame into `r`.
pub(super) fn stream_and_check(
    args: &Args,
    fourcc: Fourcc,
    expect: Expect,
    r: &mut CaseResult,
) -> Result<()> {
    let dev = match expect {
        Expect::Pattern(kind) => crate::capture_opts::pattern_input(kind, &args.capture),
        // A PipeWire node is opened again as `-d` names it, not as a device path.
        Expect::Nothing
            if dmacam_capture::pipewire::Target::parse(&args.capture.device.to_string_lossy())
                .is_some() =>
        {
            open(&args.capture)?
        }
        _ => Input::Device(Device::open(&args.capture.device)?),
    };
    let format = dev.negotiate(&FormatRequest {
        fourcc: Some(fourcc),
        size: args.capture.size()?,
        fps: args.capture.fps()?,
    })?;
    let io = args.capture.io()?;
    let mut stream = Source::new(
        dev,
        format,
        &StreamOptions {
            buffers: BUFFERS,
            io,
        },
    )?;
    let path = stream.path().to_path_buf();
    stream.start()?;
    let mut sink = CheckSink::new(&stream, expect, args.frames, r);
    let stop = Stop {
        accepted: Some(u64::from(args.frames.max(1))),
        ..Stop::default()
    };
    // Every frame in order; corrupt ones are counted by the sink, which gives up itself.
    let cfg = pipeline::Loop::every("check", &path, &args.capture, io, BUFFERS, stop, u32::MAX);
    let mut progress = Progress::new(None);
    let (result, stream) = pipeline::run(&mut sink, stream, &mut None, &cfg, &mut progress)?;
    result?;
    let mut stream = stream.context("the stream ended without its source")?;
    stream.stop()?;
    let r = sink.r;
    if let Some(d) = crate::decoding::summary_of_decode(&stream) {
        // Corrupt frames were skipped before they reached here: their sequence numbers are not the driver's
        // drops.
        r.drops = r
            .drops
            .saturating_sub(u32::try_from(d.corrupt_frames_skipped).unwrap_or(u32::MAX));
        r.messages.push(d.to_string());
    }
    if r.errored > 0 {
        r.messages.push(format!(
            "{} frames flagged V4L2_BUF_FLAG_ERROR by the driver skipped",
            r.errored
        ));
    }
    if r.drops > 0 {
        r.messages
            .push(format!("{} frames dropped by the driver", r.drops));
    }
    Ok(())
}

/// The sink of a driver run: checks each frame handed over and lets it go.
struct CheckSink<'a> {
    r: &'a mut CaseResult,
    expect: Expect,
    /// The frames as they come out of the source: decoded (XR24) if the camera sends MJPEG.
    format: Format,
    pixel: PixelFormat,
    tol: i32,
    frames: u32,
    /// The sequence and timestamp of the last frame seen.
    last: Option<(u32, Duration)>,
    /// The frame before was flagged corrupt.
    after_error: bool,
    /// Too many corrupt frames: the run stops.
    gave_up: bool,
}

impl<'a> CheckSink<'a> {
    fn new(stream: &Source, expect: Expect, frames: u32, r: &'a mut CaseResult) -> CheckSink<'a> {
        CheckSink {
            r,
            expect,
            format: stream.format().clone(),
            pixel: stream.pixel_format(),
            tol: if stream.compressed_format().is_some() {
                JPEG_TOLERANCE
            } else {
                TOLERANCE
            },
            frames,
            last: None,
            after_error: false,
            gave_up: false,
        }
    }

    /// The checks of one good frame.
    fn check(&mut self, frame: &Frame) -> Result<()> {
        let r = &mut *self.r;
        let now = dmacam_capture::monotonic_now();
        let seq = frame.sequence();
        let ts = frame.timestamp();
        r.frames += 1;
        if !frame.is_monotonic() {
            fail(
                r,
                format!(
                    "frame {seq}: timestamp is not CLOCK_MONOTONIC (flags {:#x})",
                    frame.flags()
                ),
            );
        }
        // vivid stamps the end of the frame period, so under load a timestamp may lead "now" a little;
        // a different clock (REALTIME) or garbage is far off either way.
        if ts > now + TIMESTAMP_LEAD || now.saturating_sub(ts) > TIMESTAMP_AGE {
            fail(
                r,
                format!("frame {seq}: timestamp {ts:?} is not CLOCK_MONOTONIC now ({now:?})"),
            );
        }
        if let Some((pseq, pts)) = self.last {
            if seq < pseq || (seq == pseq && !self.after_error) {
                fail(r, format!("sequence went from {pseq} to {seq}"));
            } else if seq > pseq + 1 {
                r.drops += seq - pseq - 1;
            }
            if ts <= pts {
                fail(
                    r,
                    format!("frame {seq}: timestamp {ts:?} not after the previous {pts:?}"),
                );
            }
        }
        self.last = Some((seq, ts));
        self.after_error = false;
        for (i, (&used, plane)) in frame
            .bytesused()
            .iter()
            .zip(&self.format.planes)
            .enumerate()
        {
            if used != plane.sizeimage {
                fail(
                    r,
                    format!(
                        "frame {seq}: plane {i} bytesused {used}, sizeimage {}",
                        plane.sizeimage
                    ),
                );
            }
        }
        let (format, pixel, tol) = (&self.format, self.pixel, self.tol);
        let bad = match self.expect {
            Expect::Nothing => None,
            Expect::VividBars => check_bars(frame, format, pixel, tol)?,
            Expect::Pattern(kind) => {
                let bars = match kind {
                    PatternKind::Bars => check_bars(frame, format, pixel, tol)?,
                    _ => None,
                };
                let picture = PatternPicture {
                    kind,
                    width: format.width,
                    height: format.height,
                };
                bars.or(check_pattern(frame, format, pixel, &picture, tol)?)
            }
        };
        r.pixels_checked |= self.expect != Expect::Nothing;
        if let Some(msg) = bad {
            fail(r, format!("pixels, frame {seq}: {msg}"));
        }
        Ok(())
    }
}

impl Sink for CheckSink<'_> {
    fn wait(&mut self, fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Vec<bool>> {
        wait_fds(fds, timeout)
    }

    fn submit(&mut self, picture: Picture) -> Result<()> {
        // Without a render stage the loop hands over the camera frame itself as the picture's holder.
        let frame = picture
            .holder
            .as_ref()
            .and_then(|h| h.downcast_ref::<Frame>())
            .context("check: the picture is not a camera frame")?;
        self.check(frame)
        // Dropped here: the buffer goes back to the camera.
    }

    fn corrupt(&mut self, frame: Frame) {
        let sequence = frame.sequence();
        // The driver says the data is corrupt: not a frame to check, but counted and reported. Its sequence
        // number is taken, so the next frame's is not counted as a driver drop. (vivid may give the next good
        // frame the same number again: that is not a step back.)
        let r = &mut *self.r;
        r.errored += 1;
        self.last = Some((sequence, self.last.map_or(Duration::ZERO, |(_, t)| t)));
        self.after_error = true;
        if r.errored > ERRORED_SLACK + self.frames && !self.gave_up {
            fail(
                r,
                format!("{} frames flagged V4L2_BUF_FLAG_ERROR", r.errored),
            );
            self.gave_up = true;
        }
    }

    fn close_requested(&self) -> bool {
        self.gave_up
    }

    fn shown(&self) -> u64 {
        u64::from(self.r.frames)
    }

    fn release_frames(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The expected value of a bar in the format's own encoding.
fn expected(pixel: PixelFormat, csc: Csc, rgb: [u8; 3]) -> Sample {
    match pixel.layout {
        dmacam_capture::Layout::Rgb { .. } => Sample::Rgb(rgb[0], rgb[1], rgb[2]),
        // vivid's test pattern generator encodes GREY as full-range luma with Rec. 709 weights.
        dmacam_capture::Layout::Grey => Sample::Grey(
            Csc {
                bt709: true,
                full_range: true,
            }
            .rgb_to_yuv(rgb)
            .0,
        ),
        _ => {
            let (y, u, v) = csc.rgb_to_yuv(rgb);
            Sample::Yuv(y, u, v)
        }
    }
}

/// Whether two samples are within `tol` levels in every component.
fn close(a: Sample, b: Sample, tol: i32) -> bool {
    let d = |x: u8, y: u8| (i32::from(x) - i32::from(y)).abs() <= tol;
    match (a, b) {
        (Sample::Yuv(a0, a1, a2), Sample::Yuv(b0, b1, b2))
        | (Sample::Rgb(a0, a1, a2), Sample::Rgb(b0, b1, b2)) => d(a0, b0) && d(a1, b1) && d(a2, b2),
        (Sample::Grey(a), Sample::Grey(b)) => d(a, b),
        _ => false,
    }
}

/// Checks the centre of each colour bar on three rows; returns a description of the first mismatch.
fn check_bars(
    frame: &Frame,
    format: &Format,
    pixel: PixelFormat,
    tol: i32,
) -> Result<Option<String>> {
    let csc = Csc::for_format(format);
    let res = frame.read(|mem| -> Result<Option<String>> {
        let view = View::new(format, pixel, mem, frame.data_offset())?;
        let (w, h) = (view.width, view.height);
        let mut bad = Vec::new();
        for row in [h / 4, h / 2, 3 * h / 4] {
            for (i, (name, rgb)) in BARS.iter().enumerate() {
                // The centre of bar i, on an even column so 4:2:x chroma belongs to this pixel pair.
                let x = ((2 * i + 1) * w / 16) & !1;
                let got = view.sample(x, row);
                let want = expected(pixel, csc, *rgb);
                if !close(got, want, tol) {
                    bad.push(format!(
                        "{name} bar at ({x},{row}) is {got:?}, expected {want:?}"
                    ));
                }
            }
        }
        Ok((!bad.is_empty()).then(|| {
            let n = bad.len();
            format!("{} of 24 samples differ: {}", n, bad[..n.min(3)].join(", "))
        }))
    })?;
    res.context("reading the frame's pixels")
}

/// Checks a grid of pixels over the pattern, and the marker band around where the marker must be for this
/// frame's sequence number, against the pattern's picture; returns a description of the mismatches.
fn check_pattern(
    frame: &Frame,
    format: &Format,
    pixel: PixelFormat,
    picture: &PatternPicture,
    tol: i32,
) -> Result<Option<String>> {
    let csc = Csc::for_format(format);
    let seq = frame.sequence();
    let (w, h) = (format.width, format.height);
    // Even coordinates: a 4:2:x chroma sample then belongs to exactly this pixel (the generator's siting).
    let mut points = Vec::new();
    let top = picture.band_top();
    for j in 0..9 {
        for i in 0..16 {
            points.push((((2 * i + 1) * w / 32) & !1, ((2 * j + 1) * top / 18) & !1));
        }
    }
    let m = picture.marker(seq);
    let band_y = (m.y + m.h / 2) & !1;
    for i in 0..16 {
        points.push((((2 * i + 1) * w / 32) & !1, band_y));
    }
    points.push(((m.x + m.w / 2) & !1, band_y));
    // The marker's corners; for decoded JPEG frames two pixels in, past the colour that bleeds across its
    // top edge from the bars (4:2:0 chroma, upsampled by the decoder).
    let inset = if tol > TOLERANCE { 2 } else { 0 };
    points.push((m.x + inset, m.y + inset));
    points.push((m.x + m.w - 2 - inset, h - 2 - inset));
    if m.x >= 2 {
        points.push((m.x - 2, band_y));
    }
    if m.x + m.w < w {
        points.push((m.x + m.w, band_y));
    }
    let res = frame.read(|mem| -> Result<Option<String>> {
        let view = View::new(format, pixel, mem, frame.data_offset())?;
        let mut bad = Vec::new();
        for &(x, y) in &points {
            let got = view.sample(x as usize, y as usize);
            let want = expected(pixel, csc, picture.rgb(x, y, seq));
            if !close(got, want, tol) {
                bad.push(format!("({x},{y}) is {got:?}, expected {want:?}"));
            }
        }
        Ok((!bad.is_empty()).then(|| {
            format!(
                "{} of {} samples differ from pattern:{} (marker at x={}): {}",
                bad.len(),
                points.len(),
                picture.kind.as_str(),
                m.x,
                bad[..bad.len().min(3)].join(", ")
            )
        }))
    })?;
    res.context("reading the frame's pixels")
}
