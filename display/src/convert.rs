//! CPU pixel work of the shm fallback: one pass over a frame, either a plain copy (when wl_shm takes the
//! frame's own format) or a conversion to XRGB8888 (BT.601 limited range, as V4L2 webcams and vivid encode).
//! Nothing else in dmacam touches pixels on the CPU.

use dmacam_capture::Layout;

use crate::formats::FormatInfo;

/// One source plane: its bytes from the first row on, and the distance between rows.
#[derive(Debug, Clone, Copy)]
pub struct PlaneRef<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// Why a frame cannot be copied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("plane {plane} holds {have} bytes, {need} needed for {w}x{h}")]
    Short {
        plane: usize,
        have: usize,
        need: usize,
        w: u32,
        h: u32,
    },
    #[error("the shm fallback cannot convert {0} to XRGB8888")]
    Unsupported(String),
}

fn check(info: &FormatInfo, w: u32, h: u32, src: &[PlaneRef<'_>]) -> Result<(), ConvertError> {
    if src.len() < info.planes() {
        return Err(ConvertError::Short {
            plane: src.len(),
            have: 0,
            need: 1,
            w,
            h,
        });
    }
    for (i, p) in src.iter().take(info.planes()).enumerate() {
        let rows = info.rows(i, h) as usize;
        let row = info.min_stride(i, w) as usize;
        let need = if rows == 0 {
            0
        } else {
            (rows - 1) * p.stride + row
        };
        if p.data.len() < need || p.stride < row {
            return Err(ConvertError::Short {
                plane: i,
                have: p.data.len(),
                need,
                w,
                h,
            });
        }
    }
    Ok(())
}

/// Copies every plane row by row into `dst`, packed with the minimal strides (plane after plane), which is
/// the layout of a wl_shm buffer of this format with stride `info.min_stride(0, w)`. Returns the bytes copied.
pub fn copy_packed(
    info: &FormatInfo,
    w: u32,
    h: u32,
    src: &[PlaneRef<'_>],
    dst: &mut [u8],
) -> Result<u64, ConvertError> {
    check(info, w, h, src)?;
    let total = info.frame_bytes(w, h) as usize;
    if dst.len() < total {
        return Err(ConvertError::Short {
            plane: 0,
            have: dst.len(),
            need: total,
            w,
            h,
        });
    }
    let mut at = 0;
    for (i, p) in src.iter().take(info.planes()).enumerate() {
        let row = info.min_stride(i, w) as usize;
        for r in 0..info.rows(i, h) as usize {
            dst[at..at + row].copy_from_slice(&p.data[r * p.stride..r * p.stride + row]);
            at += row;
        }
    }
    Ok(at as u64)
}

/// BT.601 limited-range Y'CbCr to R'G'B' (8 bit), the encoding of vivid and of UVC webcams.
#[inline]
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (i32::from(y) - 16) * 298;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

/// BT.601 limited-range R'G'B' to Y'CbCr (8 bit), shared with the capture crate's pattern source.
pub use dmacam_capture::colour::rgb_to_yuv;

/// Converts a frame to XRGB8888 (B,G,R,X bytes) rows `dst_stride` apart. Returns the source bytes read (one
/// frame's bytes).
pub fn to_xrgb8888(
    info: &FormatInfo,
    w: u32,
    h: u32,
    src: &[PlaneRef<'_>],
    dst: &mut [u8],
    dst_stride: usize,
) -> Result<u64, ConvertError> {
    check(info, w, h, src)?;
    let (wu, hu) = (w as usize, h as usize);
    if hu > 0 && dst.len() < (hu - 1) * dst_stride + wu * 4 {
        return Err(ConvertError::Short {
            plane: 0,
            have: dst.len(),
            need: (hu - 1) * dst_stride + wu * 4,
            w,
            h,
        });
    }
    let put = |row: &mut [u8], x: usize, rgb: [u8; 3]| {
        row[x * 4..x * 4 + 4].copy_from_slice(&[rgb[2], rgb[1], rgb[0], 0xff]);
    };
    match info.pixel.layout {
        Layout::Packed422 { y0, u, y1, v } => {
            for r in 0..hu {
                let s = &src[0].data[r * src[0].stride..];
                let d = &mut dst[r * dst_stride..];
                for x in (0..wu).step_by(2) {
                    let p = &s[x * 2..x * 2 + 4];
                    put(d, x, yuv_to_rgb(p[y0], p[u], p[v]));
                    if x + 1 < wu {
                        put(d, x + 1, yuv_to_rgb(p[y1], p[u], p[v]));
                    }
                }
            }
        }
        Layout::SemiPlanar { vsub, cr_first } => {
            let vsub = vsub as usize;
            for r in 0..hu {
                let ys = &src[0].data[r * src[0].stride..];
                let cs = &src[1].data[(r / vsub) * src[1].stride..];
                let d = &mut dst[r * dst_stride..];
                for x in 0..wu {
                    let (mut u, mut v) = (cs[(x / 2) * 2], cs[(x / 2) * 2 + 1]);
                    if cr_first {
                        std::mem::swap(&mut u, &mut v);
                    }
                    put(d, x, yuv_to_rgb(ys[x], u, v));
                }
            }
        }
        Layout::Planar420 { cr_first } => {
            let (ui, vi) = if cr_first { (2, 1) } else { (1, 2) };
            for r in 0..hu {
                let ys = &src[0].data[r * src[0].stride..];
                let us = &src[ui].data[(r / 2) * src[ui].stride..];
                let vs = &src[vi].data[(r / 2) * src[vi].stride..];
                let d = &mut dst[r * dst_stride..];
                for x in 0..wu {
                    put(d, x, yuv_to_rgb(ys[x], us[x / 2], vs[x / 2]));
                }
            }
        }
        Layout::Rgb {
            bpp: n,
            r: ri,
            g: gi,
            b: bi,
        } => {
            for r in 0..hu {
                let s = &src[0].data[r * src[0].stride..];
                let d = &mut dst[r * dst_stride..];
                for x in 0..wu {
                    let p = &s[x * n..x * n + n];
                    put(d, x, [p[ri], p[gi], p[bi]]);
                }
            }
        }
        Layout::Grey | Layout::Jpeg => {
            return Err(ConvertError::Unsupported(info.v4l2.to_string()))
        }
    }
    Ok(info.frame_bytes(w, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::lookup;
    use dmacam_capture::Fourcc;

    #[test]
    fn yuv_round_trip_is_close() {
        for rgb in [
            [255, 255, 255],
            [255, 255, 0],
            [0, 255, 255],
            [0, 0, 255],
            [0, 0, 0],
            [190, 10, 90],
        ] {
            let (y, u, v) = rgb_to_yuv(rgb);
            let back = yuv_to_rgb(y, u, v);
            for c in 0..3 {
                assert!(
                    (i32::from(back[c]) - i32::from(rgb[c])).abs() <= 3,
                    "{rgb:?} -> {back:?}"
                );
            }
        }
        assert_eq!(rgb_to_yuv([0, 0, 0]), (16, 128, 128));
        assert_eq!(rgb_to_yuv([255, 255, 255]).0, 235);
    }

    #[test]
    fn yuyv_and_nv12_convert() {
        let (y, u, v) = rgb_to_yuv([255, 0, 0]);
        let yuyv = [y, u, y, v, y, u, y, v];
        let info = lookup(Fourcc::new(b"YUYV")).unwrap();
        let mut out = [0u8; 16];
        let src = [PlaneRef {
            data: &yuyv,
            stride: 4,
        }];
        assert_eq!(to_xrgb8888(&info, 2, 2, &src, &mut out, 8).unwrap(), 8);
        assert!(out[2] > 250 && out[1] < 5 && out[0] < 5, "{out:?}");
        let info = lookup(Fourcc::new(b"NV12")).unwrap();
        let ys = [y; 4];
        let uv = [u, v];
        let src = [
            PlaneRef {
                data: &ys,
                stride: 2,
            },
            PlaneRef {
                data: &uv,
                stride: 2,
            },
        ];
        assert_eq!(to_xrgb8888(&info, 2, 2, &src, &mut out, 8).unwrap(), 6);
        assert!(out[14] > 250 && out[13] < 5, "{out:?}");
        let mut packed = [0u8; 6];
        assert_eq!(copy_packed(&info, 2, 2, &src, &mut packed).unwrap(), 6);
        assert_eq!(packed, [y, y, y, y, u, v]);
        // A plane that is too short is an error, not a panic.
        let src = [
            PlaneRef {
                data: &ys[..3],
                stride: 2,
            },
            PlaneRef {
                data: &uv,
                stride: 2,
            },
        ];
        assert!(to_xrgb8888(&info, 2, 2, &src, &mut out, 8).is_err());
    }

    #[test]
    fn every_format_with_a_drm_twin_converts() {
        let (w, h) = (4u32, 2u32);
        for v4l2 in crate::formats::known_v4l2() {
            let info = lookup(v4l2).unwrap();
            let planes: Vec<Vec<u8>> = (0..info.planes())
                .map(|i| vec![0x80; (info.min_stride(i, w) * info.rows(i, h)) as usize])
                .collect();
            let src: Vec<PlaneRef<'_>> = planes
                .iter()
                .enumerate()
                .map(|(i, data)| PlaneRef {
                    data,
                    stride: info.min_stride(i, w) as usize,
                })
                .collect();
            let mut out = vec![0u8; (w * h * 4) as usize];
            let read = to_xrgb8888(&info, w, h, &src, &mut out, (w * 4) as usize);
            assert_eq!(read, Ok(info.frame_bytes(w, h)), "{v4l2}");
        }
    }
}
