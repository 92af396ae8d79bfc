//! The pattern's formats and how a [`Picture`] is encoded into a buffer of one of them.

use crate::colour::rgb_to_yuv;
use crate::dmabuf::Fourcc;
use crate::format::{fourcc_name, supported, Format, Layout, PixelFormat, PlaneFormat};
use crate::raw::b;

use super::picture::Picture;

/// The pixel formats the pattern source offers, in order of preference (YUYV first).
pub fn formats() -> Vec<PixelFormat> {
    supported()
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
