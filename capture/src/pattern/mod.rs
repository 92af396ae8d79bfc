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
//! of its block (co-sited, no filtering). RGB formats are full range. Every single-buffer format capture
//! supports ([`crate::format::supported`]) except GREY and JPEG is offered (YUYV, UYVY, NV12, NV21, NV16, YU12,
//! XR24, RGB3, ...);
//! sizes are rounded to even numbers and clamped to 16x16 .. 7680x4320.
//!
//! # Buffers
//! A ring of dma-bufs: udmabuf (over sealed memfds) or the DMA-BUF system heap, whichever the kernel offers
//! (`--io udmabuf` / `--io dma-heap` insist on one). Where neither is usable (no driver, or no permission)
//! the ring falls back to plain sealed memfds ([`IoMode::Memfd`]): the CPU reads them like dma-bufs, but they
//! are **not** dma-bufs, so a compositor, the GPU stage or KMS cannot import them
//! ([`PatternSource::not_dmabuf_reason`] says why they were used). A buffer is painted only while no
//! [`Frame`] of it is alive: a consumer holding a frame keeps its pixels.

mod paint;
mod picture;
#[cfg(test)]
mod tests;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::format::{fourcc_name, Format, PixelFormat};
use crate::raw::b;
use crate::ring::Ring;
use crate::stream::{
    CpuWrites, Frame, FrameMeta, FramePool, IoMode, Origin, StreamError, StreamOptions,
    BUF_FLAG_TIMESTAMP_MONOTONIC,
};
use crate::timer::Timer;

pub use paint::{format, format_names, formats, paint, JPEG_QUALITY, MAX_SIZE, MIN_SIZE};
pub use picture::{parse_source_name, PatternError, PatternKind, Picture, Rect, NOISE_SEED};

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
    /// What the CPU painted (or encoded) into the frames handed out so far.
    written: CpuWrites,
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
        let ring = Ring::allocate(
            name.clone(),
            &format,
            pixel,
            count,
            opts.io,
            Origin::Pattern,
        )?;
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
            written: CpuWrites::default(),
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

    /// What the CPU painted (or encoded) into the frames handed out so far.
    pub fn cpu_writes(&self) -> CpuWrites {
        self.written
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
        self.written.frames += 1;
        self.written.bytes += u64::from(bytesused);
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
                // The pattern is painted (or encoded) by the CPU into the frame's buffer: one CPU write.
                cpu_bytes_copied: u64::from(bytesused),
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
