//! Every translation between camera formats, colorimetry and what the shaders read lives here.

use dmacam_capture::format::{supported, Layout, PixelFormat};
use dmacam_capture::Fourcc;

use crate::RenderError;

/// A camera pixel format the converter reads. Each is one shader variant family's parameters (see
/// `render/build.rs`); which V4L2 formats read as which follows from their layout in capture's catalogue
/// ([`SourceFormat::from_pixel`]), so single- and multi-buffer forms (NV12 and NV12M) read alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    /// `YUYV`: packed 4:2:2, Y0 Cb Y1 Cr.
    Yuyv,
    /// `YVYU`: packed 4:2:2, Y0 Cr Y1 Cb.
    Yvyu,
    /// `UYVY`: packed 4:2:2, Cb Y0 Cr Y1.
    Uyvy,
    /// `VYUY`: packed 4:2:2, Cr Y0 Cb Y1.
    Vyuy,
    /// `NV12` / `NM12`: Y plane, then interleaved CbCr at half width and height.
    Nv12,
    /// `NV21` / `NM21`: as NV12 with CrCb.
    Nv21,
    /// `NV16` / `NM16`: Y plane, then interleaved CbCr at half width, full height.
    Nv16,
    /// `NV61` / `NM61`: as NV16 with CrCb.
    Nv61,
    /// `YU12` / `YM12` (YUV420): Y, Cb and Cr planes, chroma at half width and height.
    Yu12,
    /// `YV12` / `YM21` (YVU420): Y, Cr and Cb planes.
    Yv12,
    /// `GREY`: 8-bit luma only.
    Grey,
    /// `XR24` / `AR24`: 32-bit, bytes B G R X|A (DRM XRGB8888 / ARGB8888).
    Bgrx,
    /// `BX24` / `BA24`: 32-bit, bytes X|A R G B (DRM BGRX8888 / BGRA8888).
    Xrgb,
    /// `XB24` / `AB24`: 32-bit, bytes R G B X|A (DRM XBGR8888 / ABGR8888).
    Rgbx,
    /// `RX24` / `RA24`: 32-bit, bytes X|A B G R (DRM RGBX8888 / RGBA8888).
    Xbgr,
    /// `RGB3`: 24-bit, bytes R G B.
    Rgb3,
    /// `BGR3`: 24-bit, bytes B G R.
    Bgr3,
}

/// How a [`SourceFormat`]'s samples are arranged: what its shader family and operations depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// Two pixels per 32-bit word (`fmt_packed422.wgsl`).
    Packed422,
    /// Luma plane and one interleaved chroma plane; `vsub` is 2 for 4:2:0, 1 for 4:2:2 (`fmt_semiplanar.wgsl`).
    SemiPlanar { vsub: u32 },
    /// Luma plane and two chroma planes, 4:2:0 (`fmt_planar420.wgsl`).
    Planar420,
    /// One pixel of `bpp` bytes (`fmt_grey.wgsl`, `fmt_rgb.wgsl`).
    Pixel { bpp: u32 },
}

/// The V4L2 formats capture streams that the converter reads, for messages.
pub fn readable_names() -> String {
    supported()
        .filter(|p| SourceFormat::from_pixel(*p).is_some())
        .map(PixelFormat::name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl SourceFormat {
    /// The converter's reading of a V4L2 fourcc, from its layout in capture's catalogue; `None` for formats
    /// the shaders cannot read.
    pub fn from_fourcc(f: Fourcc) -> Option<Self> {
        Self::from_pixel(PixelFormat::find(f)?)
    }

    /// The converter's reading of a catalogue entry's layout (one buffer or one per plane: the import takes
    /// either).
    pub fn from_pixel(p: PixelFormat) -> Option<Self> {
        Some(match p.layout {
            Layout::Packed422 { y0, u, y1, v } => match (y0, u, y1, v) {
                (0, 1, 2, 3) => Self::Yuyv,
                (0, 3, 2, 1) => Self::Yvyu,
                (1, 0, 3, 2) => Self::Uyvy,
                (1, 2, 3, 0) => Self::Vyuy,
                _ => return None,
            },
            Layout::SemiPlanar { vsub, cr_first } => match (vsub, cr_first) {
                (2, false) => Self::Nv12,
                (2, true) => Self::Nv21,
                (1, false) => Self::Nv16,
                (1, true) => Self::Nv61,
                _ => return None,
            },
            Layout::Planar420 { cr_first: false } => Self::Yu12,
            Layout::Planar420 { cr_first: true } => Self::Yv12,
            Layout::Grey => Self::Grey,
            Layout::Rgb { bpp, r, g, b } => match (bpp, r, g, b) {
                (4, 2, 1, 0) => Self::Bgrx,
                (4, 1, 2, 3) => Self::Xrgb,
                (4, 0, 1, 2) => Self::Rgbx,
                (4, 3, 2, 1) => Self::Xbgr,
                (3, 0, 1, 2) => Self::Rgb3,
                (3, 2, 1, 0) => Self::Bgr3,
                _ => return None,
            },
            Layout::Jpeg => return None,
        })
    }

    /// Like [`Self::from_fourcc`], with the error a user sees.
    pub fn require(f: Fourcc) -> Result<Self, RenderError> {
        Self::from_fourcc(f).ok_or(RenderError::UnsupportedFormat { fourcc: f })
    }

    /// The format's name in the shader variants (`FORMATS` in `render/build.rs`).
    pub(crate) fn shader_name(self) -> &'static str {
        match self {
            Self::Yuyv => "yuyv",
            Self::Yvyu => "yvyu",
            Self::Uyvy => "uyvy",
            Self::Vyuy => "vyuy",
            Self::Nv12 => "nv12",
            Self::Nv21 => "nv21",
            Self::Nv16 => "nv16",
            Self::Nv61 => "nv61",
            Self::Yu12 => "yu12",
            Self::Yv12 => "yv12",
            Self::Grey => "grey",
            Self::Bgrx => "bgrx",
            Self::Xrgb => "xrgb",
            Self::Rgbx => "rgbx",
            Self::Xbgr => "xbgr",
            Self::Rgb3 => "rgb3",
            Self::Bgr3 => "bgr3",
        }
    }

    /// Every format the converter reads.
    pub const ALL: [SourceFormat; 17] = [
        Self::Yuyv,
        Self::Yvyu,
        Self::Uyvy,
        Self::Vyuy,
        Self::Nv12,
        Self::Nv21,
        Self::Nv16,
        Self::Nv61,
        Self::Yu12,
        Self::Yv12,
        Self::Grey,
        Self::Bgrx,
        Self::Xrgb,
        Self::Rgbx,
        Self::Xbgr,
        Self::Rgb3,
        Self::Bgr3,
    ];

    pub(crate) fn family(self) -> Family {
        match self {
            Self::Yuyv | Self::Yvyu | Self::Uyvy | Self::Vyuy => Family::Packed422,
            Self::Nv12 | Self::Nv21 => Family::SemiPlanar { vsub: 2 },
            Self::Nv16 | Self::Nv61 => Family::SemiPlanar { vsub: 1 },
            Self::Yu12 | Self::Yv12 => Family::Planar420,
            Self::Grey => Family::Pixel { bpp: 1 },
            Self::Bgrx | Self::Xrgb | Self::Rgbx | Self::Xbgr => Family::Pixel { bpp: 4 },
            Self::Rgb3 | Self::Bgr3 => Family::Pixel { bpp: 3 },
        }
    }

    pub fn is_yuv(self) -> bool {
        !matches!(
            self,
            Self::Bgrx | Self::Xrgb | Self::Rgbx | Self::Xbgr | Self::Rgb3 | Self::Bgr3
        )
    }

    /// Number of planes the shader reads.
    pub fn planes(self) -> usize {
        match self.family() {
            Family::Packed422 | Family::Pixel { .. } => 1,
            Family::SemiPlanar { .. } => 2,
            Family::Planar420 => 3,
        }
    }

    /// Bytes of pixel data in one row of `plane`, and the number of rows, for a `width`×`height` frame.
    pub fn plane_extent(self, plane: usize, width: u32, height: u32) -> (u32, u32) {
        match (self.family(), plane) {
            (Family::Packed422, _) => (width.div_ceil(2) * 4, height),
            (Family::Pixel { bpp }, _) => (width * bpp, height),
            (_, 0) => (width, height),
            (Family::SemiPlanar { vsub }, _) => (width.div_ceil(2) * 2, height.div_ceil(vsub)),
            (Family::Planar420, _) => (width.div_ceil(2), height.div_ceil(2)),
        }
    }
}

/// Y'CbCr encoding (V4L2 `ycbcr_enc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YcbcrEnc {
    Bt601,
    Bt709,
}

/// Quantization range (V4L2 `quantization`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    /// Luma 16..235, chroma 16..240 (RGB 16..235).
    Limited,
    /// 0..255.
    Full,
}

/// How to turn the camera's codes into RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colorimetry {
    pub ycbcr_enc: YcbcrEnc,
    pub quantization: Quantization,
}

impl Colorimetry {
    /// BT.601 limited range: what SDTV-sized YUV cameras send when they say nothing.
    pub const BT601_LIMITED: Self = Self {
        ycbcr_enc: YcbcrEnc::Bt601,
        quantization: Quantization::Limited,
    };

    /// From the colorimetry fields of a V4L2 format, `DEFAULT`s resolved by capture's one reading of the
    /// V4L2 specification ([`dmacam_capture::colour::Colorimetry`]), which the CPU reference and the Y4M
    /// writer share. Encodings the shaders do not implement (BT.2020, SMPTE 240M, …) are an error naming
    /// them.
    pub fn from_v4l2(
        fourcc: Fourcc,
        colorspace: u32,
        ycbcr_enc: u32,
        quantization: u32,
    ) -> Result<Self, RenderError> {
        use dmacam_capture::colour::{Colorimetry as Declared, Encoding, Range};
        let format = SourceFormat::require(fourcc)?;
        let declared = Declared::from_v4l2(format.is_yuv(), colorspace, ycbcr_enc, quantization);
        let unsupported = |what: String| RenderError::UnsupportedColorimetry { what };
        let ycbcr_enc = match declared.encoding {
            Encoding::Bt601 => YcbcrEnc::Bt601,
            Encoding::Bt709 => YcbcrEnc::Bt709,
            Encoding::Bt2020 => {
                return Err(unsupported(format!(
                    "BT.2020 Y'CbCr encoding (colorspace {colorspace}, ycbcr_enc {ycbcr_enc})"
                )))
            }
            Encoding::Smpte240m => {
                return Err(unsupported(format!(
                    "SMPTE 240M Y'CbCr encoding (colorspace {colorspace}, ycbcr_enc {ycbcr_enc})"
                )))
            }
            Encoding::Other(n) => {
                return Err(unsupported(format!(
                    "V4L2 ycbcr_enc {n} (only BT.601 and BT.709 are implemented)"
                )))
            }
        };
        let quantization = match declared.range {
            Range::Full => Quantization::Full,
            Range::Limited => Quantization::Limited,
        };
        Ok(Self {
            ycbcr_enc,
            quantization,
        })
    }

    /// (Kr, Kb) luma coefficients.
    pub fn kr_kb(self) -> (f32, f32) {
        match self.ycbcr_enc {
            YcbcrEnc::Bt601 => (0.299, 0.114),
            YcbcrEnc::Bt709 => (0.2126, 0.0722),
        }
    }
}

/// The colour part of the shader parameters: offsets, scales and matrix.
pub(crate) struct ColourParams {
    pub y_off: f32,
    pub y_scale: f32,
    pub c_scale: f32,
    pub cr_r: f32,
    pub cb_g: f32,
    pub cr_g: f32,
    pub cb_b: f32,
}

pub(crate) fn colour_params(c: Colorimetry) -> ColourParams {
    let (kr, kb) = c.kr_kb();
    let kg = 1.0 - kr - kb;
    let (y_off, y_scale, c_scale) = match c.quantization {
        Quantization::Limited => (16.0, 1.0 / 219.0, 1.0 / 224.0),
        Quantization::Full => (0.0, 1.0 / 255.0, 1.0 / 255.0),
    };
    ColourParams {
        y_off,
        y_scale,
        c_scale,
        cr_r: 2.0 * (1.0 - kr),
        cb_g: -2.0 * kb * (1.0 - kb) / kg,
        cr_g: -2.0 * kr * (1.0 - kr) / kg,
        cb_b: 2.0 * (1.0 - kb),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shader_kind_follows_the_catalogue_layout() {
        let kind = |c: &[u8; 4]| SourceFormat::from_fourcc(Fourcc::new(c));
        use SourceFormat as S;
        for (code, want) in [
            (b"YUYV", S::Yuyv),
            (b"YVYU", S::Yvyu),
            (b"UYVY", S::Uyvy),
            (b"VYUY", S::Vyuy),
            (b"NV12", S::Nv12),
            (b"NM12", S::Nv12),
            (b"NV21", S::Nv21),
            (b"NM21", S::Nv21),
            (b"NV16", S::Nv16),
            (b"NM16", S::Nv16),
            (b"NV61", S::Nv61),
            (b"NM61", S::Nv61),
            (b"YU12", S::Yu12),
            (b"YM12", S::Yu12),
            (b"YV12", S::Yv12),
            (b"YM21", S::Yv12),
            (b"GREY", S::Grey),
            (b"XR24", S::Bgrx),
            (b"AR24", S::Bgrx),
            (b"BX24", S::Xrgb),
            (b"BA24", S::Xrgb),
            (b"XB24", S::Rgbx),
            (b"AB24", S::Rgbx),
            (b"RX24", S::Xbgr),
            (b"RGB3", S::Rgb3),
            (b"BGR3", S::Bgr3),
        ] {
            assert_eq!(kind(code), Some(want), "{}", Fourcc::new(code));
        }
        for no in [b"MJPG", b"JPEG", b"H264"] {
            assert_eq!(kind(no), None, "{}", Fourcc::new(no));
        }
        // Every non-compressed format capture streams is read by the render stage.
        for p in supported().filter(|p| !p.is_compressed()) {
            assert!(SourceFormat::from_pixel(p).is_some(), "{}", p.name());
        }
        assert_eq!(
            readable_names(),
            "YUYV, YVYU, UYVY, VYUY, NV12, NV21, NV16, NV61, NV12M, NV21M, NV16M, NV61M, YU12, YV12, \
             YUV420M, YVU420M, GREY, RGB3, BGR3, XR24, AR24, BX24, BA24, XB24, AB24"
        );
    }

    #[test]
    fn every_format_is_listed_once_with_its_own_shader() {
        let names: std::collections::HashSet<_> =
            SourceFormat::ALL.iter().map(|f| f.shader_name()).collect();
        assert_eq!(names.len(), SourceFormat::ALL.len());
    }
}
