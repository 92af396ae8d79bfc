//! Telling the compositor what the video surface's Y'CbCr means, with wp_color_representation_v1 (staging)
//! where it offers the protocol: the matrix coefficients and range of the camera's frames, set on the video
//! surface before a Y'CbCr buffer is committed, and taken away (the surface object destroyed, which resets
//! it) before an R'G'B' buffer is (the gpu path's XR24, wl_shm): the protocol forbids Y'CbCr coefficients
//! with R'G'B' pixel formats. What `auto` decides from the offered pairs is in `crate::path`.
//!
//! The state kept: `representation.rs`. Not tried against a compositor: the test-bed's Weston 14 does not
//! offer the protocol.

use dmacam_capture::colour::Colorimetry;
use wayland_client::{Connection, Dispatch, QueueHandle, WEnum};
use wayland_protocols::wp::color_representation::v1::client::{
    wp_color_representation_manager_v1 as manager, wp_color_representation_surface_v1 as surface,
};

use super::state::State;
use crate::path::representation_for;

impl State {
    /// The camera's colorimetry (`None`: R'G'B' frames); told to the compositor with each Y'CbCr buffer when
    /// it offers wp_color_representation_v1 with that pair.
    pub(super) fn set_colorimetry(&mut self, c: Option<Colorimetry>) {
        let want = c.and_then(|c| representation_for(&self.caps, c));
        self.representation.set_wanted(want);
    }
}

impl Dispatch<manager::WpColorRepresentationManagerV1, ()> for State {
    fn event(
        state: &mut Self,
        _: &manager::WpColorRepresentationManagerV1,
        event: manager::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let manager::Event::SupportedCoefficientsAndRanges {
            coefficients: WEnum::Value(c),
            range: WEnum::Value(r),
        } = event
        {
            let pairs = state
                .caps
                .colour_representation
                .get_or_insert_with(Vec::new);
            let pair = (c as u32, r as u32);
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
    }
}

impl Dispatch<surface::WpColorRepresentationSurfaceV1, ()> for State {
    fn event(
        _: &mut Self,
        _: &surface::WpColorRepresentationSurfaceV1,
        _: surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}
