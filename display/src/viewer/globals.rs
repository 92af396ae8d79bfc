//! Setting a viewer's [`State`] up on a new connection: binding the compositor's globals, creating the window
//! with its video subsurface, and learning what the compositor offers; the registry and output handlers.

use std::collections::HashMap;
use std::sync::Arc;

use dmacam_capture::Fourcc;
use smithay_client_toolkit::compositor::CompositorState;
use smithay_client_toolkit::dmabuf::DmabufState;
use smithay_client_toolkit::output::{OutputHandler, OutputState};
use smithay_client_toolkit::registry::{ProvidesRegistryState, RegistryState};
use smithay_client_toolkit::seat::SeatState;
use smithay_client_toolkit::shell::xdg::window::WindowDecorations;
use smithay_client_toolkit::shell::xdg::XdgShell;
use smithay_client_toolkit::shell::WaylandSurface;
use smithay_client_toolkit::shm::Shm;
use smithay_client_toolkit::subcompositor::SubcompositorState;
use smithay_client_toolkit::{delegate_registry, registry_handlers};
use wayland_client::globals::GlobalList;
use wayland_client::protocol::wl_output;
use wayland_client::{Connection, QueueHandle};
use wayland_protocols::wp::presentation_time::client::wp_presentation;
use wayland_protocols::wp::viewporter::client::wp_viewporter;

use super::capabilities::Capabilities;
use super::error::DisplayError;
use super::frame::Decorations;
use super::layout::{RegionData, ViewportData};
use super::options::ViewerOptions;
use super::presentation::PresentationGlobal;
use super::representation::Representation;
use super::state::{DmabufBuffers, Globals, Input, Layout, PresentationState, ShmBuffers, State};
use super::sync::ExplicitSync;
use crate::formats::drm_of_shm;
use crate::stats::Stats;

impl State {
    /// Binds what a video window needs and creates the window (its first configure comes with the
    /// connection's round trips).
    pub(super) fn new(
        globals: &GlobalList,
        qh: &QueueHandle<State>,
        opts: &ViewerOptions,
        display: &str,
    ) -> Result<State, DisplayError> {
        let missing = |interface| DisplayError::Missing {
            display: display.to_owned(),
            interface,
        };
        let compositor =
            CompositorState::bind(globals, qh).map_err(|_| missing("wl_compositor"))?;
        let subcompositor = Arc::new(
            SubcompositorState::bind(compositor.wl_compositor().clone(), globals, qh)
                .map_err(|_| missing("wl_subcompositor"))?,
        );
        let xdg = XdgShell::bind(globals, qh).map_err(|_| missing("xdg_wm_base"))?;
        let shm = Shm::bind(globals, qh).map_err(|_| missing("wl_shm"))?;
        let dmabuf = DmabufState::new(globals, qh);
        let seat = SeatState::new(globals, qh);
        let presentation = globals
            .bind::<wp_presentation::WpPresentation, _, _>(qh, 1..=1, PresentationGlobal)
            .ok();
        let viewporter = globals
            .bind::<wp_viewporter::WpViewporter, _, _>(qh, 1..=1, ViewportData)
            .ok();
        let representation = Representation::bind(globals, qh);
        let colour_representation = representation.offered().then(Vec::new);
        let registry = RegistryState::new(globals);
        let outputs = OutputState::new(globals, qh);

        let surface = compositor.create_surface(qh);
        let (subsurface, video) = subcompositor.create_subsurface(surface.clone(), qh);
        subsurface.set_desync();
        // The video never takes input: the toplevel does.
        let empty = compositor.wl_compositor().create_region(qh, RegionData);
        video.set_input_region(Some(&empty));
        empty.destroy();
        let bg_viewport = viewporter
            .as_ref()
            .map(|v| v.get_viewport(&surface, qh, ViewportData));
        let video_viewport = viewporter
            .as_ref()
            .map(|v| v.get_viewport(&video, qh, ViewportData));
        let window = xdg.create_window(surface, WindowDecorations::RequestServer, qh);
        window.set_title(opts.title.clone());
        window.set_app_id("dmacam");
        window.set_min_size(Some((64, 36)));
        if opts.fullscreen {
            window.set_fullscreen(None);
        }
        window.commit();
        let feedback_obj = dmabuf.get_surface_feedback(&video, qh).ok();
        let explicit = ExplicitSync::bind(globals, &video, qh);
        let linux_dmabuf_version = dmabuf.version();

        Ok(State {
            display: display.to_owned(),
            globals: Globals {
                registry,
                outputs,
                compositor,
            },
            shm: ShmBuffers {
                global: shm,
                slots: Vec::new(),
                mappings: HashMap::new(),
            },
            dmabuf: DmabufBuffers {
                global: dmabuf,
                feedback_obj,
                modifier_override: opts.modifier_override,
                entries: HashMap::new(),
                by_params: HashMap::new(),
                by_buffer: HashMap::new(),
                use_counter: 0,
            },
            input: Input {
                seat,
                keyboard: None,
                close_requested: false,
                keys: Vec::new(),
            },
            decorations: Decorations::new(subcompositor, opts.frame_actions.clone()),
            layout: Layout {
                window,
                subsurface,
                video,
                bg_viewport,
                video_viewport,
                configured: false,
                window_size: opts.initial_size,
                frame_size: opts.initial_size,
                layout_dirty: true,
                fullscreen: opts.fullscreen,
                bg: None,
            },
            presentation: PresentationState {
                global: presentation,
                pending: None,
                frame_cb_pending: false,
                feedback_outstanding: 0,
            },
            representation,
            explicit,
            caps: Capabilities {
                linux_dmabuf_version,
                viewporter: viewporter.is_some(),
                colour_representation,
                ..Default::default()
            },
            mode: opts.mode,
            allow_fallback: opts.allow_shm_fallback,
            fallback_reason: None,
            stats: Stats::default(),
            fatal: None,
        })
    }

    /// After the connection's round trips: the v3 modifier events stand for the accepted formats where no
    /// v4 feedback came, and wl_shm's formats are noted.
    pub(super) fn learn_capabilities(&mut self) {
        if !self.caps.feedback {
            let mut v3: Vec<(Fourcc, u64)> = Vec::new();
            for m in self.dmabuf.global.modifiers() {
                let pair = (Fourcc(m.format), m.modifier);
                if !v3.contains(&pair) {
                    v3.push(pair);
                }
            }
            self.caps.dmabuf_formats = v3;
        }
        self.caps.shm_formats = self
            .shm
            .global
            .formats()
            .iter()
            .map(|f| drm_of_shm(u32::from(*f)))
            .collect();
    }
}

impl OutputHandler for State {
    fn output_state(&mut self) -> &mut OutputState {
        &mut self.globals.outputs
    }
    fn new_output(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_output::WlOutput) {}
    fn update_output(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_output::WlOutput) {}
    fn output_destroyed(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_output::WlOutput) {}
}

impl ProvidesRegistryState for State {
    fn registry(&mut self) -> &mut RegistryState {
        &mut self.globals.registry
    }
    registry_handlers!(OutputState, SeatState);
}

delegate_registry!(State);
