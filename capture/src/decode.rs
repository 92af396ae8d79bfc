//! The MJPEG decode stage: a source of compressed frames (`MJPG`/`JPEG`, from a webcam or the pattern
//! source's MJPG form) made into a source of XR24 frames every consumer can take.
//!
//! Each compressed frame is read on the CPU through its mapped dma-buf (the camera's own export) and decoded
//! by [`JpegDecoder`] straight into a buffer of a [`Ring`] dmacam allocates (udmabuf or the DMA-BUF heap,
//! memfd where neither exists), which then goes on as the frame: to the GPU stage, the compositor, KMS or a
//! file, with no further copy. The compressed buffer goes back to the camera as soon as it is decoded.
//!
//! The decode is a CPU copy, and it is counted: every decoded frame carries its bytes in
//! [`Frame::cpu_bytes_copied`], and [`Decoded::stats`] sums them, so the zero-copy report and
//! `check --zero-copy` see it. Corrupt or truncated frames are skipped (counted, with a rate-limited
//! warning); the next good frame takes their place. A frame the driver flagged as errored is handed on
//! undecoded, flagged, for the consumer to skip and count as it does for raw formats.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::format::{Format, PixelFormat, PlaneFormat};
use crate::jpeg::{JpegDecoder, JpegError, JpegStats, DECODED};
use crate::raw::b;
use crate::ring::Ring;
use crate::source::Source;
use crate::stream::{Frame, FrameMeta, FramePool, IoMode, StreamError, StreamOptions};

/// Buffers in the decoded ring: as many as the compressed source has, so a consumer that holds frames
/// (a compositor: on screen, pending, next) starves the decoder no sooner than it would starve the camera.
fn ring_size(source: &Source) -> usize {
    source.buffer_count().max(3)
}

/// The format of decoded frames: XR24, tightly packed, full-range sRGB.
pub fn decoded_format(compressed: &Format) -> Format {
    let (w, h) = (compressed.width, compressed.height);
    Format {
        fourcc: DECODED,
        width: w,
        height: h,
        mplane: false,
        planes: vec![PlaneFormat {
            bytesperline: w * 4,
            sizeimage: w * h * 4,
        }],
        colorspace: b::v4l2_colorspace_V4L2_COLORSPACE_SRGB,
        ycbcr_enc: b::v4l2_ycbcr_encoding_V4L2_YCBCR_ENC_DEFAULT,
        quantization: b::v4l2_quantization_V4L2_QUANTIZATION_FULL_RANGE,
    }
}

/// Whether frames of `fourcc` are compressed (`MJPG`, `JPEG`): [`Source::new`] puts the decode stage in
/// front of them.
pub fn is_compressed(fourcc: crate::Fourcc) -> bool {
    PixelFormat::lookup(fourcc).is_some_and(|p| p.is_compressed())
}

/// The format frames have once [`Source::new`] has set up a source negotiated to `negotiated`: the decoded
/// format for a compressed one, `negotiated` itself otherwise. For choosing outputs before streaming.
pub fn frames_format(negotiated: &Format) -> Format {
    if is_compressed(negotiated.fourcc) {
        decoded_format(negotiated)
    } else {
        negotiated.clone()
    }
}

/// The fourcc frames of a source negotiated to `fourcc` have (see [`frames_format`]).
pub fn frames_fourcc(fourcc: crate::Fourcc) -> crate::Fourcc {
    if is_compressed(fourcc) {
        DECODED
    } else {
        fourcc
    }
}

/// A compressed source and its decoder: see the [module docs](self).
#[derive(Debug)]
pub struct Decoded {
    inner: Box<Source>,
    compressed: Format,
    decoder: JpegDecoder,
    ring: Arc<Ring>,
    format: Format,
    pixel: PixelFormat,
}

impl Decoded {
    /// Wraps `inner` (whose format is compressed) with a decoder into a ring allocated as `opts.io` says
    /// (see [`Ring::allocate`]; `--io mmap`, the default, takes udmabuf, else the heap, else memfd).
    pub fn new(inner: Source, opts: &StreamOptions) -> Result<Decoded, StreamError> {
        let compressed = inner.format().clone();
        let format = decoded_format(&compressed);
        let pixel = PixelFormat::lookup(DECODED).expect("XR24 is a known format");
        // `--io` also picks the decoded ring's allocator; `mmap` (the camera's own buffers) means the ring's
        // own preference, udmabuf, else the heap, else memfd.
        let ring = Ring::allocate(
            inner.path().to_path_buf(),
            &format,
            pixel,
            ring_size(&inner),
            opts.io,
            "decoded XR24",
        )?;
        let decoder = JpegDecoder::new(
            inner.path().display().to_string(),
            format.width,
            format.height,
        );
        Ok(Decoded {
            inner: Box::new(inner),
            compressed,
            decoder,
            ring: Arc::new(ring),
            format,
            pixel,
        })
    }

    /// The compressed source's format (`MJPG` ...), as negotiated.
    pub fn compressed_format(&self) -> &Format {
        &self.compressed
    }

    /// The compressed source.
    pub fn inner(&self) -> &Source {
        &self.inner
    }

    pub fn start(&mut self) -> Result<(), StreamError> {
        self.inner.start()
    }

    pub fn stop(&mut self) -> Result<(), StreamError> {
        self.inner.stop()
    }

    /// Decoded frames, corrupt frames skipped, and the bytes the decode wrote.
    pub fn stats(&self) -> JpegStats {
        self.decoder.stats()
    }

    /// The decoded format (XR24).
    pub fn format(&self) -> &Format {
        &self.format
    }

    pub fn pixel_format(&self) -> PixelFormat {
        self.pixel
    }

    /// The decoded ring's allocator.
    pub fn io(&self) -> IoMode {
        self.ring.io()
    }

    pub fn buffer_count(&self) -> usize {
        self.ring.len()
    }

    pub fn buffer_memory(&self, index: usize) -> Option<&[Arc<OwnedFd>]> {
        self.ring.buffer_memory(index)
    }

    pub fn not_dmabuf_reason(&self) -> Option<&str> {
        self.ring.not_dmabuf_reason()
    }

    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The fd to poll: the compressed source's.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fd()
    }

    /// Waits up to `timeout` for the next good compressed frame and decodes it into a free buffer of the
    /// ring. Corrupt frames in between are skipped (counted in [`Decoded::stats`]); an errored frame comes
    /// back flagged and undecoded. Fails with [`StreamError::Starved`] if every decoded buffer is held.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Frame, StreamError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self.inner.next_frame(left)?;
            let index = self.ring.acquire()?;
            let decoded = if frame.is_error() {
                Ok(0)
            } else {
                self.decode(&frame, index)
            };
            match decoded {
                Ok(copied) => {
                    return Ok(Frame::from_pool(
                        self.ring.clone(),
                        FrameMeta {
                            index,
                            dmabuf: self.ring.slot(index).dmabuf.clone(),
                            sequence: frame.sequence(),
                            timestamp: frame.timestamp(),
                            flags: frame.flags(),
                            field: frame.field(),
                            bytesused: vec![self.format.planes[0].sizeimage],
                            data_offset: vec![0],
                            cpu_bytes_copied: copied,
                        },
                    ));
                }
                // Skipped and counted by the decoder; the buffer is free again, on to the next frame.
                Err(DecodeFailure::Frame) => self.ring.release(index),
                Err(DecodeFailure::Stream(e)) => {
                    self.ring.release(index);
                    return Err(e);
                }
            }
        }
    }

    /// Decodes `frame` into buffer `index`; returns the bytes written.
    fn decode(&mut self, frame: &Frame, index: usize) -> Result<u64, DecodeFailure> {
        let used = frame.bytesused().first().copied().unwrap_or(0) as usize;
        let offset = frame.data_offset().first().copied().unwrap_or(0) as usize;
        let ring = self.ring.clone();
        let mut writer = ring.writer(index);
        let mut dst = writer
            .map
            .write()
            .map_err(|e| DecodeFailure::Stream(ring.map_err(e)))?;
        let decoder = &mut self.decoder;
        let result = frame
            .read(|mem| {
                let plane = mem.first().copied().unwrap_or(&[]);
                let end = used.min(plane.len());
                decoder.decode_into(&plane[offset.min(end)..end], &mut dst)
            })
            .map_err(DecodeFailure::Stream)?;
        match result {
            // The decoder wrote one whole frame (what it also adds to its `cpu_bytes_written`).
            Ok(()) => Ok(self.decoder.frame_size() as u64),
            Err(JpegError::Corrupt { .. } | JpegError::Size { .. }) => Err(DecodeFailure::Frame),
            Err(source) => Err(DecodeFailure::Stream(StreamError::Jpeg {
                path: ring.name().to_path_buf(),
                source,
            })),
        }
    }
}

/// How decoding one frame failed.
enum DecodeFailure {
    /// This frame is bad (skipped, counted); the stream goes on.
    Frame,
    /// The stream cannot go on.
    Stream(StreamError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FormatRequest;
    use crate::jpeg::MJPG;
    use crate::pattern::PatternKind;
    use crate::source::{Input, PatternInput};

    fn mjpeg_pattern(truncate_every: Option<u32>) -> Source {
        let mut p = PatternInput::new(PatternKind::Bars);
        p.set_truncate_every(truncate_every);
        let input = Input::Pattern(p);
        let format = input
            .negotiate(&FormatRequest {
                fourcc: Some(MJPG),
                size: Some((64, 48)),
                fps: Some(200),
            })
            .unwrap();
        assert_eq!(format.fourcc, MJPG);
        let opts = StreamOptions {
            buffers: 3,
            io: IoMode::Memfd,
        };
        Source::new(input, format, &opts).unwrap()
    }

    #[test]
    fn compressed_frames_come_out_decoded_and_counted() {
        let mut s = mjpeg_pattern(None);
        assert_eq!(s.format().fourcc, DECODED);
        assert_eq!(s.compressed_format().map(|f| f.fourcc), Some(MJPG));
        assert_eq!(frames_format(s.compressed_format().unwrap()), *s.format());
        s.start().unwrap();
        for _ in 0..3 {
            let f = s.next_frame(Duration::from_secs(5)).unwrap();
            assert_eq!(f.cpu_bytes_copied(), 64 * 48 * 4);
            assert_eq!(f.bytesused(), &[64 * 48 * 4]);
            assert_eq!(f.dmabuf().fourcc, DECODED);
            // The first bar is white, decoded.
            let px = f.read(|m| m[0][..4].to_vec()).unwrap();
            assert!(px[..3].iter().all(|&c| c >= 240), "{px:?}");
        }
        let st = s.decode_stats().unwrap();
        assert_eq!((st.decoded, st.corrupt), (3, 0));
        assert_eq!(st.cpu_bytes_written, 3 * 64 * 48 * 4);
    }

    #[test]
    fn truncated_frames_are_skipped_and_the_next_good_one_is_returned() {
        let mut s = mjpeg_pattern(Some(2));
        s.start().unwrap();
        for _ in 0..4 {
            s.next_frame(Duration::from_secs(5)).unwrap();
        }
        // Every second frame delivered is cut short: the four whole ones were the 1st, 3rd, 5th and 7th,
        // the 2nd, 4th and 6th were skipped.
        let st = s.decode_stats().unwrap();
        assert_eq!((st.decoded, st.corrupt), (4, 3), "{st:?}");
    }

    #[test]
    fn a_held_ring_starves_instead_of_overwriting() {
        let mut s = mjpeg_pattern(None);
        s.start().unwrap();
        let held: Vec<Frame> = (0..s.buffer_count())
            .map(|_| s.next_frame(Duration::from_secs(5)).unwrap())
            .collect();
        let err = s.next_frame(Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, StreamError::Starved { .. }), "{err}");
        drop(held);
        s.next_frame(Duration::from_secs(5)).unwrap();
    }
}
