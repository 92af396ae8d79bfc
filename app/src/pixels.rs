//! CPU access to a frame's pixels in its own encoding, and conversion to RGB (for PNG/PPM output and checks).
//!
//! A [`View`] borrows the bytes of a frame's memory planes (from [`dmacam_capture::Frame::read`], i.e. the
//! mapped dma-bufs) and checks up front that every pixel it can be asked for lies inside them, so sampling
//! never panics on a short buffer.

use anyhow::{bail, Result};
use dmacam_capture::colour::{Colorimetry, Encoding, Range};
use dmacam_capture::{Format, Layout, PixelFormat};

/// One pixel in the format's own encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    Yuv(u8, u8, u8),
    Rgb(u8, u8, u8),
    Grey(u8),
}

/// A frame's colour planes as byte slices with strides.
pub struct View<'a> {
    pub pixel: PixelFormat,
    pub width: usize,
    pub height: usize,
    planes: Vec<(&'a [u8], usize)>,
}

impl<'a> View<'a> {
    /// Describes `memory` (one slice per memory plane) as a frame of `format`.
    /// `data_offset` is where the payload starts in each memory plane (from the dequeued buffer).
    pub fn new(
        format: &Format,
        pixel: PixelFormat,
        memory: &[&'a [u8]],
        data_offset: &[u32],
    ) -> Result<View<'a>> {
        if pixel.is_compressed() {
            bail!("{format} frames are compressed: they have no pixels to read until decoded");
        }
        let (w, h) = (format.width, format.height);
        let mut planes = Vec::new();
        for i in 0..pixel.color_planes() {
            let (mem, offset, stride) = format.color_plane_location(pixel, i);
            let offset = offset + data_offset.get(mem).copied().unwrap_or(0);
            let Some(bytes) = memory.get(mem) else {
                bail!(
                    "frame has {} memory planes, format {format} needs {}",
                    memory.len(),
                    mem + 1
                );
            };
            let (pw, ph) = pixel.plane_size(i, w, h);
            let row = match (pixel.layout, i) {
                (_, 0) => pw as usize * pixel.bytes_per_pixel(),
                (Layout::SemiPlanar { .. }, _) => pw as usize * 2,
                _ => pw as usize,
            };
            let need = offset as usize + stride as usize * (ph as usize).saturating_sub(1) + row;
            if (stride as usize) < row || need > bytes.len() {
                bail!(
                    "plane {i} of a {format} frame needs {need} bytes with stride {stride}, the buffer has {}",
                    bytes.len()
                );
            }
            planes.push((&bytes[offset as usize..], stride as usize));
        }
        Ok(View {
            pixel,
            width: w as usize,
            height: h as usize,
            planes,
        })
    }

    /// The pixel at (`x`, `y`), which must be inside the frame.
    pub fn sample(&self, x: usize, y: usize) -> Sample {
        let (p0, s0) = self.planes[0];
        match self.pixel.layout {
            Layout::Packed422 { y0, u, y1, v } => {
                let base = y * s0 + (x / 2) * 4;
                let luma = p0[base + if x % 2 == 0 { y0 } else { y1 }];
                Sample::Yuv(luma, p0[base + u], p0[base + v])
            }
            Layout::SemiPlanar { vsub, cr_first } => {
                let (p1, s1) = self.planes[1];
                let c = (y / vsub as usize) * s1 + (x / 2) * 2;
                let (cb, cr) = if cr_first {
                    (p1[c + 1], p1[c])
                } else {
                    (p1[c], p1[c + 1])
                };
                Sample::Yuv(p0[y * s0 + x], cb, cr)
            }
            Layout::Planar420 { cr_first } => {
                let (pa, sa) = self.planes[1];
                let (pb, sb) = self.planes[2];
                let a = pa[(y / 2) * sa + x / 2];
                let b = pb[(y / 2) * sb + x / 2];
                let (cb, cr) = if cr_first { (b, a) } else { (a, b) };
                Sample::Yuv(p0[y * s0 + x], cb, cr)
            }
            Layout::Rgb { bpp, r, g, b } => {
                let base = y * s0 + x * bpp;
                Sample::Rgb(p0[base + r], p0[base + g], p0[base + b])
            }
            Layout::Grey => Sample::Grey(p0[y * s0 + x]),
            Layout::Jpeg => unreachable!("View::new refuses compressed formats"),
        }
    }

    /// The pixel converted to 8-bit RGB (BT.601 or BT.709, limited or full range, as `csc` says).
    pub fn rgb(&self, x: usize, y: usize, csc: Csc) -> [u8; 3] {
        match self.sample(x, y) {
            Sample::Rgb(r, g, b) => [r, g, b],
            Sample::Grey(l) => {
                let v = csc.luma_to_full(l);
                [v, v, v]
            }
            Sample::Yuv(l, u, v) => csc.yuv_to_rgb(l, u, v),
        }
    }
}

/// How Y'CbCr maps to R'G'B'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Csc {
    /// BT.709 coefficients instead of BT.601.
    pub bt709: bool,
    /// Full-range (0-255) instead of limited (16-235/240).
    pub full_range: bool,
}

impl Csc {
    /// The encoding a V4L2 format declares, `DEFAULT`s resolved by capture's one reading of the V4L2
    /// specification (the GPU conversion and the Y4M header take it from the same place). Encodings beyond
    /// BT.601/BT.709 are read as BT.601, as the GPU path refuses them.
    pub fn for_format(f: &Format) -> Csc {
        let c = Colorimetry::of(f);
        Csc {
            bt709: c.encoding == Encoding::Bt709,
            full_range: c.range == Range::Full,
        }
    }

    fn coeffs(self) -> (f64, f64) {
        if self.bt709 {
            (0.2126, 0.0722)
        } else {
            (0.299, 0.114)
        }
    }

    /// R'G'B' (full range 0-255) to Y'CbCr in this encoding, rounded.
    pub fn rgb_to_yuv(self, rgb: [u8; 3]) -> (u8, u8, u8) {
        let (kr, kb) = self.coeffs();
        let [r, g, b] = rgb.map(|c| f64::from(c) / 255.0);
        let y = kr * r + (1.0 - kr - kb) * g + kb * b;
        let cb = (b - y) / (2.0 * (1.0 - kb));
        let cr = (r - y) / (2.0 * (1.0 - kr));
        let (ys, yo, cs) = if self.full_range {
            (255.0, 0.0, 255.0)
        } else {
            (219.0, 16.0, 224.0)
        };
        let q = |v: f64| v.round().clamp(0.0, 255.0) as u8;
        (q(yo + ys * y), q(128.0 + cs * cb), q(128.0 + cs * cr))
    }

    /// Luma to full-range grey.
    pub fn luma_to_full(self, l: u8) -> u8 {
        if self.full_range {
            l
        } else {
            ((f64::from(l) - 16.0) * 255.0 / 219.0)
                .round()
                .clamp(0.0, 255.0) as u8
        }
    }

    /// Y'CbCr in this encoding to full-range R'G'B'.
    pub fn yuv_to_rgb(self, l: u8, u: u8, v: u8) -> [u8; 3] {
        let (kr, kb) = self.coeffs();
        let (y, cb, cr) = if self.full_range {
            (
                f64::from(l) / 255.0,
                (f64::from(u) - 128.0) / 255.0,
                (f64::from(v) - 128.0) / 255.0,
            )
        } else {
            (
                (f64::from(l) - 16.0) / 219.0,
                (f64::from(u) - 128.0) / 224.0,
                (f64::from(v) - 128.0) / 224.0,
            )
        };
        let r = y + 2.0 * (1.0 - kr) * cr;
        let b = y + 2.0 * (1.0 - kb) * cb;
        let g = (y - kr * r - kb * b) / (1.0 - kr - kb);
        [r, g, b].map(|c| (c * 255.0).round().clamp(0.0, 255.0) as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bt601_limited_bars_match_the_textbook() {
        let csc = Csc {
            bt709: false,
            full_range: false,
        };
        assert_eq!(csc.rgb_to_yuv([255, 255, 255]), (235, 128, 128));
        assert_eq!(csc.rgb_to_yuv([0, 0, 0]), (16, 128, 128));
        assert_eq!(csc.rgb_to_yuv([255, 255, 0]), (210, 16, 146));
        assert_eq!(csc.rgb_to_yuv([0, 0, 255]), (41, 240, 110));
        for rgb in [[255, 0, 0], [0, 255, 0], [255, 0, 255], [0, 255, 255]] {
            let (y, u, v) = csc.rgb_to_yuv(rgb);
            let back = csc.yuv_to_rgb(y, u, v);
            for c in 0..3 {
                assert!(
                    (i32::from(back[c]) - i32::from(rgb[c])).abs() <= 2,
                    "{rgb:?} -> {back:?}"
                );
            }
        }
    }
}
