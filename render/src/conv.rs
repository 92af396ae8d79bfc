//! Every translation between camera formats, colorimetry and what the shaders read lives here.

use dmacam_capture::format::{supported, Layout, PixelFormat};
use dmacam_capture::Fourcc;

use crate::RenderError;

/// A camera pixel format the converter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    /// `YUYV`: packed 4:2:2, Y0 Cb Y1 Cr.
    Yuyv,
    /// `UYVY`: packed 4:2:2, Cb Y0 Cr Y1.
    Uyvy,
    /// `NV12` (one buffer) or `NM12` (NV12M, two buffers): Y plane, then interleaved CbCr at half size.
    Nv12,
    /// `GREY`: 8-bit luma only.
    Grey,
    /// `XR24` / `AR24`: 32-bit, bytes B G R X|A (DRM XRGB8888 / ARGB8888).
    Bgrx,
    /// `RGB3`: 24-bit, bytes R G B.
    Rgb3,
    /// `BGR3`: 24-bit, bytes B G R.
    Bgr3,
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

    /// The converter's reading of a catalogue entry's layout.
    pub fn from_pixel(p: PixelFormat) -> Option<Self> {
        Some(match p.layout {
            Layout::Packed422 {
                y0: 0,
                u: 1,
                y1: 2,
                v: 3,
            } => Self::Yuyv,
            Layout::Packed422 {
                u: 0,
                y0: 1,
                v: 2,
                y1: 3,
            } => Self::Uyvy,
            // One buffer or two (NV12M): the import takes either.
            Layout::SemiPlanar {
                vsub: 2,
                cr_first: false,
            } => Self::Nv12,
            Layout::Grey => Self::Grey,
            Layout::Rgb {
                bpp: 4,
                r: 2,
                g: 1,
                b: 0,
            } => Self::Bgrx,
            Layout::Rgb {
                bpp: 3,
                r: 0,
                g: 1,
                b: 2,
            } => Self::Rgb3,
            Layout::Rgb {
                bpp: 3,
                r: 2,
                g: 1,
                b: 0,
            } => Self::Bgr3,
            _ => return None,
        })
    }

    /// Like [`Self::from_fourcc`], with the error a user sees.
    pub fn require(f: Fourcc) -> Result<Self, RenderError> {
        Self::from_fourcc(f).ok_or(RenderError::UnsupportedFormat { fourcc: f })
    }

    /// The format's name in the shader variants (`fetch_<name>` in `assets/shaders/formats.wgsl`, `FORMATS` in
    /// `render/build.rs`).
    pub(crate) fn shader_name(self) -> &'static str {
        match self {
            Self::Yuyv => "yuyv",
            Self::Uyvy => "uyvy",
            Self::Nv12 => "nv12",
            Self::Grey => "grey",
            Self::Bgrx => "bgrx",
            Self::Rgb3 => "rgb3",
            Self::Bgr3 => "bgr3",
        }
    }

    pub fn is_yuv(self) -> bool {
        matches!(self, Self::Yuyv | Self::Uyvy | Self::Nv12 | Self::Grey)
    }

    /// Number of planes the shader reads.
    pub fn planes(self) -> usize {
        if self == Self::Nv12 {
            2
        } else {
            1
        }
    }

    /// Bytes of pixel data in one row of `plane`, and the number of rows, for a `width`×`height` frame.
    pub fn plane_extent(self, plane: usize, width: u32, height: u32) -> (u32, u32) {
        match (self, plane) {
            (Self::Yuyv | Self::Uyvy, _) => (width.div_ceil(2) * 4, height),
            (Self::Nv12, 0) | (Self::Grey, _) => (width, height),
            (Self::Nv12, _) => (width.div_ceil(2) * 2, height.div_ceil(2)),
            (Self::Bgrx, _) => (width * 4, height),
            (Self::Rgb3 | Self::Bgr3, _) => (width * 3, height),
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
        assert_eq!(kind(b"YUYV"), Some(SourceFormat::Yuyv));
        assert_eq!(kind(b"UYVY"), Some(SourceFormat::Uyvy));
        assert_eq!(kind(b"NV12"), Some(SourceFormat::Nv12));
        assert_eq!(kind(b"NM12"), Some(SourceFormat::Nv12));
        assert_eq!(kind(b"GREY"), Some(SourceFormat::Grey));
        assert_eq!(kind(b"XR24"), Some(SourceFormat::Bgrx));
        assert_eq!(kind(b"AR24"), Some(SourceFormat::Bgrx));
        assert_eq!(kind(b"RGB3"), Some(SourceFormat::Rgb3));
        assert_eq!(kind(b"BGR3"), Some(SourceFormat::Bgr3));
        for no in [
            b"YVYU", b"NV21", b"NV16", b"YU12", b"BX24", b"XB24", b"MJPG", b"H264",
        ] {
            assert_eq!(kind(no), None, "{}", Fourcc::new(no));
        }
        assert_eq!(
            readable_names(),
            "YUYV, UYVY, NV12, NV12M, GREY, RGB3, BGR3, XR24, AR24"
        );
    }
}
