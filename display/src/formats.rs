//! Pixel formats as the display stage sees them: a frame's V4L2 fourcc translated to the DRM fourcc that
//! linux-dmabuf, wl_shm and KMS speak, all read from capture's catalogue ([`dmacam_capture::format::CATALOGUE`]).

use dmacam_capture::format::{PixelFormat, CATALOGUE};
use dmacam_capture::Fourcc;

/// `DRM_FORMAT_MOD_INVALID`: "implicit modifier" in linux-dmabuf v3 modifier events and v4 format tables.
pub const DRM_FORMAT_MOD_INVALID: u64 = 0x00ff_ffff_ffff_ffff;

/// A DRM fourcc (`drm_fourcc.h`), e.g. `XR24` for XRGB8888.
pub type DrmFourcc = Fourcc;

/// A V4L2 format the display stage can hand to a compositor or a KMS plane as it is: its catalogue entry
/// and its DRM twin (the catalogue's [`PixelFormat::drm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatInfo {
    /// The V4L2 fourcc.
    pub v4l2: Fourcc,
    /// The DRM fourcc of the same memory layout.
    pub drm: DrmFourcc,
    /// What the catalogue says about the format (layout, planes, subsampling).
    pub pixel: PixelFormat,
}

impl FormatInfo {
    /// Colour planes.
    pub fn planes(&self) -> usize {
        self.pixel.color_planes()
    }

    /// Bytes per row of plane `i` for a width of `w` pixels, tightly packed.
    pub fn min_stride(&self, i: usize, w: u32) -> u32 {
        self.pixel.min_stride(i, w)
    }

    /// Rows of plane `i` for a height of `h` rows.
    pub fn rows(&self, i: usize, h: u32) -> u32 {
        self.pixel.rows(i, h)
    }

    /// The frame's size in bytes when every plane is tightly packed: what "one frame's bytes" means.
    pub fn frame_bytes(&self, w: u32, h: u32) -> u64 {
        self.pixel.frame_bytes(w, h)
    }
}

/// The layout of V4L2 format `v4l2`, if the catalogue gives it a DRM twin.
pub fn lookup(v4l2: Fourcc) -> Option<FormatInfo> {
    let pixel = PixelFormat::find(v4l2)?;
    Some(FormatInfo {
        v4l2,
        drm: pixel.drm?,
        pixel,
    })
}

/// The DRM fourcc whose memory layout equals V4L2 format `fourcc`, if any (the multi-buffer `...M` formats
/// map to their single-buffer twin, one dma-buf per plane).
pub fn drm_format_for(fourcc: Fourcc) -> Option<DrmFourcc> {
    lookup(fourcc).map(|i| i.drm)
}

/// The V4L2 formats the display stage knows, e.g. for error messages.
pub fn known_v4l2() -> impl Iterator<Item = Fourcc> {
    CATALOGUE
        .iter()
        .filter(|p| p.drm.is_some())
        .map(|p| p.fourcc)
}

const fn f(code: &[u8; 4]) -> Fourcc {
    Fourcc::new(code)
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
        assert!(lookup(f(b"GREY")).is_none());
        let d = |s: &[u8; 4]| drm_format_for(f(s)).map(|f| f.to_string());
        assert_eq!(d(b"XR24").as_deref(), Some("XR24"));
        assert_eq!(d(b"BGR4").as_deref(), Some("XR24"));
        assert_eq!(d(b"RGB3").as_deref(), Some("BG24"));
        assert_eq!(d(b"BA24").as_deref(), Some("BA24"));
        assert_eq!(shm_code(f(b"XR24")), 1);
        assert_eq!(drm_of_shm(0), f(b"AR24"));
        assert_eq!(shm_code(f(b"NV12")), f(b"NV12").0);
    }
}
