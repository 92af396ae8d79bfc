//! The Wayland window that shows frames: an xdg-shell toplevel whose video subsurface is scaled by
//! wp_viewporter (aspect ratio kept, black bars around), fed with one wl_buffer per distinct dma-buf
//! (zwp_linux_dmabuf_v1, v3 modifier events or v4 feedback) or, as a fallback, with wl_shm buffers filled by
//! one counted CPU copy. Frame callbacks pace commits, wp_presentation feedback measures latency, and
//! `wl_buffer.release` hands each frame's buffer back to its producer.
//!
//! The viewer never blocks: [`Viewer::poll`] polls the Wayland fd together with the producer's fds.

pub(crate) mod capabilities;
mod colour;
mod connection;
mod decorations;
mod dmabuf;
mod error;
mod frame;
mod globals;
mod input;
mod layout;
mod options;
mod pointer;
mod presentation;
mod representation;
mod shm;
mod state;
mod sync;

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::poll::PollFlags;
use wayland_client::backend::WaylandError;
use wayland_client::globals::registry_queue_init;
use wayland_client::{Connection, EventQueue, Proxy};

use crate::stats::Stats;

pub use capabilities::Capabilities;
pub use error::DisplayError;
pub use frame::{FrameScript, FrameStep};
pub use layout::fit_rect;
pub use options::{BufferMode, Fences, Picture, ViewerOptions};
use smithay_client_toolkit::reexports::csd_frame::DecorationsFrame;

use connection::{connect, disconnected, display_name, poll_fds};
use state::{ImportState, State};

/// A Wayland window showing frames. See the module documentation.
pub struct Viewer {
    conn: Connection,
    queue: EventQueue<State>,
    state: State,
}

impl Viewer {
    /// Connects to the compositor, binds what a video window needs, creates the window and waits for its
    /// first configure.
    pub fn connect(opts: &ViewerOptions) -> Result<Viewer, DisplayError> {
        let display = display_name(&opts.display);
        let conn = connect(&opts.display)?;
        let (globals, mut queue) =
            registry_queue_init::<State>(&conn).map_err(|source| DisplayError::Registry {
                display: display.clone(),
                source,
            })?;
        let qh = queue.handle();
        let mut state = State::new(&globals, &qh, opts, &display)?;
        // Two round trips: the first delivers globals' initial events (shm formats, v3 modifiers, clock id,
        // seat capabilities, dma-buf feedback), the second what those triggered (keyboard, configure).
        for _ in 0..2 {
            queue
                .roundtrip(&mut state)
                .map_err(|e| disconnected(&conn, &display, &e.to_string()))?;
        }
        state.learn_capabilities();
        tracing::info!(
            display = %state.display,
            linux_dmabuf = ?state.caps.linux_dmabuf_version,
            feedback = state.caps.feedback,
            dmabuf_pairs = state.caps.dmabuf_formats.len(),
            shm_formats = state.caps.shm_formats.len(),
            presentation_clock = ?state.caps.presentation_clock,
            viewporter = state.caps.viewporter,
            "connected to the Wayland compositor"
        );
        let mut viewer = Viewer { conn, queue, state };
        viewer.check()?;
        Ok(viewer)
    }

    /// What the compositor offers.
    pub fn capabilities(&self) -> &Capabilities {
        &self.state.caps
    }

    /// The current buffer mode (it changes to [`BufferMode::Shm`] after an import failure when allowed).
    pub fn mode(&self) -> BufferMode {
        self.state.mode
    }

    /// Why the viewer fell back to shm, if it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.state.fallback_reason.as_deref()
    }

    /// Switches the buffer mode for the following frames.
    pub fn set_mode(&mut self, mode: BufferMode, allow_shm_fallback: bool) {
        self.state.mode = mode;
        self.state.allow_fallback = allow_shm_fallback;
    }

    /// The camera's colorimetry (`None` for R'G'B' frames): on passthrough, told to the compositor with each
    /// Y'CbCr buffer where it offers wp_color_representation_v1 with that matrix and range
    /// ([`crate::path::representation_for`]); otherwise the compositor reads them as BT.601 limited range.
    pub fn set_colorimetry(&mut self, c: Option<dmacam_capture::colour::Colorimetry>) {
        self.state.set_colorimetry(c);
    }

    /// After a fallback to shm ([`Viewer::fallback_reason`]): back to dma-buf mode for another kind of
    /// buffer (the render stage's output instead of the camera's), the shm fallback allowed again.
    pub fn resume_dmabuf(&mut self) {
        self.state.mode = BufferMode::Dmabuf;
        self.state.allow_fallback = true;
        self.state.fallback_reason = None;
    }

    /// Sets the window title (the frame's too, when the viewer draws its own).
    pub fn set_title(&mut self, title: &str) {
        self.state.layout.window.set_title(title.to_owned());
        if let Some(f) = self.state.decorations.frame.as_mut() {
            f.set_title(title);
        }
    }

    /// The display this viewer talks to.
    pub fn display(&self) -> &str {
        &self.state.display
    }

    /// Measurements so far.
    pub fn stats(&self) -> &Stats {
        &self.state.stats
    }

    /// Whether the user asked to quit (q, Escape or the close button).
    pub fn close_requested(&self) -> bool {
        self.state.input.close_requested
    }

    /// Why the window is closing (the frame's close button, the compositor, a quit key), once it is.
    pub fn close_reason(&self) -> Option<&str> {
        self.state.decorations.close_reason.as_deref()
    }

    /// Whether the viewer draws the window's frame itself (the compositor offers none).
    pub fn client_side_decorations(&self) -> bool {
        self.state.decorations.visible()
    }

    /// The keys pressed since the last call that the viewer does not handle itself (q, Escape, f and F11
    /// it does), as the characters they type.
    pub fn take_keys(&mut self) -> Vec<char> {
        std::mem::take(&mut self.state.input.keys)
    }

    /// Hands every frame back to its producer now (the one waiting to be committed, and those attached to
    /// wl_buffers the compositor still shows or holds) and forgets those wl_buffers (destroyed once the
    /// compositor releases them). For a producer that went away, e.g. a camera disconnected mid-stream whose
    /// buffers must all be let go before the device can be opened again. What is on screen stays there: the
    /// compositor holds its own reference to the memory.
    pub fn release_frames(&mut self) {
        let st = &mut self.state;
        st.presentation.pending = None;
        st.explicit.release_all();
        let mut idle = Vec::new();
        for (key, e) in st.dmabuf.entries.iter_mut() {
            e.holders.clear();
            if e.busy || matches!(e.state, ImportState::Creating) {
                e.stale = true;
            } else {
                idle.push(key.clone());
            }
        }
        for key in idle {
            if let Some(e) = st.dmabuf.entries.remove(&key) {
                if let ImportState::Ready(b) = e.state {
                    st.dmabuf.by_buffer.remove(&b.id());
                    b.destroy();
                }
            }
        }
        st.shm.mappings.clear();
    }

    /// Whether pictures handed over with an acquire fence ([`crate::Fences`]) give it to the compositor
    /// (zwp_linux_explicit_synchronization_v1), in dma-buf mode; else the viewer would have to wait for it.
    pub fn explicit_sync(&self) -> bool {
        self.state.explicit.offered() && self.state.mode == BufferMode::Dmabuf
    }

    /// Whether the window is fullscreen (as last configured).
    pub fn is_fullscreen(&self) -> bool {
        self.state.layout.fullscreen
    }

    /// Toggles fullscreen (what `f` and F11 do).
    pub fn toggle_fullscreen(&mut self) {
        self.state.toggle_fullscreen();
    }

    /// Whether frames are still on their way: one waiting to be committed, or presentation feedback due.
    pub fn in_flight(&self) -> bool {
        self.state.presentation.pending.is_some()
            || self.state.presentation.feedback_outstanding > 0
    }

    /// Hands a frame to the viewer. If the compositor is not ready for it yet (frame callback not yet
    /// received), it waits; a frame still waiting is replaced (and counted as dropped).
    pub fn submit(&mut self, frame: Picture) -> Result<(), DisplayError> {
        self.check()?;
        let st = &mut self.state;
        st.stats.record_submitted(frame.sequence);
        if let Some(old) = st.presentation.pending.replace(frame) {
            st.stats.replaced += 1;
            if let Some(t) = &old.trace {
                t.update(|r| r.replaced = true);
            }
        }
        let qh = self.queue.handle();
        st.try_commit(&qh);
        self.check()
    }

    /// Flushes requests, then polls the Wayland fd together with `extra` fds (e.g. the camera's) for up to
    /// `timeout` (`None`: forever), reads and dispatches Wayland events, and returns which `extra` fds are
    /// ready (readable, or in error so that the caller's next call reports it).
    pub fn poll(
        &mut self,
        extra: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>, DisplayError> {
        self.dispatch_pending()?;
        self.flush()?;
        let Some(guard) = self.queue.prepare_read() else {
            // Events are already queued: dispatch them, and only peek at the other fds.
            let ready =
                poll_fds(extra, None, Some(Duration::ZERO)).map_err(|e| self.poll_err(e))?;
            self.dispatch_pending()?;
            return Ok(ready.1);
        };
        let (wl, ready) = match poll_fds(extra, Some(guard.connection_fd()), timeout) {
            Ok(r) => r,
            Err(e) => return Err(self.poll_err(e)),
        };
        if wl.contains(PollFlags::POLLIN) {
            match guard.read() {
                Ok(_) => {}
                Err(WaylandError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    return Err(disconnected(
                        &self.conn,
                        &self.state.display,
                        &e.to_string(),
                    ))
                }
            }
        } else if wl.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            drop(guard);
            return Err(disconnected(
                &self.conn,
                &self.state.display,
                "the connection was closed",
            ));
        } else {
            drop(guard);
        }
        self.dispatch_pending()?;
        Ok(ready)
    }

    /// Dispatches events already read, then commits a waiting frame if the compositor is ready for it.
    pub fn dispatch_pending(&mut self) -> Result<(), DisplayError> {
        self.queue
            .dispatch_pending(&mut self.state)
            .map_err(|e| disconnected(&self.conn, &self.state.display, &e.to_string()))?;
        let qh = self.queue.handle();
        self.state.run_frame_script(&qh);
        self.check()
    }

    fn flush(&mut self) -> Result<(), DisplayError> {
        match self.conn.flush() {
            Ok(()) => Ok(()),
            Err(WaylandError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(disconnected(
                &self.conn,
                &self.state.display,
                &e.to_string(),
            )),
        }
    }

    fn poll_err(&self, source: io::Error) -> DisplayError {
        DisplayError::Poll {
            display: self.state.display.clone(),
            source,
        }
    }

    fn check(&mut self) -> Result<(), DisplayError> {
        match self.state.fatal.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let st = &mut self.state;
        st.presentation.pending = None;
        for (_, e) in st.dmabuf.entries.drain() {
            if let ImportState::Ready(b) = e.state {
                b.destroy();
            }
        }
        for s in st.shm.slots.drain(..) {
            s.buffer.destroy();
        }
        if let Some((_, b, _)) = st.layout.bg.take() {
            b.destroy();
        }
        for vp in [
            st.layout.bg_viewport.take(),
            st.layout.video_viewport.take(),
        ]
        .into_iter()
        .flatten()
        {
            vp.destroy();
        }
        if let Some(f) = st.dmabuf.feedback_obj.take() {
            f.destroy();
        }
        // The frame's subsurfaces go before the toplevel they hang from.
        st.decorations.frame = None;
        // Releases the pointer, destroys its cursor surface.
        st.decorations.pointer = None;
        st.layout.subsurface.destroy();
        st.layout.video.destroy();
        let _ = self.conn.flush();
    }
}
