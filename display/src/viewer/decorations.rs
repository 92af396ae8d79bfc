//! Client-side decorations: when the compositor draws no frame (no zxdg_decoration_manager_v1, as on GNOME's
//! Mutter and Weston, or it answers client-side), sctk's fallback frame draws a title bar with close, maximise
//! and minimise buttons and resize borders as subsurfaces of the toplevel, outside its content: the video
//! subsurface and its buffers are untouched. What the frame's buttons and borders ask for (its
//! [`FrameAction`]s) becomes xdg_toplevel requests here; a double click on the title bar toggles fullscreen.
//!
//! A hidden test aid, [`FrameScript`](super::frame::FrameScript) (`view --frame-actions`), feeds the same
//! actions once the first frame is shown, for a test-bed without a pointer. The frame's data: `frame.rs`.

use std::num::NonZeroU32;
use std::time::Instant;

use smithay_client_toolkit::reexports::csd_frame::{
    DecorationsFrame, FrameAction, WindowManagerCapabilities, WindowState,
};
use smithay_client_toolkit::shell::xdg::fallback_frame::FallbackFrame;
use smithay_client_toolkit::shell::xdg::window::DecorationMode;
use wayland_client::protocol::wl_seat;
use wayland_client::QueueHandle;

use super::frame::{is_double_click, xdg_edge, Decorations, FrameStep, DOUBLE_CLICK_MS};
use super::state::State;

impl Decorations<State> {
    /// Whether a frame is drawn around the content now.
    pub(super) fn visible(&self) -> bool {
        self.frame.as_ref().is_some_and(|f| !f.is_hidden())
    }
}

impl State {
    /// The content size for a configure's suggested window size (frame included) and state, and the frame
    /// updated to it: created at the first client-side configure, hidden when decorations are the
    /// server's. `None` for a size the client chooses.
    pub(super) fn configure_frame(
        &mut self,
        new_size: (Option<NonZeroU32>, Option<NonZeroU32>),
        mode: DecorationMode,
        state: WindowState,
        capabilities: WindowManagerCapabilities,
        qh: &QueueHandle<State>,
    ) -> Option<(u32, u32)> {
        if mode == DecorationMode::Client && self.decorations.frame.is_none() {
            match FallbackFrame::new(
                &self.layout.window,
                &self.shm.global,
                self.decorations.subcompositor.clone(),
                qh.clone(),
            ) {
                Ok(f) => {
                    tracing::info!("the compositor draws no window frame: drawing our own");
                    self.decorations.frame = Some(f);
                }
                Err(e) => tracing::warn!(
                    "no window frame (the window cannot be moved or resized with the pointer): {e}"
                ),
            }
        }
        let Some(frame) = self.decorations.frame.as_mut() else {
            return size_of(new_size);
        };
        frame.set_hidden(mode != DecorationMode::Client);
        if frame.is_hidden() {
            return size_of(new_size);
        }
        frame.update_state(state);
        frame.update_wm_capabilities(capabilities);
        match new_size {
            (Some(w), Some(h)) => size_of(frame.subtract_borders(w, h)),
            _ => None,
        }
    }

    /// The window geometry (xdg_surface.set_window_geometry) around content of `size`: the frame's too.
    pub(super) fn window_geometry(&mut self, (w, h): (u32, u32)) -> (i32, i32, u32, u32) {
        let Some(frame) = self.decorations.frame.as_mut().filter(|f| !f.is_hidden()) else {
            return (0, 0, w, h);
        };
        if let (Some(nw), Some(nh)) = (NonZeroU32::new(w), NonZeroU32::new(h)) {
            frame.resize(nw, nh);
        }
        let (x, y) = frame.location();
        let (ow, oh) = frame.add_borders(w, h);
        (x, y, ow, oh)
    }

    /// Draws the frame if it changed; its subsurfaces' state is applied with the toplevel's next commit.
    pub(super) fn draw_frame(&mut self) {
        if let Some(frame) = self.decorations.frame.as_mut() {
            if frame.is_dirty() && !frame.is_hidden() {
                frame.draw();
            }
        }
    }

    /// Does what the frame asks for. `grab` is the seat and the serial of the pointer press that asked: move
    /// and resize need it (without one, from a script, they are skipped).
    pub(super) fn frame_action(
        &mut self,
        action: FrameAction,
        grab: Option<(&wl_seat::WlSeat, u32)>,
    ) {
        let window = &self.layout.window;
        tracing::debug!(?action, "frame action");
        match action {
            FrameAction::Close => {
                tracing::info!("the window's close button was pressed");
                self.request_close("the window's close button was pressed");
            }
            FrameAction::Minimize => window.set_minimized(),
            FrameAction::Maximize => window.set_maximized(),
            FrameAction::UnMaximize => window.unset_maximized(),
            FrameAction::ShowMenu(x, y) => {
                if let Some((seat, serial)) = grab {
                    window.show_window_menu(seat, serial, (x, y));
                }
            }
            FrameAction::Move => match grab {
                Some((seat, serial)) => window.move_(seat, serial),
                None => tracing::debug!("move needs a pointer press"),
            },
            FrameAction::Resize(edge) => match (grab, xdg_edge(edge)) {
                (Some((seat, serial)), Some(edge)) => window.resize(seat, serial, edge),
                _ => tracing::debug!("resize needs a pointer press"),
            },
            _ => {}
        }
    }

    /// A press on the title bar at `time` (ms): the second of a double click toggles fullscreen, any other
    /// starts a move.
    pub(super) fn title_bar_press(&mut self, time: u32, grab: Option<(&wl_seat::WlSeat, u32)>) {
        if is_double_click(self.decorations.last_title_press, time) {
            self.decorations.last_title_press = None;
            tracing::info!("title bar double-clicked: toggling fullscreen");
            self.toggle_fullscreen();
        } else {
            self.decorations.last_title_press = Some(time);
            self.frame_action(FrameAction::Move, grab);
        }
    }

    pub(super) fn request_close(&mut self, reason: &str) {
        self.input.close_requested = true;
        if self.decorations.close_reason.is_none() {
            self.decorations.close_reason = Some(reason.to_owned());
        }
    }

    /// Runs the scripted frame action that is due, once the first frame has been shown.
    pub(super) fn run_frame_script(&mut self, qh: &QueueHandle<State>) {
        if self.stats.presented == 0 {
            return;
        }
        let Some(step) = self.decorations.script.due(Instant::now()) else {
            return;
        };
        tracing::info!(?step, "scripted frame action");
        match step {
            FrameStep::Resize(w, h) => {
                // What an interactive resize ends in: the window size the compositor lets the client choose
                // (configure without a size), frame included.
                let size = (NonZeroU32::new(w), NonZeroU32::new(h));
                let content = match self.decorations.frame.as_ref().filter(|f| !f.is_hidden()) {
                    Some(f) => size_of(f.subtract_borders(
                        size.0.unwrap_or(NonZeroU32::MIN),
                        size.1.unwrap_or(NonZeroU32::MIN),
                    )),
                    None => Some((w, h)),
                };
                if let Some(content) = content {
                    self.resize_content(content, qh);
                }
            }
            FrameStep::Maximize => self.frame_action(FrameAction::Maximize, None),
            FrameStep::Unmaximize => self.frame_action(FrameAction::UnMaximize, None),
            FrameStep::Minimize => self.frame_action(FrameAction::Minimize, None),
            FrameStep::DoubleClick => {
                let t = self
                    .decorations
                    .last_title_press
                    .unwrap_or(0)
                    .wrapping_add(DOUBLE_CLICK_MS + 1);
                self.title_bar_press(t, None);
                self.title_bar_press(t.wrapping_add(DOUBLE_CLICK_MS / 2), None);
            }
            FrameStep::Close => self.frame_action(FrameAction::Close, None),
            FrameStep::Wait(_) | FrameStep::Until(_) => {}
        }
    }
}

fn size_of(size: (Option<NonZeroU32>, Option<NonZeroU32>)) -> Option<(u32, u32)> {
    match size {
        (Some(w), Some(h)) => Some((w.get(), h.get())),
        _ => None,
    }
}
