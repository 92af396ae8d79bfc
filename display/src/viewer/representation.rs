//! What the video surface is told of its Y'CbCr with wp_color_representation_v1 ([`Representation`]): the
//! manager where the compositor offers it, the pair wanted, the surface object telling it. How it is told
//! and when, and the protocol's events: `colour.rs`.

use wayland_client::globals::GlobalList;
use wayland_client::protocol::wl_surface::WlSurface;
use wayland_client::{Dispatch, QueueHandle};
use wayland_protocols::wp::color_representation::v1::client::{
    wp_color_representation_manager_v1 as manager, wp_color_representation_surface_v1 as surface,
};

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
    pub(super) fn bind<D>(globals: &GlobalList, qh: &QueueHandle<D>) -> Representation
    where
        D: Dispatch<manager::WpColorRepresentationManagerV1, ()> + 'static,
    {
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
    pub(super) fn before_commit<D>(&mut self, video: &WlSurface, ycbcr: bool, qh: &QueueHandle<D>)
    where
        D: Dispatch<surface::WpColorRepresentationSurfaceV1, ()> + 'static,
    {
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
