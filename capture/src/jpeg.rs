//! MJPEG/JPEG frames: CPU decode with `zune-jpeg` straight into a dma-buf mapping, and encode (for the
//! pattern source's `MJPG` form) with `jpeg-encoder`.
//!
//! The decode is the one CPU copy on the MJPEG path: the decoder writes XR24 (BGRA in memory) rows directly
//! into the destination buffer, which must be tightly packed (`stride == width * 4`). Every decoded byte is
//! counted in [`JpegStats::cpu_bytes_written`], so the zero-copy report can show it. Corrupt or truncated
//! frames are counted in [`JpegStats::corrupt`] and reported through a rate-limited warning; they never
//! panic.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use crate::dmabuf::{Dmabuf, DmabufPlane, Fourcc, MapError, Mapping, DRM_FORMAT_MOD_LINEAR};

/// The V4L2 fourcc of Motion-JPEG.
pub const MJPG: Fourcc = Fourcc::new(b"MJPG");
/// The V4L2 fourcc of still JPEG frames.
pub const JPEG: Fourcc = Fourcc::new(b"JPEG");
/// What a decoded frame is: DRM XR24 (B, G, R, X bytes in memory).
pub const DECODED: Fourcc = Fourcc::new(b"XR24");

/// The minimum time between two warnings about corrupt frames.
const WARN_EVERY: Duration = Duration::from_secs(2);

/// Why one JPEG frame could not be decoded (the frame is skipped, the stream goes on).
#[derive(Debug, Error)]
pub enum JpegError {
    #[error("corrupt or truncated JPEG frame ({len} bytes): {reason}")]
    Corrupt { len: usize, reason: String },
    #[error("JPEG frame is {got_w}x{got_h}, the stream is {want_w}x{want_h}")]
    Size {
        got_w: usize,
        got_h: usize,
        want_w: u32,
        want_h: u32,
    },
    #[error(
        "destination buffer of {have} bytes is smaller than the {need} bytes of a decoded frame"
    )]
    Destination { have: usize, need: usize },
    #[error("cannot write the decoded frame into its dma-buf: {0}")]
    Map(#[source] MapError),
    #[error("encoding a {width}x{height} JPEG frame failed: {reason}")]
    Encode {
        width: u32,
        height: u32,
        reason: String,
    },
}

/// Counters of one decoding stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JpegStats {
    /// Frames decoded.
    pub decoded: u64,
    /// Corrupt or truncated frames skipped.
    pub corrupt: u64,
    /// Bytes the CPU wrote into destination buffers (the decode copy).
    pub cpu_bytes_written: u64,
}

/// Decodes the JPEG frames of one stream of a fixed size into XR24 buffers.
#[derive(Debug)]
pub struct JpegDecoder {
    width: u32,
    height: u32,
    source: String,
    stats: JpegStats,
    last_warn: Option<Instant>,
    unwarned: u64,
}

impl JpegDecoder {
    /// A decoder for `width`x`height` frames from `source` (a device path or pattern name, for warnings).
    pub fn new(source: impl Into<String>, width: u32, height: u32) -> JpegDecoder {
        JpegDecoder {
            width,
            height,
            source: source.into(),
            stats: JpegStats::default(),
            last_warn: None,
            unwarned: 0,
        }
    }

    /// Bytes of one decoded frame (XR24, tightly packed).
    pub fn frame_size(&self) -> usize {
        self.width as usize * self.height as usize * 4
    }

    /// The stride of a decoded frame.
    pub fn stride(&self) -> u32 {
        self.width * 4
    }

    pub fn stats(&self) -> JpegStats {
        self.stats
    }

    /// The [`Dmabuf`] a decoded frame is in, given the buffer `fd` it was decoded into.
    pub fn dmabuf(&self, fd: Arc<OwnedFd>) -> Dmabuf {
        Dmabuf {
            width: self.width,
            height: self.height,
            fourcc: DECODED,
            modifier: DRM_FORMAT_MOD_LINEAR,
            planes: vec![DmabufPlane {
                fd,
                offset: 0,
                stride: self.stride(),
            }],
        }
    }

    /// Decode `jpeg` into the dma-buf behind `map` (writable), inside a `DMA_BUF_IOCTL_SYNC` write bracket.
    pub fn decode_to_mapping(&mut self, jpeg: &[u8], map: &mut Mapping) -> Result<(), JpegError> {
        let mut guard = map.write().map_err(JpegError::Map)?;
        self.decode_into(jpeg, &mut guard)
    }

    /// Decode `jpeg` into `dst` (a mapped dma-buf, at least [`frame_size`](Self::frame_size) bytes).
    ///
    /// A corrupt frame is counted, warned about at most every two seconds, and returned as an error the
    /// caller skips; `dst` may then hold a partial picture and must not be shown.
    pub fn decode_into(&mut self, jpeg: &[u8], dst: &mut [u8]) -> Result<(), JpegError> {
        let need = self.frame_size();
        if dst.len() < need {
            return Err(JpegError::Destination {
                have: dst.len(),
                need,
            });
        }
        match self.decode_checked(jpeg, &mut dst[..need]) {
            Ok(()) => {
                self.stats.decoded += 1;
                self.stats.cpu_bytes_written += need as u64;
                Ok(())
            }
            Err(e) => {
                self.stats.corrupt += 1;
                self.warn(&e);
                Err(e)
            }
        }
    }

    fn decode_checked(&self, jpeg: &[u8], dst: &mut [u8]) -> Result<(), JpegError> {
        let corrupt = |reason: String| JpegError::Corrupt {
            len: jpeg.len(),
            reason,
        };
        // zune-jpeg fills missing scan data of a truncated stream with grey and succeeds; a frame that does
        // not end with EOI is truncated (webcams cut frames short), so it is rejected before decoding.
        if !jpeg.ends_with(&[0xff, 0xd9]) {
            return Err(corrupt("no end-of-image marker (truncated)".to_owned()));
        }
        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::BGRA)
            .set_strict_mode(true);
        let mut dec = zune_jpeg::JpegDecoder::new_with_options(jpeg, options);
        dec.decode_headers()
            .map_err(|e| corrupt(format!("{e:?}")))?;
        let (w, h) = dec
            .dimensions()
            .ok_or_else(|| corrupt("no frame header".to_owned()))?;
        if (w, h) != (self.width as usize, self.height as usize) {
            return Err(JpegError::Size {
                got_w: w,
                got_h: h,
                want_w: self.width,
                want_h: self.height,
            });
        }
        dec.decode_into(dst)
            .map_err(|e| corrupt(format!("{e:?}")))?;
        // BGRA from zune carries alpha 255; XR24 ignores the X byte, nothing to fix up.
        Ok(())
    }

    fn warn(&mut self, e: &JpegError) {
        let now = Instant::now();
        if self
            .last_warn
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            self.unwarned += 1;
            return;
        }
        tracing::warn!(
            source = %self.source,
            corrupt_total = self.stats.corrupt,
            suppressed = self.unwarned,
            "skipping a JPEG frame: {e}"
        );
        self.last_warn = Some(now);
        self.unwarned = 0;
    }
}

/// Encode a tightly packed RGB24 picture as a baseline JPEG (4:2:0) of `quality` (1..=100).
pub fn encode_rgb(rgb: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, JpegError> {
    let err = |reason: String| JpegError::Encode {
        width,
        height,
        reason,
    };
    let (w, h) = (
        u16::try_from(width).map_err(|_| err("width above 65535".to_owned()))?,
        u16::try_from(height).map_err(|_| err("height above 65535".to_owned()))?,
    );
    let mut out = Vec::with_capacity(rgb.len() / 8);
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode(rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| err(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight vertical colour bars, the pattern's bars picture in miniature.
    fn bars(w: u32, h: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity((w * h * 3) as usize);
        for _ in 0..h {
            for x in 0..w {
                v.extend_from_slice(&crate::colour::bar_rgb(x, w));
            }
        }
        v
    }

    #[test]
    fn round_trip_bars_within_tolerance() {
        let (w, h) = (128, 64);
        let rgb = bars(w, h);
        let jpeg = encode_rgb(&rgb, w, h, 90).unwrap();
        let mut dec = JpegDecoder::new("test", w, h);
        let mut out = vec![0u8; dec.frame_size()];
        dec.decode_into(&jpeg, &mut out).unwrap();
        // Away from bar edges (chroma is subsampled and DCT rings there), each channel within 12 levels.
        for y in 0..h {
            for x in 0..w {
                let bar_x = x % (w / 8);
                if !(3..w / 8 - 3).contains(&bar_x) {
                    continue;
                }
                let i = (y * w + x) as usize;
                let (r, g, b) = (rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2]);
                let px = &out[i * 4..i * 4 + 4];
                for (got, want) in [(px[2], r), (px[1], g), (px[0], b)] {
                    assert!(
                        got.abs_diff(want) <= 12,
                        "pixel {x},{y}: got {px:?}, want rgb {r},{g},{b}"
                    );
                }
            }
        }
        assert_eq!(
            dec.stats(),
            JpegStats {
                decoded: 1,
                corrupt: 0,
                cpu_bytes_written: (w * h * 4) as u64
            }
        );
    }

    #[test]
    fn truncated_and_garbage_frames_are_counted_not_fatal() {
        let (w, h) = (64, 32);
        let jpeg = encode_rgb(&bars(w, h), w, h, 80).unwrap();
        let mut dec = JpegDecoder::new("test", w, h);
        let mut out = vec![0u8; dec.frame_size()];
        for cut in [0, 2, 100, jpeg.len() / 2, jpeg.len() - 1] {
            assert!(
                dec.decode_into(&jpeg[..cut], &mut out).is_err(),
                "cut {cut}"
            );
        }
        let mut garbage = jpeg.clone();
        for b in &mut garbage[20..200] {
            *b = 0xa5;
        }
        assert!(dec.decode_into(&garbage, &mut out).is_err());
        dec.decode_into(&jpeg, &mut out).unwrap();
        let s = dec.stats();
        assert_eq!((s.decoded, s.corrupt), (1, 6));
        assert_eq!(s.cpu_bytes_written, (w * h * 4) as u64);
    }

    #[test]
    fn decodes_into_a_sealed_memfd_buffer() {
        let (w, h) = (64, 32);
        let jpeg = encode_rgb(&bars(w, h), w, h, 90).unwrap();
        let mut dec = JpegDecoder::new("test", w, h);
        let fd = crate::alloc::sealed_memfd(c"jpeg-test", dec.frame_size() as u64).unwrap();
        let fd = Arc::new(fd);
        let mut map = Mapping::new(fd.clone(), true).unwrap();
        dec.decode_to_mapping(&jpeg, &mut map).unwrap();
        let dmabuf = dec.dmabuf(fd);
        assert_eq!((dmabuf.fourcc, dmabuf.planes[0].stride), (DECODED, w * 4));
        let px = &map.read().unwrap()[..4];
        // The first bar is white.
        assert!(px[..3].iter().all(|&c| c >= 243), "{px:?}");
    }

    #[test]
    fn wrong_size_and_small_destination_are_errors() {
        let jpeg = encode_rgb(&bars(64, 32), 64, 32, 80).unwrap();
        let mut dec = JpegDecoder::new("test", 32, 32);
        let mut out = vec![0u8; 64 * 32 * 4];
        assert!(matches!(
            dec.decode_into(&jpeg, &mut out),
            Err(JpegError::Size { .. })
        ));
        let mut small = vec![0u8; 16];
        assert!(matches!(
            dec.decode_into(&jpeg, &mut small),
            Err(JpegError::Destination { .. })
        ));
    }
}
