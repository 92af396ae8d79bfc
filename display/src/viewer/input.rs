//! Keyboard input (the pointer is in `pointer.rs`): the seat's keyboard, the keys the viewer handles itself (quit, fullscreen), and the others,
//! kept for the application.

use smithay_client_toolkit::seat::keyboard::{
    KeyEvent, KeyboardHandler, Keysym, Modifiers, RawModifiers,
};
use smithay_client_toolkit::seat::{Capability, SeatHandler, SeatState};
use wayland_client::protocol::{wl_keyboard, wl_seat, wl_surface};
use wayland_client::{Connection, QueueHandle};

use super::state::State;

impl SeatHandler for State {
    fn seat_state(&mut self) -> &mut SeatState {
        &mut self.input.seat
    }

    fn new_seat(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_seat::WlSeat) {}

    fn new_capability(
        &mut self,
        _: &Connection,
        qh: &QueueHandle<Self>,
        seat: wl_seat::WlSeat,
        capability: Capability,
    ) {
        if capability == Capability::Keyboard && self.input.keyboard.is_none() {
            match self.input.seat.get_keyboard(qh, &seat, None) {
                Ok(k) => self.input.keyboard = Some(k),
                Err(e) => tracing::warn!("no keyboard input (q/Esc/f keys will not work): {e}"),
            }
        }
        if capability == Capability::Pointer && self.decorations.pointer.is_none() {
            self.new_pointer(qh, &seat);
        }
    }

    fn remove_capability(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: wl_seat::WlSeat,
        capability: Capability,
    ) {
        if capability == Capability::Keyboard {
            if let Some(k) = self.input.keyboard.take() {
                k.release();
            }
        }
        if capability == Capability::Pointer {
            // Dropping it releases the pointer.
            self.decorations.pointer = None;
        }
    }

    fn remove_seat(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_seat::WlSeat) {}
}

impl KeyboardHandler for State {
    fn enter(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_keyboard::WlKeyboard,
        _: &wl_surface::WlSurface,
        _: u32,
        _: &[u32],
        _: &[Keysym],
    ) {
    }

    fn leave(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_keyboard::WlKeyboard,
        _: &wl_surface::WlSurface,
        _: u32,
    ) {
    }

    fn press_key(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_keyboard::WlKeyboard,
        _: u32,
        event: KeyEvent,
    ) {
        match event.keysym {
            Keysym::q | Keysym::Q | Keysym::Escape => {
                tracing::info!("quit key pressed");
                self.request_close("a quit key was pressed");
            }
            Keysym::f | Keysym::F | Keysym::F11 => self.toggle_fullscreen(),
            _ => {
                if let Some(text) = &event.utf8 {
                    self.input.keys.extend(text.chars());
                }
            }
        }
    }

    fn repeat_key(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_keyboard::WlKeyboard,
        _: u32,
        _: KeyEvent,
    ) {
    }

    fn release_key(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_keyboard::WlKeyboard,
        _: u32,
        _: KeyEvent,
    ) {
    }

    fn update_modifiers(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_keyboard::WlKeyboard,
        _: u32,
        _: Modifiers,
        _: RawModifiers,
        _: u32,
    ) {
    }
}
