//! Telling the compositor what the video surface's Y'CbCr means, with wp_color_representation_v1 (staging)
//! where it offers the protocol: the matrix coefficients and range of the camera's frames, set on the video
//! surface before a Y'CbCr buffer is committed, and taken away (the surface object destroyed, which resets
//! it) before an R'G'B' buffer is (the gpu path's XR24, wl_shm): the protocol forbids Y'CbCr coefficients
//! with R'G'B' pixel formats. What `auto` decides from the offered pairs is in `crate::path`.
//!
//! Not tried against a compositor: the test-bed's Weston 14 does not offer the protocol.

use dmacam_capture::colour::Colorimetry;
use wayland_client::globals::GlobalList;
use wayland_client::protocol::wl_surface::WlSurface;
use wayland_client::{Connection, Dispatch, QueueHandle, WEnum};
use wayland_protocols::wp::color_representation::v1::client::{
    wp_color_representation_manager_v1 as manager, wp_color_representation_surface_v1 as surface,
};

use super::state::State;
use crate::path::representation_for;

/// The manager (when the compositor offers it), what the surface should be told and the object telling it.
#[derive(Debug, Default)]
pub(super) struct Representation {
    manager: Option<manager::WpColorRepresentationManagerV1>,
    /// (coefficients, range) for the camera's Y'CbCr frames, if the compositor takes that pair.
    want: Option<(u32, u32)>,
    /// The video surface's representation object while it says `want`.
    told: Option<surface::WpColorRepresentationSurfaceV1>,
}

impl Representation {
    /// Binds the manager if the compositor offers it; its supported pairs arrive as events
    /// ([`crate::viewer::Capabilities::colour_representation`]).
    pub(super) fn bind(globals: &GlobalList, qh: &QueueHandle<State>) -> Representation {
        Representation {
            manager: globals.bind(qh, 1..=1, ()).ok(),
            want: None,
            told: None,
        }
    }

    /// Whether the manager is bound.
    pub(super) fn offered(&self) -> bool {
        self.manager.is_some()
    }

    /// What to tell from now on: the frames' colorimetry as the compositor's enums, if it takes it.
    pub(super) fn set_wanted(&mut self, want: Option<(u32, u32)>) {
        if want != self.want {
            if let Some(old) = self.told.take() {
                old.destroy();
            }
        }
        self.want = want;
    }

    /// Before a commit of a buffer on `video`: tells the surface the frames' coefficients and range if the
    /// buffer is Y'CbCr (`ycbcr`), takes it away otherwise.
    pub(super) fn before_commit(
        &mut self,
        video: &WlSurface,
        ycbcr: bool,
        qh: &QueueHandle<State>,
    ) {
        match (ycbcr, self.want, &self.manager) {
            (true, Some((coefficients, range)), Some(m)) if self.told.is_none() => {
                let (Ok(c), Ok(r)) = (
                    surface::Coefficients::try_from(coefficients),
                    surface::Range::try_from(range),
                ) else {
                    return;
                };
                let s = m.get_surface(video, qh, ());
                s.set_coefficients_and_range(c, r);
                tracing::debug!(coefficients, range, "wp_color_representation_v1: told");
                self.told = Some(s);
            }
            (false, _, _) => {
                if let Some(s) = self.told.take() {
                    s.destroy();
                }
            }
            _ => {}
        }
    }
}

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
