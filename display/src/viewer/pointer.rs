//! The pointer: it works the window's frame (when the viewer draws one) — buttons, move by the title bar,
//! resize by the borders, double click — and shows the cursor the frame asks for, through wp_cursor_shape_v1
//! where the compositor offers it, else from the cursor theme (sctk's themed pointer does both).

use std::time::Duration;

use smithay_client_toolkit::reexports::csd_frame::{DecorationsFrame, FrameAction, FrameClick};
use smithay_client_toolkit::seat::pointer::{
    CursorIcon, PointerData, PointerEvent, PointerEventKind, PointerHandler, ThemeSpec,
};
use smithay_client_toolkit::shell::WaylandSurface;
use wayland_client::protocol::{wl_pointer, wl_seat};
use wayland_client::{Connection, Proxy, QueueHandle};

use super::state::State;

/// Linux input button codes (linux/input-event-codes.h).
const BTN_LEFT: u32 = 0x110;
const BTN_RIGHT: u32 = 0x111;

/// What a button is to the frame: the main click or the one that opens the window menu.
pub(super) fn frame_click(button: u32) -> Option<FrameClick> {
    match button {
        BTN_LEFT => Some(FrameClick::Normal),
        BTN_RIGHT => Some(FrameClick::Alternate),
        _ => None,
    }
}

impl State {
    /// Binds the seat's pointer, with its cursor surface.
    pub(super) fn new_pointer(&mut self, qh: &QueueHandle<State>, seat: &wl_seat::WlSeat) {
        let surface = self.globals.compositor.create_surface(qh);
        match self.input.seat.get_pointer_with_theme::<_, ()>(
            qh,
            seat,
            self.shm.global.wl_shm(),
            surface,
            ThemeSpec::default(),
        ) {
            Ok(p) => self.decorations.pointer = Some(p),
            Err(e) => {
                tracing::warn!("no pointer input (the window's frame will not work): {e}")
            }
        }
    }

    fn set_cursor(&mut self, conn: &Connection, icon: CursorIcon) {
        if self.decorations.cursor == Some(icon) {
            return;
        }
        if let Some(p) = &self.decorations.pointer {
            match p.set_cursor(conn, icon) {
                Ok(()) => self.decorations.cursor = Some(icon),
                Err(e) => tracing::debug!(?icon, "cannot set the cursor: {e}"),
            }
        }
    }
}

impl PointerHandler for State {
    fn pointer_frame(
        &mut self,
        conn: &Connection,
        _: &QueueHandle<Self>,
        pointer: &wl_pointer::WlPointer,
        events: &[PointerEvent],
    ) {
        let Some(seat) = pointer.data::<PointerData<()>>().map(|d| d.seat().clone()) else {
            return;
        };
        let content = self.layout.window.wl_surface().clone();
        for event in events {
            let on_frame = event.surface != content && event.surface != self.layout.video;
            let (x, y) = event.position;
            match event.kind {
                PointerEventKind::Enter { .. } => {
                    // A new enter serial: the cursor must be set again.
                    self.decorations.cursor = None;
                    let icon = match self.decorations.frame.as_mut() {
                        Some(f) if on_frame => {
                            f.click_point_moved(Duration::ZERO, &event.surface.id(), x, y)
                        }
                        _ => None,
                    };
                    self.set_cursor(conn, icon.unwrap_or(CursorIcon::Default));
                }
                PointerEventKind::Leave { .. } => {
                    if on_frame {
                        if let Some(f) = self.decorations.frame.as_mut() {
                            f.click_point_left();
                        }
                    }
                }
                PointerEventKind::Motion { time } => {
                    let icon = match self.decorations.frame.as_mut() {
                        Some(f) if on_frame => f.click_point_moved(
                            Duration::from_millis(u64::from(time)),
                            &event.surface.id(),
                            x,
                            y,
                        ),
                        _ => Some(CursorIcon::Default),
                    };
                    if let Some(icon) = icon {
                        self.set_cursor(conn, icon);
                    }
                }
                PointerEventKind::Press {
                    button,
                    serial,
                    time,
                }
                | PointerEventKind::Release {
                    button,
                    serial,
                    time,
                } => {
                    let pressed = matches!(event.kind, PointerEventKind::Press { .. });
                    let (Some(click), true) = (frame_click(button), on_frame) else {
                        continue;
                    };
                    let action = self.decorations.frame.as_mut().and_then(|f| {
                        f.on_click(Duration::from_millis(u64::from(time)), click, pressed)
                    });
                    match action {
                        // The frame asks for a move only for a press on its title bar.
                        Some(FrameAction::Move) => {
                            self.title_bar_press(time, Some((&seat, serial)))
                        }
                        Some(a) => self.frame_action(a, Some((&seat, serial))),
                        None => {}
                    }
                }
                PointerEventKind::Axis { .. } => {}
            }
        }
        // Hovering the buttons changes how they are drawn.
        if self
            .decorations
            .frame
            .as_ref()
            .is_some_and(|f| f.is_dirty())
        {
            self.draw_frame();
            content.commit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_clicks_work_the_frame_and_right_clicks_open_its_menu() {
        assert_eq!(frame_click(BTN_LEFT), Some(FrameClick::Normal));
        assert_eq!(frame_click(BTN_RIGHT), Some(FrameClick::Alternate));
        assert_eq!(frame_click(0x112), None);
    }
}
