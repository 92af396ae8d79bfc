//! The window and where the video sits in it: an xdg toplevel with a black background, the video subsurface
//! placed and scaled by wp_viewporter to keep the frame's aspect ratio, laid out again at each configure,
//! fullscreen on request.

use smithay_client_toolkit::reexports::csd_frame::WindowState;
use smithay_client_toolkit::shell::xdg::window::{Window, WindowConfigure, WindowHandler};
use smithay_client_toolkit::shell::xdg::XdgSurface;
use smithay_client_toolkit::shell::WaylandSurface;
use smithay_client_toolkit::shm::raw::RawPool;
use wayland_client::protocol::{wl_buffer, wl_shm};
use wayland_client::{Connection, Dispatch, QueueHandle};
use wayland_protocols::wp::viewporter::client::{wp_viewport, wp_viewporter};

use super::error::DisplayError;
use super::state::State;

/// User data of the background buffer.
struct BackgroundBuffer;
/// User data of the video's (empty) input region.
pub(super) struct RegionData;
/// User data of wp_viewporter and wp_viewport (no events).
pub(super) struct ViewportData;

/// The largest rectangle of `frame`'s aspect ratio inside `win`, centred: (x, y, w, h).
pub fn fit_rect(frame: (u32, u32), win: (u32, u32)) -> (i32, i32, u32, u32) {
    let (fw, fh) = (u64::from(frame.0.max(1)), u64::from(frame.1.max(1)));
    let (ww, wh) = (u64::from(win.0.max(1)), u64::from(win.1.max(1)));
    let (w, h) = if ww * fh <= wh * fw {
        (ww, (ww * fh / fw).max(1))
    } else {
        ((wh * fw / fh).max(1), wh)
    };
    (
        ((ww - w) / 2) as i32,
        ((wh - h) / 2) as i32,
        w as u32,
        h as u32,
    )
}

impl State {
    pub(super) fn toggle_fullscreen(&mut self) {
        if self.layout.fullscreen {
            self.layout.window.unset_fullscreen();
        } else {
            self.layout.window.set_fullscreen(None);
        }
    }

    /// Background (black, scaled to the window) on the toplevel, video subsurface placed and scaled to keep
    /// the frame's aspect ratio.
    pub(super) fn apply_layout(&mut self, qh: &QueueHandle<State>) {
        let (ww, wh) = self.layout.window_size;
        let surface = self.layout.window.wl_surface().clone();
        let bg_size = if self.layout.bg_viewport.is_some() {
            (1, 1)
        } else {
            (ww, wh)
        };
        if self.layout.bg.as_ref().is_none_or(|b| b.2 != bg_size) {
            match self.black_buffer(bg_size, qh) {
                Ok(b) => {
                    if let Some((_, old, _)) = self.layout.bg.replace(b) {
                        old.destroy();
                    }
                }
                Err(e) => {
                    self.set_fatal(e);
                    return;
                }
            }
        }
        if let Some((_, buf, _)) = &self.layout.bg {
            surface.attach(Some(buf), 0, 0);
        }
        if let Some(vp) = &self.layout.bg_viewport {
            vp.set_destination(ww as i32, wh as i32);
        }
        surface.damage_buffer(0, 0, i32::MAX, i32::MAX);
        // With our own frame, the window geometry takes in its title bar and borders (drawn outside the
        // content, at negative offsets), so the compositor's sizes are the whole window's.
        let (gx, gy, gw, gh) = self.window_geometry((ww, wh));
        self.layout
            .window
            .xdg_surface()
            .set_window_geometry(gx, gy, gw as i32, gh as i32);
        self.draw_frame();
        let (x, y, w, h) = fit_rect(self.layout.frame_size, (ww, wh));
        match &self.layout.video_viewport {
            Some(vp) => {
                vp.set_destination(w as i32, h as i32);
                self.layout.subsurface.set_position(x, y);
            }
            None => {
                // Without wp_viewporter the frame is shown 1:1, centred (and cropped by the window).
                let (fw, fh) = self.layout.frame_size;
                self.layout
                    .subsurface
                    .set_position((ww as i32 - fw as i32) / 2, (wh as i32 - fh as i32) / 2);
            }
        }
        self.layout.video.commit();
        surface.commit();
        self.layout.layout_dirty = false;
        tracing::debug!(window = ?(ww, wh), video = ?(x, y, w, h), "layout");
    }

    /// The content (the area the video is fitted in, without the frame) takes `size`: laid out again, and
    /// the waiting frame committed.
    pub(super) fn resize_content(&mut self, size: (u32, u32), qh: &QueueHandle<State>) {
        if self.layout.configured && size != self.layout.window_size {
            tracing::info!("window content resized to {}x{}", size.0, size.1);
        }
        self.layout.window_size = size;
        self.layout.configured = true;
        self.apply_layout(qh);
        self.try_commit(qh);
    }

    fn black_buffer(
        &mut self,
        (w, h): (u32, u32),
        qh: &QueueHandle<State>,
    ) -> Result<(RawPool, wl_buffer::WlBuffer, (u32, u32)), DisplayError> {
        let len = (w * h * 4) as usize;
        let mut pool =
            RawPool::new(len, &self.shm.global).map_err(|e| DisplayError::Shm(e.to_string()))?;
        pool.mmap()[..len].fill(0);
        let buf = pool.create_buffer(
            0,
            w as i32,
            h as i32,
            (w * 4) as i32,
            wl_shm::Format::Xrgb8888,
            BackgroundBuffer,
            qh,
        );
        Ok((pool, buf, (w, h)))
    }
}

impl WindowHandler for State {
    fn request_close(&mut self, _: &Connection, _: &QueueHandle<Self>, _: &Window) {
        tracing::info!("the compositor closed the window");
        self.request_close("the compositor closed the window");
    }

    fn configure(
        &mut self,
        _: &Connection,
        qh: &QueueHandle<Self>,
        _: &Window,
        configure: WindowConfigure,
        _: u32,
    ) {
        self.layout.fullscreen = configure.state.contains(WindowState::FULLSCREEN);
        let content = self.configure_frame(
            configure.new_size,
            configure.decoration_mode,
            configure.state,
            configure.capabilities,
            qh,
        );
        let size = match content {
            Some(s) => s,
            None if self.layout.configured => self.layout.window_size,
            None => self.layout.frame_size,
        };
        tracing::debug!(?size, fullscreen = self.layout.fullscreen, decorations = ?configure.decoration_mode, "configure");
        self.resize_content(size, qh);
    }
}

impl Dispatch<wl_buffer::WlBuffer, BackgroundBuffer> for State {
    fn event(
        _: &mut Self,
        _: &wl_buffer::WlBuffer,
        _: wl_buffer::Event,
        _: &BackgroundBuffer,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        // The background buffer is never rewritten: its releases need no action.
    }
}

impl Dispatch<wp_viewporter::WpViewporter, ViewportData> for State {
    fn event(
        _: &mut Self,
        _: &wp_viewporter::WpViewporter,
        _: wp_viewporter::Event,
        _: &ViewportData,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<wp_viewport::WpViewport, ViewportData> for State {
    fn event(
        _: &mut Self,
        _: &wp_viewport::WpViewport,
        _: wp_viewport::Event,
        _: &ViewportData,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<wayland_client::protocol::wl_region::WlRegion, RegionData> for State {
    fn event(
        _: &mut Self,
        _: &wayland_client::protocol::wl_region::WlRegion,
        _: wayland_client::protocol::wl_region::Event,
        _: &RegionData,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_aspect() {
        assert_eq!(fit_rect((640, 360), (1280, 720)), (0, 0, 1280, 720));
        assert_eq!(fit_rect((640, 480), (1280, 720)), (160, 0, 960, 720));
        assert_eq!(fit_rect((1280, 720), (640, 640)), (0, 140, 640, 360));
    }
}
