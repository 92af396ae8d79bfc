//! The window's own frame as data: [`Decorations`] (sctk's fallback frame while decorations are
//! client-side, the pointer that works it, what the user asked of it) and the test aid [`FrameScript`]
//! (`view --frame-actions`). What the frame's actions do is in `decorations.rs`.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smithay_client_toolkit::reexports::csd_frame::ResizeEdge;
use smithay_client_toolkit::reexports::protocols::xdg::shell::client::xdg_toplevel;
use smithay_client_toolkit::seat::pointer::{CursorIcon, ThemedPointer};
use smithay_client_toolkit::shell::xdg::fallback_frame::FallbackFrame;
use smithay_client_toolkit::subcompositor::SubcompositorState;

/// Two presses on the title bar at most this far apart (pointer event times, ms) are a double click.
pub(super) const DOUBLE_CLICK_MS: u32 = 400;

/// The frame, the pointer that works it, and what the user asked of it (`D`: the viewer's state, which
/// dispatches the frame's events).
pub(super) struct Decorations<D> {
    /// Needed to create the frame's subsurfaces (at the first client-side configure).
    pub(super) subcompositor: Arc<SubcompositorState>,
    /// sctk's fallback frame, while decorations are client-side (hidden when they are the server's).
    pub(super) frame: Option<FallbackFrame<D>>,
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

impl<D> Decorations<D> {
    pub(super) fn new(
        subcompositor: Arc<SubcompositorState>,
        script: FrameScript,
    ) -> Decorations<D> {
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
    pub(super) fn due(&mut self, now: Instant) -> Option<FrameStep> {
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
