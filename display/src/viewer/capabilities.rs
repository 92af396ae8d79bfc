//! What the compositor offers ([`Capabilities`]): linux-dmabuf formats and modifiers, wl_shm formats,
//! presentation clock, viewporter, wp_color_representation_v1's coefficients and ranges.

use dmacam_capture::Fourcc;

use crate::formats::DRM_FORMAT_MOD_INVALID;

/// What the compositor offers, as learnt at connection time (and updated by dma-buf feedback).
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// Bound zwp_linux_dmabuf_v1 version, if the compositor has it.
    pub linux_dmabuf_version: Option<u32>,
    /// Whether `dmabuf_formats` came from v4 feedback (format table and tranches) rather than v3 events.
    pub feedback: bool,
    /// The feedback's main device (`dev_t`), v4 only.
    pub main_device: Option<u64>,
    /// Format/modifier pairs linux-dmabuf accepts, in the compositor's order of preference.
    pub dmabuf_formats: Vec<(Fourcc, u64)>,
    /// Formats wl_shm accepts, as DRM fourccs.
    pub shm_formats: Vec<Fourcc>,
    /// wp_presentation's clock (a clockid_t), if the compositor has presentation time.
    pub presentation_clock: Option<u32>,
    /// Whether wp_viewporter is there to scale frames.
    pub viewporter: bool,
    /// With wp_color_representation_v1: the (coefficients, range) pairs it takes, as the protocol numbers
    /// them (coefficients bt709 2, bt601 4, smpte240 5, bt2020 6; range full 1, limited 2). `None`: the
    /// compositor does not offer the protocol and assumes Y'CbCr is BT.601 limited range.
    pub colour_representation: Option<Vec<(u32, u32)>>,
}

impl Capabilities {
    /// Whether a dma-buf of DRM format `drm` with `modifier` can be imported. A LINEAR buffer is also
    /// accepted where the compositor advertises the implicit (INVALID) modifier.
    pub fn dmabuf_accepts(&self, drm: Fourcc, modifier: u64) -> bool {
        self.modifier_for(drm, modifier).is_some()
    }

    /// The modifier to send for a buffer of `drm`/`modifier`, if any.
    pub fn modifier_for(&self, drm: Fourcc, modifier: u64) -> Option<u64> {
        if self.dmabuf_formats.contains(&(drm, modifier)) {
            Some(modifier)
        } else if modifier == crate::DRM_FORMAT_MOD_LINEAR
            && self.dmabuf_formats.contains(&(drm, DRM_FORMAT_MOD_INVALID))
        {
            Some(DRM_FORMAT_MOD_INVALID)
        } else {
            None
        }
    }
}
