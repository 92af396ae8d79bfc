//! What the viewer holds: [`State`], the Dispatch target of its event queue, grouped by concern into the
//! compositor's globals, the window's layout, input, frame pacing and presentation, and the dma-buf and shm
//! buffers. Only data (and the recording of a fatal error): the behaviour lives in the concern files.

use std::any::Any;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use dmacam_capture::{Fourcc, Mapping};
use smithay_client_toolkit::compositor::CompositorState;
use smithay_client_toolkit::dmabuf::DmabufState;
use smithay_client_toolkit::output::OutputState;
use smithay_client_toolkit::registry::RegistryState;
use smithay_client_toolkit::seat::SeatState;
use smithay_client_toolkit::shell::xdg::window::Window;
use smithay_client_toolkit::shm::raw::RawPool;
use smithay_client_toolkit::shm::Shm;
use wayland_client::backend::ObjectId;
use wayland_client::protocol::{wl_buffer, wl_keyboard, wl_subsurface, wl_surface};
use wayland_protocols::wp::linux_dmabuf::zv1::client::zwp_linux_dmabuf_feedback_v1;
use wayland_protocols::wp::presentation_time::client::wp_presentation;
use wayland_protocols::wp::viewporter::client::wp_viewport;

use super::capabilities::Capabilities;
use super::error::DisplayError;
use super::frame::Decorations;
use super::options::{BufferMode, Picture};
use super::representation::Representation;
use super::sync::ExplicitSync;
use crate::stats::Stats;

// Field order is drop order (after the `Drop` of `Viewer`): the registry's, shm's, dma-buf's and the seat's
// globals, the frame's subsurfaces and the pointer, then the window and its surfaces.
/// The Dispatch target of the viewer's event queue: all its event handlers read and change.
pub(super) struct State {
    pub(super) display: String,
    pub(super) globals: Globals,
    pub(super) shm: ShmBuffers,
    pub(super) dmabuf: DmabufBuffers,
    pub(super) input: Input,
    pub(super) decorations: Decorations<State>,
    pub(super) layout: Layout,
    pub(super) presentation: PresentationState,
    pub(super) representation: Representation,
    pub(super) explicit: ExplicitSync,
    pub(super) caps: Capabilities,
    pub(super) mode: BufferMode,
    pub(super) allow_fallback: bool,
    pub(super) fallback_reason: Option<String>,
    pub(super) stats: Stats,
    pub(super) fatal: Option<DisplayError>,
}

/// The registry, the outputs and the compositor (kept alive); the other globals live with their concern.
pub(super) struct Globals {
    pub(super) registry: RegistryState,
    pub(super) outputs: OutputState,
    pub(super) compositor: CompositorState,
}

/// The xdg toplevel (black background), the video subsurface inside it, and their sizes.
pub(super) struct Layout {
    pub(super) window: Window,
    pub(super) subsurface: wl_subsurface::WlSubsurface,
    pub(super) video: wl_surface::WlSurface,
    pub(super) bg_viewport: Option<wp_viewport::WpViewport>,
    pub(super) video_viewport: Option<wp_viewport::WpViewport>,
    pub(super) configured: bool,
    pub(super) window_size: (u32, u32),
    pub(super) frame_size: (u32, u32),
    pub(super) layout_dirty: bool,
    pub(super) fullscreen: bool,
    pub(super) bg: Option<(RawPool, wl_buffer::WlBuffer, (u32, u32))>,
}

/// The seat's keyboard and what the user asked for (the pointer works the frame: [`Decorations`]).
pub(super) struct Input {
    pub(super) seat: SeatState,
    pub(super) keyboard: Option<wl_keyboard::WlKeyboard>,
    pub(super) close_requested: bool,
    /// Keys pressed that the viewer does not handle itself, for the application
    /// ([`Viewer::take_keys`](super::Viewer::take_keys)).
    pub(super) keys: Vec<char>,
}

/// Frame pacing and wp_presentation: the frame waiting to be committed, whether the video's frame callback is
/// due, and how many presentation feedbacks are outstanding.
pub(super) struct PresentationState {
    pub(super) global: Option<wp_presentation::WpPresentation>,
    pub(super) pending: Option<Picture>,
    pub(super) frame_cb_pending: bool,
    pub(super) feedback_outstanding: usize,
}

/// zwp_linux_dmabuf_v1, its surface feedback, and the cache of wl_buffers over dma-bufs.
pub(super) struct DmabufBuffers {
    pub(super) global: DmabufState,
    pub(super) feedback_obj: Option<zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1>,
    pub(super) modifier_override: Option<(Fourcc, u64)>,
    pub(super) entries: HashMap<BufferKey, DmabufEntry>,
    pub(super) by_params: HashMap<ObjectId, BufferKey>,
    pub(super) by_buffer: HashMap<ObjectId, BufferKey>,
    pub(super) use_counter: u64,
}

/// The identity of a dma-buf wl_buffer: per plane (inode, offset, stride), plus geometry and format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct BufferKey {
    pub(super) planes: Vec<(u64, u32, u32)>,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) fourcc: Fourcc,
    pub(super) modifier: u64,
}

pub(super) enum ImportState {
    Creating,
    Ready(wl_buffer::WlBuffer),
    Failed,
}

pub(super) struct DmabufEntry {
    pub(super) state: ImportState,
    /// Producers' holders of frames attached with this buffer, dropped at `wl_buffer.release`.
    pub(super) holders: Vec<Box<dyn Any + Send>>,
    pub(super) busy: bool,
    /// Destroy the wl_buffer once released (feedback changed or evicted).
    pub(super) stale: bool,
    /// Keeps the dma-bufs alive, so their inodes (the key) cannot be reused by another buffer.
    pub(super) _fds: Vec<Arc<OwnedFd>>,
    pub(super) last_used: u64,
}

/// wl_shm, the shm buffers of the fallback, and the frames' dma-bufs mapped for its copy.
pub(super) struct ShmBuffers {
    pub(super) global: Shm,
    pub(super) slots: Vec<ShmSlot>,
    pub(super) mappings: HashMap<u64, Mapping>,
}

pub(super) struct ShmSlot {
    pub(super) pool: RawPool,
    pub(super) buffer: wl_buffer::WlBuffer,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) format: u32,
    pub(super) busy: bool,
}

impl State {
    pub(super) fn set_fatal(&mut self, e: DisplayError) {
        if self.fatal.is_none() {
            self.fatal = Some(e);
        }
    }

    pub(super) fn frame_error(&mut self, fourcc: Fourcc, detail: impl Into<String>) {
        self.set_fatal(DisplayError::Frame {
            fourcc,
            detail: detail.into(),
        });
    }
}

smithay_client_toolkit::delegate_dispatch2!(State);
