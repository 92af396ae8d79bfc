//! A known picture for testing the display path without a camera: eight vertical colour bars (white,
//! yellow, cyan, green, magenta, red, blue, black at 100 %), written into dma-bufs the display stage then
//! shows. Tests compare a compositor screenshot against [`bar_rgb`].

use std::os::fd::OwnedFd;
use std::sync::Arc;

use dmacam_capture::alloc::{AllocError, Allocator};
use dmacam_capture::dmabuf::MapError;
use dmacam_capture::{Dmabuf, DmabufPlane, Fourcc, Mapping, DRM_FORMAT_MOD_LINEAR};
use thiserror::Error;

use crate::convert::rgb_to_yuv;
use crate::formats::{lookup, FormatInfo};

/// The bars and the colour of column `x` (shared with the capture crate's pattern source).
pub use dmacam_capture::colour::{bar_rgb, BARS};

/// Why a pattern buffer could not be made.
#[derive(Debug, Error)]
pub enum PatternError {
    #[error("no colour-bar writer for {0} (use XR24, YUYV, UYVY, NV12 or YU12)")]
    Unsupported(Fourcc),
    #[error("allocating a {fourcc} {w}x{h} pattern buffer: {source}")]
    Alloc {
        fourcc: Fourcc,
        w: u32,
        h: u32,
        #[source]
        source: AllocError,
    },
    #[error("mapping a pattern buffer: {0}")]
    Map(#[from] MapError),
}

/// Allocates one dma-buf from `alloc` holding a `w`x`h` frame of V4L2 format `fourcc` (planes packed one
/// after the other in the same dma-buf, rows 64-byte aligned) and paints the colour bars into it.
pub fn bars_dmabuf(
    alloc: &Allocator,
    fourcc: Fourcc,
    w: u32,
    h: u32,
) -> Result<Dmabuf, PatternError> {
    let info = lookup(fourcc).ok_or(PatternError::Unsupported(fourcc))?;
    let mut planes = Vec::new();
    let mut size = 0u32;
    for i in 0..info.planes() {
        let stride = info.min_stride(i, w).next_multiple_of(64);
        planes.push((size, stride));
        size += stride * info.rows(i, h);
    }
    let fd: Arc<OwnedFd> =
        Arc::new(
            alloc
                .alloc(u64::from(size))
                .map_err(|source| PatternError::Alloc {
                    fourcc,
                    w,
                    h,
                    source,
                })?,
        );
    let dmabuf = Dmabuf {
        width: w,
        height: h,
        fourcc,
        modifier: DRM_FORMAT_MOD_LINEAR,
        planes: planes
            .into_iter()
            .map(|(offset, stride)| DmabufPlane {
                fd: fd.clone(),
                offset,
                stride,
            })
            .collect(),
    };
    paint_bars(&dmabuf)?;
    Ok(dmabuf)
}

/// Paints the colour bars into every plane of `dmabuf` through CPU mappings of its fds.
pub fn paint_bars(dmabuf: &Dmabuf) -> Result<(), PatternError> {
    let info = lookup(dmabuf.fourcc).ok_or(PatternError::Unsupported(dmabuf.fourcc))?;
    for (i, plane) in dmabuf.planes.iter().enumerate().take(info.planes()) {
        let mut map = Mapping::new(plane.fd.clone(), true)?;
        let mut bytes = map.write()?;
        let data = &mut bytes[plane.offset as usize..];
        paint_plane(
            &info,
            i,
            dmabuf.width,
            dmabuf.height,
            data,
            plane.stride as usize,
        )?;
    }
    Ok(())
}

fn paint_plane(
    info: &FormatInfo,
    plane: usize,
    w: u32,
    h: u32,
    data: &mut [u8],
    stride: usize,
) -> Result<(), PatternError> {
    let code = info.drm.bytes();
    let rows = info.rows(plane, h) as usize;
    for r in 0..rows {
        let row = &mut data[r * stride..r * stride + info.min_stride(plane, w) as usize];
        match (&code, plane) {
            (b"XR24", 0) => {
                for x in 0..w {
                    let [cr, cg, cb] = bar_rgb(x, w);
                    row[x as usize * 4..x as usize * 4 + 4].copy_from_slice(&[cb, cg, cr, 0xff]);
                }
            }
            (b"YUYV" | b"UYVY", 0) => {
                let uyvy = &code == b"UYVY";
                for x in (0..w).step_by(2) {
                    // Both pixels of a pair take the chroma of the first; bars are 8-pixel aligned anyway.
                    let (y0, u, v) = rgb_to_yuv(bar_rgb(x, w));
                    let (y1, _, _) = rgb_to_yuv(bar_rgb(x + 1, w));
                    let px = if uyvy { [u, y0, v, y1] } else { [y0, u, y1, v] };
                    row[x as usize * 2..x as usize * 2 + 4].copy_from_slice(&px);
                }
            }
            (b"NV12" | b"YU12", 0) => {
                for x in 0..w {
                    row[x as usize] = rgb_to_yuv(bar_rgb(x, w)).0;
                }
            }
            (b"NV12", 1) => {
                for cx in 0..w.div_ceil(2) {
                    let (_, u, v) = rgb_to_yuv(bar_rgb(cx * 2, w));
                    row[cx as usize * 2..cx as usize * 2 + 2].copy_from_slice(&[u, v]);
                }
            }
            (b"YU12", 1 | 2) => {
                for cx in 0..w.div_ceil(2) {
                    let (_, u, v) = rgb_to_yuv(bar_rgb(cx * 2, w));
                    row[cx as usize] = if plane == 1 { u } else { v };
                }
            }
            _ => return Err(PatternError::Unsupported(info.v4l2)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{to_xrgb8888, PlaneRef};

    #[test]
    fn painted_bars_convert_back() {
        for code in [b"XR24", b"YUYV", b"UYVY", b"NV12", b"YU12"] {
            let info = lookup(Fourcc::new(code)).unwrap();
            let (w, h) = (64u32, 4u32);
            let mut bufs: Vec<Vec<u8>> = Vec::new();
            for i in 0..info.planes() {
                let stride = info.min_stride(i, w) as usize;
                let mut b = vec![0u8; stride * info.rows(i, h) as usize];
                paint_plane(&info, i, w, h, &mut b, stride).unwrap();
                bufs.push(b);
            }
            let src: Vec<_> = bufs
                .iter()
                .enumerate()
                .map(|(i, b)| PlaneRef {
                    data: b,
                    stride: info.min_stride(i, w) as usize,
                })
                .collect();
            let mut out = vec![0u8; (w * h * 4) as usize];
            to_xrgb8888(&info, w, h, &src, &mut out, (w * 4) as usize).unwrap();
            for x in [4, 12, 20, 28, 36, 44, 52, 60] {
                let p = &out[(w as usize + x) * 4..(w as usize + x) * 4 + 3];
                let want = bar_rgb(x as u32, w);
                for c in 0..3 {
                    let got = p[2 - c];
                    assert!(
                        (i32::from(got) - i32::from(want[c])).abs() <= 3,
                        "{} x={x}: got {:?} want {want:?}",
                        String::from_utf8_lossy(code),
                        [p[2], p[1], p[0]]
                    );
                }
            }
        }
    }
}
