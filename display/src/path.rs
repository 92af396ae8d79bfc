//! Which buffer path carries frames to the compositor, chosen from what the compositor accepts, and said
//! out loud: passthrough (the camera's own dma-buf), gpu (the render stage's XRGB8888 dma-buf) or shm (one
//! counted CPU copy into wl_shm).

use std::fmt;
use std::str::FromStr;

use dmacam_capture::colour::{Colorimetry, Encoding, Range};
use dmacam_capture::Fourcc;

use crate::formats::{lookup, DRM_FORMAT_MOD_INVALID};
use crate::viewer::capabilities::Capabilities;

/// What the user asked for (`--path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathRequest {
    #[default]
    Auto,
    Passthrough,
    Gpu,
    Shm,
}

impl FromStr for PathRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(PathRequest::Auto),
            "passthrough" => Ok(PathRequest::Passthrough),
            "gpu" => Ok(PathRequest::Gpu),
            "shm" => Ok(PathRequest::Shm),
            _ => Err(format!(
                "unknown path '{s}' (use auto, passthrough, gpu or shm)"
            )),
        }
    }
}

/// The path frames take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferPath {
    /// The camera's dma-buf goes to the compositor unchanged.
    Passthrough,
    /// The render stage converts into an XRGB8888 dma-buf, which goes to the compositor.
    Gpu,
    /// The CPU copies each frame into a wl_shm buffer.
    Shm,
}

impl BufferPath {
    pub fn as_str(self) -> &'static str {
        match self {
            BufferPath::Passthrough => "passthrough",
            BufferPath::Gpu => "gpu",
            BufferPath::Shm => "shm",
        }
    }
}

impl fmt::Display for BufferPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The chosen path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDecision {
    pub path: BufferPath,
    pub reason: String,
}

/// What the camera delivers and whether the GPU stage can run.
#[derive(Debug, Clone)]
pub struct PathInputs {
    /// The camera's V4L2 format.
    pub camera: Fourcc,
    /// The camera buffers' DRM modifier (LINEAR for V4L2).
    pub modifier: u64,
    /// `Ok` if the render stage can turn this camera format into XRGB8888 dma-bufs, else why not.
    pub gpu: Result<(), String>,
    /// What the camera's Y'CbCr means (`None` for R'G'B' formats): a compositor that is not told reads
    /// Y'CbCr dma-bufs as BT.601 limited range.
    pub colour: Option<Colorimetry>,
}

/// What a compositor assumes of a Y'CbCr dma-buf it is told nothing about (Weston, and the others without
/// wp_color_representation_v1).
pub const COMPOSITOR_ASSUMES: Colorimetry = Colorimetry {
    encoding: Encoding::Bt601,
    range: Range::Limited,
};

/// `c` as the path lines say it: `BT.709 full-range`.
pub fn colorimetry_name(c: Colorimetry) -> String {
    let enc = match c.encoding {
        Encoding::Bt601 => "BT.601".to_owned(),
        Encoding::Bt709 => "BT.709".to_owned(),
        Encoding::Bt2020 => "BT.2020".to_owned(),
        Encoding::Smpte240m => "SMPTE 240M".to_owned(),
        Encoding::Other(n) => format!("ycbcr_enc {n}"),
    };
    let range = match c.range {
        Range::Limited => "limited",
        Range::Full => "full",
    };
    format!("{enc} {range}-range")
}

/// wp_color_representation_v1's (coefficients, range) for `c`, if the compositor offers the protocol and
/// takes that pair: what the viewer tells it on passthrough.
pub fn representation_for(caps: &Capabilities, c: Colorimetry) -> Option<(u32, u32)> {
    // The protocol's enums: coefficients bt709 2, bt601 4, smpte240 5, bt2020 6; range full 1, limited 2.
    let coefficients = match c.encoding {
        Encoding::Bt709 => 2,
        Encoding::Bt601 => 4,
        Encoding::Smpte240m => 5,
        Encoding::Bt2020 => 6,
        Encoding::Other(_) => return None,
    };
    let range = match c.range {
        Range::Full => 1,
        Range::Limited => 2,
    };
    let pair = (coefficients, range);
    caps.colour_representation
        .as_ref()?
        .contains(&pair)
        .then_some(pair)
}

/// What the compositor is told of the camera's Y'CbCr on passthrough, for the path line, if it is.
fn told(caps: &Capabilities, input: &PathInputs) -> Option<String> {
    let c = input.colour?;
    representation_for(caps, c).map(|_| {
        format!(
            "the compositor is told the frames are {} Y'CbCr (wp_color_representation_v1)",
            colorimetry_name(c)
        )
    })
}

/// Why passing the camera's dma-bufs through would show wrong colours, if it would: its Y'CbCr is not
/// what the compositor assumes, and the compositor cannot be told (no wp_color_representation_v1, or not
/// with this matrix and range).
pub fn colour_mismatch(caps: &Capabilities, input: &PathInputs) -> Option<String> {
    let c = input.colour.filter(|&c| c != COMPOSITOR_ASSUMES)?;
    if representation_for(caps, c).is_some() {
        return None;
    }
    Some(format!(
        "the camera's {} is {} Y'CbCr, which the compositor would read as {} (it cannot be told otherwise)",
        input.camera,
        colorimetry_name(c),
        colorimetry_name(COMPOSITOR_ASSUMES)
    ))
}

const XR24: Fourcc = Fourcc::new(b"XR24");

fn modifier_name(m: u64) -> String {
    match m {
        0 => "LINEAR".into(),
        DRM_FORMAT_MOD_INVALID => "INVALID (implicit)".into(),
        m => format!("{m:#x}"),
    }
}

/// Chooses the path for `req` given the compositor's `caps`; an impossible forced path is an error that
/// says what the compositor offers and what to try instead.
pub fn select_path(
    req: PathRequest,
    caps: &Capabilities,
    input: &PathInputs,
) -> Result<PathDecision, String> {
    let drm = lookup(input.camera).map(|i| i.drm);
    let dmabuf = caps.linux_dmabuf_version.is_some();
    let cam_ok = drm.is_some_and(|d| caps.dmabuf_accepts(d, input.modifier));
    let gpu_ok = input.gpu.is_ok() && caps.dmabuf_accepts(XR24, crate::DRM_FORMAT_MOD_LINEAR);
    let shm_ok = lookup(input.camera).is_some();
    let source = if caps.feedback {
        "linux-dmabuf v4 feedback"
    } else {
        "linux-dmabuf v3 modifier events"
    };
    let cam = format!("{} ({})", input.camera, modifier_name(input.modifier));
    let no_dmabuf = "the compositor offers no zwp_linux_dmabuf_v1";
    let refuse_cam = || {
        match drm {
        None => format!("dmacam knows no DRM format for the camera's {}", input.camera),
        Some(d) if !dmabuf => format!("{no_dmabuf} (needed for {d})"),
        Some(d) => format!(
            "the compositor does not take {d} with the {} modifier over linux-dmabuf (its {source} list {} format/modifier pairs)",
            modifier_name(input.modifier),
            caps.dmabuf_formats.len()
        ),
    }
    };
    let gpu_refusal = || match &input.gpu {
        Err(e) => format!("the GPU stage is unavailable: {e}"),
        Ok(()) if !dmabuf => no_dmabuf.to_owned(),
        Ok(()) => "the compositor does not take XR24 (LINEAR) dma-bufs".to_owned(),
    };
    let decide = |path, reason: String| Ok(PathDecision { path, reason });
    let colours_off = colour_mismatch(caps, input);
    let off = match (&colours_off, told(caps, input)) {
        (Some(why), _) => format!("; but {why}: colours will be off"),
        (None, Some(told)) => format!("; {told}"),
        (None, None) => String::new(),
    };
    match req {
        PathRequest::Passthrough if cam_ok => decide(
            BufferPath::Passthrough,
            format!("requested; the compositor takes the camera's {cam} dma-bufs ({source}){off}"),
        ),
        PathRequest::Passthrough => Err(format!(
            "--path passthrough is impossible: {}; try --path gpu or --path shm",
            refuse_cam()
        )),
        PathRequest::Gpu if gpu_ok => decide(
            BufferPath::Gpu,
            format!(
                "requested; the render stage converts {} into XR24 dma-bufs",
                input.camera
            ),
        ),
        PathRequest::Gpu => Err(format!(
            "--path gpu is impossible: {}; try --path passthrough or --path shm",
            gpu_refusal()
        )),
        PathRequest::Shm if shm_ok => decide(
            BufferPath::Shm,
            format!("requested; every frame is copied once by the CPU into wl_shm ({cam})"),
        ),
        PathRequest::Shm => Err(format!(
            "--path shm is impossible: the shm fallback cannot read {}",
            input.camera
        )),
        PathRequest::Auto if cam_ok && (colours_off.is_none() || !gpu_ok) => decide(
            BufferPath::Passthrough,
            format!(
                "zero-copy: the compositor takes the camera's {cam} dma-bufs ({source}){off}{}",
                if colours_off.is_some() {
                    format!(" ({})", gpu_refusal())
                } else {
                    String::new()
                }
            ),
        ),
        PathRequest::Auto if cam_ok => decide(
            BufferPath::Gpu,
            format!(
                "{}: colours would be off on passthrough; the render stage converts {} with the camera's own \
                 colorimetry into XR24 dma-bufs instead",
                colours_off.as_deref().unwrap_or_default(),
                input.camera
            ),
        ),
        PathRequest::Auto if gpu_ok => decide(
            BufferPath::Gpu,
            format!(
                "{}; the render stage converts {} into XR24 dma-bufs instead",
                refuse_cam(),
                input.camera
            ),
        ),
        PathRequest::Auto if shm_ok => decide(
            BufferPath::Shm,
            format!(
                "{}, and {}; falling back to wl_shm with one CPU copy per frame",
                refuse_cam(),
                gpu_refusal()
            ),
        ),
        PathRequest::Auto => Err(format!(
            "no way to show {}: {}, {}, and the shm fallback cannot read it",
            input.camera,
            refuse_cam(),
            gpu_refusal()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(formats: &[(&[u8; 4], u64)]) -> Capabilities {
        Capabilities {
            linux_dmabuf_version: Some(3),
            dmabuf_formats: formats.iter().map(|(f, m)| (Fourcc::new(f), *m)).collect(),
            ..Default::default()
        }
    }

    fn input(f: &[u8; 4], gpu: bool) -> PathInputs {
        PathInputs {
            camera: Fourcc::new(f),
            modifier: 0,
            gpu: if gpu {
                Ok(())
            } else {
                Err("no Vulkan device".into())
            },
            colour: Some(COMPOSITOR_ASSUMES),
        }
    }

    #[test]
    fn auto_takes_the_gpu_when_the_compositor_would_get_the_colours_wrong() {
        let c = caps(&[(b"YUYV", 0), (b"XR24", 0)]);
        let bt709_full = Colorimetry {
            encoding: Encoding::Bt709,
            range: Range::Full,
        };
        let mut i = input(b"YUYV", true);
        i.colour = Some(bt709_full);
        let d = select_path(PathRequest::Auto, &c, &i).unwrap();
        assert_eq!(d.path, BufferPath::Gpu, "{}", d.reason);
        assert!(
            d.reason.contains(
                "BT.709 full-range Y'CbCr, which the compositor would read as BT.601 limited-range"
            ),
            "{}",
            d.reason
        );
        // No GPU: passthrough, and the reason says the colours will be off.
        i.gpu = Err("no Vulkan device".into());
        let d = select_path(PathRequest::Auto, &c, &i).unwrap();
        assert_eq!(d.path, BufferPath::Passthrough);
        assert!(d.reason.contains("colours will be off"), "{}", d.reason);
        assert!(d.reason.contains("no Vulkan device"), "{}", d.reason);
        // Forced passthrough is kept, and warned about.
        let d = select_path(PathRequest::Passthrough, &c, &i).unwrap();
        assert!(d.reason.contains("colours will be off"), "{}", d.reason);
        // R'G'B' and BT.601 limited Y'CbCr pass through as before.
        for (f, colour) in [(b"XR24", None), (b"YUYV", Some(COMPOSITOR_ASSUMES))] {
            let mut i = input(f, true);
            i.colour = colour;
            let d = select_path(PathRequest::Auto, &c, &i).unwrap();
            assert_eq!(d.path, BufferPath::Passthrough, "{}", d.reason);
            assert!(!d.reason.contains("colours"), "{}", d.reason);
        }
    }

    #[test]
    fn a_compositor_told_the_colorimetry_keeps_passthrough() {
        let bt709 = |range| Colorimetry {
            encoding: Encoding::Bt709,
            range,
        };
        let mut i = input(b"YUYV", true);
        i.colour = Some(bt709(Range::Full));
        // wp_color_representation_v1 with BT.709 full and limited, BT.601 limited.
        let mut c = caps(&[(b"YUYV", 0), (b"XR24", 0)]);
        c.colour_representation = Some(vec![(2, 1), (2, 2), (4, 2)]);
        assert_eq!(representation_for(&c, bt709(Range::Full)), Some((2, 1)));
        assert_eq!(representation_for(&c, COMPOSITOR_ASSUMES), Some((4, 2)));
        assert!(colour_mismatch(&c, &i).is_none());
        let d = select_path(PathRequest::Auto, &c, &i).unwrap();
        assert_eq!(d.path, BufferPath::Passthrough, "{}", d.reason);
        assert!(
            d.reason.contains(
                "the compositor is told the frames are BT.709 full-range Y'CbCr \
                 (wp_color_representation_v1)"
            ),
            "{}",
            d.reason
        );
        assert!(!d.reason.contains("colours will be off"), "{}", d.reason);
        // The protocol without that pair (BT.601 limited only): the gpu path, as without the protocol.
        c.colour_representation = Some(vec![(4, 2)]);
        assert_eq!(representation_for(&c, bt709(Range::Full)), None);
        let d = select_path(PathRequest::Auto, &c, &i).unwrap();
        assert_eq!(d.path, BufferPath::Gpu, "{}", d.reason);
        // No protocol: nothing is told, whatever the colorimetry.
        c.colour_representation = None;
        assert_eq!(representation_for(&c, COMPOSITOR_ASSUMES), None);
        // A matrix the protocol cannot name is never told.
        c.colour_representation = Some(vec![(2, 1), (4, 2)]);
        let other = Colorimetry {
            encoding: Encoding::Other(99),
            range: Range::Full,
        };
        assert_eq!(representation_for(&c, other), None);
    }

    #[test]
    fn auto_prefers_passthrough_then_gpu_then_shm() {
        let c = caps(&[(b"YUYV", 0), (b"XR24", 0)]);
        let d = select_path(PathRequest::Auto, &c, &input(b"YUYV", true)).unwrap();
        assert_eq!(d.path, BufferPath::Passthrough);
        let d = select_path(PathRequest::Auto, &c, &input(b"UYVY", true)).unwrap();
        assert_eq!(d.path, BufferPath::Gpu);
        assert!(d.reason.contains("does not take UYVY"), "{}", d.reason);
        let d = select_path(PathRequest::Auto, &c, &input(b"UYVY", false)).unwrap();
        assert_eq!(d.path, BufferPath::Shm);
        assert!(d.reason.contains("no Vulkan device"), "{}", d.reason);
        let none = Capabilities::default();
        let d = select_path(PathRequest::Auto, &none, &input(b"YUYV", true)).unwrap();
        assert_eq!(d.path, BufferPath::Shm);
        assert!(d.reason.contains("no zwp_linux_dmabuf_v1"), "{}", d.reason);
    }

    #[test]
    fn forced_paths_explain_refusals() {
        let c = caps(&[(b"XR24", 0)]);
        let e = select_path(PathRequest::Passthrough, &c, &input(b"YUYV", true)).unwrap_err();
        assert!(e.contains("--path passthrough is impossible"), "{e}");
        let e = select_path(PathRequest::Gpu, &c, &input(b"YUYV", false)).unwrap_err();
        assert!(e.contains("no Vulkan device"), "{e}");
        assert!(select_path(PathRequest::Shm, &c, &input(b"MJPG", false)).is_err());
        // INVALID (implicit) modifier advertised: LINEAR buffers are still accepted.
        let c = caps(&[(b"NV12", DRM_FORMAT_MOD_INVALID)]);
        let d = select_path(PathRequest::Passthrough, &c, &input(b"NV12", false)).unwrap();
        assert_eq!(d.path, BufferPath::Passthrough);
        assert_eq!("gpu".parse::<PathRequest>().unwrap(), PathRequest::Gpu);
        assert!("x".parse::<PathRequest>().is_err());
    }
}
