//! Format negotiation on a device: VIDIOC_ENUM_FMT, ENUM_FRAMESIZES, ENUM_FRAMEINTERVALS, G/S_FMT, G/S_PARM.

use std::os::fd::AsFd;

use nix::errno::Errno;

use crate::device::{Device, NodeKind};
use crate::dmabuf::Fourcc;
use crate::raw::{self, b};

use super::catalogue::{fourcc_name, supported_names, PixelFormat};
use super::desc::{
    format_from_raw, Format, FormatDesc, FormatError, FormatRequest, Fraction, FrameIntervals,
    FrameSizes, BUF_TYPE_CAPTURE, BUF_TYPE_CAPTURE_MPLANE,
};

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
