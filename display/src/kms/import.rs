//! PRIME import of dma-bufs into the DRM device, with the kernel objects wrapped so that they go away exactly
//! once: a [`GemHandle`] is closed (GEM_CLOSE) and a [`Framebuffer`] removed (RMFB) when dropped.
//!
//! The [`ImportCache`] imports each distinct dma-buf fd once and makes one framebuffer per distinct frame
//! layout, so a capture stream with N buffers costs N imports for the whole run, not one per frame.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Weak};

use dmacam_capture::{Dmabuf, Fourcc, DRM_FORMAT_MOD_LINEAR};
use drm::buffer::{DrmFourcc, DrmModifier, PlanarBuffer};
use drm::control::{framebuffer, Device as _, FbCmd2Flags};

use super::card::Card;
use super::error::KmsError;
use crate::formats::drm_format_for;

/// A GEM handle of the card, from a PRIME import; closed when dropped.
///
/// Importing the same dma-buf twice into one DRM fd yields the same handle number without a second reference,
/// so the [`ImportCache`] shares one `GemHandle` per handle number (a second close would free the first
/// user's buffer).
#[derive(Debug)]
pub struct GemHandle {
    card: Arc<Card>,
    handle: drm::buffer::Handle,
}

impl GemHandle {
    /// The raw handle number.
    pub fn raw(&self) -> u32 {
        self.handle.into()
    }
}

impl Drop for GemHandle {
    fn drop(&mut self) {
        if let Err(e) = self.card.close_buffer(self.handle) {
            tracing::warn!(card = %self.card.path().display(), handle = self.raw(), "GEM_CLOSE failed: {e}");
        }
    }
}

/// A framebuffer object over imported GEM handles; removed (RMFB) when dropped.
///
/// Removing a framebuffer that is still on screen turns the plane off, so the scanout keeps every framebuffer
/// it shows alive until the flip that replaced it has completed, and restores the previous configuration
/// before dropping the last ones.
#[derive(Debug)]
pub struct Framebuffer {
    card: Arc<Card>,
    id: framebuffer::Handle,
    width: u32,
    height: u32,
    format: Fourcc,
    // Kept alive as long as the framebuffer references them.
    _handles: Vec<Arc<GemHandle>>,
}

impl Framebuffer {
    /// The framebuffer id.
    pub fn id(&self) -> framebuffer::Handle {
        self.id
    }

    /// The raw framebuffer id.
    pub fn raw(&self) -> u32 {
        self.id.into()
    }

    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The DRM format.
    pub fn format(&self) -> Fourcc {
        self.format
    }
}

impl Drop for Framebuffer {
    fn drop(&mut self) {
        if let Err(e) = self.card.destroy_framebuffer(self.id) {
            tracing::warn!(card = %self.card.path().display(), fb = self.raw(), "RMFB failed: {e}");
        }
    }
}

/// The AddFB2 description of one frame (what `drm`'s `PlanarBuffer` asks for).
struct Layout {
    size: (u32, u32),
    format: DrmFourcc,
    modifier: Option<DrmModifier>,
    handles: [Option<drm::buffer::Handle>; 4],
    pitches: [u32; 4],
    offsets: [u32; 4],
}

impl PlanarBuffer for Layout {
    fn size(&self) -> (u32, u32) {
        self.size
    }
    fn format(&self) -> DrmFourcc {
        self.format
    }
    fn modifier(&self) -> Option<DrmModifier> {
        self.modifier
    }
    fn pitches(&self) -> [u32; 4] {
        self.pitches
    }
    fn handles(&self) -> [Option<drm::buffer::Handle>; 4] {
        self.handles
    }
    fn offsets(&self) -> [u32; 4] {
        self.offsets
    }
}

/// The identity of a frame layout: which fds (by their shared `Arc`), offsets, strides, format, size and
/// modifier. Two frames with equal keys can share one framebuffer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FbKey {
    fourcc: Fourcc,
    width: u32,
    height: u32,
    modifier: u64,
    planes: Vec<(usize, u32, u32)>,
}

/// One imported dma-buf fd: the fd kept alive (so its address cannot be reused by another fd) and its handle.
#[derive(Debug)]
struct Imported {
    fd: Arc<OwnedFd>,
    gem: Arc<GemHandle>,
}

/// Counters of the cache, for `--stats` and leak checks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportCounts {
    /// PRIME_FD_TO_HANDLE calls made.
    pub prime_imports: u64,
    /// AddFB2 calls made.
    pub framebuffers_added: u64,
    /// Framebuffers alive now.
    pub framebuffers_live: usize,
    /// Distinct GEM handles alive now.
    pub gem_handles_live: usize,
}

/// Imports dma-bufs once per distinct fd and keeps one framebuffer per distinct frame layout.
#[derive(Debug)]
pub struct ImportCache {
    card: Arc<Card>,
    imports: HashMap<usize, Imported>,
    handles: HashMap<u32, Weak<GemHandle>>,
    fbs: HashMap<FbKey, Arc<Framebuffer>>,
    prime_imports: u64,
    framebuffers_added: u64,
}

/// Entries beyond this many are evicted once their producer has let go of the buffer.
const EVICT_ABOVE: usize = 16;

impl ImportCache {
    pub fn new(card: Arc<Card>) -> Self {
        ImportCache {
            card,
            imports: HashMap::new(),
            handles: HashMap::new(),
            fbs: HashMap::new(),
            prime_imports: 0,
            framebuffers_added: 0,
        }
    }

    /// The framebuffer showing `buf`, importing its fds and adding the framebuffer on first sight.
    pub fn framebuffer(&mut self, buf: &Dmabuf) -> Result<Arc<Framebuffer>, KmsError> {
        let key = FbKey {
            fourcc: buf.fourcc,
            width: buf.width,
            height: buf.height,
            modifier: buf.modifier,
            planes: buf
                .planes
                .iter()
                .map(|p| (Arc::as_ptr(&p.fd) as usize, p.offset, p.stride))
                .collect(),
        };
        if let Some(fb) = self.fbs.get(&key) {
            return Ok(fb.clone());
        }
        self.evict();
        let card = self.card.clone();
        let path = card.path();
        let drm = drm_format_for(buf.fourcc).ok_or_else(|| KmsError::UnknownFormat {
            path: path.to_path_buf(),
            format: buf.fourcc.to_string(),
        })?;
        let format = DrmFourcc::try_from(drm.0).map_err(|_| KmsError::UnknownFormat {
            path: path.to_path_buf(),
            format: buf.fourcc.to_string(),
        })?;
        if buf.planes.is_empty() || buf.planes.len() > 4 {
            return Err(KmsError::UnknownFormat {
                path: path.to_path_buf(),
                format: format!("{} with {} planes", buf.fourcc, buf.planes.len()),
            });
        }
        let mut gems = Vec::with_capacity(buf.planes.len());
        for p in &buf.planes {
            gems.push(self.import(&p.fd)?);
        }
        let mut layout = Layout {
            size: (buf.width, buf.height),
            format,
            modifier: None,
            handles: [None; 4],
            pitches: [0; 4],
            offsets: [0; 4],
        };
        for (i, (p, g)) in buf.planes.iter().zip(&gems).enumerate() {
            layout.handles[i] = Some(g.handle);
            layout.pitches[i] = p.stride;
            layout.offsets[i] = p.offset;
        }
        let flags = if self.card.info().addfb2_modifiers {
            layout.modifier = Some(DrmModifier::from(buf.modifier));
            FbCmd2Flags::MODIFIERS
        } else {
            if buf.modifier != DRM_FORMAT_MOD_LINEAR {
                return Err(KmsError::AddFb {
                    path: path.to_path_buf(),
                    format: drm.to_string(),
                    width: buf.width,
                    height: buf.height,
                    source: std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        format!(
                            "modifier {:#x} but the driver has no DRM_CAP_ADDFB2_MODIFIERS",
                            buf.modifier
                        ),
                    ),
                });
            }
            FbCmd2Flags::empty()
        };
        let id = self
            .card
            .add_planar_framebuffer(&layout, flags)
            .map_err(|source| KmsError::AddFb {
                path: path.to_path_buf(),
                format: drm.to_string(),
                width: buf.width,
                height: buf.height,
                source,
            })?;
        self.framebuffers_added += 1;
        let fb = Arc::new(Framebuffer {
            card: self.card.clone(),
            id,
            width: buf.width,
            height: buf.height,
            format: drm,
            _handles: gems,
        });
        tracing::debug!(
            fb = fb.raw(),
            format = %drm,
            width = buf.width,
            height = buf.height,
            "framebuffer added over imported dma-buf"
        );
        self.fbs.insert(key, fb.clone());
        Ok(fb)
    }

    /// The GEM handle of `fd`, importing it on first sight.
    fn import(&mut self, fd: &Arc<OwnedFd>) -> Result<Arc<GemHandle>, KmsError> {
        let key = Arc::as_ptr(fd) as usize;
        if let Some(i) = self.imports.get(&key) {
            return Ok(i.gem.clone());
        }
        let handle =
            self.card
                .prime_fd_to_buffer(fd.as_fd())
                .map_err(|source| KmsError::Import {
                    path: self.card.path().to_path_buf(),
                    source,
                })?;
        self.prime_imports += 1;
        let raw: u32 = handle.into();
        // The same dma-buf through another fd gives the same handle: share its owner.
        let gem = match self.handles.get(&raw).and_then(Weak::upgrade) {
            Some(g) => g,
            None => {
                let g = Arc::new(GemHandle {
                    card: self.card.clone(),
                    handle,
                });
                self.handles.insert(raw, Arc::downgrade(&g));
                g
            }
        };
        self.imports.insert(
            key,
            Imported {
                fd: fd.clone(),
                gem: gem.clone(),
            },
        );
        Ok(gem)
    }

    /// Forgets imports whose producer has dropped the buffer (only this cache still holds the fd) once the
    /// cache has grown, and framebuffers over them that nobody is showing.
    fn evict(&mut self) {
        if self.imports.len() <= EVICT_ABOVE {
            return;
        }
        let stale: Vec<usize> = self
            .imports
            .iter()
            .filter(|(_, i)| Arc::strong_count(&i.fd) == 1)
            .map(|(&k, _)| k)
            .collect();
        if stale.is_empty() {
            return;
        }
        self.fbs.retain(|key, fb| {
            let uses_stale = key.planes.iter().any(|(fd, _, _)| stale.contains(fd));
            !uses_stale || Arc::strong_count(fb) > 1
        });
        for k in &stale {
            let in_use = self
                .fbs
                .keys()
                .any(|key| key.planes.iter().any(|(fd, _, _)| fd == k));
            if !in_use {
                self.imports.remove(k);
            }
        }
        self.handles.retain(|_, w| w.strong_count() > 0);
    }

    /// Drops every framebuffer and import not held elsewhere (after the display has let go of them).
    pub fn clear(&mut self) {
        self.fbs.clear();
        self.imports.clear();
        // A framebuffer held elsewhere (the one on screen) keeps its handles: their numbers stay known, so a
        // later import that the kernel answers with the same number shares them instead of closing them twice.
        self.handles.retain(|_, h| h.strong_count() > 0);
    }

    /// How many imports and framebuffers were made and are alive.
    pub fn counts(&self) -> ImportCounts {
        ImportCounts {
            prime_imports: self.prime_imports,
            framebuffers_added: self.framebuffers_added,
            framebuffers_live: self.fbs.len(),
            gem_handles_live: self
                .handles
                .values()
                .filter(|w| w.strong_count() > 0)
                .count(),
        }
    }
}
