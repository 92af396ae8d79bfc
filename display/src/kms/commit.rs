//! Commits: the atomic requests the scanout makes (modeset, flip, restore), their legacy equivalents, and the
//! snapshot of the configuration found at start that is put back at the end.

use std::io;

use drm::control::atomic::AtomicModeReq;
use drm::control::property::Value;
use drm::control::{
    connector, crtc, framebuffer, plane, AtomicCommitFlags, Device as _, Mode, PageFlipFlags,
    ResourceHandle,
};

use super::card::Card;
use super::colour::{COLOR_ENCODING, COLOR_RANGE};
use super::error::KmsError;
use super::output::{Output, Placement};
use super::props::Props;

/// An atomic request under construction; property names are resolved through [`Props`].
pub(crate) struct Request<'a> {
    card: &'a Card,
    req: AtomicModeReq,
}

impl<'a> Request<'a> {
    pub(crate) fn new(card: &'a Card) -> Self {
        Request {
            card,
            req: AtomicModeReq::new(),
        }
    }

    pub(crate) fn set<H: ResourceHandle>(
        &mut self,
        object: H,
        props: &Props,
        name: &'static str,
        value: u64,
    ) -> Result<(), KmsError> {
        let prop = props
            .handle(name)
            .ok_or_else(|| KmsError::MissingProperty {
                path: self.card.path().to_path_buf(),
                object: format!("object {}", Into::<u32>::into(object)),
                name,
            })?;
        self.req
            .add_property(object, prop, Value::UnsignedRange(value));
        Ok(())
    }

    /// Puts `fb` on `plane` of `crtc` at `placement` (or turns the plane off with `None`).
    pub(crate) fn plane(
        &mut self,
        plane: plane::Handle,
        props: &Props,
        crtc: crtc::Handle,
        fb: Option<framebuffer::Handle>,
        placement: &Placement,
    ) -> Result<(), KmsError> {
        match fb {
            Some(fb) => {
                let (sx, sy, sw, sh) = placement.src;
                let (dx, dy, dw, dh) = placement.dst;
                self.set(plane, props, "FB_ID", u64::from(u32::from(fb)))?;
                self.set(plane, props, "CRTC_ID", u64::from(u32::from(crtc)))?;
                // Source coordinates are 16.16 fixed point.
                self.set(plane, props, "SRC_X", u64::from(sx) << 16)?;
                self.set(plane, props, "SRC_Y", u64::from(sy) << 16)?;
                self.set(plane, props, "SRC_W", u64::from(sw) << 16)?;
                self.set(plane, props, "SRC_H", u64::from(sh) << 16)?;
                self.set(plane, props, "CRTC_X", dx as i64 as u64)?;
                self.set(plane, props, "CRTC_Y", dy as i64 as u64)?;
                self.set(plane, props, "CRTC_W", u64::from(dw))?;
                self.set(plane, props, "CRTC_H", u64::from(dh))?;
            }
            None => {
                self.set(plane, props, "FB_ID", 0)?;
                self.set(plane, props, "CRTC_ID", 0)?;
            }
        }
        Ok(())
    }

    pub(crate) fn commit(self, flags: AtomicCommitFlags) -> io::Result<()> {
        self.card.atomic_commit(flags, self.req)
    }
}

/// One plane's scanout properties as found.
#[derive(Debug, Clone)]
pub(crate) struct SavedPlane {
    handle: plane::Handle,
    props: Props,
    values: [u64; 10],
}

const PLANE_PROPS: [&str; 10] = [
    "FB_ID", "CRTC_ID", "SRC_X", "SRC_Y", "SRC_W", "SRC_H", "CRTC_X", "CRTC_Y", "CRTC_W", "CRTC_H",
];

/// The configuration of the CRTC (and of the connectors and planes around it) found at start.
#[derive(Debug)]
pub(crate) enum Saved {
    Atomic {
        crtc_props: Props,
        active: u64,
        /// The bytes of the mode blob (the blob itself may die with our first commit).
        mode: Option<Vec<u8>>,
        /// Every connector with its CRTC_ID.
        connectors: Vec<(connector::Handle, Props, u64)>,
        /// Every plane that can be on the CRTC.
        planes: Vec<SavedPlane>,
    },
    Legacy {
        info: crtc::Info,
        connectors: Vec<connector::Handle>,
    },
}

/// The object properties the scanout needs, looked up once.
#[derive(Debug, Clone)]
pub(crate) struct OutputProps {
    pub crtc: Props,
    pub connector: Props,
    pub plane: Props,
}

impl OutputProps {
    pub(crate) fn read(card: &Card, out: &Output) -> Result<Self, KmsError> {
        Ok(OutputProps {
            crtc: card.properties(out.crtc)?,
            connector: card.properties(out.connector)?,
            plane: card.properties(out.plane)?,
        })
    }
}

impl Saved {
    /// Snapshots the configuration around `out`'s CRTC.
    pub(crate) fn take(card: &Card, out: &Output) -> Result<Saved, KmsError> {
        let path = card.path();
        if !card.info().atomic {
            let info = card
                .get_crtc(out.crtc)
                .map_err(|e| KmsError::ioctl(path, "DRM_IOCTL_MODE_GETCRTC", e))?;
            let res = card
                .resource_handles()
                .map_err(|e| KmsError::ioctl(path, "DRM_IOCTL_MODE_GETRESOURCES", e))?;
            let mut connectors = Vec::new();
            for &c in res.connectors() {
                let Ok(ci) = card.get_connector(c, false) else {
                    continue;
                };
                let on_crtc = ci
                    .current_encoder()
                    .and_then(|e| card.get_encoder(e).ok())
                    .and_then(|e| e.crtc())
                    == Some(out.crtc);
                if on_crtc {
                    connectors.push(c);
                }
            }
            return Ok(Saved::Legacy { info, connectors });
        }
        let crtc_props = card.properties(out.crtc)?;
        let active = crtc_props.value("ACTIVE").unwrap_or(0);
        let mode = match crtc_props.value("MODE_ID") {
            Some(0) | None => None,
            Some(blob) => Some(
                card.get_property_blob(blob)
                    .map_err(|e| KmsError::ioctl(path, "DRM_IOCTL_MODE_GETPROPBLOB", e))?,
            ),
        };
        let res = card
            .resource_handles()
            .map_err(|e| KmsError::ioctl(path, "DRM_IOCTL_MODE_GETRESOURCES", e))?;
        let mut connectors = Vec::new();
        for &c in res.connectors() {
            let props = card.properties(c)?;
            let crtc_id = props.value("CRTC_ID").unwrap_or(0);
            connectors.push((c, props, crtc_id));
        }
        let mut planes = Vec::new();
        let crtc_index = res.crtcs().iter().position(|&c| c == out.crtc);
        for p in card
            .plane_handles()
            .map_err(|e| KmsError::ioctl(path, "DRM_IOCTL_MODE_GETPLANERESOURCES", e))?
        {
            let info = card
                .get_plane(p)
                .map_err(|e| KmsError::ioctl(path, "DRM_IOCTL_MODE_GETPLANE", e))?;
            if !res.filter_crtcs(info.possible_crtcs()).contains(&out.crtc) && crtc_index.is_some()
            {
                continue;
            }
            let props = card.properties(p)?;
            let mut values = [0u64; 10];
            for (v, name) in values.iter_mut().zip(PLANE_PROPS) {
                *v = props.value(name).unwrap_or(0);
            }
            planes.push(SavedPlane {
                handle: p,
                props,
                values,
            });
        }
        Ok(Saved::Atomic {
            crtc_props,
            active,
            mode,
            connectors,
            planes,
        })
    }

    /// Other planes showing something on `crtc` now (they would cover the frame), for turning off.
    pub(crate) fn busy_planes(
        &self,
        crtc: crtc::Handle,
        except: plane::Handle,
    ) -> Vec<(plane::Handle, Props)> {
        match self {
            Saved::Atomic { planes, .. } => planes
                .iter()
                .filter(|p| {
                    p.handle != except
                        && p.values[1] == u64::from(u32::from(crtc))
                        && p.values[0] != 0
                })
                .map(|p| (p.handle, p.props.clone()))
                .collect(),
            Saved::Legacy { .. } => Vec::new(),
        }
    }

    /// Other connectors driven by `crtc` now, for detaching.
    pub(crate) fn other_connectors(
        &self,
        crtc: crtc::Handle,
        except: connector::Handle,
    ) -> Vec<(connector::Handle, Props)> {
        match self {
            Saved::Atomic { connectors, .. } => connectors
                .iter()
                .filter(|(c, _, v)| *c != except && *v == u64::from(u32::from(crtc)))
                .map(|(c, p, _)| (*c, p.clone()))
                .collect(),
            Saved::Legacy { .. } => Vec::new(),
        }
    }

    /// Puts the snapshot back with one blocking commit that may modeset.
    pub(crate) fn restore(&self, card: &Card, out: &Output) -> Result<(), KmsError> {
        let path = card.path();
        match self {
            Saved::Legacy { info, connectors } => {
                let r = match (info.mode(), info.framebuffer()) {
                    (Some(mode), Some(fb)) => {
                        card.set_crtc(out.crtc, Some(fb), info.position(), connectors, Some(mode))
                    }
                    _ => card.set_crtc(out.crtc, None, (0, 0), &[], None),
                };
                r.map_err(|source| KmsError::Commit {
                    path: path.to_path_buf(),
                    what: "restore (SETCRTC)",
                    source,
                })
            }
            Saved::Atomic {
                crtc_props,
                active,
                mode,
                connectors,
                planes,
            } => {
                let mut blob = None;
                let mut req = Request::new(card);
                let mode_id = match mode {
                    Some(bytes) if bytes.len() == std::mem::size_of::<Mode>() => {
                        // SAFETY: `bytes` has exactly the size of `Mode`, a transparent wrapper of the C struct
                        // `drm_mode_modeinfo` (integers and a char array, every bit pattern valid), and
                        // read_unaligned copes with the Vec's alignment.
                        let mode: Mode = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
                        let id = card.create_property_blob(&mode).map_err(|e| {
                            KmsError::ioctl(path, "DRM_IOCTL_MODE_CREATEPROPBLOB", e)
                        })?;
                        let id: u64 = id.into();
                        blob = Some(id);
                        id
                    }
                    _ => 0,
                };
                req.set(out.crtc, crtc_props, "MODE_ID", mode_id)?;
                req.set(out.crtc, crtc_props, "ACTIVE", *active)?;
                for (c, props, crtc_id) in connectors {
                    // Only touch connectors that were on this CRTC or that we put there.
                    if *c == out.connector || *crtc_id == u64::from(u32::from(out.crtc)) {
                        req.set(*c, props, "CRTC_ID", *crtc_id)?;
                    }
                }
                for p in planes {
                    for (name, v) in PLANE_PROPS.iter().zip(p.values) {
                        req.set(p.handle, &p.props, name, v)?;
                    }
                    // The Y'CbCr properties a colour-aware scanout may have set, as found.
                    for name in [COLOR_ENCODING, COLOR_RANGE] {
                        if let Some(v) = p.props.value(name) {
                            req.set(p.handle, &p.props, name, v)?;
                        }
                    }
                }
                let r = req.commit(AtomicCommitFlags::ALLOW_MODESET);
                if let Some(id) = blob {
                    if let Err(e) = card.destroy_property_blob(id) {
                        tracing::debug!("destroying the restore mode blob: {e}");
                    }
                }
                r.map_err(|source| KmsError::Commit {
                    path: path.to_path_buf(),
                    what: "restore",
                    source,
                })
            }
        }
    }
}

/// Turns the CRTC off entirely (the fallback when the snapshot cannot be restored, e.g. because the previous
/// framebuffer went away).
pub(crate) fn disable(card: &Card, out: &Output, props: &OutputProps) -> Result<(), KmsError> {
    let path = card.path();
    if !card.info().atomic {
        return card
            .set_crtc(out.crtc, None, (0, 0), &[], None)
            .map_err(|source| KmsError::Commit {
                path: path.to_path_buf(),
                what: "disable (SETCRTC)",
                source,
            });
    }
    let mut req = Request::new(card);
    req.plane(
        out.plane,
        &props.plane,
        out.crtc,
        None,
        &Placement {
            src: (0, 0, 0, 0),
            dst: (0, 0, 0, 0),
        },
    )?;
    req.set(out.connector, &props.connector, "CRTC_ID", 0)?;
    req.set(out.crtc, &props.crtc, "MODE_ID", 0)?;
    req.set(out.crtc, &props.crtc, "ACTIVE", 0)?;
    req.commit(AtomicCommitFlags::ALLOW_MODESET)
        .map_err(|source| KmsError::Commit {
            path: path.to_path_buf(),
            what: "disable",
            source,
        })
}

/// Legacy page flip with an event.
pub(crate) fn legacy_flip(
    card: &Card,
    crtc: crtc::Handle,
    fb: framebuffer::Handle,
) -> io::Result<()> {
    card.page_flip(crtc, fb, PageFlipFlags::EVENT, None)
}
