//! The one catalogue of pixel formats: per V4L2 pixel format its memory layout, its DRM twin, its Y4M tag,
//! the names users give it, and whether capture streams it. Every other crate derives its answers (DRM codes
//! for KMS and linux-dmabuf, the shader's input kind, the shm converter, the dump's Y4M header) from here.

use pipewire::spa::sys as spa;

use crate::dmabuf::Fourcc;

/// How the colour components of a pixel format are laid out in memory. Only formats dmacam knows how to
/// describe as a [`crate::Dmabuf`] and read on the CPU have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Packed 4:2:2 luma/chroma in 2-byte pixels; the byte positions of Y0, Cb, Y1, Cr in each 4-byte pair.
    Packed422 {
        y0: usize,
        u: usize,
        y1: usize,
        v: usize,
    },
    /// Luma plane then one interleaved chroma plane; `vsub` is the vertical chroma subsampling (2 for 4:2:0,
    /// 1 for 4:2:2); `cr_first` for NV21/NV61.
    SemiPlanar { vsub: u32, cr_first: bool },
    /// Three planes Y, Cb, Cr (or Y, Cr, Cb if `cr_first`), chroma subsampled 2x2.
    Planar420 { cr_first: bool },
    /// Packed RGB with `bpp` bytes per pixel; the byte positions of R, G and B.
    Rgb {
        bpp: usize,
        r: usize,
        g: usize,
        b: usize,
    },
    /// 8-bit luma only.
    Grey,
    /// A compressed JPEG picture (`MJPG`, `JPEG`) of `bytesused` bytes in one plane. No pixel is read from it
    /// directly: [`crate::decode`] decodes it into an XR24 buffer first.
    Jpeg,
}

/// What dmacam knows about a pixel format: one entry of [`CATALOGUE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    /// The V4L2 fourcc.
    pub fourcc: Fourcc,
    pub layout: Layout,
    /// Whether each colour plane sits in its own buffer (the `...M` formats of the multi-planar API).
    pub multi_buffer: bool,
    /// The DRM fourcc (`drm_fourcc.h`) of exactly the same bytes per plane, if there is one. Many codes are
    /// equal in both APIs, some are not: V4L2 `RGB3` (bytes R, G, B) is DRM `BG24` (BGR888, little endian).
    /// `None` where DRM has no format that means the same (GREY is not DRM R8, JPEG is no pixel format).
    pub drm: Option<Fourcc>,
    /// The Y4M colour tag (`C422`, `C420mpeg2`, `Cmono`) of the planar Y'CbCr a dump of this format writes,
    /// with the subsampling and chroma siting V4L2 gives it; `None` for RGB and compressed formats.
    pub y4m: Option<&'static str>,
    /// The name users give the format besides the fourcc (`NV12M` for `NM12`, `RGB24` for `RGB3`).
    pub alias: Option<&'static str>,
    /// Whether dmacam can capture it: stream it from a device, describe it as a dma-buf and read it.
    pub capture: bool,
    /// The PipeWire (SPA) video format of the same bytes (`spa_video_format`, named after memory order as
    /// GStreamer does: `YUY2`, `BGRx`), for the single-buffer entry; `None` where SPA has none.
    pub spa: Option<u32>,
}

const fn entry(code: &[u8; 4], layout: Layout) -> PixelFormat {
    PixelFormat {
        fourcc: Fourcc::new(code),
        layout,
        multi_buffer: false,
        drm: None,
        y4m: None,
        alias: None,
        capture: true,
        spa: None,
    }
}

impl PixelFormat {
    const fn drm(mut self, code: &[u8; 4]) -> Self {
        self.drm = Some(Fourcc::new(code));
        self
    }

    const fn multi(mut self, alias: &'static str) -> Self {
        self.multi_buffer = true;
        self.alias = Some(alias);
        self
    }

    const fn spa(mut self, format: u32) -> Self {
        self.spa = Some(format);
        self
    }

    const fn alias(mut self, alias: &'static str) -> Self {
        self.alias = Some(alias);
        self
    }

    const fn y4m(mut self, tag: &'static str) -> Self {
        self.y4m = Some(tag);
        self
    }

    /// Known (for DRM translation and display) but not streamed by capture.
    const fn not_captured(mut self) -> Self {
        self.capture = false;
        self
    }
}

/// Packed 4:2:2 with Y0, Cb, Y1, Cr at these byte positions of each pixel pair.
const fn packed(y0: usize, u: usize, y1: usize, v: usize) -> Layout {
    Layout::Packed422 { y0, u, y1, v }
}
const fn semi(vsub: u32, cr_first: bool) -> Layout {
    Layout::SemiPlanar { vsub, cr_first }
}
const YU12: Layout = Layout::Planar420 { cr_first: false };
const YV12: Layout = Layout::Planar420 { cr_first: true };
/// Packed RGB of `bpp` bytes with R, G, B at these byte positions.
const fn rgb(bpp: usize, r: usize, g: usize, b: usize) -> Layout {
    Layout::Rgb { bpp, r, g, b }
}

/// Y4M's tag for 4:2:2 (chroma co-sited with the even luma samples).
const C422: &str = "C422";
/// V4L2's 4:2:0 formats site chroma as MPEG-2 does (co-sited left, centred vertically).
const C420: &str = "C420mpeg2";

/// Every pixel format dmacam knows, one entry per V4L2 fourcc. Where two entries share a DRM code the
/// single-buffer or current V4L2 name comes first (it is the one [`PixelFormat::from_drm`] answers).
pub const CATALOGUE: &[PixelFormat] = &[
    // Packed 4:2:2: the same code and bytes in both APIs.
    entry(b"YUYV", packed(0, 1, 2, 3))
        .drm(b"YUYV")
        .y4m(C422)
        .spa(spa::SPA_VIDEO_FORMAT_YUY2),
    entry(b"YVYU", packed(0, 3, 2, 1))
        .drm(b"YVYU")
        .y4m(C422)
        .spa(spa::SPA_VIDEO_FORMAT_YVYU),
    entry(b"UYVY", packed(1, 0, 3, 2))
        .drm(b"UYVY")
        .y4m(C422)
        .spa(spa::SPA_VIDEO_FORMAT_UYVY),
    entry(b"VYUY", packed(1, 2, 3, 0))
        .drm(b"VYUY")
        .y4m(C422)
        .spa(spa::SPA_VIDEO_FORMAT_VYUY),
    // Semi-planar; the `...M` forms are the same planes, one dma-buf each.
    entry(b"NV12", semi(2, false))
        .drm(b"NV12")
        .y4m(C420)
        .spa(spa::SPA_VIDEO_FORMAT_NV12),
    entry(b"NV21", semi(2, true))
        .drm(b"NV21")
        .y4m(C420)
        .spa(spa::SPA_VIDEO_FORMAT_NV21),
    entry(b"NV16", semi(1, false))
        .drm(b"NV16")
        .y4m(C422)
        .spa(spa::SPA_VIDEO_FORMAT_NV16),
    entry(b"NV61", semi(1, true))
        .drm(b"NV61")
        .y4m(C422)
        .spa(spa::SPA_VIDEO_FORMAT_NV61),
    entry(b"NM12", semi(2, false))
        .drm(b"NV12")
        .y4m(C420)
        .multi("NV12M"),
    entry(b"NM21", semi(2, true))
        .drm(b"NV21")
        .y4m(C420)
        .multi("NV21M"),
    entry(b"NM16", semi(1, false))
        .drm(b"NV16")
        .y4m(C422)
        .multi("NV16M"),
    entry(b"NM61", semi(1, true))
        .drm(b"NV61")
        .y4m(C422)
        .multi("NV61M"),
    // Planar 4:2:0: V4L2 YUV420 'YU12' is DRM YUV420 'YU12', YVU420 'YV12' is DRM YVU420 'YV12'.
    entry(b"YU12", YU12)
        .drm(b"YU12")
        .y4m(C420)
        .alias("YUV420")
        .spa(spa::SPA_VIDEO_FORMAT_I420),
    entry(b"YV12", YV12)
        .drm(b"YV12")
        .y4m(C420)
        .alias("YVU420")
        .spa(spa::SPA_VIDEO_FORMAT_YV12),
    entry(b"YM12", YU12).drm(b"YU12").y4m(C420).multi("YUV420M"),
    entry(b"YM21", YV12).drm(b"YV12").y4m(C420).multi("YVU420M"),
    // Luma only. DRM R8 has the same bytes but means red, so no DRM twin.
    entry(b"GREY", Layout::Grey)
        .y4m("Cmono")
        .spa(spa::SPA_VIDEO_FORMAT_GRAY8),
    // 24-bit: V4L2 RGB24 is bytes R, G, B = DRM BGR888 'BG24'; V4L2 BGR24 is B, G, R = DRM RGB888 'RG24'.
    entry(b"RGB3", rgb(3, 0, 1, 2))
        .drm(b"BG24")
        .alias("RGB24")
        .spa(spa::SPA_VIDEO_FORMAT_RGB),
    entry(b"BGR3", rgb(3, 2, 1, 0))
        .drm(b"RG24")
        .alias("BGR24")
        .spa(spa::SPA_VIDEO_FORMAT_BGR),
    // Motion-JPEG (most USB webcams above 640x480) and still JPEG: decoded on the CPU, see `crate::decode`.
    entry(b"MJPG", Layout::Jpeg),
    entry(b"JPEG", Layout::Jpeg),
    // 32-bit. DRM codes name a little-endian word from the high bits down, V4L2 names the bytes in memory;
    // the fourccs were chosen to agree. V4L2 XBGR32/ABGR32 'XR24'/'AR24': bytes B, G, R, X/A = DRM
    // XRGB8888/ARGB8888.
    entry(b"XR24", rgb(4, 2, 1, 0))
        .drm(b"XR24")
        .spa(spa::SPA_VIDEO_FORMAT_BGRx),
    entry(b"AR24", rgb(4, 2, 1, 0))
        .drm(b"AR24")
        .spa(spa::SPA_VIDEO_FORMAT_BGRA),
    // V4L2 XRGB32/ARGB32 'BX24'/'BA24': bytes X/A, R, G, B = DRM BGRX8888/BGRA8888.
    entry(b"BX24", rgb(4, 1, 2, 3))
        .drm(b"BX24")
        .spa(spa::SPA_VIDEO_FORMAT_xRGB),
    entry(b"BA24", rgb(4, 1, 2, 3))
        .drm(b"BA24")
        .spa(spa::SPA_VIDEO_FORMAT_ARGB),
    // V4L2 RGBX32/RGBA32 'XB24'/'AB24': bytes R, G, B, X/A = DRM XBGR8888/ABGR8888.
    entry(b"XB24", rgb(4, 0, 1, 2))
        .drm(b"XB24")
        .spa(spa::SPA_VIDEO_FORMAT_RGBx),
    entry(b"AB24", rgb(4, 0, 1, 2))
        .drm(b"AB24")
        .spa(spa::SPA_VIDEO_FORMAT_RGBA),
    // V4L2 BGRX32/BGRA32 'RX24'/'RA24': bytes X/A, B, G, R = DRM RGBX8888/RGBA8888.
    entry(b"RX24", rgb(4, 3, 2, 1)).drm(b"RX24").not_captured(),
    entry(b"RA24", rgb(4, 3, 2, 1)).drm(b"RA24").not_captured(),
    // The deprecated V4L2 BGR32 'BGR4': bytes B, G, R, then a byte of unclear meaning = DRM XRGB8888.
    entry(b"BGR4", rgb(4, 2, 1, 0)).drm(b"XR24").not_captured(),
];

impl PixelFormat {
    /// What dmacam knows about `fourcc`, if capture supports it.
    pub fn lookup(fourcc: Fourcc) -> Option<PixelFormat> {
        Self::find(fourcc).filter(|p| p.capture)
    }

    /// The catalogue entry of V4L2 format `fourcc`, whether or not capture streams it.
    pub fn find(fourcc: Fourcc) -> Option<PixelFormat> {
        CATALOGUE.iter().copied().find(|p| p.fourcc == fourcc)
    }

    /// The V4L2 single-buffer format whose bytes DRM format `drm` describes (the first such entry).
    pub fn from_drm(drm: Fourcc) -> Option<PixelFormat> {
        CATALOGUE
            .iter()
            .copied()
            .find(|p| p.drm == Some(drm) && !p.multi_buffer)
    }

    /// The single-buffer V4L2 format whose bytes PipeWire video format `spa` describes.
    pub fn from_spa(spa: u32) -> Option<PixelFormat> {
        CATALOGUE
            .iter()
            .copied()
            .find(|p| p.spa == Some(spa) && !p.multi_buffer && p.capture)
    }

    /// Number of colour planes (1 for packed formats).
    pub fn color_planes(self) -> usize {
        match self.layout {
            Layout::Packed422 { .. } | Layout::Rgb { .. } | Layout::Grey | Layout::Jpeg => 1,
            Layout::SemiPlanar { .. } => 2,
            Layout::Planar420 { .. } => 3,
        }
    }

    /// Whether the format carries Y'CbCr (as opposed to RGB).
    pub fn is_yuv(self) -> bool {
        !matches!(self.layout, Layout::Rgb { .. })
    }

    /// Whether frames are compressed (JPEG): their pixels exist only after decoding.
    pub fn is_compressed(self) -> bool {
        self.layout == Layout::Jpeg
    }

    /// Bytes per pixel of the first plane.
    pub fn bytes_per_pixel(self) -> usize {
        match self.layout {
            Layout::Packed422 { .. } => 2,
            Layout::Rgb { bpp, .. } => bpp,
            _ => 1,
        }
    }

    /// Chroma subsampling (horizontal, vertical): (2, 1) for 4:2:2, (2, 2) for 4:2:0, (1, 1) otherwise.
    pub fn chroma_sub(self) -> (u32, u32) {
        match self.layout {
            Layout::Packed422 { .. } => (2, 1),
            Layout::SemiPlanar { vsub, .. } => (2, vsub),
            Layout::Planar420 { .. } => (2, 2),
            Layout::Rgb { .. } | Layout::Grey | Layout::Jpeg => (1, 1),
        }
    }

    /// Width and height of colour plane `i` for a `w`x`h` frame.
    pub fn plane_size(self, i: usize, w: u32, h: u32) -> (u32, u32) {
        match (self.layout, i) {
            (_, 0) => (w, h),
            (Layout::SemiPlanar { vsub, .. }, _) => (w.div_ceil(2), h.div_ceil(vsub)),
            _ => (w.div_ceil(2), h.div_ceil(2)),
        }
    }

    /// Bytes per row of colour plane `i` for a width of `w` pixels, tightly packed.
    pub fn min_stride(self, i: usize, w: u32) -> u32 {
        match (self.layout, i) {
            (_, 0) => w * self.bytes_per_pixel() as u32,
            // Interleaved chroma (NV12/NV16...): two bytes per chroma sample.
            (Layout::SemiPlanar { .. }, _) => self.plane_size(i, w, 1).0 * 2,
            _ => self.plane_size(i, w, 1).0,
        }
    }

    /// Rows of colour plane `i` for a height of `h` rows.
    pub fn rows(self, i: usize, h: u32) -> u32 {
        self.plane_size(i, 1, h).1
    }

    /// The frame's size in bytes when every plane is tightly packed: what "one frame's bytes" means.
    pub fn frame_bytes(self, w: u32, h: u32) -> u64 {
        (0..self.color_planes())
            .map(|i| u64::from(self.min_stride(i, w)) * u64::from(self.rows(i, h)))
            .sum()
    }

    /// The name dmacam prints: the alias for multi-buffer formats (`NV12M`), else the fourcc.
    pub fn name(self) -> String {
        match self.alias {
            Some(alias) if self.multi_buffer => alias.to_owned(),
            _ => self.fourcc.to_string(),
        }
    }
}

/// Parses a format name as users write it: a fourcc (`YUYV`, `NV12`, `NM12`) or a common alias (`NV12M`).
pub fn parse_fourcc(name: &str) -> Result<Fourcc, String> {
    let upper = name.to_ascii_uppercase();
    if let Some(p) = CATALOGUE.iter().find(|p| p.alias == Some(upper.as_str())) {
        return Ok(p.fourcc);
    }
    name.parse()
}

/// The name dmacam prints for a fourcc (the alias for multi-buffer formats, e.g. `NV12M`).
pub fn fourcc_name(f: Fourcc) -> String {
    PixelFormat::find(f).map_or_else(|| f.to_string(), PixelFormat::name)
}

/// The formats capture supports.
pub fn supported() -> impl Iterator<Item = PixelFormat> {
    CATALOGUE.iter().copied().filter(|p| p.capture)
}

/// The formats dmacam supports, as a space-separated list.
pub fn supported_names() -> String {
    let mut v: Vec<String> = supported().map(PixelFormat::name).collect();
    v.dedup();
    v.join(" ")
}
