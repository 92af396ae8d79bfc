//! The built-in pattern source (`-d pattern`, `pattern:bars`, `pattern:gradient`, `pattern:noise`): frames
//! generated on the CPU into buffers dmacam allocates, paced by a CLOCK_MONOTONIC timerfd, handed out as the
//! same [`Frame`]s a V4L2 [`crate::Stream`] gives. It lets every command run without a camera.
//!
//! # The picture
//! [`Picture`] is the pure description: for frame `seq`, pixel `(x, y)` has the R'G'B' colour
//! [`Picture::rgb`]. The top seven eighths show the pattern:
//! - `bars`: the eight 100 % colour bars of [`crate::colour::BARS`], bar `x * 8 / width`;
//! - `gradient`: R' = x ramp 0..255, G' = y ramp 0..255 (over the pattern rows), B' = 255 - R';
//! - `noise`: grey, each pixel an independent value from a fixed-seed hash of (`seq`, x, y): deterministic
//!   for a given sequence number, different from frame to frame.
//!
//! The bottom eighth (the *marker band*, [`Picture::band_top`]) is black with a white square
//! ([`Picture::marker`]) that moves [`Picture::marker_step`] pixels to the right per frame period and wraps:
//! a dropped frame shows as a skipped step. Band, square and steps are even in size and position, so no
//! chroma sample straddles an edge.
//!
//! # Encoding
//! Y'CbCr formats are BT.601, limited range (Y' 16-235, C 16-240), as the [`Format`] states (colorspace
//! SMPTE 170M, ycbcr_enc 601, quantization limited); subsampled chroma takes the colour of the top-left pixel
//! of its block (co-sited, no filtering). RGB formats are full range. Every single-buffer format of
//! [`crate::format::SUPPORTED`] except GREY is offered (YUYV, UYVY, NV12, NV21, NV16, YU12, XR24, RGB3, ...);
//! sizes are rounded to even numbers and clamped to 16x16 .. 7680x4320.
//!
//! # Buffers
//! A ring of dma-bufs: udmabuf (over sealed memfds) or the DMA-BUF system heap, whichever the kernel offers
//! (`--io udmabuf` / `--io dma-heap` insist on one). Where neither is usable (no driver, or no permission)
//! the ring falls back to plain sealed memfds ([`IoMode::Memfd`]): the CPU reads them like dma-bufs, but they
//! are **not** dma-bufs, so a compositor, the GPU stage or KMS cannot import them
//! ([`PatternSource::not_dmabuf_reason`] says why they were used). A buffer is painted only while no
//! [`Frame`] of it is alive: a consumer holding a frame keeps its pixels.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::colour::{bar_rgb, rgb_to_yuv};
use crate::dmabuf::Fourcc;
use crate::format::{fourcc_name, Format, Layout, PixelFormat, PlaneFormat, SUPPORTED};
use crate::raw::b;
use crate::ring::Ring;
use crate::stream::{
    Frame, FrameMeta, FramePool, IoMode, StreamError, StreamOptions, BUF_FLAG_TIMESTAMP_MONOTONIC,
};
use crate::timer::Timer;

/// Which picture the pattern source draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PatternKind {
    /// Eight colour bars (the default).
    #[default]
    Bars,
    /// Horizontal and vertical colour ramps.
    Gradient,
    /// Grey noise, new every frame, deterministic per sequence number.
    Noise,
}

impl PatternKind {
    pub const ALL: [PatternKind; 3] =
        [PatternKind::Bars, PatternKind::Gradient, PatternKind::Noise];

    pub fn as_str(self) -> &'static str {
        match self {
            PatternKind::Bars => "bars",
            PatternKind::Gradient => "gradient",
            PatternKind::Noise => "noise",
        }
    }

    /// The source name, `pattern:KIND`.
    pub fn source_name(self) -> String {
        format!("pattern:{}", self.as_str())
    }
}

/// Why a pattern source name is not understood.
#[derive(Debug, Error)]
pub enum PatternError {
    #[error("-d {name}: unknown pattern '{kind}'; use pattern (colour bars), pattern:bars, pattern:gradient or pattern:noise")]
    UnknownKind { name: String, kind: String },
}

/// Reads a `-d` value: `None` if it does not name the pattern source (a device path), else the pattern
/// kind of `pattern` (bars) or `pattern:KIND`, or an error for an unknown kind.
pub fn parse_source_name(name: &str) -> Option<Result<PatternKind, PatternError>> {
    let rest = name.strip_prefix("pattern")?;
    if rest.is_empty() {
        return Some(Ok(PatternKind::Bars));
    }
    let kind = rest.strip_prefix(':')?;
    Some(
        PatternKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| PatternError::UnknownKind {
                name: name.to_owned(),
                kind: kind.to_owned(),
            }),
    )
}

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && x < self.x + self.w && y >= self.y && y < self.y + self.h
    }
}

/// Seed of the noise pattern.
pub const NOISE_SEED: u64 = 0x646d_6163_616d_2121;

/// The picture of the pattern source, as a pure function of pixel position and sequence number. See the
/// [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picture {
    pub kind: PatternKind,
    pub width: u32,
    pub height: u32,
}

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];

fn ramp(v: u32, n: u32) -> u8 {
    (u64::from(v.min(n.saturating_sub(1))) * 255 / u64::from(n.saturating_sub(1).max(1))) as u8
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Picture {
    /// Height of the marker band: an eighth of the picture, even, at least 2 rows.
    pub fn band_height(&self) -> u32 {
        ((self.height / 8) & !1).max(2).min(self.height)
    }

    /// The first row of the marker band.
    pub fn band_top(&self) -> u32 {
        self.height - self.band_height()
    }

    /// How far the marker moves per frame period: a 64th of the width, even, at least 2 pixels.
    pub fn marker_step(&self) -> u32 {
        ((self.width / 64) & !1).max(2)
    }

    /// Number of distinct marker positions before it wraps to the left edge.
    pub fn marker_positions(&self) -> u32 {
        let side = self.band_height().min(self.width);
        (self.width - side) / self.marker_step() + 1
    }

    /// The white square of frame `seq`: as tall as the band, at `x = (seq mod positions) * step`.
    pub fn marker(&self, seq: u32) -> Rect {
        let side = self.band_height().min(self.width);
        Rect {
            x: (seq % self.marker_positions()) * self.marker_step(),
            y: self.band_top(),
            w: side,
            h: self.band_height(),
        }
    }

    /// The R'G'B' colour of pixel (`x`, `y`) in frame `seq`.
    pub fn rgb(&self, x: u32, y: u32, seq: u32) -> [u8; 3] {
        if y >= self.band_top() {
            return if self.marker(seq).contains(x, y) {
                WHITE
            } else {
                BLACK
            };
        }
        match self.kind {
            PatternKind::Bars => bar_rgb(x, self.width),
            PatternKind::Gradient => {
                let r = ramp(x, self.width);
                [r, ramp(y, self.band_top()), 255 - r]
            }
            PatternKind::Noise => {
                let key = (u64::from(seq) << 40) ^ (u64::from(y) << 20) ^ u64::from(x);
                let n = (mix(key ^ NOISE_SEED) >> 56) as u8;
                [n, n, n]
            }
        }
    }

    /// Whether row `y` is the same in every frame (so a buffer painted once need not be painted again).
    pub fn row_is_static(&self, y: u32) -> bool {
        y < self.band_top() && self.kind != PatternKind::Noise
    }

    /// Row `y` of frame `seq` into `out` (one entry per column).
    fn row(&self, y: u32, seq: u32, out: &mut [[u8; 3]]) {
        if y >= self.band_top() {
            let m = self.marker(seq);
            for (x, px) in out.iter_mut().enumerate() {
                *px = if m.contains(x as u32, y) {
                    WHITE
                } else {
                    BLACK
                };
            }
            return;
        }
        match self.kind {
            PatternKind::Bars => {
                for (x, px) in out.iter_mut().enumerate() {
                    *px = bar_rgb(x as u32, self.width);
                }
            }
            _ => {
                for (x, px) in out.iter_mut().enumerate() {
                    *px = self.rgb(x as u32, y, seq);
                }
            }
        }
    }
}

/// The pixel formats the pattern source offers, in order of preference (YUYV first).
pub fn formats() -> Vec<PixelFormat> {
    SUPPORTED
        .iter()
        .copied()
        .filter(|p| !p.multi_buffer && p.layout != Layout::Grey && p.fourcc != crate::jpeg::JPEG)
        .collect()
}

/// The offered formats' names, for messages.
pub fn format_names() -> String {
    formats()
        .iter()
        .map(|p| fourcc_name(p.fourcc))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The quality of the `MJPG` form's frames (1..=100), a typical webcam setting.
pub const JPEG_QUALITY: u8 = 85;
/// Bytes beyond the RGB24 picture size an `MJPG` buffer has, for the JPEG headers (tables, markers).
const JPEG_HEADROOM: u32 = 4096;

/// Smallest and largest frame sizes of the pattern source.
pub const MIN_SIZE: (u32, u32) = (16, 16);
pub const MAX_SIZE: (u32, u32) = (7680, 4320);

/// The frame format of the pattern source for `fourcc` at (about) `width`x`height`: the size clamped to
/// [`MIN_SIZE`]..[`MAX_SIZE`] and rounded down to even numbers, rows packed without padding, colour planes
/// one after the other in one buffer. `None` if the source does not offer `fourcc`.
pub fn format(fourcc: Fourcc, width: u32, height: u32) -> Option<Format> {
    let pixel = formats().into_iter().find(|p| p.fourcc == fourcc)?;
    let w = width.clamp(MIN_SIZE.0, MAX_SIZE.0) & !1;
    let h = height.clamp(MIN_SIZE.1, MAX_SIZE.1) & !1;
    let bpl = match pixel.layout {
        Layout::Packed422 { .. } => 2 * w,
        Layout::Rgb { bpp, .. } => bpp as u32 * w,
        // V4L2 gives compressed formats no line length.
        Layout::Jpeg => 0,
        _ => w,
    };
    let sizeimage = match pixel.layout {
        Layout::SemiPlanar { vsub, .. } => bpl * h + bpl * (h / vsub),
        Layout::Planar420 { .. } => bpl * h + bpl * h / 2,
        // Room for the largest frame at JPEG_QUALITY: at most the raw RGB24 picture plus the headers.
        Layout::Jpeg => w * h * 3 + JPEG_HEADROOM,
        _ => bpl * h,
    };
    // JPEG frames decode to R'G'B' (JFIF is full-range BT.601 inside; the decoder undoes it).
    let (colorspace, ycbcr_enc, quantization) = if pixel.is_yuv() && !pixel.is_compressed() {
        (
            b::v4l2_colorspace_V4L2_COLORSPACE_SMPTE170M,
            b::v4l2_ycbcr_encoding_V4L2_YCBCR_ENC_601,
            b::v4l2_quantization_V4L2_QUANTIZATION_LIM_RANGE,
        )
    } else {
        (
            b::v4l2_colorspace_V4L2_COLORSPACE_SRGB,
            b::v4l2_ycbcr_encoding_V4L2_YCBCR_ENC_DEFAULT,
            b::v4l2_quantization_V4L2_QUANTIZATION_FULL_RANGE,
        )
    };
    Some(Format {
        fourcc,
        width: w,
        height: h,
        mplane: false,
        planes: vec![PlaneFormat {
            bytesperline: bpl,
            sizeimage,
        }],
        colorspace,
        ycbcr_enc,
        quantization,
    })
}

/// Paints rows `rows` of frame `seq` of `picture` into `mem`, a single memory plane holding every colour
/// plane of `format` (as [`format`] lays them out), in `pixel`'s encoding. A compressed format (`MJPG`) has
/// no rows: nothing is painted.
pub fn paint(
    picture: &Picture,
    pixel: PixelFormat,
    format: &Format,
    seq: u32,
    rows: std::ops::Range<u32>,
    mem: &mut [u8],
) {
    let w = format.width as usize;
    let loc = |i: usize| {
        let (_, off, stride) = format.color_plane_location(pixel, i);
        (off as usize, stride as usize)
    };
    let mut rgb = vec![[0u8; 3]; w];
    for y in rows {
        picture.row(y, seq, &mut rgb);
        let yu = y as usize;
        match pixel.layout {
            Layout::Packed422 { y0, u, y1, v } => {
                let (off, stride) = loc(0);
                let row = &mut mem[off + yu * stride..][..w * 2];
                for (px, pair) in row.chunks_exact_mut(4).zip(rgb.chunks_exact(2)) {
                    let (ya, cb, cr) = rgb_to_yuv(pair[0]);
                    px[y0] = ya;
                    px[u] = cb;
                    px[y1] = rgb_to_yuv(pair[1]).0;
                    px[v] = cr;
                }
            }
            Layout::SemiPlanar { vsub, cr_first } => {
                let (off, stride) = loc(0);
                let row = &mut mem[off + yu * stride..][..w];
                for (l, c) in row.iter_mut().zip(&rgb) {
                    *l = rgb_to_yuv(*c).0;
                }
                if y % vsub == 0 {
                    let (off, stride) = loc(1);
                    let row = &mut mem[off + (yu / vsub as usize) * stride..][..w];
                    for (px, pair) in row.chunks_exact_mut(2).zip(rgb.chunks_exact(2)) {
                        let (_, cb, cr) = rgb_to_yuv(pair[0]);
                        px.copy_from_slice(&if cr_first { [cr, cb] } else { [cb, cr] });
                    }
                }
            }
            Layout::Planar420 { cr_first } => {
                let (off, stride) = loc(0);
                let row = &mut mem[off + yu * stride..][..w];
                for (l, c) in row.iter_mut().zip(&rgb) {
                    *l = rgb_to_yuv(*c).0;
                }
                if y % 2 == 0 {
                    let (off1, s1) = loc(1);
                    let (off2, s2) = loc(2);
                    for (cx, pair) in rgb.chunks_exact(2).enumerate() {
                        let (_, cb, cr) = rgb_to_yuv(pair[0]);
                        let (a, b) = if cr_first { (cr, cb) } else { (cb, cr) };
                        mem[off1 + (yu / 2) * s1 + cx] = a;
                        mem[off2 + (yu / 2) * s2 + cx] = b;
                    }
                }
            }
            Layout::Rgb { bpp, r, g, b } => {
                let (off, stride) = loc(0);
                let row = &mut mem[off + yu * stride..][..w * bpp];
                // The fourth byte of 32-bit formats (X or A) is opaque.
                let pad = 6 - (r + g + b);
                for (px, c) in row.chunks_exact_mut(bpp).zip(&rgb) {
                    px[r] = c[0];
                    px[g] = c[1];
                    px[b] = c[2];
                    if bpp == 4 {
                        px[pad] = 0xff;
                    }
                }
            }
            Layout::Grey => {
                let (off, stride) = loc(0);
                let row = &mut mem[off + yu * stride..][..w];
                for (l, c) in row.iter_mut().zip(&rgb) {
                    *l = rgb_to_yuv(*c).0;
                }
            }
            // A JPEG has no rows to paint: the MJPG form encodes the picture instead (`encode_slot`).
            Layout::Jpeg => return,
        }
    }
}

/// The pattern source: see the [module docs](self).
#[derive(Debug)]
pub struct PatternSource {
    ring: Arc<Ring>,
    picture: Picture,
    format: Format,
    pixel: PixelFormat,
    /// `MJPG` only: every n-th frame delivered is cut short (no end-of-image marker), as a webcam does under
    /// load.
    truncate_every: Option<u32>,
    /// `MJPG` only: frames encoded so far (what `truncate_every` counts; frame periods nobody read are never
    /// encoded, so counting sequence numbers would make the truncated frames depend on the reader's pace).
    encoded: u64,
    /// `MJPG` only: the picture in RGB24 before it is encoded.
    rgb: Vec<u8>,
    period: Duration,
    timer: Timer,
    /// CLOCK_MONOTONIC time of frame period 0, while streaming.
    t0: Option<Duration>,
    /// Frame periods elapsed since start.
    ticks: u64,
}

impl PatternSource {
    /// Allocates the ring for `format` (as [`format`] makes it) at `fps` frames per second. `opts.io`:
    /// [`IoMode::Mmap`] (the default) takes udmabuf, else the DMA-BUF heap, else memfd; any other mode
    /// insists on that allocator.
    pub fn new(
        kind: PatternKind,
        format: Format,
        fps: u32,
        opts: &StreamOptions,
    ) -> Result<PatternSource, StreamError> {
        let name = PathBuf::from(kind.source_name());
        let pixel = formats()
            .into_iter()
            .find(|p| p.fourcc == format.fourcc)
            .filter(|_| !format.mplane && format.planes.len() == 1)
            .ok_or_else(|| StreamError::Unsupported {
                path: name.clone(),
                format: fourcc_name(format.fourcc),
                supported: format_names(),
            })?;
        let count = opts.buffers.max(2) as usize;
        let ring = Ring::allocate(name.clone(), &format, pixel, count, opts.io, "pattern")?;
        let timer = Timer::new().map_err(|source| StreamError::Ioctl {
            path: name.clone(),
            what: "timerfd_create",
            source,
        })?;
        Ok(PatternSource {
            ring: Arc::new(ring),
            picture: Picture {
                kind,
                width: format.width,
                height: format.height,
            },
            format,
            pixel,
            truncate_every: None,
            encoded: 0,
            rgb: Vec::new(),
            period: Duration::from_nanos(1_000_000_000 / u64::from(fps.max(1))),
            timer,
            t0: None,
            ticks: 0,
        })
    }

    /// `MJPG` only: cut every `n`-th frame delivered short (a truncated JPEG, as webcams deliver under load),
    /// to test the decoder's handling of corrupt frames. `None` or `Some(0)`: every frame is whole.
    pub fn set_truncate_every(&mut self, n: Option<u32>) {
        self.truncate_every = n.filter(|&n| n > 0);
    }

    fn timer_err(&self, what: &'static str, source: std::io::Error) -> StreamError {
        StreamError::Ioctl {
            path: self.ring.name().to_path_buf(),
            what,
            source,
        }
    }

    /// Starts the frame clock: frame period 0 is now.
    pub fn start(&mut self) -> Result<(), StreamError> {
        if self.t0.is_none() {
            let t0 = self
                .timer
                .start(self.period)
                .map_err(|e| self.timer_err("timerfd_settime", e))?;
            self.t0 = Some(t0);
            self.ticks = 0;
        }
        Ok(())
    }

    /// Stops the frame clock; frames still held stay valid.
    pub fn stop(&mut self) -> Result<(), StreamError> {
        if self.t0.take().is_some() {
            self.timer
                .stop()
                .map_err(|e| self.timer_err("timerfd_settime", e))?;
        }
        Ok(())
    }

    /// The source name (`pattern:KIND`).
    pub fn name(&self) -> &Path {
        self.ring.name()
    }

    pub fn format(&self) -> &Format {
        &self.format
    }

    pub fn pixel_format(&self) -> PixelFormat {
        self.pixel
    }

    pub fn picture(&self) -> Picture {
        self.picture
    }

    /// The allocator the buffers came from.
    pub fn io(&self) -> IoMode {
        self.ring.io()
    }

    /// `Some(why)` if the buffers are memfds, not dma-bufs.
    pub fn not_dmabuf_reason(&self) -> Option<&str> {
        self.ring.not_dmabuf_reason()
    }

    /// The memory plane of buffer `index`, if there is such a buffer.
    pub fn buffer_memory(&self, index: usize) -> Option<&[Arc<OwnedFd>]> {
        self.ring.buffer_memory(index)
    }

    pub fn buffer_count(&self) -> usize {
        self.ring.len()
    }

    /// The frame clock (a timerfd): readable when a frame period has passed.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.timer.fd()
    }

    /// Waits up to `timeout` for the next frame period and paints a frame into a free buffer. Frame periods
    /// that passed unread are dropped frames (the sequence number skips them), as a V4L2 driver drops frames
    /// when no buffer is queued. Fails with [`StreamError::Starved`] if every buffer is held.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Frame, StreamError> {
        let t0 = self.t0.ok_or_else(|| StreamError::NotStarted {
            path: self.ring.name().to_path_buf(),
        })?;
        let deadline = Instant::now() + timeout;
        let n = loop {
            let n = self
                .timer
                .expirations()
                .map_err(|e| self.timer_err("read of the timerfd", e))?;
            if n > 0 {
                break n;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StreamError::Timeout {
                    path: self.ring.name().to_path_buf(),
                    timeout,
                });
            }
            self.timer
                .wait(left)
                .map_err(|e| self.timer_err("poll of the timerfd", e))?;
        };
        self.ticks += n;
        let tick = self.ticks - 1;
        if n > 1 {
            tracing::debug!(source = %self.ring.name().display(), "{} frame periods passed unread: dropped", n - 1);
        }
        let index = self.ring.acquire()?;
        let seq = tick as u32;
        let bytesused = match self.paint_slot(index, seq) {
            Ok(n) => n,
            Err(e) => {
                self.ring.release(index);
                return Err(e);
            }
        };
        let slot = self.ring.slot(index);
        let nanos = (self.period.as_nanos() as u64).saturating_mul(tick);
        Ok(Frame::from_pool(
            self.ring.clone(),
            FrameMeta {
                index,
                dmabuf: slot.dmabuf.clone(),
                sequence: seq,
                timestamp: t0 + Duration::from_nanos(nanos),
                flags: BUF_FLAG_TIMESTAMP_MONOTONIC,
                field: b::v4l2_field_V4L2_FIELD_NONE,
                bytesused: vec![bytesused],
                data_offset: vec![0],
                cpu_bytes_copied: 0,
            },
        ))
    }

    /// Paints frame `seq` into buffer `index`; returns the bytes used.
    fn paint_slot(&mut self, index: usize, seq: u32) -> Result<u32, StreamError> {
        if self.pixel.is_compressed() {
            return self.encode_slot(index, seq);
        }
        let mut writer = self.ring.writer(index);
        let h = self.format.height;
        let first = if writer.static_done {
            // Only rows that change from frame to frame.
            (0..h)
                .find(|&y| !self.picture.row_is_static(y))
                .unwrap_or(h)
        } else {
            0
        };
        {
            let mut bytes = writer.map.write().map_err(|e| self.ring.map_err(e))?;
            paint(
                &self.picture,
                self.pixel,
                &self.format,
                seq,
                first..h,
                &mut bytes,
            );
        }
        writer.static_done = true;
        Ok(self.format.planes[0].sizeimage)
    }

    /// The `MJPG` form: the picture encoded as a JPEG (quality [`JPEG_QUALITY`], 4:2:0), cut short where
    /// [`set_truncate_every`](Self::set_truncate_every) says so. The encode stands for the camera's hardware
    /// encoder; it is not a copy dmacam makes of a frame, and is not counted as one.
    fn encode_slot(&mut self, index: usize, seq: u32) -> Result<u32, StreamError> {
        let (w, h) = (self.format.width, self.format.height);
        self.rgb.resize(w as usize * h as usize * 3, 0);
        let mut row = vec![[0u8; 3]; w as usize];
        for (y, out) in self.rgb.chunks_exact_mut(w as usize * 3).enumerate() {
            self.picture.row(y as u32, seq, &mut row);
            for (px, c) in out.chunks_exact_mut(3).zip(&row) {
                px.copy_from_slice(c);
            }
        }
        let jpeg = crate::jpeg::encode_rgb(&self.rgb, w, h, JPEG_QUALITY).map_err(|source| {
            StreamError::Jpeg {
                path: self.ring.name().to_path_buf(),
                source,
            }
        })?;
        self.encoded += 1;
        let len = match self.truncate_every {
            Some(n) if self.encoded % u64::from(n) == 0 => jpeg.len() / 2,
            _ => jpeg.len(),
        };
        let mut writer = self.ring.writer(index);
        let mut bytes = writer.map.write().map_err(|e| self.ring.map_err(e))?;
        if len > bytes.len() {
            return Err(StreamError::Jpeg {
                path: self.ring.name().to_path_buf(),
                source: crate::jpeg::JpegError::Destination {
                    have: bytes.len(),
                    need: len,
                },
            });
        }
        bytes[..len].copy_from_slice(&jpeg[..len]);
        Ok(len as u32)
    }
}

impl Drop for PatternSource {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("{e}");
        }
    }
}

impl AsFd for PatternSource {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

#[cfg(test)]
mod tests {
    //! The references here are written from the pattern's specification (module docs, BT.601) and the
    //! formats' byte layouts as V4L2 documents them, not from the generator's code.
    use super::*;
    use crate::alloc::{SYSTEM_HEAP, UDMABUF};

    /// BT.601 limited range, exact (floating point), rounded.
    fn bt601(rgb: [u8; 3]) -> [f64; 3] {
        let [r, g, b] = rgb.map(|c| f64::from(c) / 255.0);
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        let cb = (b - y) / 1.772;
        let cr = (r - y) / 1.402;
        [16.0 + 219.0 * y, 128.0 + 224.0 * cb, 128.0 + 224.0 * cr]
    }

    const BAR_TABLE: [[u8; 3]; 8] = [
        [255, 255, 255],
        [255, 255, 0],
        [0, 255, 255],
        [0, 255, 0],
        [255, 0, 255],
        [255, 0, 0],
        [0, 0, 255],
        [0, 0, 0],
    ];

    /// The spec of the picture: bars (or gradient) above a black band of h/8 (even) rows with a white square
    /// of band height at x = (seq mod positions) * step, step = max(2, even(w/64)).
    fn spec_rgb(kind: PatternKind, w: u32, h: u32, x: u32, y: u32, seq: u32) -> [u8; 3] {
        let band = ((h / 8) / 2 * 2).max(2);
        let top = h - band;
        if y >= top {
            let step = ((w / 64) / 2 * 2).max(2);
            let positions = (w - band) / step + 1;
            let x0 = (seq % positions) * step;
            return if x >= x0 && x < x0 + band {
                [255; 3]
            } else {
                [0; 3]
            };
        }
        match kind {
            PatternKind::Bars => BAR_TABLE[(x * 8 / w) as usize],
            PatternKind::Gradient => {
                let r = (x * 255 / (w - 1)) as u8;
                [r, (y * 255 / (top - 1)) as u8, 255 - r]
            }
            PatternKind::Noise => unreachable!("noise has no closed form here"),
        }
    }

    fn render(kind: PatternKind, code: &[u8; 4], w: u32, h: u32, seq: u32) -> (Format, Vec<u8>) {
        let f = format(Fourcc::new(code), w, h).expect("offered");
        let pixel = PixelFormat::lookup(f.fourcc).unwrap();
        let mut mem = vec![0xa5u8; f.planes[0].sizeimage as usize];
        let pic = Picture {
            kind,
            width: f.width,
            height: f.height,
        };
        paint(&pic, pixel, &f, seq, 0..f.height, &mut mem);
        (f, mem)
    }

    /// (Y', Cb, Cr) or (R', G', B') of pixel (x, y), read with the format's documented byte layout.
    fn read_pixel(code: &[u8; 4], mem: &[u8], w: usize, h: usize, x: usize, y: usize) -> [u8; 3] {
        match code {
            b"YUYV" => {
                let p = &mem[y * w * 2 + (x / 2) * 4..][..4];
                [if x % 2 == 0 { p[0] } else { p[2] }, p[1], p[3]]
            }
            b"UYVY" => {
                let p = &mem[y * w * 2 + (x / 2) * 4..][..4];
                [if x % 2 == 0 { p[1] } else { p[3] }, p[0], p[2]]
            }
            b"NV12" => {
                let c = &mem[w * h + (y / 2) * w + (x / 2) * 2..];
                [mem[y * w + x], c[0], c[1]]
            }
            b"NV16" => {
                let c = &mem[w * h + y * w + (x / 2) * 2..];
                [mem[y * w + x], c[0], c[1]]
            }
            b"YU12" => {
                let cb = mem[w * h + (y / 2) * (w / 2) + x / 2];
                let cr = mem[w * h + (w / 2) * (h / 2) + (y / 2) * (w / 2) + x / 2];
                [mem[y * w + x], cb, cr]
            }
            b"XR24" => {
                let p = &mem[(y * w + x) * 4..][..4];
                assert_eq!(p[3], 0xff, "X byte");
                [p[2], p[1], p[0]]
            }
            b"RGB3" => {
                let p = &mem[(y * w + x) * 3..][..3];
                [p[0], p[1], p[2]]
            }
            _ => unreachable!(),
        }
    }

    fn check_against_spec(kind: PatternKind, code: &[u8; 4], w: u32, h: u32, seq: u32) {
        let (f, mem) = render(kind, code, w, h, seq);
        assert_eq!((f.width, f.height), (w, h));
        let yuv = code != b"XR24" && code != b"RGB3";
        let (wu, hu) = (w as usize, h as usize);
        for y in 0..hu {
            for x in 0..wu {
                let got = read_pixel(code, &mem, wu, hu, x, y);
                let rgb = spec_rgb(kind, w, h, x as u32, y as u32, seq);
                let want = if yuv {
                    // Chroma is sited at the top-left pixel of its block.
                    let cy = match code {
                        b"YUYV" | b"UYVY" | b"NV16" => y,
                        _ => y & !1,
                    };
                    let c = bt601(spec_rgb(kind, w, h, (x & !1) as u32, cy as u32, seq));
                    let l = bt601(rgb);
                    [l[0], c[1], c[2]]
                } else {
                    rgb.map(f64::from)
                };
                for c in 0..3 {
                    assert!(
                        (f64::from(got[c]) - want[c]).abs() <= 1.0,
                        "{kind:?} {} {w}x{h} seq {seq} at ({x},{y}) component {c}: got {got:?}, want {want:?}",
                        String::from_utf8_lossy(code)
                    );
                }
            }
        }
    }

    #[test]
    fn bars_and_gradient_match_the_spec_in_every_layout() {
        for code in [
            b"YUYV", b"UYVY", b"NV12", b"NV16", b"YU12", b"XR24", b"RGB3",
        ] {
            for kind in [PatternKind::Bars, PatternKind::Gradient] {
                check_against_spec(kind, code, 128, 48, 0);
                check_against_spec(kind, code, 128, 48, 7);
                check_against_spec(kind, code, 640, 360, 61);
            }
        }
    }

    #[test]
    fn bars_are_the_textbook_bt601_values() {
        // ITU-R BT.601 75/100 bar tables (100 %): Y', Cb, Cr of white..black.
        let table = [
            [235, 128, 128],
            [210, 16, 146],
            [170, 166, 16],
            [145, 54, 34],
            [106, 202, 222],
            [81, 90, 240],
            [41, 240, 110],
            [16, 128, 128],
        ];
        let (_, mem) = render(PatternKind::Bars, b"YUYV", 640, 360, 0);
        for (i, want) in table.iter().enumerate() {
            let x = i * 80 + 40;
            let got = read_pixel(b"YUYV", &mem, 640, 360, x, 100);
            for c in 0..3 {
                assert!(
                    (i32::from(got[c]) - want[c]).abs() <= 1,
                    "bar {i}: {got:?} vs {want:?}"
                );
            }
        }
    }

    /// Where the white square is in the band of an XR24 frame: its first column and width.
    fn find_marker(mem: &[u8], w: usize, y: usize) -> (usize, usize) {
        let white: Vec<usize> = (0..w).filter(|&x| mem[(y * w + x) * 4] == 255).collect();
        let first = white[0];
        assert!(
            white.windows(2).all(|p| p[1] == p[0] + 1),
            "one contiguous square"
        );
        (first, white.len())
    }

    #[test]
    fn the_marker_moves_one_step_per_frame_and_wraps() {
        let (w, h) = (640u32, 360u32);
        let pic = Picture {
            kind: PatternKind::Bars,
            width: w,
            height: h,
        };
        // 360/8 = 45 -> 44 rows; step 640/64 = 10; (640 - 44) / 10 + 1 = 60 positions.
        assert_eq!(
            (pic.band_top(), pic.marker_step(), pic.marker_positions()),
            (316, 10, 60)
        );
        let mut last = None;
        for seq in [0u32, 1, 2, 3, 30, 59, 60, 61] {
            let (_, mem) = render(PatternKind::Noise, b"XR24", w, h, seq);
            let (x, side) = find_marker(&mem, w as usize, 340);
            assert_eq!(side, 44);
            assert_eq!(x as u32, (seq % 60) * 10, "seq {seq}");
            if let Some((ls, lx)) = last {
                if seq == ls + 1 && seq % 60 != 0 {
                    assert_eq!(x, lx + 10);
                }
            }
            last = Some((seq, x));
        }
    }

    #[test]
    fn noise_is_grey_deterministic_per_sequence_and_changes_between_frames() {
        let (w, h) = (320u32, 240u32);
        let (f, a) = render(PatternKind::Noise, b"NV12", w, h, 5);
        let (_, b) = render(PatternKind::Noise, b"NV12", w, h, 5);
        let (_, c) = render(PatternKind::Noise, b"NV12", w, h, 6);
        assert_eq!(a, b, "same sequence number, same frame");
        let top = Picture {
            kind: PatternKind::Noise,
            width: w,
            height: h,
        }
        .band_top() as usize;
        let luma = |m: &[u8]| m[..top * w as usize].to_vec();
        let (la, lc) = (luma(&a), luma(&c));
        let same = la.iter().zip(&lc).filter(|(x, y)| x == y).count();
        assert!(same < la.len() / 20, "{same} of {} pixels equal", la.len());
        // Grey: neutral chroma everywhere; luma spread over the limited range, mean near the middle.
        let chroma = &a[(w * h) as usize..f.planes[0].sizeimage as usize];
        assert!(chroma.iter().all(|&v| v == 128));
        assert!(la.iter().all(|&v| (16..=235).contains(&v)));
        let mean = la.iter().map(|&v| f64::from(v)).sum::<f64>() / la.len() as f64;
        assert!((mean - 125.5).abs() < 5.0, "mean {mean}");
        let mut seen = [false; 256];
        for &v in &la {
            seen[v as usize] = true;
        }
        assert!(seen.iter().filter(|&&s| s).count() > 200);
    }

    #[test]
    fn source_names() {
        assert_eq!(
            parse_source_name("pattern").unwrap().unwrap(),
            PatternKind::Bars
        );
        assert_eq!(
            parse_source_name("pattern:gradient").unwrap().unwrap(),
            PatternKind::Gradient
        );
        assert_eq!(
            parse_source_name("pattern:noise").unwrap().unwrap(),
            PatternKind::Noise
        );
        let e = parse_source_name("pattern:nonsense").unwrap().unwrap_err();
        assert!(e.to_string().contains("pattern:gradient"), "{e}");
        assert!(parse_source_name("pattern:").unwrap().is_err());
        assert!(parse_source_name("/dev/video0").is_none());
        assert!(parse_source_name("patterns").is_none());
    }

    #[test]
    fn formats_are_rounded_and_described() {
        let f = format(Fourcc::new(b"NV12"), 641, 361).unwrap();
        assert_eq!((f.width, f.height), (640, 360));
        assert_eq!(f.planes[0].bytesperline, 640);
        assert_eq!(f.planes[0].sizeimage, 640 * 360 * 3 / 2);
        assert_eq!((f.colorspace, f.ycbcr_enc, f.quantization), (1, 1, 2));
        let f = format(Fourcc::new(b"XR24"), 1, 100_000).unwrap();
        assert_eq!((f.width, f.height), (MIN_SIZE.0, MAX_SIZE.1));
        assert!(format(Fourcc::new(b"GREY"), 64, 64).is_none());
        assert!(format(Fourcc::new(b"NM12"), 64, 64).is_none());
    }

    fn source(io: IoMode, buffers: u32, fps: u32) -> PatternSource {
        let f = format(Fourcc::new(b"XR24"), 64, 32).unwrap();
        PatternSource::new(PatternKind::Bars, f, fps, &StreamOptions { buffers, io }).unwrap()
    }

    #[test]
    fn memfd_fallback_streams_paced_frames_readable_on_the_cpu() {
        let mut s = source(IoMode::Memfd, 4, 200);
        assert_eq!(s.io(), IoMode::Memfd);
        assert!(s.not_dmabuf_reason().is_some());
        assert!(matches!(
            s.next_frame(Duration::from_millis(10)),
            Err(StreamError::NotStarted { .. })
        ));
        s.start().unwrap();
        let period = Duration::from_millis(5);
        let mut last: Option<(u32, Duration)> = None;
        for _ in 0..6 {
            let frame = s.next_frame(Duration::from_secs(2)).unwrap();
            let fd = frame.memory()[0].clone();
            assert!(crate::dmabuf::is_shmem(fd.as_fd()), "a memfd");
            assert_eq!(frame.flags(), BUF_FLAG_TIMESTAMP_MONOTONIC);
            let now = crate::clock::monotonic_now();
            assert!(frame.timestamp() <= now && now - frame.timestamp() < Duration::from_secs(2));
            if let Some((seq, ts)) = last {
                assert!(frame.sequence() > seq);
                assert_eq!(frame.timestamp() - ts, period * (frame.sequence() - seq));
            }
            last = Some((frame.sequence(), frame.timestamp()));
            let seq = frame.sequence();
            frame
                .read(|mem| {
                    let m = &mem[0];
                    // Bar 2 (cyan) at (20, 4), and the marker in the band (rows 28..32, step 2, side 4).
                    assert_eq!(&m[(4 * 64 + 20) * 4..][..4], &[255, 255, 0, 255]);
                    let x0 = (seq % 31) as usize * 2;
                    assert_eq!(&m[(30 * 64 + x0 + 1) * 4..][..3], &[255, 255, 255]);
                    if x0 >= 1 {
                        assert_eq!(&m[(30 * 64 + x0 - 1) * 4..][..3], &[0, 0, 0]);
                    }
                })
                .unwrap();
        }
        s.stop().unwrap();
        assert!(matches!(
            s.next_frame(Duration::from_millis(10)),
            Err(StreamError::NotStarted { .. })
        ));
    }

    #[test]
    fn a_held_frame_is_never_repainted() {
        let mut s = source(IoMode::Memfd, 2, 500);
        s.start().unwrap();
        let t = Duration::from_secs(2);
        let a = s.next_frame(t).unwrap();
        let b = s.next_frame(t).unwrap();
        assert_ne!(a.index(), b.index());
        assert!(matches!(
            s.next_frame(t),
            Err(StreamError::Starved { count: 2, .. })
        ));
        let snapshot = a.read(|m| m[0].to_vec()).unwrap();
        drop(b);
        for _ in 0..5 {
            let c = s.next_frame(t).unwrap();
            assert_ne!(c.index(), a.index(), "the held buffer is not reused");
        }
        assert_eq!(a.read(|m| m[0].to_vec()).unwrap(), snapshot);
        // Frames outlive the source.
        drop(s);
        assert_eq!(a.read(|m| m[0].to_vec()).unwrap(), snapshot);
    }

    #[test]
    fn auto_takes_a_dma_buf_allocator_when_there_is_one() {
        let s = source(IoMode::Mmap, 2, 30);
        let usable = |p: &str| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .is_ok()
        };
        let want = if usable(UDMABUF) {
            IoMode::Udmabuf
        } else if usable(SYSTEM_HEAP) {
            IoMode::DmaHeap
        } else {
            IoMode::Memfd
        };
        assert_eq!(s.io(), want);
        assert_eq!(s.not_dmabuf_reason().is_some(), want == IoMode::Memfd);
    }
}
