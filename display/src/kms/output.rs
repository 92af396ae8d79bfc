//! Choosing what to drive: a connected connector, its mode, a CRTC that can drive it and a plane of that CRTC
//! that scans out the frame's format; and where on the mode the frame goes.

use std::fmt;
use std::str::FromStr;

use dmacam_capture::Fourcc;
use drm::control::{connector, crtc, plane, Device as _, Mode, ModeTypeFlags};

use super::card::Card;
use super::error::KmsError;

/// `--mode WxH[@R]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModeRequest {
    pub width: u32,
    pub height: u32,
    /// Refresh rate in Hz; matched to the nearest 0.5 Hz. `None` takes the highest refresh of that size.
    pub refresh: Option<f64>,
}

impl FromStr for ModeRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || {
            format!("'{s}' is not a mode; give WIDTHxHEIGHT or WIDTHxHEIGHT@HZ, e.g. 1280x720@60")
        };
        let (size, refresh) = match s.split_once('@') {
            Some((size, r)) => {
                let r: f64 = r.trim().parse().map_err(|_| err())?;
                if !(r > 0.0 && r < 1000.0) {
                    return Err(err());
                }
                (size, Some(r))
            }
            None => (s, None),
        };
        let (w, h) = size.split_once(['x', 'X']).ok_or_else(err)?;
        let width: u32 = w.trim().parse().map_err(|_| err())?;
        let height: u32 = h.trim().parse().map_err(|_| err())?;
        if width == 0 || height == 0 {
            return Err(err());
        }
        Ok(ModeRequest {
            width,
            height,
            refresh,
        })
    }
}

impl fmt::Display for ModeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)?;
        if let Some(r) = self.refresh {
            write!(f, "@{r}")?;
        }
        Ok(())
    }
}

/// What the user asked for; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct OutputRequest {
    /// Connector name as the kernel spells it, e.g. `HDMI-A-1`, `Virtual-1`.
    pub connector: Option<String>,
    pub mode: Option<ModeRequest>,
}

/// The kind of plane chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaneKind {
    Primary,
    Overlay,
}

impl PlaneKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlaneKind::Primary => "primary",
            PlaneKind::Overlay => "overlay",
        }
    }
}

/// Where the frame goes: a source rectangle of the framebuffer (pixels) shown in a destination rectangle of
/// the CRTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub src: (u32, u32, u32, u32),
    pub dst: (i32, i32, u32, u32),
}

impl Placement {
    /// Whether the plane has to scale.
    pub fn scales(&self) -> bool {
        self.src.2 != self.dst.2 || self.src.3 != self.dst.3
    }

    /// Candidates for a `frame` on a `mode`, best first: the whole frame as large as fits with its aspect
    /// ratio kept and centred (needs plane scaling unless the sizes match), then unscaled and centred
    /// (cropped to the mode if larger).
    pub fn candidates(frame: (u32, u32), mode: (u32, u32)) -> Vec<Placement> {
        let (fw, fh) = frame;
        let (mw, mh) = mode;
        let mut out = Vec::new();
        // Aspect fit: scale = min(mw/fw, mh/fh), computed in integers.
        let (dw, dh) = if u64::from(mw) * u64::from(fh) <= u64::from(mh) * u64::from(fw) {
            (
                mw,
                ((u64::from(fh) * u64::from(mw)) / u64::from(fw)).max(1) as u32,
            )
        } else {
            (
                ((u64::from(fw) * u64::from(mh)) / u64::from(fh)).max(1) as u32,
                mh,
            )
        };
        out.push(Placement {
            src: (0, 0, fw, fh),
            dst: (((mw - dw) / 2) as i32, ((mh - dh) / 2) as i32, dw, dh),
        });
        // Unscaled, centred, cropped where the frame is larger.
        let (sw, sh) = (fw.min(mw), fh.min(mh));
        let unscaled = Placement {
            src: ((fw - sw) / 2, (fh - sh) / 2, sw, sh),
            dst: (((mw - sw) / 2) as i32, ((mh - sh) / 2) as i32, sw, sh),
        };
        if unscaled != out[0] {
            out.push(unscaled);
        }
        out
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sx, sy, sw, sh) = self.src;
        let (dx, dy, dw, dh) = self.dst;
        write!(f, "{sw}x{sh}+{sx}+{sy} -> {dw}x{dh}+{dx}+{dy}")
    }
}

/// The chosen connector, mode, CRTC and plane.
#[derive(Debug, Clone)]
pub struct Output {
    pub connector: connector::Handle,
    pub connector_name: String,
    pub mode: Mode,
    pub crtc: crtc::Handle,
    pub plane: plane::Handle,
    pub plane_kind: PlaneKind,
    /// The DRM format the plane will scan out.
    pub format: Fourcc,
}

impl Output {
    /// The mode's size.
    pub fn mode_size(&self) -> (u32, u32) {
        let (w, h) = self.mode.size();
        (u32::from(w), u32::from(h))
    }

    /// The mode as `WxH@R`.
    pub fn mode_name(&self) -> String {
        mode_name(&self.mode)
    }

    /// Picks connector, mode, CRTC and plane on `card` for frames in DRM format `format`.
    pub fn select(card: &Card, req: &OutputRequest, format: Fourcc) -> Result<Output, KmsError> {
        let path = card.path().to_path_buf();
        let res = card
            .resource_handles()
            .map_err(|e| KmsError::ioctl(&path, "DRM_IOCTL_MODE_GETRESOURCES", e))?;
        let mut infos = Vec::new();
        for &h in res.connectors() {
            let info = card
                .get_connector(h, false)
                .map_err(|e| KmsError::ioctl(&path, "DRM_IOCTL_MODE_GETCONNECTOR", e))?;
            if info.interface() == connector::Interface::Writeback {
                continue;
            }
            infos.push(info);
        }
        let listing = || {
            if infos.is_empty() {
                return "none".to_owned();
            }
            infos
                .iter()
                .map(|i| format!("{} {}", connector_name(i), state_name(i.state())))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let conn = match &req.connector {
            Some(name) => {
                let c = infos
                    .iter()
                    .find(|i| connector_name(i).eq_ignore_ascii_case(name))
                    .ok_or_else(|| KmsError::NoSuchConnector {
                        path: path.clone(),
                        name: name.clone(),
                        connectors: listing(),
                    })?;
                if c.state() != connector::State::Connected {
                    return Err(KmsError::ConnectorNotConnected {
                        path: path.clone(),
                        connector: connector_name(c),
                        state: state_name(c.state()).to_owned(),
                        connectors: listing(),
                    });
                }
                c
            }
            None => infos
                .iter()
                .find(|i| i.state() == connector::State::Connected && !i.modes().is_empty())
                .ok_or_else(|| KmsError::NoConnectedConnector {
                    path: path.clone(),
                    connectors: listing(),
                })?,
        };
        let name = connector_name(conn);
        let mode =
            pick_mode(conn.modes(), req.mode.as_ref()).ok_or_else(|| KmsError::NoSuchMode {
                path: path.clone(),
                connector: name.clone(),
                requested: req
                    .mode
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "(any)".to_owned()),
                available: mode_list(conn.modes()),
            })?;

        // CRTC: the one already driving the connector, else the first one an encoder of it can use.
        let mut crtc = None;
        if let Some(enc) = conn.current_encoder() {
            if let Ok(e) = card.get_encoder(enc) {
                crtc = e.crtc();
            }
        }
        if crtc.is_none() {
            for &enc in conn.encoders() {
                if let Ok(e) = card.get_encoder(enc) {
                    if let Some(&c) = res.filter_crtcs(e.possible_crtcs()).first() {
                        crtc = Some(c);
                        break;
                    }
                }
            }
        }
        let crtc = crtc.ok_or_else(|| KmsError::NoCrtc {
            path: path.clone(),
            connector: name.clone(),
        })?;
        let crtc_index = res.crtcs().iter().position(|&c| c == crtc).unwrap_or(0);

        // Plane: the primary if it takes the format, else an overlay that does.
        let planes = card
            .plane_handles()
            .map_err(|e| KmsError::ioctl(&path, "DRM_IOCTL_MODE_GETPLANERESOURCES", e))?;
        let mut primary_formats = String::from("none");
        let mut overlay = None;
        let mut primary = None;
        for p in planes {
            let info = card
                .get_plane(p)
                .map_err(|e| KmsError::ioctl(&path, "DRM_IOCTL_MODE_GETPLANE", e))?;
            let possible = res.filter_crtcs(info.possible_crtcs());
            if !possible.contains(&crtc) {
                continue;
            }
            let kind = card.properties(p)?.enum_name("type");
            let takes = info.formats().contains(&format.0);
            match kind.as_deref() {
                Some("Primary") => {
                    primary_formats = info
                        .formats()
                        .iter()
                        .map(|&f| Fourcc(f).to_string())
                        .collect::<Vec<_>>()
                        .join(" ");
                    if takes && primary.is_none() {
                        primary = Some(p);
                    }
                }
                Some("Overlay") if takes && overlay.is_none() => overlay = Some(p),
                _ => {}
            }
        }
        let (plane, plane_kind) = match (primary, overlay) {
            (Some(p), _) => (p, PlaneKind::Primary),
            (None, Some(p)) => (p, PlaneKind::Overlay),
            (None, None) => {
                return Err(KmsError::NoPlane {
                    path,
                    crtc: crtc.into(),
                    format: format.to_string(),
                    primary_formats,
                })
            }
        };
        tracing::debug!(
            connector = %name,
            mode = %mode_name(&mode),
            crtc = u32::from(crtc),
            crtc_index,
            plane = u32::from(plane),
            kind = plane_kind.as_str(),
            "output selected"
        );
        Ok(Output {
            connector: conn.handle(),
            connector_name: name,
            mode,
            crtc,
            plane,
            plane_kind,
            format,
        })
    }
}

/// `HDMI-A-1` style name.
pub(crate) fn connector_name(info: &connector::Info) -> String {
    format!("{}-{}", info.interface().as_str(), info.interface_id())
}

fn state_name(s: connector::State) -> &'static str {
    match s {
        connector::State::Connected => "connected",
        connector::State::Disconnected => "disconnected",
        connector::State::Unknown => "unknown",
    }
}

/// `WxH@R` with the refresh rounded to 2 decimals (59.94).
pub(crate) fn mode_name(m: &Mode) -> String {
    let (w, h) = m.size();
    format!("{w}x{h}@{}", refresh_text(m))
}

fn refresh_hz(m: &Mode) -> f64 {
    let (_, _, htotal) = m.hsync();
    let (_, _, vtotal) = m.vsync();
    if htotal == 0 || vtotal == 0 {
        return f64::from(m.vrefresh());
    }
    f64::from(m.clock()) * 1000.0 / (f64::from(htotal) * f64::from(vtotal))
}

fn refresh_text(m: &Mode) -> String {
    let r = refresh_hz(m);
    let s = format!("{r:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn mode_list(modes: &[Mode]) -> String {
    if modes.is_empty() {
        return "no modes".to_owned();
    }
    let mut names: Vec<String> = Vec::new();
    for m in modes {
        let n = mode_name(m);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names.join(", ")
}

/// The requested mode, or the preferred one (else the first) when nothing was asked.
fn pick_mode(modes: &[Mode], req: Option<&ModeRequest>) -> Option<Mode> {
    let Some(req) = req else {
        return modes
            .iter()
            .find(|m| m.mode_type().contains(ModeTypeFlags::PREFERRED))
            .or_else(|| modes.first())
            .copied();
    };
    let same_size = modes.iter().filter(|m| {
        let (w, h) = m.size();
        u32::from(w) == req.width && u32::from(h) == req.height
    });
    match req.refresh {
        Some(r) => same_size
            .filter(|m| (refresh_hz(m) - r).abs() <= 0.5)
            .min_by(|a, b| {
                let da = (refresh_hz(a) - r).abs();
                let db = (refresh_hz(b) - r).abs();
                da.total_cmp(&db)
            })
            .copied(),
        None => {
            let all: Vec<&Mode> = same_size.collect();
            all.iter()
                .find(|m| m.mode_type().contains(ModeTypeFlags::PREFERRED))
                .or_else(|| {
                    all.iter()
                        .max_by(|a, b| refresh_hz(a).total_cmp(&refresh_hz(b)))
                })
                .map(|m| **m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_requests_parse() {
        let m: ModeRequest = "1280x720@60".parse().unwrap();
        assert_eq!((m.width, m.height, m.refresh), (1280, 720, Some(60.0)));
        let m: ModeRequest = "640x480".parse().unwrap();
        assert_eq!(m.refresh, None);
        assert_eq!(m.to_string(), "640x480");
        assert!("640".parse::<ModeRequest>().is_err());
        assert!("0x480".parse::<ModeRequest>().is_err());
        assert!("640x480@".parse::<ModeRequest>().is_err());
        assert!("640x480@-5".parse::<ModeRequest>().is_err());
    }

    #[test]
    fn placements_keep_aspect_and_centre() {
        // Same size: one exact candidate.
        let c = Placement::candidates((640, 480), (640, 480));
        assert_eq!(c.len(), 1);
        assert!(!c[0].scales());
        assert_eq!(c[0].dst, (0, 0, 640, 480));
        // 16:9 frame on a 4:3 mode: letterboxed when scaled, centred when not.
        let c = Placement::candidates((640, 360), (1024, 768));
        assert_eq!(c[0].dst, (0, 96, 1024, 576));
        assert_eq!(c[1].src, (0, 0, 640, 360));
        assert_eq!(c[1].dst, (192, 204, 640, 360));
        // Larger than the mode: the unscaled candidate crops the centre.
        let c = Placement::candidates((1920, 1080), (1280, 1024));
        assert_eq!(c[0].dst, (0, 152, 1280, 720));
        assert_eq!(c[1].src, (320, 28, 1280, 1024));
        assert_eq!(c[1].dst, (0, 0, 1280, 1024));
    }
}
