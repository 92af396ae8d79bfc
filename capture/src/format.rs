//! Pixel formats, what a device offers (VIDIOC_ENUM_FMT, ENUM_FRAMESIZES, ENUM_FRAMEINTERVALS), and format
//! negotiation (VIDIOC_S_FMT, VIDIOC_S_PARM).

use std::fmt;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::errno::Errno;
use thiserror::Error;

use crate::device::{Device, NodeKind};
use crate::dmabuf::Fourcc;
use crate::raw::{self, b};

/// `V4L2_BUF_TYPE_VIDEO_CAPTURE`.
pub(crate) const BUF_TYPE_CAPTURE: u32 = 1;
/// `V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE`.
pub(crate) const BUF_TYPE_CAPTURE_MPLANE: u32 = 9;

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

/// What dmacam knows about a pixel format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    pub fourcc: Fourcc,
    pub layout: Layout,
    /// Whether each colour plane sits in its own buffer (the `...M` formats of the multi-planar API).
    pub multi_buffer: bool,
}

const fn pf(code: &[u8; 4], layout: Layout, multi_buffer: bool) -> PixelFormat {
    PixelFormat {
        fourcc: Fourcc::new(code),
        layout,
        multi_buffer,
    }
}

/// Every pixel format dmacam can stream, describe and read.
pub const SUPPORTED: &[PixelFormat] = &[
    pf(
        b"YUYV",
        Layout::Packed422 {
            y0: 0,
            u: 1,
            y1: 2,
            v: 3,
        },
        false,
    ),
    pf(
        b"YVYU",
        Layout::Packed422 {
            y0: 0,
            v: 1,
            y1: 2,
            u: 3,
        },
        false,
    ),
    pf(
        b"UYVY",
        Layout::Packed422 {
            u: 0,
            y0: 1,
            v: 2,
            y1: 3,
        },
        false,
    ),
    pf(
        b"VYUY",
        Layout::Packed422 {
            v: 0,
            y0: 1,
            u: 2,
            y1: 3,
        },
        false,
    ),
    pf(
        b"NV12",
        Layout::SemiPlanar {
            vsub: 2,
            cr_first: false,
        },
        false,
    ),
    pf(
        b"NV21",
        Layout::SemiPlanar {
            vsub: 2,
            cr_first: true,
        },
        false,
    ),
    pf(
        b"NV16",
        Layout::SemiPlanar {
            vsub: 1,
            cr_first: false,
        },
        false,
    ),
    pf(
        b"NV61",
        Layout::SemiPlanar {
            vsub: 1,
            cr_first: true,
        },
        false,
    ),
    pf(
        b"NM12",
        Layout::SemiPlanar {
            vsub: 2,
            cr_first: false,
        },
        true,
    ),
    pf(
        b"NM21",
        Layout::SemiPlanar {
            vsub: 2,
            cr_first: true,
        },
        true,
    ),
    pf(
        b"NM16",
        Layout::SemiPlanar {
            vsub: 1,
            cr_first: false,
        },
        true,
    ),
    pf(
        b"NM61",
        Layout::SemiPlanar {
            vsub: 1,
            cr_first: true,
        },
        true,
    ),
    pf(b"YU12", Layout::Planar420 { cr_first: false }, false),
    pf(b"YV12", Layout::Planar420 { cr_first: true }, false),
    pf(b"YM12", Layout::Planar420 { cr_first: false }, true),
    pf(b"YM21", Layout::Planar420 { cr_first: true }, true),
    pf(b"GREY", Layout::Grey, false),
    pf(
        b"RGB3",
        Layout::Rgb {
            bpp: 3,
            r: 0,
            g: 1,
            b: 2,
        },
        false,
    ),
    pf(
        b"BGR3",
        Layout::Rgb {
            bpp: 3,
            r: 2,
            g: 1,
            b: 0,
        },
        false,
    ),
    // Motion-JPEG (most USB webcams above 640x480) and still JPEG: decoded on the CPU, see `crate::decode`.
    pf(b"MJPG", Layout::Jpeg, false),
    pf(b"JPEG", Layout::Jpeg, false),
    // V4L2 'XR24'/'AR24' are XBGR32/ABGR32: bytes B, G, R, X/A (DRM's XRGB8888/ARGB8888).
    pf(
        b"XR24",
        Layout::Rgb {
            bpp: 4,
            r: 2,
            g: 1,
            b: 0,
        },
        false,
    ),
    pf(
        b"AR24",
        Layout::Rgb {
            bpp: 4,
            r: 2,
            g: 1,
            b: 0,
        },
        false,
    ),
    // 'BX24'/'BA24' are XRGB32/ARGB32: bytes X/A, R, G, B.
    pf(
        b"BX24",
        Layout::Rgb {
            bpp: 4,
            r: 1,
            g: 2,
            b: 3,
        },
        false,
    ),
    pf(
        b"BA24",
        Layout::Rgb {
            bpp: 4,
            r: 1,
            g: 2,
            b: 3,
        },
        false,
    ),
    // 'XB24'/'AB24' are RGBX32/RGBA32: bytes R, G, B, X/A.
    pf(
        b"XB24",
        Layout::Rgb {
            bpp: 4,
            r: 0,
            g: 1,
            b: 2,
        },
        false,
    ),
    pf(
        b"AB24",
        Layout::Rgb {
            bpp: 4,
            r: 0,
            g: 1,
            b: 2,
        },
        false,
    ),
];

/// The names users give formats besides the fourcc (`NV12M` for V4L2's `NM12`, and so on).
const ALIASES: &[(&str, &[u8; 4])] = &[
    ("NV12M", b"NM12"),
    ("NV21M", b"NM21"),
    ("NV16M", b"NM16"),
    ("NV61M", b"NM61"),
    ("YUV420", b"YU12"),
    ("YVU420", b"YV12"),
    ("YUV420M", b"YM12"),
    ("YVU420M", b"YM21"),
    ("RGB24", b"RGB3"),
    ("BGR24", b"BGR3"),
];

impl PixelFormat {
    /// What dmacam knows about `fourcc`, if it supports it.
    pub fn lookup(fourcc: Fourcc) -> Option<PixelFormat> {
        SUPPORTED.iter().copied().find(|p| p.fourcc == fourcc)
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

    /// Width and height of colour plane `i` for a `w`x`h` frame.
    pub fn plane_size(self, i: usize, w: u32, h: u32) -> (u32, u32) {
        match (self.layout, i) {
            (_, 0) => (w, h),
            (Layout::SemiPlanar { vsub, .. }, _) => (w.div_ceil(2), h.div_ceil(vsub)),
            _ => (w.div_ceil(2), h.div_ceil(2)),
        }
    }
}

/// Parses a format name as users write it: a fourcc (`YUYV`, `NV12`, `NM12`) or a common alias (`NV12M`).
pub fn parse_fourcc(name: &str) -> Result<Fourcc, String> {
    let upper = name.to_ascii_uppercase();
    if let Some((_, code)) = ALIASES.iter().find(|(a, _)| *a == upper) {
        return Ok(Fourcc::new(code));
    }
    name.parse()
}

/// The name dmacam prints for a fourcc (the alias for multi-buffer formats, e.g. `NV12M`).
pub fn fourcc_name(f: Fourcc) -> String {
    ALIASES
        .iter()
        .find(|(a, code)| Fourcc::new(code) == f && a.ends_with('M'))
        .map(|(a, _)| (*a).to_owned())
        .unwrap_or_else(|| f.to_string())
}

/// A frame size or interval as a fraction (`numerator / denominator` seconds per frame for intervals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    pub numerator: u32,
    pub denominator: u32,
}

impl Fraction {
    /// Frames per second for an interval.
    pub fn fps(self) -> f64 {
        if self.numerator == 0 {
            0.0
        } else {
            f64::from(self.denominator) / f64::from(self.numerator)
        }
    }
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.numerator, self.denominator)
    }
}

/// One entry of VIDIOC_ENUM_FMT.
#[derive(Debug, Clone)]
pub struct FormatDesc {
    pub fourcc: Fourcc,
    pub description: String,
    pub flags: u32,
    /// Whether dmacam can stream and read this format.
    pub supported: bool,
}

/// The frame sizes a device offers for a format (VIDIOC_ENUM_FRAMESIZES).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameSizes {
    Discrete(Vec<(u32, u32)>),
    Stepwise {
        min: (u32, u32),
        max: (u32, u32),
        step: (u32, u32),
    },
}

impl fmt::Display for FrameSizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameSizes::Discrete(v) => {
                let s: Vec<String> = v.iter().map(|(w, h)| format!("{w}x{h}")).collect();
                write!(f, "{}", s.join(" "))
            }
            FrameSizes::Stepwise { min, max, step } => write!(
                f,
                "{}x{} to {}x{} in steps of {}x{}",
                min.0, min.1, max.0, max.1, step.0, step.1
            ),
        }
    }
}

/// The frame intervals a device offers for a format and size (VIDIOC_ENUM_FRAMEINTERVALS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameIntervals {
    Discrete(Vec<Fraction>),
    Stepwise {
        min: Fraction,
        max: Fraction,
        step: Fraction,
    },
}

/// Layout of one memory plane (one buffer of the multi-planar API, or the single buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneFormat {
    pub bytesperline: u32,
    pub sizeimage: u32,
}

/// A format as the device set it (VIDIOC_S_FMT / G_FMT answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub fourcc: Fourcc,
    pub width: u32,
    pub height: u32,
    /// Whether the node uses the multi-planar API.
    pub mplane: bool,
    /// One entry per memory plane (buffer).
    pub planes: Vec<PlaneFormat>,
    pub colorspace: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
}

impl Format {
    /// The queue type for this format's API.
    pub(crate) fn queue_type(&self) -> u32 {
        if self.mplane {
            BUF_TYPE_CAPTURE_MPLANE
        } else {
            BUF_TYPE_CAPTURE
        }
    }

    /// Where colour plane `i` sits: (memory plane index, byte offset in it, stride).
    pub fn color_plane_location(&self, pixel: PixelFormat, i: usize) -> (usize, u32, u32) {
        let bpl = self.planes[0].bytesperline;
        if pixel.multi_buffer {
            return (i, 0, self.planes[i].bytesperline);
        }
        match (pixel.layout, i) {
            (_, 0) => (0, 0, bpl),
            (Layout::SemiPlanar { .. }, 1) => (0, bpl * self.height, bpl),
            (Layout::Planar420 { .. }, 1) => (0, bpl * self.height, bpl / 2),
            (Layout::Planar420 { .. }, _) => (
                0,
                bpl * self.height + (bpl / 2) * self.height.div_ceil(2),
                bpl / 2,
            ),
            _ => (0, 0, bpl),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{}",
            fourcc_name(self.fourcc),
            self.width,
            self.height
        )?;
        for (i, p) in self.planes.iter().enumerate() {
            write!(
                f,
                " plane{i}: {} bytes/line, {} bytes",
                p.bytesperline, p.sizeimage
            )?;
        }
        Ok(())
    }
}

/// What a caller asks for; `None` keeps the device's current setting.
#[derive(Debug, Clone, Default)]
pub struct FormatRequest {
    pub fourcc: Option<Fourcc>,
    pub size: Option<(u32, u32)>,
    pub fps: Option<u32>,
}

/// Why a format could not be listed or set.
#[derive(Debug, Error)]
pub enum FormatError {
    #[error("{path} is a {kind} node, not a video capture node; give a capture node (see `dmacam list`)")]
    NotCapture { path: PathBuf, kind: &'static str },
    #[error("{path} does not offer format {format}; it offers {offered} (try --format {first})")]
    NotOffered {
        path: PathBuf,
        format: String,
        offered: String,
        first: String,
    },
    #[error("{path} offers {format}, but dmacam cannot handle that format yet; supported here: {supported}")]
    Unsupported {
        path: PathBuf,
        format: String,
        supported: String,
    },
    #[error("{path} has no frame size {w}x{h} for {format}; it offers {offered}")]
    NoSize {
        path: PathBuf,
        format: String,
        w: u32,
        h: u32,
        offered: String,
    },
    #[error("{path} is busy: another process is streaming from it (close that program or pick another device)")]
    Busy { path: PathBuf },
    #[error(
        "{path} serves {served}; drop --format/--size/--fps, or restart `dmacam serve` with them"
    )]
    Served { path: PathBuf, served: String },
    #[error("{what} on {path} failed: {source}")]
    Ioctl {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Device {
    fn ioctl_err(&self, what: &'static str, e: Errno) -> FormatError {
        if e == Errno::EBUSY {
            return FormatError::Busy {
                path: self.path().to_path_buf(),
            };
        }
        FormatError::Ioctl {
            path: self.path().to_path_buf(),
            what,
            source: e.into(),
        }
    }

    /// The capture queue type of this node, or an error naming what the node is instead.
    pub(crate) fn capture_queue(&self) -> Result<u32, FormatError> {
        match self.info().kind {
            NodeKind::Capture => Ok(BUF_TYPE_CAPTURE),
            NodeKind::CaptureMplane => Ok(BUF_TYPE_CAPTURE_MPLANE),
            kind => Err(FormatError::NotCapture {
                path: self.path().to_path_buf(),
                kind: kind.as_str(),
            }),
        }
    }

    /// Every pixel format the capture queue offers (VIDIOC_ENUM_FMT).
    pub fn formats(&self) -> Result<Vec<FormatDesc>, FormatError> {
        let queue = self.capture_queue()?;
        let mut out = Vec::new();
        for index in 0.. {
            let mut d = b::v4l2_fmtdesc {
                index,
                type_: queue,
                ..Default::default()
            };
            match raw::enum_fmt(self.as_fd(), &mut d) {
                Ok(()) => {
                    let fourcc = Fourcc(d.pixelformat);
                    out.push(FormatDesc {
                        fourcc,
                        description: raw::cstr(&d.description),
                        flags: d.flags,
                        supported: PixelFormat::lookup(fourcc).is_some(),
                    });
                }
                Err(Errno::EINVAL) => break,
                Err(e) => return Err(self.ioctl_err("VIDIOC_ENUM_FMT", e)),
            }
        }
        Ok(out)
    }

    /// The frame sizes offered for `fourcc` (VIDIOC_ENUM_FRAMESIZES); `None` if the driver does not say.
    pub fn frame_sizes(&self, fourcc: Fourcc) -> Result<Option<FrameSizes>, FormatError> {
        let mut discrete = Vec::new();
        for index in 0.. {
            let mut s = b::v4l2_frmsizeenum {
                index,
                pixel_format: fourcc.0,
                ..Default::default()
            };
            match raw::enum_framesizes(self.as_fd(), &mut s) {
                Ok(()) => {
                    if s.type_ == b::v4l2_frmsizetypes_V4L2_FRMSIZE_TYPE_DISCRETE {
                        // SAFETY: the driver filled the `discrete` member, as `type_` says.
                        let d = unsafe { s.__bindgen_anon_1.discrete };
                        discrete.push((d.width, d.height));
                    } else {
                        // SAFETY: the driver filled the `stepwise` member (continuous or stepwise type).
                        let st = unsafe { s.__bindgen_anon_1.stepwise };
                        return Ok(Some(FrameSizes::Stepwise {
                            min: (st.min_width, st.min_height),
                            max: (st.max_width, st.max_height),
                            step: (st.step_width.max(1), st.step_height.max(1)),
                        }));
                    }
                }
                Err(Errno::EINVAL) | Err(Errno::ENOTTY) => break,
                Err(e) => return Err(self.ioctl_err("VIDIOC_ENUM_FRAMESIZES", e)),
            }
        }
        Ok((!discrete.is_empty()).then_some(FrameSizes::Discrete(discrete)))
    }

    /// The frame intervals offered for `fourcc` at `w`x`h` (VIDIOC_ENUM_FRAMEINTERVALS).
    pub fn frame_intervals(
        &self,
        fourcc: Fourcc,
        w: u32,
        h: u32,
    ) -> Result<Option<FrameIntervals>, FormatError> {
        let mut discrete = Vec::new();
        for index in 0.. {
            let mut s = b::v4l2_frmivalenum {
                index,
                pixel_format: fourcc.0,
                width: w,
                height: h,
                ..Default::default()
            };
            match raw::enum_frameintervals(self.as_fd(), &mut s) {
                Ok(()) => {
                    let fr = |f: b::v4l2_fract| Fraction {
                        numerator: f.numerator,
                        denominator: f.denominator,
                    };
                    if s.type_ == b::v4l2_frmivaltypes_V4L2_FRMIVAL_TYPE_DISCRETE {
                        // SAFETY: the driver filled the `discrete` member, as `type_` says.
                        discrete.push(fr(unsafe { s.__bindgen_anon_1.discrete }));
                    } else {
                        // SAFETY: the driver filled the `stepwise` member (continuous or stepwise type).
                        let st = unsafe { s.__bindgen_anon_1.stepwise };
                        return Ok(Some(FrameIntervals::Stepwise {
                            min: fr(st.min),
                            max: fr(st.max),
                            step: fr(st.step),
                        }));
                    }
                }
                Err(Errno::EINVAL) | Err(Errno::ENOTTY) => break,
                Err(e) => return Err(self.ioctl_err("VIDIOC_ENUM_FRAMEINTERVALS", e)),
            }
        }
        Ok((!discrete.is_empty()).then_some(FrameIntervals::Discrete(discrete)))
    }

    /// The current format (VIDIOC_G_FMT).
    pub fn format(&self) -> Result<Format, FormatError> {
        let queue = self.capture_queue()?;
        let mut f = b::v4l2_format {
            type_: queue,
            ..Default::default()
        };
        raw::g_fmt(self.as_fd(), &mut f).map_err(|e| self.ioctl_err("VIDIOC_G_FMT", e))?;
        Ok(format_from_raw(&f))
    }

    /// Negotiates a format: checks the fourcc against what the device offers and what dmacam supports,
    /// picks the closest offered size, sets it (VIDIOC_S_FMT) and the frame rate (VIDIOC_S_PARM), and
    /// returns what the device actually set. Errors name what the device does offer.
    pub fn negotiate(&self, req: &FormatRequest) -> Result<Format, FormatError> {
        let queue = self.capture_queue()?;
        let current = self.format()?;
        let offered = self.formats()?;
        let fourcc = req.fourcc.unwrap_or(current.fourcc);
        let path = self.path().to_path_buf();
        if !offered.iter().any(|d| d.fourcc == fourcc) {
            let names: Vec<String> = offered.iter().map(|d| fourcc_name(d.fourcc)).collect();
            let first = offered
                .iter()
                .find(|d| d.supported)
                .map(|d| fourcc_name(d.fourcc))
                .unwrap_or_default();
            return Err(FormatError::NotOffered {
                path,
                format: fourcc_name(fourcc),
                offered: names.join(" "),
                first,
            });
        }
        if PixelFormat::lookup(fourcc).is_none() {
            return Err(FormatError::Unsupported {
                path,
                format: fourcc_name(fourcc),
                supported: supported_names(),
            });
        }
        let (w, h) = match req.size {
            Some((w, h)) => self.closest_size(fourcc, w, h)?,
            None => (current.width, current.height),
        };
        let mut f = b::v4l2_format {
            type_: queue,
            ..Default::default()
        };
        if queue == BUF_TYPE_CAPTURE_MPLANE {
            // SAFETY: writing plain integers into the `pix_mp` member of a zeroed union.
            let mp = unsafe { &mut f.fmt.pix_mp };
            mp.width = w;
            mp.height = h;
            mp.pixelformat = fourcc.0;
            mp.field = b::v4l2_field_V4L2_FIELD_NONE;
        } else {
            // SAFETY: writing plain integers into the `pix` member of a zeroed union.
            let pix = unsafe { &mut f.fmt.pix };
            pix.width = w;
            pix.height = h;
            pix.pixelformat = fourcc.0;
            pix.field = b::v4l2_field_V4L2_FIELD_NONE;
        }
        raw::s_fmt(self.as_fd(), &mut f).map_err(|e| self.ioctl_err("VIDIOC_S_FMT", e))?;
        let got = format_from_raw(&f);
        if got.fourcc != fourcc {
            return Err(FormatError::NotOffered {
                path,
                format: fourcc_name(fourcc),
                offered: format!("{} instead", fourcc_name(got.fourcc)),
                first: fourcc_name(got.fourcc),
            });
        }
        if (got.width, got.height) != (w, h) {
            tracing::warn!(
                "{}: asked for {w}x{h}, the device set {}x{}",
                self.path().display(),
                got.width,
                got.height
            );
        }
        if let Some(fps) = req.fps {
            self.set_fps(queue, fps)?;
        }
        tracing::debug!(device = %self.path().display(), format = %got, "format set");
        Ok(got)
    }

    fn closest_size(&self, fourcc: Fourcc, w: u32, h: u32) -> Result<(u32, u32), FormatError> {
        let sizes = self.frame_sizes(fourcc)?;
        let Some(sizes) = sizes else {
            return Ok((w, h));
        };
        match &sizes {
            FrameSizes::Discrete(list) => {
                if list.contains(&(w, h)) {
                    return Ok((w, h));
                }
                let dist = |&(a, b): &(u32, u32)| {
                    (i64::from(a) - i64::from(w)).abs() + (i64::from(b) - i64::from(h)).abs()
                };
                let best = list.iter().min_by_key(|s| dist(s)).copied();
                match best {
                    Some(best) if dist(&best) * 8 <= i64::from(w) + i64::from(h) => {
                        tracing::warn!(
                            "{}: {w}x{h} is not offered for {}; using the closest, {}x{}",
                            self.path().display(),
                            fourcc_name(fourcc),
                            best.0,
                            best.1
                        );
                        Ok(best)
                    }
                    _ => Err(FormatError::NoSize {
                        path: self.path().to_path_buf(),
                        format: fourcc_name(fourcc),
                        w,
                        h,
                        offered: sizes.to_string(),
                    }),
                }
            }
            FrameSizes::Stepwise { min, max, .. } => {
                if w < min.0 || h < min.1 || w > max.0 || h > max.1 {
                    return Err(FormatError::NoSize {
                        path: self.path().to_path_buf(),
                        format: fourcc_name(fourcc),
                        w,
                        h,
                        offered: sizes.to_string(),
                    });
                }
                Ok((w, h))
            }
        }
    }

    /// The current frame interval (VIDIOC_G_PARM).
    pub fn frame_interval(&self) -> Result<Fraction, FormatError> {
        let mut p = b::v4l2_streamparm {
            type_: self.capture_queue()?,
            ..Default::default()
        };
        raw::g_parm(self.as_fd(), &mut p).map_err(|e| self.ioctl_err("VIDIOC_G_PARM", e))?;
        // SAFETY: the driver answered in the `capture` member for a capture queue.
        let t = unsafe { p.parm.capture.timeperframe };
        Ok(Fraction {
            numerator: t.numerator,
            denominator: t.denominator,
        })
    }

    /// Sets the frame rate (VIDIOC_S_PARM); returns the interval the device chose.
    pub(crate) fn set_fps(&self, queue: u32, fps: u32) -> Result<Fraction, FormatError> {
        let mut p = b::v4l2_streamparm {
            type_: queue,
            ..Default::default()
        };
        // SAFETY: writing plain integers into the `capture` member of a zeroed union.
        let cap = unsafe { &mut p.parm.capture };
        cap.timeperframe.numerator = 1;
        cap.timeperframe.denominator = fps.max(1);
        raw::s_parm(self.as_fd(), &mut p).map_err(|e| self.ioctl_err("VIDIOC_S_PARM", e))?;
        // SAFETY: the driver answered in the `capture` member for a capture queue.
        let t = unsafe { p.parm.capture.timeperframe };
        let got = Fraction {
            numerator: t.numerator,
            denominator: t.denominator,
        };
        if (got.fps() - f64::from(fps)).abs() > 0.5 {
            tracing::warn!(
                "{}: asked for {fps} fps, the device set {:.2}",
                self.path().display(),
                got.fps()
            );
        }
        Ok(got)
    }
}

/// The formats dmacam supports, as a space-separated list.
pub fn supported_names() -> String {
    let mut v: Vec<String> = SUPPORTED.iter().map(|p| fourcc_name(p.fourcc)).collect();
    v.dedup();
    v.join(" ")
}

fn format_from_raw(f: &b::v4l2_format) -> Format {
    if f.type_ == BUF_TYPE_CAPTURE_MPLANE {
        // SAFETY: the multi-planar queue type means the `pix_mp` member is the one in use.
        let mp = unsafe { &f.fmt.pix_mp };
        let n = usize::from(mp.num_planes).clamp(1, 8);
        Format {
            fourcc: Fourcc(mp.pixelformat),
            width: mp.width,
            height: mp.height,
            mplane: true,
            planes: mp.plane_fmt[..n]
                .iter()
                .map(|p| PlaneFormat {
                    bytesperline: p.bytesperline,
                    sizeimage: p.sizeimage,
                })
                .collect(),
            colorspace: mp.colorspace,
            // SAFETY: both union members are plain u8 of the same position.
            ycbcr_enc: u32::from(unsafe { mp.__bindgen_anon_1.ycbcr_enc }),
            quantization: u32::from(mp.quantization),
        }
    } else {
        // SAFETY: the single-planar queue type means the `pix` member is the one in use.
        let pix = unsafe { &f.fmt.pix };
        Format {
            fourcc: Fourcc(pix.pixelformat),
            width: pix.width,
            height: pix.height,
            mplane: false,
            planes: vec![PlaneFormat {
                bytesperline: pix.bytesperline,
                sizeimage: pix.sizeimage,
            }],
            colorspace: pix.colorspace,
            // SAFETY: both union members are plain u32 of the same position.
            ycbcr_enc: unsafe { pix.__bindgen_anon_1.ycbcr_enc },
            quantization: pix.quantization,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_layouts() {
        assert_eq!(parse_fourcc("nv12m").unwrap(), Fourcc::new(b"NM12"));
        assert_eq!(parse_fourcc("YUYV").unwrap(), Fourcc::new(b"YUYV"));
        assert_eq!(fourcc_name(Fourcc::new(b"NM12")), "NV12M");
        let nv12 = PixelFormat::lookup(Fourcc::new(b"NV12")).unwrap();
        assert_eq!(nv12.plane_size(1, 641, 361), (321, 181));
        let f = Format {
            fourcc: nv12.fourcc,
            width: 640,
            height: 360,
            mplane: false,
            planes: vec![PlaneFormat {
                bytesperline: 640,
                sizeimage: 640 * 540,
            }],
            colorspace: 0,
            ycbcr_enc: 0,
            quantization: 0,
        };
        assert_eq!(f.color_plane_location(nv12, 1), (0, 640 * 360, 640));
        let yu12 = PixelFormat::lookup(Fourcc::new(b"YU12")).unwrap();
        assert_eq!(
            f.color_plane_location(yu12, 2),
            (0, 640 * 360 + 320 * 180, 320)
        );
    }
}
