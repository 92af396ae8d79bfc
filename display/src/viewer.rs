//! The Wayland window that shows frames: an xdg-shell toplevel whose video subsurface is scaled by
//! wp_viewporter (aspect ratio kept, black bars around), fed with one wl_buffer per distinct dma-buf
//! (zwp_linux_dmabuf_v1, v3 modifier events or v4 feedback) or, as a fallback, with wl_shm buffers filled by
//! one counted CPU copy. Frame callbacks pace commits, wp_presentation feedback measures latency, and
//! `wl_buffer.release` hands each frame's buffer back to its producer.
//!
//! The viewer never blocks: [`Viewer::poll`] polls the Wayland fd together with the producer's fds.

use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::trace::FrameTrace;
use dmacam_capture::dmabuf::MapError;
use dmacam_capture::monotonic_ns;
use dmacam_capture::{Dmabuf, Fourcc, Mapping};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use smithay_client_toolkit::compositor::FrameCallbackData;
use smithay_client_toolkit::compositor::{CompositorHandler, CompositorState};
use smithay_client_toolkit::dmabuf::{DmabufFeedback, DmabufHandler, DmabufState};
use smithay_client_toolkit::output::{OutputHandler, OutputState};
use smithay_client_toolkit::reexports::csd_frame::WindowState;
use smithay_client_toolkit::registry::{ProvidesRegistryState, RegistryState};
use smithay_client_toolkit::seat::keyboard::{
    KeyEvent, KeyboardHandler, Keysym, Modifiers, RawModifiers,
};
use smithay_client_toolkit::seat::{Capability, SeatHandler, SeatState};
use smithay_client_toolkit::shell::xdg::window::{
    Window, WindowConfigure, WindowDecorations, WindowHandler,
};
use smithay_client_toolkit::shell::xdg::{XdgShell, XdgSurface};
use smithay_client_toolkit::shell::WaylandSurface;
use smithay_client_toolkit::shm::raw::RawPool;
use smithay_client_toolkit::shm::{Shm, ShmHandler};
use smithay_client_toolkit::subcompositor::SubcompositorState;
use smithay_client_toolkit::{delegate_registry, registry_handlers};
use thiserror::Error;
use wayland_client::backend::{ObjectId, WaylandError};
use wayland_client::globals::{registry_queue_init, GlobalError};
use wayland_client::protocol::{
    wl_buffer, wl_keyboard, wl_output, wl_seat, wl_shm, wl_subsurface, wl_surface,
};
use wayland_client::{Connection, Dispatch, EventQueue, Proxy, QueueHandle};
use wayland_protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_buffer_params_v1, zwp_linux_dmabuf_feedback_v1,
};
use wayland_protocols::wp::presentation_time::client::{wp_presentation, wp_presentation_feedback};
use wayland_protocols::wp::viewporter::client::{wp_viewport, wp_viewporter};

use crate::convert::{copy_packed, to_xrgb8888, ConvertError, PlaneRef};
use crate::formats::{drm_of_shm, lookup, shm_code, FormatInfo, DRM_FORMAT_MOD_INVALID};
use crate::stats::Stats;

/// At most this many shm buffers are in flight.
const MAX_SHM_SLOTS: usize = 4;
/// Cached dma-buf wl_buffers beyond this count are evicted (least recently used first, idle ones only).
const MAX_DMABUF_CACHE: usize = 32;

/// Errors of the Wayland viewer. Each names the display it talks to.
#[derive(Debug, Error)]
pub enum DisplayError {
    #[error("no Wayland display: {detail}")]
    NoDisplay { detail: String },
    #[error("cannot connect to the Wayland display {display}: {source}")]
    Connect {
        display: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the registry of the Wayland display {display}: {source}")]
    Registry {
        display: String,
        #[source]
        source: GlobalError,
    },
    #[error("the compositor at {display} lacks {interface}, which a dmacam window needs")]
    Missing {
        display: String,
        interface: &'static str,
    },
    #[error("the Wayland compositor ({display}) went away: {detail}")]
    Disconnected { display: String, detail: String },
    #[error(
        "the compositor ({display}) could not import a {fourcc} {width}x{height} dma-buf (modifier {modifier:#x}), \
         and the shm fallback is not allowed on this path"
    )]
    Import {
        display: String,
        fourcc: Fourcc,
        width: u32,
        height: u32,
        modifier: u64,
    },
    #[error("cannot show a {fourcc} frame: {detail}")]
    Frame { fourcc: Fourcc, detail: String },
    #[error("cannot map a frame's dma-buf for the shm copy: {0}")]
    Map(#[from] MapError),
    #[error("cannot create a wl_shm buffer: {0}")]
    Shm(String),
    #[error("polling the Wayland fd of {display}: {source}")]
    Poll {
        display: String,
        #[source]
        source: io::Error,
    },
}

/// How the viewer hands frames to the compositor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferMode {
    /// zwp_linux_dmabuf_v1 wl_buffers over the frames' own dma-bufs.
    Dmabuf,
    /// wl_shm buffers filled by one CPU copy per frame.
    Shm,
}

/// What the compositor offers, as learnt at connection time (and updated by dma-buf feedback).
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// Bound zwp_linux_dmabuf_v1 version, if the compositor has it.
    pub linux_dmabuf_version: Option<u32>,
    /// Whether `dmabuf_formats` came from v4 feedback (format table and tranches) rather than v3 events.
    pub feedback: bool,
    /// The feedback's main device (`dev_t`), v4 only.
    pub main_device: Option<u64>,
    /// Format/modifier pairs linux-dmabuf accepts, in the compositor's order of preference.
    pub dmabuf_formats: Vec<(Fourcc, u64)>,
    /// Formats wl_shm accepts, as DRM fourccs.
    pub shm_formats: Vec<Fourcc>,
    /// wp_presentation's clock (a clockid_t), if the compositor has presentation time.
    pub presentation_clock: Option<u32>,
    /// Whether wp_viewporter is there to scale frames.
    pub viewporter: bool,
}

impl Capabilities {
    /// Whether a dma-buf of DRM format `drm` with `modifier` can be imported. A LINEAR buffer is also
    /// accepted where the compositor advertises the implicit (INVALID) modifier.
    pub fn dmabuf_accepts(&self, drm: Fourcc, modifier: u64) -> bool {
        self.modifier_for(drm, modifier).is_some()
    }

    /// The modifier to send for a buffer of `drm`/`modifier`, if any.
    pub fn modifier_for(&self, drm: Fourcc, modifier: u64) -> Option<u64> {
        if self.dmabuf_formats.contains(&(drm, modifier)) {
            Some(modifier)
        } else if modifier == crate::DRM_FORMAT_MOD_LINEAR
            && self.dmabuf_formats.contains(&(drm, DRM_FORMAT_MOD_INVALID))
        {
            Some(DRM_FORMAT_MOD_INVALID)
        } else {
            None
        }
    }
}

/// Options of a viewer window.
#[derive(Debug, Clone)]
pub struct ViewerOptions {
    /// The Wayland display (socket name or absolute path); `None` uses `WAYLAND_DISPLAY`.
    pub display: Option<String>,
    /// Window title.
    pub title: String,
    /// The window's size before the first frame (the frame size, normally).
    pub initial_size: (u32, u32),
    /// Start fullscreen.
    pub fullscreen: bool,
    /// Initial buffer mode; [`Viewer::set_mode`] changes it.
    pub mode: BufferMode,
    /// In dma-buf mode, fall back to shm (with a warning) if the compositor fails to import a buffer.
    pub allow_shm_fallback: bool,
    /// Test aid: announce this modifier for every dma-buf of this format instead of its own (the import
    /// then fails).
    pub modifier_override: Option<(Fourcc, u64)>,
}

impl Default for ViewerOptions {
    fn default() -> Self {
        ViewerOptions {
            display: None,
            title: "dmacam".into(),
            initial_size: (640, 480),
            fullscreen: false,
            mode: BufferMode::Dmabuf,
            allow_shm_fallback: true,
            modifier_override: None,
        }
    }
}

/// One frame to show. `holder` keeps the producer's buffer busy: the viewer drops it when the compositor
/// releases the wl_buffer (dma-buf mode) or right after the copy (shm mode), which returns it to its producer.
pub struct Frame {
    pub dmabuf: Dmabuf,
    pub sequence: u32,
    /// Capture time on CLOCK_MONOTONIC, for the latency measurement.
    pub timestamp: Option<Duration>,
    pub holder: Option<Box<dyn Any + Send>>,
    /// The frame's display record for `--trace`, filled in by the viewer (see [`crate::trace`]).
    pub trace: Option<Arc<FrameTrace>>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("dmabuf", &self.dmabuf)
            .field("sequence", &self.sequence)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// The identity of a dma-buf wl_buffer: per plane (inode, offset, stride), plus geometry and format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BufferKey {
    planes: Vec<(u64, u32, u32)>,
    width: u32,
    height: u32,
    fourcc: Fourcc,
    modifier: u64,
}

enum ImportState {
    Creating,
    Ready(wl_buffer::WlBuffer),
    Failed,
}

struct DmabufEntry {
    state: ImportState,
    /// Producers' holders of frames attached with this buffer, dropped at `wl_buffer.release`.
    holders: Vec<Box<dyn Any + Send>>,
    busy: bool,
    /// Destroy the wl_buffer once released (feedback changed or evicted).
    stale: bool,
    /// Keeps the dma-bufs alive, so their inodes (the key) cannot be reused by another buffer.
    _fds: Vec<Arc<OwnedFd>>,
    last_used: u64,
}

struct ShmSlot {
    pool: RawPool,
    buffer: wl_buffer::WlBuffer,
    width: u32,
    height: u32,
    format: u32,
    busy: bool,
}

/// User data of shm wl_buffers: the slot index.
struct ShmBufferData(usize);
/// User data of the background buffer.
struct BackgroundBuffer;
/// User data of the video's (empty) input region.
struct RegionData;
/// User data of wp_presentation.
struct PresentationGlobal;
/// User data of wp_viewporter and wp_viewport (no events).
struct ViewportData;
/// User data of each presentation feedback: what was committed.
struct FeedbackInfo {
    capture: Option<Duration>,
    trace: Option<Arc<FrameTrace>>,
}

struct State {
    display: String,
    registry: RegistryState,
    outputs: OutputState,
    _compositor: CompositorState,
    shm: Shm,
    dmabuf: DmabufState,
    seat: SeatState,
    window: Window,
    subsurface: wl_subsurface::WlSubsurface,
    video: wl_surface::WlSurface,
    bg_viewport: Option<wp_viewport::WpViewport>,
    video_viewport: Option<wp_viewport::WpViewport>,
    presentation: Option<wp_presentation::WpPresentation>,
    feedback_obj: Option<zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1>,
    keyboard: Option<wl_keyboard::WlKeyboard>,
    caps: Capabilities,

    configured: bool,
    window_size: (u32, u32),
    frame_size: (u32, u32),
    layout_dirty: bool,
    fullscreen: bool,
    close_requested: bool,
    /// Keys pressed that the viewer does not handle itself, for the application ([`Viewer::take_keys`]).
    keys: Vec<char>,
    bg: Option<(RawPool, wl_buffer::WlBuffer, (u32, u32))>,

    mode: BufferMode,
    allow_fallback: bool,
    modifier_override: Option<(Fourcc, u64)>,
    fallback_reason: Option<String>,
    pending: Option<Frame>,
    frame_cb_pending: bool,
    feedback_outstanding: usize,
    dmabufs: HashMap<BufferKey, DmabufEntry>,
    by_params: HashMap<ObjectId, BufferKey>,
    by_buffer: HashMap<ObjectId, BufferKey>,
    use_counter: u64,
    shm_slots: Vec<ShmSlot>,
    mappings: HashMap<u64, Mapping>,
    stats: Stats,
    fatal: Option<DisplayError>,
}

/// A Wayland window showing frames. See the module documentation.
pub struct Viewer {
    conn: Connection,
    queue: EventQueue<State>,
    state: State,
}

fn display_name(opt: &Option<String>) -> String {
    opt.clone()
        .or_else(|| std::env::var("WAYLAND_DISPLAY").ok())
        .unwrap_or_else(|| "wayland-0".into())
}

fn connect(opt: &Option<String>) -> Result<Connection, DisplayError> {
    let name = display_name(opt);
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let path =
        if name.starts_with('/') {
            PathBuf::from(&name)
        } else {
            match &runtime {
                Some(dir) => dir.join(&name),
                None => return Err(DisplayError::NoDisplay {
                    detail:
                        "XDG_RUNTIME_DIR is not set, so there is no Wayland socket to connect to"
                            .into(),
                }),
            }
        };
    if opt.is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() && !path.exists() {
        return Err(DisplayError::NoDisplay {
            detail: format!(
                "WAYLAND_DISPLAY is not set and {} does not exist",
                path.display()
            ),
        });
    }
    if !path.exists() {
        return Err(DisplayError::NoDisplay {
            detail: format!(
                "the socket {} of display '{name}' does not exist",
                path.display()
            ),
        });
    }
    let stream = UnixStream::connect(&path).map_err(|source| DisplayError::Connect {
        display: path.display().to_string(),
        source,
    })?;
    Connection::from_socket(stream).map_err(|e| DisplayError::Connect {
        display: path.display().to_string(),
        source: io::Error::other(e),
    })
}

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
        let missing = |interface| DisplayError::Missing {
            display: display.clone(),
            interface,
        };
        let compositor =
            CompositorState::bind(&globals, &qh).map_err(|_| missing("wl_compositor"))?;
        let subcompositor =
            SubcompositorState::bind(compositor.wl_compositor().clone(), &globals, &qh)
                .map_err(|_| missing("wl_subcompositor"))?;
        let xdg = XdgShell::bind(&globals, &qh).map_err(|_| missing("xdg_wm_base"))?;
        let shm = Shm::bind(&globals, &qh).map_err(|_| missing("wl_shm"))?;
        let dmabuf = DmabufState::new(&globals, &qh);
        let seat = SeatState::new(&globals, &qh);
        let presentation = globals
            .bind::<wp_presentation::WpPresentation, _, _>(&qh, 1..=1, PresentationGlobal)
            .ok();
        let viewporter = globals
            .bind::<wp_viewporter::WpViewporter, _, _>(&qh, 1..=1, ViewportData)
            .ok();
        let registry = RegistryState::new(&globals);
        let outputs = OutputState::new(&globals, &qh);

        let surface = compositor.create_surface(&qh);
        let (subsurface, video) = subcompositor.create_subsurface(surface.clone(), &qh);
        subsurface.set_desync();
        // The video never takes input: the toplevel does.
        let empty = compositor.wl_compositor().create_region(&qh, RegionData);
        video.set_input_region(Some(&empty));
        empty.destroy();
        let bg_viewport = viewporter
            .as_ref()
            .map(|v| v.get_viewport(&surface, &qh, ViewportData));
        let video_viewport = viewporter
            .as_ref()
            .map(|v| v.get_viewport(&video, &qh, ViewportData));
        let window = xdg.create_window(surface, WindowDecorations::RequestServer, &qh);
        window.set_title(opts.title.clone());
        window.set_app_id("dmacam");
        window.set_min_size(Some((64, 36)));
        if opts.fullscreen {
            window.set_fullscreen(None);
        }
        window.commit();
        let feedback_obj = dmabuf.get_surface_feedback(&video, &qh).ok();
        let linux_dmabuf_version = dmabuf.version();

        let mut state = State {
            display: display.clone(),
            registry,
            outputs,
            _compositor: compositor,
            shm,
            dmabuf,
            seat,
            window,
            subsurface,
            video,
            bg_viewport,
            video_viewport,
            presentation,
            feedback_obj,
            keyboard: None,
            caps: Capabilities {
                linux_dmabuf_version,
                viewporter: viewporter.is_some(),
                ..Default::default()
            },
            configured: false,
            window_size: opts.initial_size,
            frame_size: opts.initial_size,
            layout_dirty: true,
            fullscreen: opts.fullscreen,
            close_requested: false,
            keys: Vec::new(),
            bg: None,
            mode: opts.mode,
            allow_fallback: opts.allow_shm_fallback,
            modifier_override: opts.modifier_override,
            fallback_reason: None,
            pending: None,
            frame_cb_pending: false,
            feedback_outstanding: 0,
            dmabufs: HashMap::new(),
            by_params: HashMap::new(),
            by_buffer: HashMap::new(),
            use_counter: 0,
            shm_slots: Vec::new(),
            mappings: HashMap::new(),
            stats: Stats::default(),
            fatal: None,
        };
        // Two round trips: the first delivers globals' initial events (shm formats, v3 modifiers, clock id,
        // seat capabilities, dma-buf feedback), the second what those triggered (keyboard, configure).
        for _ in 0..2 {
            queue
                .roundtrip(&mut state)
                .map_err(|e| disconnected(&conn, &display, &e.to_string()))?;
        }
        if !state.caps.feedback {
            let mut v3: Vec<(Fourcc, u64)> = Vec::new();
            for m in state.dmabuf.modifiers() {
                let pair = (Fourcc(m.format), m.modifier);
                if !v3.contains(&pair) {
                    v3.push(pair);
                }
            }
            state.caps.dmabuf_formats = v3;
        }
        state.caps.shm_formats = state
            .shm
            .formats()
            .iter()
            .map(|f| drm_of_shm(u32::from(*f)))
            .collect();
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

    /// After a fallback to shm ([`Viewer::fallback_reason`]): back to dma-buf mode for another kind of
    /// buffer (the render stage's output instead of the camera's), the shm fallback allowed again.
    pub fn resume_dmabuf(&mut self) {
        self.state.mode = BufferMode::Dmabuf;
        self.state.allow_fallback = true;
        self.state.fallback_reason = None;
    }

    /// Sets the window title.
    pub fn set_title(&mut self, title: &str) {
        self.state.window.set_title(title.to_owned());
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
        self.state.close_requested
    }

    /// The keys pressed since the last call that the viewer does not handle itself (q, Escape, f and F11
    /// it does), as the characters they type.
    pub fn take_keys(&mut self) -> Vec<char> {
        std::mem::take(&mut self.state.keys)
    }

    /// Hands every frame back to its producer now (the one waiting to be committed, and those attached to
    /// wl_buffers the compositor still shows or holds) and forgets those wl_buffers (destroyed once the
    /// compositor releases them). For a producer that went away, e.g. a camera disconnected mid-stream whose
    /// buffers must all be let go before the device can be opened again. What is on screen stays there: the
    /// compositor holds its own reference to the memory.
    pub fn release_frames(&mut self) {
        let st = &mut self.state;
        st.pending = None;
        let mut idle = Vec::new();
        for (key, e) in st.dmabufs.iter_mut() {
            e.holders.clear();
            if e.busy || matches!(e.state, ImportState::Creating) {
                e.stale = true;
            } else {
                idle.push(key.clone());
            }
        }
        for key in idle {
            if let Some(e) = st.dmabufs.remove(&key) {
                if let ImportState::Ready(b) = e.state {
                    st.by_buffer.remove(&b.id());
                    b.destroy();
                }
            }
        }
        st.mappings.clear();
    }

    /// Whether the window is fullscreen (as last configured).
    pub fn is_fullscreen(&self) -> bool {
        self.state.fullscreen
    }

    /// Toggles fullscreen (what `f` and F11 do).
    pub fn toggle_fullscreen(&mut self) {
        self.state.toggle_fullscreen();
    }

    /// Whether frames are still on their way: one waiting to be committed, or presentation feedback due.
    pub fn in_flight(&self) -> bool {
        self.state.pending.is_some() || self.state.feedback_outstanding > 0
    }

    /// Hands a frame to the viewer. If the compositor is not ready for it yet (frame callback not yet
    /// received), it waits; a frame still waiting is replaced (and counted as dropped).
    pub fn submit(&mut self, frame: Frame) -> Result<(), DisplayError> {
        self.check()?;
        let st = &mut self.state;
        st.stats.submitted += 1;
        if let Some(last) = st.stats.last_sequence {
            st.stats.sequence_gaps += crate::stats::frames_between(last, frame.sequence);
        }
        st.stats.last_sequence = Some(frame.sequence);
        if let Some(old) = st.pending.replace(frame) {
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

/// Polls `extra` plus the optional Wayland fd; returns the Wayland fd's revents and which extras are ready.
fn poll_fds(
    extra: &[BorrowedFd<'_>],
    wl: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
) -> io::Result<(PollFlags, Vec<bool>)> {
    let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(extra.len() + 1);
    let base = usize::from(wl.is_some());
    if let Some(fd) = wl {
        fds.push(PollFd::new(fd, PollFlags::POLLIN));
    }
    for fd in extra {
        fds.push(PollFd::new(*fd, PollFlags::POLLIN | PollFlags::POLLPRI));
    }
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(d) => PollTimeout::try_from(d.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX),
    };
    match nix::poll::poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok((PollFlags::empty(), vec![false; extra.len()])),
        Err(e) => return Err(e.into()),
    }
    let wl_rev = if base == 1 {
        fds[0].revents().unwrap_or(PollFlags::empty())
    } else {
        PollFlags::empty()
    };
    let ready = fds[base..]
        .iter()
        .map(|f| !f.revents().unwrap_or(PollFlags::empty()).is_empty())
        .collect();
    Ok((wl_rev, ready))
}

fn disconnected(conn: &Connection, display: &str, detail: &str) -> DisplayError {
    let detail = match conn.protocol_error() {
        Some(p) => format!(
            "protocol error {} on {}@{}: {}",
            p.code, p.object_interface, p.object_id, p.message
        ),
        None => detail.to_owned(),
    };
    DisplayError::Disconnected {
        display: display.to_owned(),
        detail,
    }
}

/// The planes of a frame as (fd, offset, stride), derived from plane 0 where a single-buffer format (e.g.
/// NV12 from a single-planar V4L2 node) comes with fewer plane entries than colour planes.
fn effective_planes(
    d: &Dmabuf,
    info: &FormatInfo,
) -> Result<Vec<(Arc<OwnedFd>, u32, u32)>, String> {
    let n = usize::from(info.planes);
    let first = d.planes.first().ok_or("the frame has no planes")?;
    let mut out: Vec<(Arc<OwnedFd>, u32, u32)> = d
        .planes
        .iter()
        .take(n)
        .map(|p| (p.fd.clone(), p.offset, p.stride))
        .collect();
    while out.len() < n {
        let i = out.len();
        let (_, off, stride) = out[i - 1].clone();
        let rows = info.rows(i - 1, d.height);
        let next_stride = if i == 0 || n == 2 {
            first.stride
        } else {
            first.stride / u32::from(info.sub.0)
        };
        out.push((first.fd.clone(), off + stride * rows, next_stride));
    }
    Ok(out)
}

fn inode(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io::Error::from)?;
    Ok(st.st_ino)
}

impl State {
    fn toggle_fullscreen(&mut self) {
        if self.fullscreen {
            self.window.unset_fullscreen();
        } else {
            self.window.set_fullscreen(None);
        }
    }

    fn set_fatal(&mut self, e: DisplayError) {
        if self.fatal.is_none() {
            self.fatal = Some(e);
        }
    }

    fn frame_error(&mut self, fourcc: Fourcc, detail: impl Into<String>) {
        self.set_fatal(DisplayError::Frame {
            fourcc,
            detail: detail.into(),
        });
    }

    /// Background (black, scaled to the window) on the toplevel, video subsurface placed and scaled to keep
    /// the frame's aspect ratio.
    fn apply_layout(&mut self, qh: &QueueHandle<State>) {
        let (ww, wh) = self.window_size;
        let surface = self.window.wl_surface().clone();
        let bg_size = if self.bg_viewport.is_some() {
            (1, 1)
        } else {
            (ww, wh)
        };
        if self.bg.as_ref().is_none_or(|b| b.2 != bg_size) {
            match self.black_buffer(bg_size, qh) {
                Ok(b) => {
                    if let Some((_, old, _)) = self.bg.replace(b) {
                        old.destroy();
                    }
                }
                Err(e) => {
                    self.set_fatal(e);
                    return;
                }
            }
        }
        if let Some((_, buf, _)) = &self.bg {
            surface.attach(Some(buf), 0, 0);
        }
        if let Some(vp) = &self.bg_viewport {
            vp.set_destination(ww as i32, wh as i32);
        }
        surface.damage_buffer(0, 0, i32::MAX, i32::MAX);
        self.window.set_window_geometry(0, 0, ww, wh);
        let (x, y, w, h) = fit_rect(self.frame_size, (ww, wh));
        match &self.video_viewport {
            Some(vp) => {
                vp.set_destination(w as i32, h as i32);
                self.subsurface.set_position(x, y);
            }
            None => {
                // Without wp_viewporter the frame is shown 1:1, centred (and cropped by the window).
                let (fw, fh) = self.frame_size;
                self.subsurface
                    .set_position((ww as i32 - fw as i32) / 2, (wh as i32 - fh as i32) / 2);
            }
        }
        self.video.commit();
        surface.commit();
        self.layout_dirty = false;
        tracing::debug!(window = ?(ww, wh), video = ?(x, y, w, h), "layout");
    }

    fn black_buffer(
        &mut self,
        (w, h): (u32, u32),
        qh: &QueueHandle<State>,
    ) -> Result<(RawPool, wl_buffer::WlBuffer, (u32, u32)), DisplayError> {
        let len = (w * h * 4) as usize;
        let mut pool =
            RawPool::new(len, &self.shm).map_err(|e| DisplayError::Shm(e.to_string()))?;
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

    fn try_commit(&mut self, qh: &QueueHandle<State>) {
        if self.fatal.is_some() || !self.configured || self.frame_cb_pending {
            return;
        }
        let Some(frame) = self.pending.take() else {
            return;
        };
        let size = (frame.dmabuf.width, frame.dmabuf.height);
        if size != self.frame_size {
            self.frame_size = size;
            self.layout_dirty = true;
        }
        if self.layout_dirty {
            self.apply_layout(qh);
        }
        let Some(info) = lookup(frame.dmabuf.fourcc) else {
            let known: Vec<String> = crate::formats::known_v4l2()
                .map(|f| f.to_string())
                .collect();
            self.frame_error(
                frame.dmabuf.fourcc,
                format!(
                    "the display stage knows no such format (it shows {})",
                    known.join(", ")
                ),
            );
            return;
        };
        let attached = match self.mode {
            BufferMode::Dmabuf => self.attach_dmabuf(frame, &info, qh),
            BufferMode::Shm => self.attach_shm(frame, &info, qh),
        };
        if !attached {
            return;
        }
        let (w, h) = self.frame_size;
        self.video.damage_buffer(0, 0, w as i32, h as i32);
        self.video.frame(qh, FrameCallbackData(self.video.clone()));
        self.frame_cb_pending = true;
        self.video.commit();
        self.stats.committed += 1;
    }

    /// Attaches the frame's cached wl_buffer (creating it on first sight). Returns false, keeping the frame
    /// pending, while the wl_buffer is being created.
    fn attach_dmabuf(
        &mut self,
        mut frame: Frame,
        info: &FormatInfo,
        qh: &QueueHandle<State>,
    ) -> bool {
        let d = &frame.dmabuf;
        let planes = match effective_planes(d, info) {
            Ok(p) => p,
            Err(e) => {
                self.frame_error(d.fourcc, e);
                return false;
            }
        };
        let mut key_planes = Vec::with_capacity(planes.len());
        for (fd, off, stride) in &planes {
            match inode(fd.as_fd()) {
                Ok(ino) => key_planes.push((ino, *off, *stride)),
                Err(e) => {
                    self.frame_error(d.fourcc, format!("fstat of its dma-buf failed: {e}"));
                    return false;
                }
            }
        }
        let key = BufferKey {
            planes: key_planes,
            width: d.width,
            height: d.height,
            fourcc: d.fourcc,
            modifier: d.modifier,
        };
        self.use_counter += 1;
        let now = self.use_counter;
        if !self.dmabufs.contains_key(&key) {
            self.evict_dmabufs();
            let modifier = self.modifier_override_for(d.fourcc).unwrap_or_else(|| {
                self.caps
                    .modifier_for(info.drm, d.modifier)
                    .unwrap_or(d.modifier)
            });
            let params = match self.dmabuf.create_params(qh) {
                Ok(p) => p,
                Err(_) => {
                    self.import_failed(
                        d.fourcc,
                        d.width,
                        d.height,
                        d.modifier,
                        "no zwp_linux_dmabuf_v1",
                    );
                    self.pending = Some(frame);
                    self.try_commit(qh);
                    return false;
                }
            };
            for (i, (fd, off, stride)) in planes.iter().enumerate() {
                params.add(fd.as_fd(), i as u32, *off, *stride, modifier);
            }
            let proxy = params.create(
                d.width as i32,
                d.height as i32,
                info.drm.0,
                zwp_linux_buffer_params_v1::Flags::empty(),
            );
            tracing::debug!(fourcc = %d.fourcc, drm = %info.drm, modifier, "creating a dma-buf wl_buffer");
            self.by_params.insert(proxy.id(), key.clone());
            self.dmabufs.insert(
                key.clone(),
                DmabufEntry {
                    state: ImportState::Creating,
                    holders: Vec::new(),
                    busy: false,
                    stale: false,
                    _fds: planes.into_iter().map(|p| p.0).collect(),
                    last_used: now,
                },
            );
        }
        let entry = self.dmabufs.get_mut(&key).expect("inserted above");
        entry.last_used = now;
        match &entry.state {
            ImportState::Creating => {
                self.pending = Some(frame);
                false
            }
            ImportState::Failed => {
                // The failure switched the mode (or set a fatal error); retry on the new mode.
                self.pending = Some(frame);
                if self.mode == BufferMode::Shm {
                    self.try_commit(qh);
                }
                false
            }
            ImportState::Ready(buf) => {
                self.video.attach(Some(buf), 0, 0);
                entry.busy = true;
                if let Some(t) = &frame.trace {
                    let id = buf.id().protocol_id();
                    let inodes: Vec<u64> = key.planes.iter().map(|p| p.0).collect();
                    t.update(|r| {
                        r.kind = Some("dmabuf");
                        r.wl_buffer = Some(id);
                        r.inodes = inodes;
                        r.committed_ns = Some(monotonic_ns());
                    });
                }
                if let Some(h) = frame.holder.take() {
                    entry.holders.push(h);
                }
                self.request_feedback(frame.timestamp, frame.trace.take(), qh);
                true
            }
        }
    }

    fn evict_dmabufs(&mut self) {
        while self.dmabufs.len() >= MAX_DMABUF_CACHE {
            let victim = self
                .dmabufs
                .iter()
                .filter(|(_, e)| !e.busy && !matches!(e.state, ImportState::Creating))
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            let Some(k) = victim else { break };
            if let Some(e) = self.dmabufs.remove(&k) {
                if let ImportState::Ready(b) = e.state {
                    self.by_buffer.remove(&b.id());
                    b.destroy();
                }
            }
        }
    }

    /// The modifier the test aid `modifier_override` announces for `fourcc` buffers, if any.
    fn modifier_override_for(&self, fourcc: Fourcc) -> Option<u64> {
        self.modifier_override
            .filter(|(f, _)| *f == fourcc)
            .map(|(_, m)| m)
    }

    fn import_failed(&mut self, fourcc: Fourcc, width: u32, height: u32, modifier: u64, why: &str) {
        let modifier = self.modifier_override_for(fourcc).unwrap_or(modifier);
        if self.mode == BufferMode::Shm && self.fallback_reason.is_some() {
            // Buffers created before the switch fail as well: the fallback was already said.
            tracing::debug!("another {fourcc} dma-buf import failed ({why}); already on wl_shm");
            return;
        }
        let reason = format!(
            "the compositor could not import a {fourcc} {width}x{height} dma-buf (modifier {modifier:#x}): {why}"
        );
        if self.allow_fallback {
            tracing::warn!("{reason}; falling back to wl_shm with one CPU copy per frame");
            self.mode = BufferMode::Shm;
            self.fallback_reason = Some(reason);
        } else {
            self.set_fatal(DisplayError::Import {
                display: self.display.clone(),
                fourcc,
                width,
                height,
                modifier,
            });
        }
    }

    fn request_feedback(
        &mut self,
        capture: Option<Duration>,
        trace: Option<Arc<FrameTrace>>,
        qh: &QueueHandle<State>,
    ) {
        if let Some(p) = &self.presentation {
            p.feedback(&self.video, qh, FeedbackInfo { capture, trace });
            self.feedback_outstanding += 1;
        }
    }

    /// Copies the frame into a free wl_shm buffer (the one CPU copy), drops its holder, attaches the buffer.
    fn attach_shm(&mut self, mut frame: Frame, info: &FormatInfo, qh: &QueueHandle<State>) -> bool {
        let d = &frame.dmabuf;
        let (w, h) = (d.width, d.height);
        let native = self.caps.shm_formats.contains(&info.drm);
        let format = if native { shm_code(info.drm) } else { 1 };
        let stride = if native { info.min_stride(0, w) } else { w * 4 };
        let len = if native {
            info.frame_bytes(w, h) as usize
        } else {
            (w * 4 * h) as usize
        };
        let matching = self
            .shm_slots
            .iter()
            .position(|s| !s.busy && (s.width, s.height, s.format) == (w, h, format));
        let idle = self.shm_slots.iter().position(|s| !s.busy);
        let slot = match (matching, idle) {
            (Some(i), _) => i,
            (None, Some(i)) => {
                // An idle slot of another geometry: rebuild it in place.
                match self.new_shm_slot(i, (w, h, format, stride, len), qh) {
                    Ok(s) => {
                        let old = std::mem::replace(&mut self.shm_slots[i], s);
                        old.buffer.destroy();
                        i
                    }
                    Err(e) => {
                        self.set_fatal(e);
                        return false;
                    }
                }
            }
            (None, None) if self.shm_slots.len() < MAX_SHM_SLOTS => {
                let i = self.shm_slots.len();
                match self.new_shm_slot(i, (w, h, format, stride, len), qh) {
                    Ok(s) => {
                        self.shm_slots.push(s);
                        i
                    }
                    Err(e) => {
                        self.set_fatal(e);
                        return false;
                    }
                }
            }
            (None, None) => {
                // Every slot is still with the compositor: wait for a release.
                self.pending = Some(frame);
                return false;
            }
        };
        let planes = match effective_planes(d, info) {
            Ok(p) => p,
            Err(e) => {
                self.frame_error(d.fourcc, e);
                return false;
            }
        };
        if self.mappings.len() > MAX_DMABUF_CACHE {
            self.mappings.clear();
        }
        for (fd, _, _) in &planes {
            let ino = match inode(fd.as_fd()) {
                Ok(i) => i,
                Err(e) => {
                    self.frame_error(d.fourcc, format!("fstat of its dma-buf failed: {e}"));
                    return false;
                }
            };
            if let std::collections::hash_map::Entry::Vacant(v) = self.mappings.entry(ino) {
                match Mapping::new(fd.clone(), false) {
                    Ok(m) => {
                        v.insert(m);
                    }
                    Err(e) => {
                        self.set_fatal(e.into());
                        return false;
                    }
                }
            }
        }
        let result = {
            let mut guards = Vec::with_capacity(planes.len());
            let mut err = None;
            for (fd, _, _) in &planes {
                let ino = inode(fd.as_fd()).unwrap_or_default();
                match self.mappings[&ino].read() {
                    Ok(g) => guards.push(g),
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = err {
                Err(DisplayError::Map(e))
            } else {
                let mut refs = Vec::with_capacity(planes.len());
                let mut short = None;
                for (g, (_, off, stride)) in guards.iter().zip(&planes) {
                    match g.get(*off as usize..) {
                        Some(data) => refs.push(PlaneRef {
                            data,
                            stride: *stride as usize,
                        }),
                        None => short = Some(*off),
                    }
                }
                if let Some(off) = short {
                    Err(DisplayError::Frame {
                        fourcc: d.fourcc,
                        detail: format!("a plane offset {off} lies beyond its dma-buf"),
                    })
                } else {
                    let dst = &mut self.shm_slots[slot].pool.mmap()[..];
                    let r: Result<u64, ConvertError> = if native {
                        copy_packed(info, w, h, &refs, dst)
                    } else {
                        to_xrgb8888(info, w, h, &refs, dst, stride as usize)
                    };
                    r.map_err(|e| DisplayError::Frame {
                        fourcc: d.fourcc,
                        detail: e.to_string(),
                    })
                }
            }
        };
        match result {
            Ok(bytes) => {
                self.stats.cpu_bytes_copied += bytes;
                self.stats.cpu_copied_frames += 1;
                if let Some(t) = &frame.trace {
                    t.update(|r| r.cpu_bytes_copied += bytes);
                }
            }
            Err(e) => {
                self.set_fatal(e);
                return false;
            }
        }
        // The copy is done: the producer may have its buffer back now.
        drop(frame.holder.take());
        let s = &mut self.shm_slots[slot];
        s.busy = true;
        self.video.attach(Some(&s.buffer), 0, 0);
        if let Some(t) = &frame.trace {
            let id = s.buffer.id().protocol_id();
            t.update(|r| {
                r.kind = Some("shm");
                r.wl_buffer = Some(id);
                r.committed_ns = Some(monotonic_ns());
            });
        }
        self.request_feedback(frame.timestamp, frame.trace.take(), qh);
        true
    }

    fn new_shm_slot(
        &mut self,
        index: usize,
        (w, h, format, stride, len): (u32, u32, u32, u32, usize),
        qh: &QueueHandle<State>,
    ) -> Result<ShmSlot, DisplayError> {
        let mut pool =
            RawPool::new(len, &self.shm).map_err(|e| DisplayError::Shm(e.to_string()))?;
        let fmt = wl_shm::Format::try_from(format).unwrap_or(wl_shm::Format::Xrgb8888);
        let buffer = pool.create_buffer(
            0,
            w as i32,
            h as i32,
            stride as i32,
            fmt,
            ShmBufferData(index),
            qh,
        );
        self.stats.shm_wl_buffers += 1;
        tracing::debug!(w, h, format, "created a wl_shm buffer");
        Ok(ShmSlot {
            pool,
            buffer,
            width: w,
            height: h,
            format,
            busy: false,
        })
    }

    fn released_dmabuf(&mut self, buffer: &wl_buffer::WlBuffer) {
        let Some(key) = self.by_buffer.get(&buffer.id()).cloned() else {
            return;
        };
        if let Some(e) = self.dmabufs.get_mut(&key) {
            e.busy = false;
            // Dropping the holders hands the frames back to their producer.
            e.holders.clear();
            if e.stale {
                if let Some(e) = self.dmabufs.remove(&key) {
                    if let ImportState::Ready(b) = e.state {
                        self.by_buffer.remove(&b.id());
                        b.destroy();
                    }
                }
            }
        }
    }

    /// New v4 feedback: the accepted formats may have changed; cached wl_buffers are re-created.
    fn apply_feedback(&mut self, fb: &DmabufFeedback) {
        let table = fb.format_table();
        let mut formats: Vec<(Fourcc, u64)> = Vec::new();
        for t in fb.tranches() {
            for &i in &t.formats {
                if let Some(f) = table.get(usize::from(i)) {
                    let pair = (Fourcc(f.format), f.modifier);
                    if !formats.contains(&pair) {
                        formats.push(pair);
                    }
                }
            }
        }
        let changed = self.caps.feedback && self.caps.dmabuf_formats != formats;
        tracing::debug!(
            tranches = fb.tranches().len(),
            pairs = formats.len(),
            main_device = fb.main_device(),
            "linux-dmabuf feedback"
        );
        self.caps.feedback = true;
        self.caps.main_device = Some(fb.main_device());
        self.caps.dmabuf_formats = formats;
        if changed {
            tracing::info!("linux-dmabuf feedback changed: re-creating the dma-buf wl_buffers");
            let keys: Vec<BufferKey> = self.dmabufs.keys().cloned().collect();
            for k in keys {
                let e = self.dmabufs.get_mut(&k).expect("key listed");
                if e.busy || matches!(e.state, ImportState::Creating) {
                    e.stale = true;
                } else if let Some(e) = self.dmabufs.remove(&k) {
                    if let ImportState::Ready(b) = e.state {
                        self.by_buffer.remove(&b.id());
                        b.destroy();
                    }
                }
            }
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let st = &mut self.state;
        st.pending = None;
        for (_, e) in st.dmabufs.drain() {
            if let ImportState::Ready(b) = e.state {
                b.destroy();
            }
        }
        for s in st.shm_slots.drain(..) {
            s.buffer.destroy();
        }
        if let Some((_, b, _)) = st.bg.take() {
            b.destroy();
        }
        for vp in [st.bg_viewport.take(), st.video_viewport.take()]
            .into_iter()
            .flatten()
        {
            vp.destroy();
        }
        if let Some(f) = st.feedback_obj.take() {
            f.destroy();
        }
        st.subsurface.destroy();
        st.video.destroy();
        let _ = self.conn.flush();
    }
}

// ---- event handling ----

impl CompositorHandler for State {
    fn scale_factor_changed(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_surface::WlSurface,
        _: i32,
    ) {
    }

    fn transform_changed(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_surface::WlSurface,
        _: wl_output::Transform,
    ) {
    }

    fn frame(
        &mut self,
        _: &Connection,
        qh: &QueueHandle<Self>,
        surface: &wl_surface::WlSurface,
        _: u32,
    ) {
        if *surface == self.video {
            self.frame_cb_pending = false;
            self.try_commit(qh);
        }
    }

    fn surface_enter(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_surface::WlSurface,
        _: &wl_output::WlOutput,
    ) {
    }

    fn surface_leave(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_surface::WlSurface,
        _: &wl_output::WlOutput,
    ) {
    }
}

impl OutputHandler for State {
    fn output_state(&mut self) -> &mut OutputState {
        &mut self.outputs
    }
    fn new_output(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_output::WlOutput) {}
    fn update_output(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_output::WlOutput) {}
    fn output_destroyed(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_output::WlOutput) {}
}

impl WindowHandler for State {
    fn request_close(&mut self, _: &Connection, _: &QueueHandle<Self>, _: &Window) {
        tracing::info!("the window was closed");
        self.close_requested = true;
    }

    fn configure(
        &mut self,
        _: &Connection,
        qh: &QueueHandle<Self>,
        _: &Window,
        configure: WindowConfigure,
        _: u32,
    ) {
        let size = match configure.new_size {
            (Some(w), Some(h)) => (w.get(), h.get()),
            _ if self.configured => self.window_size,
            _ => self.frame_size,
        };
        self.fullscreen = configure.state.contains(WindowState::FULLSCREEN);
        tracing::debug!(?size, fullscreen = self.fullscreen, "configure");
        self.window_size = size;
        self.configured = true;
        self.apply_layout(qh);
        self.try_commit(qh);
    }
}

impl ShmHandler for State {
    fn shm_state(&mut self) -> &mut Shm {
        &mut self.shm
    }
}

impl DmabufHandler for State {
    fn dmabuf_state(&mut self) -> &mut DmabufState {
        &mut self.dmabuf
    }

    fn dmabuf_feedback(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1,
        feedback: DmabufFeedback,
    ) {
        self.apply_feedback(&feedback);
    }

    fn created(
        &mut self,
        _: &Connection,
        qh: &QueueHandle<Self>,
        params: &zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1,
        buffer: wl_buffer::WlBuffer,
    ) {
        params.destroy();
        let Some(key) = self.by_params.remove(&params.id()) else {
            buffer.destroy();
            return;
        };
        match self.dmabufs.get_mut(&key) {
            Some(e) => {
                tracing::debug!(fourcc = %key.fourcc, "dma-buf wl_buffer created");
                self.stats.dmabuf_wl_buffers += 1;
                self.by_buffer.insert(buffer.id(), key);
                e.state = ImportState::Ready(buffer);
            }
            None => buffer.destroy(),
        }
        self.try_commit(qh);
    }

    fn failed(
        &mut self,
        _: &Connection,
        qh: &QueueHandle<Self>,
        params: &zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1,
    ) {
        params.destroy();
        let Some(key) = self.by_params.remove(&params.id()) else {
            return;
        };
        if let Some(e) = self.dmabufs.get_mut(&key) {
            e.state = ImportState::Failed;
        }
        self.import_failed(
            key.fourcc,
            key.width,
            key.height,
            key.modifier,
            "zwp_linux_buffer_params_v1.failed",
        );
        self.try_commit(qh);
    }

    fn released(&mut self, _: &Connection, qh: &QueueHandle<Self>, buffer: &wl_buffer::WlBuffer) {
        self.released_dmabuf(buffer);
        self.try_commit(qh);
    }
}

impl SeatHandler for State {
    fn seat_state(&mut self) -> &mut SeatState {
        &mut self.seat
    }

    fn new_seat(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_seat::WlSeat) {}

    fn new_capability(
        &mut self,
        _: &Connection,
        qh: &QueueHandle<Self>,
        seat: wl_seat::WlSeat,
        capability: Capability,
    ) {
        if capability == Capability::Keyboard && self.keyboard.is_none() {
            match self.seat.get_keyboard(qh, &seat, None) {
                Ok(k) => self.keyboard = Some(k),
                Err(e) => tracing::warn!("no keyboard input (q/Esc/f keys will not work): {e}"),
            }
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
            if let Some(k) = self.keyboard.take() {
                k.release();
            }
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
                self.close_requested = true;
            }
            Keysym::f | Keysym::F | Keysym::F11 => self.toggle_fullscreen(),
            _ => {
                if let Some(text) = &event.utf8 {
                    self.keys.extend(text.chars());
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

impl ProvidesRegistryState for State {
    fn registry(&mut self) -> &mut RegistryState {
        &mut self.registry
    }
    registry_handlers!(OutputState, SeatState);
}

delegate_registry!(State);
smithay_client_toolkit::delegate_dispatch2!(State);

impl Dispatch<wl_buffer::WlBuffer, ShmBufferData> for State {
    fn event(
        state: &mut Self,
        _: &wl_buffer::WlBuffer,
        event: wl_buffer::Event,
        data: &ShmBufferData,
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        if let wl_buffer::Event::Release = event {
            if let Some(s) = state.shm_slots.get_mut(data.0) {
                s.busy = false;
            }
            state.try_commit(qh);
        }
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

impl Dispatch<wp_presentation::WpPresentation, PresentationGlobal> for State {
    fn event(
        state: &mut Self,
        _: &wp_presentation::WpPresentation,
        event: wp_presentation::Event,
        _: &PresentationGlobal,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wp_presentation::Event::ClockId { clk_id } = event {
            state.caps.presentation_clock = Some(clk_id);
        }
    }
}

/// `clock` now minus CLOCK_MONOTONIC now, in nanoseconds, to move a monotonic timestamp onto `clock`.
fn clock_offset_ns(clock: u32) -> Option<i128> {
    use nix::time::{clock_gettime, ClockId};
    let ns = |t: nix::sys::time::TimeSpec| {
        i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
    };
    let other = clock_gettime(ClockId::from_raw(clock as nix::libc::clockid_t)).ok()?;
    let mono = clock_gettime(ClockId::CLOCK_MONOTONIC).ok()?;
    Some(ns(other) - ns(mono))
}

impl Dispatch<wp_presentation_feedback::WpPresentationFeedback, FeedbackInfo> for State {
    fn event(
        state: &mut Self,
        _: &wp_presentation_feedback::WpPresentationFeedback,
        event: wp_presentation_feedback::Event,
        info: &FeedbackInfo,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            wp_presentation_feedback::Event::Presented {
                tv_sec_hi,
                tv_sec_lo,
                tv_nsec,
                ..
            } => {
                state.feedback_outstanding = state.feedback_outstanding.saturating_sub(1);
                let secs = (u64::from(tv_sec_hi) << 32) | u64::from(tv_sec_lo);
                let when = Duration::new(secs, tv_nsec);
                let clock = state
                    .caps
                    .presentation_clock
                    .unwrap_or(nix::libc::CLOCK_MONOTONIC as u32);
                let latency = info.capture.and_then(|cap| {
                    let offset = if clock == nix::libc::CLOCK_MONOTONIC as u32 {
                        0
                    } else {
                        clock_offset_ns(clock)?
                    };
                    let cap_ns = cap.as_nanos() as i128 + offset;
                    let l = when.as_nanos() as i128 - cap_ns;
                    if l >= 0 {
                        return Some(Duration::from_nanos(l as u64));
                    }
                    // A compositor on a virtual output (Weston headless under emulation) may stamp the
                    // presentation with the refresh cycle's ideal start, before a frame captured just
                    // before it was latched: then the time the event arrived stands in, and is counted.
                    state.stats.stamped_before_capture += 1;
                    dmacam_capture::monotonic_now().checked_sub(cap)
                });
                state.stats.record_presented(when, latency);
                if let Some(t) = &info.trace {
                    t.update(|r| r.latency_ns = latency.map(|l| l.as_nanos() as u64));
                    let offset = if clock == nix::libc::CLOCK_MONOTONIC as u32 {
                        Some(0)
                    } else {
                        clock_offset_ns(clock)
                    };
                    if let Some(off) = offset {
                        let mono = u64::try_from(when.as_nanos() as i128 - off).ok();
                        // A stamp before the commit (see above) cannot be when it was shown: the event's
                        // arrival stands in, as for the latency.
                        let arrived = monotonic_ns();
                        t.update(|r| {
                            r.presented_ns = match (mono, r.committed_ns) {
                                (Some(m), Some(c)) if m < c => Some(arrived),
                                (m, _) => m,
                            }
                        });
                    }
                }
            }
            wp_presentation_feedback::Event::Discarded => {
                state.feedback_outstanding = state.feedback_outstanding.saturating_sub(1);
                state.stats.discarded += 1;
                if let Some(t) = &info.trace {
                    t.update(|r| r.discarded = true);
                }
            }
            _ => {}
        }
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

    #[test]
    fn no_display_is_one_clear_error() {
        let e = match connect(&Some("/nonexistent/wayland-42".into())) {
            Err(e) => e,
            Ok(_) => panic!("connected to a missing socket"),
        };
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
