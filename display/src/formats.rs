//! Pixel formats as the display stage sees them: a frame's V4L2 fourcc translated to the DRM fourcc that
//! linux-dmabuf and wl_shm speak, and the plane layout of each format.

use dmacam_capture::Fourcc;

/// `DRM_FORMAT_MOD_INVALID`: "implicit modifier" in linux-dmabuf v3 modifier events and v4 format tables.
pub const DRM_FORMAT_MOD_INVALID: u64 = 0x00ff_ffff_ffff_ffff;

/// A DRM fourcc (`drm_fourcc.h`), e.g. `XR24` for XRGB8888.
pub type DrmFourcc = Fourcc;

/// How the bytes of one format are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatInfo {
    /// The V4L2 fourcc.
    pub v4l2: Fourcc,
    /// The DRM fourcc of the same memory layout.
    pub drm: DrmFourcc,
    /// Colour planes.
    pub planes: u8,
    /// Bytes per pixel of plane 0 (per pixel pair halved for packed 4:2:2).
    pub bpp0: u8,
    /// Chroma subsampling of the planes after the first: (horizontal, vertical).
    pub sub: (u8, u8),
}

impl FormatInfo {
    /// Bytes per row of plane `i` for a width of `w` pixels, tightly packed.
    pub fn min_stride(&self, i: usize, w: u32) -> u32 {
        if i == 0 {
            w * u32::from(self.bpp0)
        } else if self.planes == 2 {
            // Interleaved chroma (NV12/NV16...): two bytes per chroma sample.
            w.div_ceil(u32::from(self.sub.0)) * 2
        } else {
            w.div_ceil(u32::from(self.sub.0))
        }
    }

    /// Rows of plane `i` for a height of `h` rows.
    pub fn rows(&self, i: usize, h: u32) -> u32 {
        if i == 0 {
            h
        } else {
            h.div_ceil(u32::from(self.sub.1))
        }
    }

    /// The frame's size in bytes when every plane is tightly packed: what "one frame's bytes" means.
    pub fn frame_bytes(&self, w: u32, h: u32) -> u64 {
        (0..usize::from(self.planes))
            .map(|i| u64::from(self.min_stride(i, w)) * u64::from(self.rows(i, h)))
            .sum()
    }
}

const fn f(code: &[u8; 4]) -> Fourcc {
    Fourcc::new(code)
}

/// Every V4L2 format the display stage can hand to a compositor, with its DRM twin.
const TABLE: &[FormatInfo] = &[
    // V4L2 XBGR32/ABGR32 are B,G,R,X in memory: DRM's little-endian XRGB8888/ARGB8888.
    fmt(b"XR24", b"XR24", 1, 4, (1, 1)),
    fmt(b"AR24", b"AR24", 1, 4, (1, 1)),
    fmt(b"BGR4", b"XR24", 1, 4, (1, 1)),
    // V4L2 RGBX32/RGBA32 are R,G,B,X: DRM XBGR8888/ABGR8888.
    fmt(b"XB24", b"XB24", 1, 4, (1, 1)),
    fmt(b"AB24", b"AB24", 1, 4, (1, 1)),
    // V4L2 XRGB32 is X,R,G,B: DRM BGRX8888.
    fmt(b"BX24", b"BX24", 1, 4, (1, 1)),
    fmt(b"RGBP", b"RG16", 1, 2, (1, 1)),
    // 24-bit: V4L2 RGB24 is R,G,B = DRM BGR888; V4L2 BGR24 is B,G,R = DRM RGB888.
    fmt(b"RGB3", b"BG24", 1, 3, (1, 1)),
    fmt(b"BGR3", b"RG24", 1, 3, (1, 1)),
    fmt(b"YUYV", b"YUYV", 1, 2, (2, 1)),
    fmt(b"YVYU", b"YVYU", 1, 2, (2, 1)),
    fmt(b"UYVY", b"UYVY", 1, 2, (2, 1)),
    fmt(b"VYUY", b"VYUY", 1, 2, (2, 1)),
    fmt(b"NV12", b"NV12", 2, 1, (2, 2)),
    fmt(b"NM12", b"NV12", 2, 1, (2, 2)),
    fmt(b"NV21", b"NV21", 2, 1, (2, 2)),
    fmt(b"NM21", b"NV21", 2, 1, (2, 2)),
    fmt(b"NV16", b"NV16", 2, 1, (2, 1)),
    fmt(b"NM16", b"NV16", 2, 1, (2, 1)),
    fmt(b"NV61", b"NV61", 2, 1, (2, 1)),
    fmt(b"NM61", b"NV61", 2, 1, (2, 1)),
    fmt(b"YU12", b"YU12", 3, 1, (2, 2)),
    fmt(b"YM12", b"YU12", 3, 1, (2, 2)),
    fmt(b"YV12", b"YV12", 3, 1, (2, 2)),
    fmt(b"YM21", b"YV12", 3, 1, (2, 2)),
];

const fn fmt(v4l2: &[u8; 4], drm: &[u8; 4], planes: u8, bpp0: u8, sub: (u8, u8)) -> FormatInfo {
    FormatInfo {
        v4l2: f(v4l2),
        drm: f(drm),
        planes,
        bpp0,
        sub,
    }
}

/// The layout of V4L2 format `v4l2`, if the display stage knows it.
pub fn lookup(v4l2: Fourcc) -> Option<FormatInfo> {
    TABLE.iter().copied().find(|i| i.v4l2 == v4l2)
}

/// The V4L2 formats the display stage knows, e.g. for error messages.
pub fn known_v4l2() -> impl Iterator<Item = Fourcc> {
    TABLE.iter().map(|i| i.v4l2)
}

/// The wl_shm format code for a DRM fourcc (wl_shm uses 0 and 1 for ARGB8888 and XRGB8888, the DRM code
/// for everything else).
pub fn shm_code(drm: DrmFourcc) -> u32 {
    if drm == f(b"AR24") {
        0
    } else if drm == f(b"XR24") {
        1
    } else {
        drm.0
    }
}

/// The DRM fourcc of a wl_shm format code.
pub fn drm_of_shm(code: u32) -> DrmFourcc {
    match code {
        0 => f(b"AR24"),
        1 => f(b"XR24"),
        c => Fourcc(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let yuyv = lookup(f(b"YUYV")).unwrap();
        assert_eq!(yuyv.frame_bytes(640, 360), 640 * 360 * 2);
        let nv12 = lookup(f(b"NM12")).unwrap();
        assert_eq!(nv12.drm, f(b"NV12"));
        assert_eq!(nv12.frame_bytes(640, 360), 640 * 360 * 3 / 2);
        assert_eq!(nv12.min_stride(1, 640), 640);
        assert_eq!(nv12.rows(1, 360), 180);
        let yu12 = lookup(f(b"YU12")).unwrap();
        assert_eq!(yu12.frame_bytes(4, 2), 8 + 2 + 2);
        assert_eq!(lookup(f(b"XR24")).unwrap().frame_bytes(2, 2), 16);
        assert!(lookup(f(b"MJPG")).is_none());
        assert_eq!(shm_code(f(b"XR24")), 1);
        assert_eq!(drm_of_shm(0), f(b"AR24"));
        assert_eq!(shm_code(f(b"NV12")), f(b"NV12").0);
    }
}
