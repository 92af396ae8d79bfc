//! Pure colour maths shared by every stage that paints or checks a known picture: the eight 100 % colour
//! bars and BT.601 limited-range R'G'B' → Y'CbCr, and what a format's colorimetry fields mean
//! ([`Colorimetry`]). No buffers, no I/O.

/// The bars, left to right, as R'G'B' (100 % amplitude): white, yellow, cyan, green, magenta, red, blue,
/// black.
pub const BARS: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];

/// The bar colour of column `x` of a `width`-pixel-wide picture: bar `x * 8 / width`.
pub fn bar_rgb(x: u32, width: u32) -> [u8; 3] {
    BARS[(u64::from(x) * 8 / u64::from(width.max(1))).min(7) as usize]
}

/// BT.601 limited-range R'G'B' to Y'CbCr (8 bit; Y' 16-235, Cb/Cr 16-240), in the usual 8-bit fixed-point
/// form (coefficients scaled by 256, rounded), which is within 1 of the exact value.
pub fn rgb_to_yuv(rgb: [u8; 3]) -> (u8, u8, u8) {
    let [r, g, b] = rgb.map(i32::from);
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (y as u8, u as u8, v as u8)
}

/// The Y'CbCr encoding (matrix) of a format's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Bt601,
    Bt709,
    Bt2020,
    Smpte240m,
    /// A `V4L2_YCBCR_ENC_*` value not named above.
    Other(u32),
}

/// The range of a format's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Y' 16-235, Cb/Cr 16-240 (8 bit).
    Limited,
    /// 0-255.
    Full,
}

/// What a camera says its pixels mean, `DEFAULT`s resolved as the V4L2 specification does
/// (`V4L2_MAP_YCBCR_ENC_DEFAULT`, `V4L2_MAP_QUANTIZATION_DEFAULT`): the one place every stage (the GPU
/// conversion, the CPU reference, the Y4M writer) takes it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colorimetry {
    pub encoding: Encoding,
    pub range: Range,
}

/// `V4L2_COLORSPACE_*`, `V4L2_YCBCR_ENC_*`, `V4L2_QUANTIZATION_*` (videodev2.h).
pub mod v4l2 {
    pub const COLORSPACE_SMPTE170M: u32 = 1;
    pub const COLORSPACE_SMPTE240M: u32 = 2;
    pub const COLORSPACE_REC709: u32 = 3;
    pub const COLORSPACE_JPEG: u32 = 7;
    pub const COLORSPACE_SRGB: u32 = 8;
    pub const COLORSPACE_OPRGB: u32 = 9;
    pub const COLORSPACE_BT2020: u32 = 10;
    pub const COLORSPACE_DCI_P3: u32 = 12;
    pub const YCBCR_ENC_DEFAULT: u32 = 0;
    pub const YCBCR_ENC_601: u32 = 1;
    pub const YCBCR_ENC_709: u32 = 2;
    pub const YCBCR_ENC_XV601: u32 = 3;
    pub const YCBCR_ENC_XV709: u32 = 4;
    pub const YCBCR_ENC_SYCC: u32 = 5;
    pub const YCBCR_ENC_BT2020: u32 = 6;
    pub const YCBCR_ENC_BT2020_CONST_LUM: u32 = 7;
    pub const YCBCR_ENC_SMPTE240M: u32 = 8;
    pub const QUANTIZATION_DEFAULT: u32 = 0;
    pub const QUANTIZATION_FULL_RANGE: u32 = 1;
    pub const QUANTIZATION_LIM_RANGE: u32 = 2;
}

impl Colorimetry {
    /// The colorimetry of frames of `format`.
    pub fn of(format: &crate::Format) -> Colorimetry {
        let yuv = crate::PixelFormat::lookup(format.fourcc).is_none_or(|p| p.is_yuv());
        Colorimetry::from_v4l2(
            yuv,
            format.colorspace,
            format.ycbcr_enc,
            format.quantization,
        )
    }

    /// The colorimetry of frames of `format` if its pixels are Y'CbCr (what a display must be told, or
    /// assume), `None` for R'G'B' and compressed formats.
    pub fn of_ycbcr(format: &crate::Format) -> Option<Colorimetry> {
        crate::PixelFormat::lookup(format.fourcc)
            .is_some_and(|p| p.is_yuv())
            .then(|| Colorimetry::of(format))
    }

    /// From the V4L2 fields of a format whose pixels are Y'CbCr (`yuv`) or R'G'B'.
    pub fn from_v4l2(yuv: bool, colorspace: u32, ycbcr_enc: u32, quantization: u32) -> Colorimetry {
        use v4l2::*;
        let enc = if ycbcr_enc == YCBCR_ENC_DEFAULT {
            match colorspace {
                COLORSPACE_REC709 | COLORSPACE_DCI_P3 => YCBCR_ENC_709,
                COLORSPACE_BT2020 => YCBCR_ENC_BT2020,
                COLORSPACE_SMPTE240M => YCBCR_ENC_SMPTE240M,
                _ => YCBCR_ENC_601,
            }
        } else {
            ycbcr_enc
        };
        let encoding = match enc {
            YCBCR_ENC_601 | YCBCR_ENC_XV601 | YCBCR_ENC_SYCC => Encoding::Bt601,
            YCBCR_ENC_709 | YCBCR_ENC_XV709 => Encoding::Bt709,
            YCBCR_ENC_BT2020 | YCBCR_ENC_BT2020_CONST_LUM => Encoding::Bt2020,
            YCBCR_ENC_SMPTE240M => Encoding::Smpte240m,
            other => Encoding::Other(other),
        };
        let range = match quantization {
            QUANTIZATION_FULL_RANGE => Range::Full,
            QUANTIZATION_LIM_RANGE => Range::Limited,
            _ if !yuv || colorspace == COLORSPACE_JPEG => Range::Full,
            _ => Range::Limited,
        };
        Colorimetry { encoding, range }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_as_the_v4l2_specification_says() {
        use v4l2::*;
        let c = |yuv, cs, enc, q| Colorimetry::from_v4l2(yuv, cs, enc, q);
        let lim601 = Colorimetry {
            encoding: Encoding::Bt601,
            range: Range::Limited,
        };
        assert_eq!(c(true, COLORSPACE_SMPTE170M, 0, 0), lim601);
        assert_eq!(c(true, 0, 0, 0), lim601);
        assert_eq!(c(true, COLORSPACE_REC709, 0, 0).encoding, Encoding::Bt709);
        assert_eq!(c(true, COLORSPACE_REC709, 0, 0).range, Range::Limited);
        // JPEG: BT.601, full range; sRGB Y'CbCr: BT.601 limited; RGB is full range.
        assert_eq!(c(true, COLORSPACE_JPEG, 0, 0).range, Range::Full);
        assert_eq!(c(true, COLORSPACE_SRGB, 0, 0), lim601);
        assert_eq!(c(false, COLORSPACE_SRGB, 0, 0).range, Range::Full);
        assert_eq!(c(true, COLORSPACE_BT2020, 0, 0).encoding, Encoding::Bt2020);
        // Explicit values win.
        let full709 = c(
            true,
            COLORSPACE_SMPTE170M,
            YCBCR_ENC_709,
            QUANTIZATION_FULL_RANGE,
        );
        assert_eq!(
            (full709.encoding, full709.range),
            (Encoding::Bt709, Range::Full)
        );
        assert_eq!(
            c(true, COLORSPACE_JPEG, 0, QUANTIZATION_LIM_RANGE).range,
            Range::Limited
        );
        assert_eq!(c(true, 0, 99, 0).encoding, Encoding::Other(99));
    }

    #[test]
    fn bars_encode_to_the_textbook_bt601_values() {
        // ITU-R BT.601 limited range, 100 % bars.
        let want = [
            (235, 128, 128),
            (210, 16, 146),
            (170, 166, 16),
            (145, 54, 34),
            (106, 202, 222),
            (81, 90, 240),
            (41, 240, 110),
            (16, 128, 128),
        ];
        for (rgb, want) in BARS.iter().zip(want) {
            let got = rgb_to_yuv(*rgb);
            let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).abs();
            assert!(
                d(got.0, want.0) <= 1 && d(got.1, want.1) <= 1 && d(got.2, want.2) <= 1,
                "{rgb:?}: {got:?} vs {want:?}"
            );
        }
        assert_eq!(bar_rgb(0, 640), BARS[0]);
        assert_eq!(bar_rgb(79, 640), BARS[0]);
        assert_eq!(bar_rgb(80, 640), BARS[1]);
        assert_eq!(bar_rgb(639, 640), BARS[7]);
    }
}
