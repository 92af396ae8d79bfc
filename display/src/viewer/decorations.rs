//! Client-side decorations: when the compositor draws no frame (no zxdg_decoration_manager_v1, as on GNOME's
//! Mutter and Weston, or it answers client-side), sctk's fallback frame draws a title bar with close, maximise
//! and minimise buttons and resize borders as subsurfaces of the toplevel, outside its content: the video
//! subsurface and its buffers are untouched. What the frame's buttons and borders ask for (its
//! [`FrameAction`]s) becomes xdg_toplevel requests here; a double click on the title bar toggles fullscreen.
//!
//! A hidden test aid, [`FrameScript`] (`view --frame-actions`), feeds the same actions once the first frame
//! is shown, for a test-bed without a pointer.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smithay_client_toolkit::reexports::csd_frame::{
    DecorationsFrame, FrameAction, ResizeEdge, WindowManagerCapabilities, WindowState,
};
use smithay_client_toolkit::reexports::protocols::xdg::shell::client::xdg_toplevel;
use smithay_client_toolkit::seat::pointer::{CursorIcon, ThemedPointer};
use smithay_client_toolkit::shell::xdg::fallback_frame::FallbackFrame;
use smithay_client_toolkit::shell::xdg::window::DecorationMode;
use smithay_client_toolkit::subcompositor::SubcompositorState;
use wayland_client::protocol::wl_seat;
use wayland_client::QueueHandle;

use super::state::State;

/// Two presses on the title bar at most this far apart (pointer event times, ms) are a double click.
pub(super) const DOUBLE_CLICK_MS: u32 = 400;

/// The frame, the pointer that works it, and what the user asked of it.
pub(super) struct Decorations {
    /// Needed to create the frame's subsurfaces (at the first client-side configure).
    pub(super) subcompositor: Arc<SubcompositorState>,
    /// sctk's fallback frame, while decorations are client-side (hidden when they are the server's).
    pub(super) frame: Option<FallbackFrame<State>>,
    /// The seat's pointer, with its cursor (wp_cursor_shape_v1 where offered, else the cursor theme).
    pub(super) pointer: Option<ThemedPointer>,
    /// The cursor shown now.
    pub(super) cursor: Option<CursorIcon>,
    /// When the title bar was last pressed (ms, pointer time), for the double click.
    pub(super) last_title_press: Option<u32>,
    /// Why the window is to close, once it is.
    pub(super) close_reason: Option<String>,
    /// The scripted frame actions still to run (test aid).
    pub(super) script: FrameScript,
}

impl Decorations {
    pub(super) fn new(subcompositor: Arc<SubcompositorState>, script: FrameScript) -> Decorations {
        Decorations {
            subcompositor,
            frame: None,
            pointer: None,
            cursor: None,
            last_title_press: None,
            close_reason: None,
            script,
        }
    }

    /// Whether a frame is drawn around the content now.
    pub(super) fn visible(&self) -> bool {
        self.frame.as_ref().is_some_and(|f| !f.is_hidden())
    }
}

/// The xdg_toplevel resize edge of a frame's resize edge.
pub(super) fn xdg_edge(edge: ResizeEdge) -> Option<xdg_toplevel::ResizeEdge> {
    use xdg_toplevel::ResizeEdge as X;
    Some(match edge {
        ResizeEdge::None => X::None,
        ResizeEdge::Top => X::Top,
        ResizeEdge::Bottom => X::Bottom,
        ResizeEdge::Left => X::Left,
        ResizeEdge::TopLeft => X::TopLeft,
        ResizeEdge::BottomLeft => X::BottomLeft,
        ResizeEdge::Right => X::Right,
        ResizeEdge::TopRight => X::TopRight,
        ResizeEdge::BottomRight => X::BottomRight,
        _ => return None,
    })
}

/// Whether a title-bar press at `now` (ms) after one at `last` is a double click (pointer times wrap).
pub(super) fn is_double_click(last: Option<u32>, now: u32) -> bool {
    last.is_some_and(|t| now.wrapping_sub(t) <= DOUBLE_CLICK_MS)
}

/// One step of a [`FrameScript`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameStep {
    /// `wait:SECONDS`: the next step no sooner than this after the previous one.
    Wait(Duration),
    /// `until:PATH`: the next step once the file PATH exists (a test says when it has seen enough).
    Until(PathBuf),
    /// `resize:WxH`: a new window size, as an interactive resize by the frame's borders ends in (the size
    /// of the whole window, frame included, as a configure carries it).
    Resize(u32, u32),
    /// `maximize`, `unmaximize`, `minimize`: the frame's buttons.
    Maximize,
    Unmaximize,
    Minimize,
    /// `double-click`: a double click on the title bar (toggles fullscreen).
    DoubleClick,
    /// `close`: the frame's close button.
    Close,
}

impl FromStr for FrameStep {
    type Err = String;

    fn from_str(s: &str) -> Result<FrameStep, String> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let step = match (name, arg) {
            ("wait", Some(a)) => Duration::try_from_secs_f64(
                a.parse::<f64>()
                    .map_err(|e| format!("wait:{a}: not seconds ({e})"))?,
            )
            .map(FrameStep::Wait)
            .map_err(|e| format!("wait:{a}: {e}"))?,
            ("until", Some(a)) if !a.is_empty() => FrameStep::Until(PathBuf::from(a)),
            ("resize", Some(a)) => {
                let size = a.split_once('x').and_then(|(w, h)| {
                    Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?))
                });
                match size {
                    Some((w, h)) if w > 0 && h > 0 => FrameStep::Resize(w, h),
                    _ => return Err(format!("resize:{a}: not WIDTHxHEIGHT")),
                }
            }
            ("maximize", None) => FrameStep::Maximize,
            ("unmaximize", None) => FrameStep::Unmaximize,
            ("minimize", None) => FrameStep::Minimize,
            ("double-click", None) => FrameStep::DoubleClick,
            ("close", None) => FrameStep::Close,
            _ => {
                return Err(format!(
                    "'{s}' is not a frame action (wait:SECONDS, until:PATH, resize:WxH, maximize, unmaximize, minimize, \
                     double-click, close)"
                ))
            }
        };
        Ok(step)
    }
}

/// Frame actions run as if the user had used the frame, from the first frame shown on (a test aid: the
/// test-bed has no pointer). Parsed from a comma-separated list such as `wait:5,resize:800x600,close`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameScript {
    steps: Vec<FrameStep>,
    next: usize,
    not_before: Option<Instant>,
}

impl FromStr for FrameScript {
    type Err = String;

    fn from_str(s: &str) -> Result<FrameScript, String> {
        let steps = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<FrameStep>, String>>()?;
        Ok(FrameScript {
            steps,
            ..FrameScript::default()
        })
    }
}

impl FrameScript {
    /// The next step due at `now`, if any (a wait is consumed here).
    fn due(&mut self, now: Instant) -> Option<FrameStep> {
        loop {
            if self.not_before.is_some_and(|t| now < t) {
                return None;
            }
            let step = self.steps.get(self.next)?.clone();
            match step {
                FrameStep::Until(p) if !p.exists() => return None,
                FrameStep::Until(_) => self.next += 1,
                FrameStep::Wait(d) => {
                    self.next += 1;
                    self.not_before = Some(now + d);
                }
                s => {
                    self.next += 1;
                    return Some(s);
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_and_refuse_what_they_do_not_know() {
        let s: FrameScript = "wait:1.5, until:/tmp/go,resize:800x600,maximize,double-click,close"
            .parse()
            .unwrap();
        assert_eq!(
            s.steps,
            vec![
                FrameStep::Wait(Duration::from_millis(1500)),
                FrameStep::Until("/tmp/go".into()),
                FrameStep::Resize(800, 600),
                FrameStep::Maximize,
                FrameStep::DoubleClick,
                FrameStep::Close
            ]
        );
        for bad in [
            "until:",
            "resize:800",
            "resize:0x600",
            "wait:x",
            "wait:-1",
            "close:1",
            "jump",
        ] {
            assert!(bad.parse::<FrameScript>().is_err(), "{bad}");
        }
        assert_eq!("".parse::<FrameScript>().unwrap().steps, vec![]);
    }

    #[test]
    fn scripts_wait_between_steps() {
        let mut s: FrameScript = "resize:10x10,wait:10,close".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(s.due(t0), Some(FrameStep::Resize(10, 10)));
        assert_eq!(s.due(t0), None);
        assert_eq!(s.due(t0 + Duration::from_secs(9)), None);
        assert_eq!(s.due(t0 + Duration::from_secs(11)), Some(FrameStep::Close));
        assert_eq!(s.due(t0 + Duration::from_secs(12)), None);
    }

    #[test]
    fn scripts_wait_for_a_file() {
        let dir = std::env::temp_dir().join(format!("dmacam-frame-script-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let mut s: FrameScript = format!("until:{},close", dir.display()).parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(s.due(t0), None);
        std::fs::write(&dir, b"").unwrap();
        assert_eq!(s.due(t0), Some(FrameStep::Close));
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn every_frame_edge_is_an_xdg_edge() {
        for (edge, x) in [
            (ResizeEdge::Top, xdg_toplevel::ResizeEdge::Top),
            (
                ResizeEdge::BottomRight,
                xdg_toplevel::ResizeEdge::BottomRight,
            ),
            (ResizeEdge::Left, xdg_toplevel::ResizeEdge::Left),
            (ResizeEdge::TopLeft, xdg_toplevel::ResizeEdge::TopLeft),
        ] {
            assert_eq!(xdg_edge(edge), Some(x));
        }
    }

    #[test]
    fn double_clicks_are_close_together() {
        assert!(!is_double_click(None, 10));
        assert!(is_double_click(Some(10), 10 + DOUBLE_CLICK_MS));
        assert!(!is_double_click(Some(10), 11 + DOUBLE_CLICK_MS));
        // Pointer times wrap at 2^32 ms.
        assert!(is_double_click(Some(u32::MAX - 5), 100));
    }
}
