//! What a device offers and sets: format descriptions, frame sizes and intervals, the negotiated [`Format`],
//! and the errors of listing and setting formats.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

use crate::dmabuf::Fourcc;
use crate::raw::b;

use super::catalogue::{fourcc_name, Layout, PixelFormat};

/// `V4L2_BUF_TYPE_VIDEO_CAPTURE`.
pub(crate) const BUF_TYPE_CAPTURE: u32 = 1;
/// `V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE`.
pub(crate) const BUF_TYPE_CAPTURE_MPLANE: u32 = 9;

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
    #[error(transparent)]
    PipeWire(#[from] crate::pipewire::PwError),
}

pub(super) fn format_from_raw(f: &b::v4l2_format) -> Format {
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
