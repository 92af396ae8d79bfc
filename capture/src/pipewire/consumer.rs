//! The PipeWire side of a consumer stream, on a thread of its own: it runs PipeWire's loop, lists the video
//! source nodes, connects the stream when told, and passes on what happens (the format, each buffer's
//! memory, each frame) as [`Event`]s; frames come back as [`Cmd::Release`] and are queued to the producer
//! again. Nothing here touches pixels: buffers are passed on as the producer made them (fds duplicated,
//! never mapped).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;

use nix::sys::eventfd::{EfdFlags, EventFd};
use pipewire as pw;
use pw::spa;
use pw::spa::buffer::DataType;
use pw::spa::param::ParamType;
use pw::stream::{StreamFlags, StreamState};

use super::pod::{self, Negotiated, Wanted};
use super::PwError;

/// What to connect to: the wishes, `target` (an object serial or node name, or the default source), and the
/// target's node id (to link it and to notice it vanish).
#[derive(Debug)]
pub(super) struct Request {
    pub wanted: Wanted,
    pub target: Option<String>,
    pub node: Option<u32>,
}

/// What the dmacam side asks of the PipeWire thread.
#[derive(Debug)]
pub(super) enum Cmd {
    /// Connect the stream (again) with these wishes, to `target` (an object serial or node name) or the
    /// default source; `node` is the target's id (to notice it vanish).
    Connect(Request),
    /// Start or stop passing frames on (while stopped, each buffer goes straight back to the producer: a
    /// stream that is not active does not agree a format).
    Activate(bool),
    /// Buffer `index` is free again.
    Release(u32),
    Quit,
}

/// The sending end of the commands (PipeWire's channel, which wakes the thread's loop).
#[derive(Clone)]
pub(super) struct CmdTx(pub pw::channel::Sender<Cmd>);

impl CmdTx {
    /// Sends `cmd`; `false` when the thread has gone.
    pub fn send(&self, cmd: Cmd) -> bool {
        self.0.send(cmd).is_ok()
    }
}

impl std::fmt::Debug for CmdTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CmdTx")
    }
}

/// A video source node as the registry lists it.
#[derive(Debug, Clone, Default)]
pub(super) struct NodeInfo {
    pub id: u32,
    pub serial: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub object_path: Option<String>,
    pub v4l2_path: Option<String>,
    pub media_class: String,
}

/// One memory block of a buffer.
#[derive(Debug)]
pub(super) struct Block {
    /// The fd, duplicated (`None` for memory without one: `MemPtr`).
    pub fd: Option<OwnedFd>,
    pub kind: DataType,
    pub mapoffset: u32,
    pub maxsize: u32,
}

/// Where a frame's payload sits in one block.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunk {
    pub offset: u32,
    pub size: u32,
    pub stride: i32,
}

/// One frame: which buffer, where its payload is, and the producer's header.
#[derive(Debug)]
pub(super) struct FrameInfo {
    pub index: u32,
    pub chunks: Vec<Chunk>,
    pub seq: Option<u64>,
    pub pts_ns: Option<i64>,
    pub corrupted: bool,
}

/// What the PipeWire thread tells the dmacam side.
#[derive(Debug)]
pub(super) enum Event {
    /// The video source nodes when the thread connected (the answer to the first round trip).
    Nodes(Vec<NodeInfo>),
    Format(Negotiated),
    Buffer {
        index: u32,
        blocks: Vec<Block>,
    },
    Frame(FrameInfo),
    Failed(String),
    /// The node went away, or the stream was disconnected by the daemon.
    Gone,
}

/// The sending end of the events: a queue plus an eventfd the dmacam side polls.
#[derive(Clone)]
pub(super) struct Events {
    tx: mpsc::Sender<Event>,
    efd: Arc<EventFd>,
}

/// The receiving end of the events.
pub(super) struct EventRx {
    rx: mpsc::Receiver<Event>,
    efd: Arc<EventFd>,
}

pub(super) fn events() -> std::io::Result<(Events, EventRx)> {
    let efd = Arc::new(
        EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(std::io::Error::from)?,
    );
    let (tx, rx) = mpsc::channel();
    Ok((
        Events {
            tx,
            efd: efd.clone(),
        },
        EventRx { rx, efd },
    ))
}

impl Events {
    fn send(&self, e: Event) {
        if self.tx.send(e).is_ok() {
            let _ = self.efd.write(1);
        }
    }
}

impl EventRx {
    /// Readable when an event is waiting.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }

    /// The next event if one is waiting; `Err` when the thread has gone.
    pub fn try_next(&self) -> Result<Option<Event>, ()> {
        // Clear the eventfd before draining: an event sent after this read makes it readable again.
        let _ = self.efd.read();
        match self.rx.try_recv() {
            Ok(e) => {
                // More may be queued behind it: keep the fd readable until the queue is drained.
                let _ = self.efd.write(1);
                Ok(Some(e))
            }
            Err(mpsc::TryRecvError::Empty) => Ok(None),
            Err(mpsc::TryRecvError::Disconnected) => Err(()),
        }
    }
}

fn node_info(global: &pw::registry::GlobalObject<&spa::utils::dict::DictRef>) -> Option<NodeInfo> {
    if global.type_ != pw::types::ObjectType::Node {
        return None;
    }
    let props = global.props?;
    let class = props.get("media.class")?;
    if !matches!(class, "Video/Source" | "Stream/Output/Video") {
        return None;
    }
    let get = |k: &str| props.get(k).map(str::to_owned);
    Some(NodeInfo {
        id: global.id,
        serial: get("object.serial"),
        name: get("node.name").unwrap_or_default(),
        description: get("node.description"),
        object_path: get("object.path"),
        v4l2_path: get("api.v4l2.path"),
        media_class: class.to_owned(),
    })
}

/// Links a named node to the stream, as `pw-link` does, once both ports exist (PipeWire 1.x's link-factory
/// wants ports, and the stream's input port appears only after the stream is connected).
#[derive(Default)]
struct Linker {
    /// (output node, input node) to link, once the stream's node id is known.
    want: Option<(u32, u32)>,
    /// Ports the registry announced: (port id, node id, is output).
    ports: Vec<(u32, u32, bool)>,
    link: Option<pw::link::Link>,
}

impl Linker {
    fn try_link(&mut self, core: &pw::core::CoreRc, events: &Events) {
        let Some((out_node, in_node)) = self.want.filter(|_| self.link.is_none()) else {
            return;
        };
        let port = |node: u32, out: bool| {
            self.ports
                .iter()
                .find(|p| p.1 == node && p.2 == out)
                .map(|p| p.0)
        };
        let (Some(out_port), Some(in_port)) = (port(out_node, true), port(in_node, false)) else {
            return;
        };
        let mut props = pw::properties::PropertiesBox::new();
        props.insert("link.output.node", out_node.to_string());
        props.insert("link.output.port", out_port.to_string());
        props.insert("link.input.node", in_node.to_string());
        props.insert("link.input.port", in_port.to_string());
        tracing::debug!("linking node {out_node} port {out_port} to node {in_node} port {in_port}");
        match core.create_object::<pw::link::Link>("link-factory", &props) {
            Ok(l) => self.link = Some(l),
            Err(e) => events.send(Event::Failed(format!("linking to node {out_node}: {e}"))),
        }
    }
}

type SharedLinker = Rc<RefCell<Linker>>;

/// A port as the registry lists it: (port id, node id, is output).
fn port_info(
    global: &pw::registry::GlobalObject<&spa::utils::dict::DictRef>,
) -> Option<(u32, u32, bool)> {
    if global.type_ != pw::types::ObjectType::Port {
        return None;
    }
    let props = global.props?;
    let node = props.get("node.id")?.parse().ok()?;
    Some((global.id, node, props.get("port.direction")? == "out"))
}

/// The thread's state of one connected stream.
struct Connected {
    stream: pw::stream::StreamRc,
    _listener: pw::stream::StreamListener<()>,
}

/// Buffers the dmacam side holds, by index (queued again on release).
type Held = Rc<RefCell<HashMap<u32, *mut pw::sys::pw_buffer>>>;

/// Reads the blocks of a buffer just added.
///
/// # Safety
/// `buffer` must be a `pw_buffer` PipeWire just handed to `add_buffer`.
unsafe fn blocks_of(buffer: *mut pw::sys::pw_buffer) -> Vec<Block> {
    // SAFETY: the caller's contract: a valid pw_buffer with a valid spa_buffer and its n_datas datas.
    let spa_buf = unsafe { &*(*buffer).buffer };
    (0..spa_buf.n_datas as usize)
        .map(|i| {
            // SAFETY: i < n_datas.
            let d = unsafe { &*spa_buf.datas.add(i) };
            let fd = (d.fd >= 0)
                .then(|| {
                    // SAFETY: PipeWire owns this fd for the buffer's life; we only duplicate it.
                    let borrowed = unsafe { BorrowedFd::borrow_raw(d.fd as i32) };
                    borrowed.try_clone_to_owned().ok()
                })
                .flatten();
            Block {
                fd,
                kind: DataType::from_raw(d.type_),
                mapoffset: d.mapoffset,
                maxsize: d.maxsize,
            }
        })
        .collect()
}

/// Reads a dequeued buffer's chunks and header.
///
/// # Safety
/// `buffer` must be a `pw_buffer` just dequeued from the stream.
unsafe fn frame_of(index: u32, buffer: *mut pw::sys::pw_buffer) -> FrameInfo {
    // SAFETY: the caller's contract.
    let spa_buf = unsafe { &*(*buffer).buffer };
    let mut corrupted = false;
    let chunks = (0..spa_buf.n_datas as usize)
        .map(|i| {
            // SAFETY: i < n_datas; every data has a chunk.
            let c = unsafe { &*(*spa_buf.datas.add(i)).chunk };
            corrupted |= c.flags & spa::sys::SPA_CHUNK_FLAG_CORRUPTED as i32 != 0;
            Chunk {
                offset: c.offset,
                size: c.size,
                stride: c.stride,
            }
        })
        .collect();
    // SAFETY: the dequeued buffer's metas (the caller's contract); the header is read at once.
    let header = unsafe { super::header_meta(spa_buf).map(|h| ((*h).seq, (*h).pts)) };
    let (seq, pts_ns) = (header.map(|h| h.0), header.map(|h| h.1));
    FrameInfo {
        index,
        chunks,
        seq,
        pts_ns,
        corrupted,
    }
}

/// Connects a consumer stream as `cmd` says; its callbacks send events.
fn connect(
    core: &pw::core::CoreRc,
    events: &Events,
    held: &Held,
    accepting: &Rc<Cell<bool>>,
    request: Request,
    linker: &SharedLinker,
) -> Result<Connected, String> {
    let Request {
        wanted,
        target,
        node,
    } = request;
    let mut props = pw::properties::PropertiesBox::new();
    props.insert("media.type", "Video");
    props.insert("media.category", "Capture");
    props.insert("media.role", "Camera");
    props.insert("node.name", "dmacam");
    if let Some(t) = &target {
        props.insert("target.object", t.as_str());
    }
    let stream = pw::stream::StreamRc::new(core.clone(), "dmacam", props)
        .map_err(|e| format!("creating the stream: {e}"))?;
    let next_index = Rc::new(Cell::new(0u32));
    let (ev_state, ev_param, ev_add, ev_proc) = (
        events.clone(),
        events.clone(),
        events.clone(),
        events.clone(),
    );
    let (held_remove, held_proc) = (held.clone(), held.clone());
    let accepting = accepting.clone();
    let was_streaming = Rc::new(Cell::new(false));
    let (linker_state, core_state, ev_link) = (linker.clone(), core.clone(), events.clone());
    let listener = stream
        .add_local_listener_with_user_data(())
        .state_changed(move |stream, _, _old, new| match new {
            StreamState::Error(e) => ev_state.send(Event::Failed(e)),
            ref state if stream.node_id() != u32::MAX && linker_state.borrow().want.is_none() => {
                tracing::debug!("stream {state:?}, node {}", stream.node_id());
                if let Some(out) = node {
                    let mut l = linker_state.borrow_mut();
                    l.want = Some((out, stream.node_id()));
                    l.try_link(&core_state, &ev_link);
                }
                if matches!(state, StreamState::Streaming) {
                    was_streaming.set(true);
                }
            }
            StreamState::Streaming => was_streaming.set(true),
            StreamState::Unconnected if was_streaming.get() => ev_state.send(Event::Gone),
            other => tracing::debug!("stream {other:?}, node {}", stream.node_id()),
        })
        .param_changed(move |stream, _, id, param| {
            let Some(param) = param.filter(|_| id == ParamType::Format.as_raw()) else {
                return;
            };
            let Some(neg) = Negotiated::parse(param) else {
                ev_param.send(Event::Failed(
                    "the producer's format is not raw video".into(),
                ));
                return;
            };
            // A format with a modifier takes dma-bufs only; without, dma-bufs or memfds.
            let types = if neg.modifier.is_some() {
                pod::data_type_bit(DataType::DmaBuf)
            } else {
                pod::data_type_bit(DataType::DmaBuf) | pod::data_type_bit(DataType::MemFd)
            };
            let bytes = [
                pod::to_bytes(pod::buffers((2, 8, 16), None, types, None)),
                pod::to_bytes(pod::header_meta()),
            ];
            let mut params = pod::pods(&bytes);
            if let Err(e) = stream.update_params(&mut params) {
                ev_param.send(Event::Failed(format!("setting the buffer parameters: {e}")));
            }
            ev_param.send(Event::Format(neg));
        })
        .add_buffer(move |_, _, buffer| {
            let index = next_index.get();
            next_index.set(index + 1);
            // SAFETY: PipeWire hands a valid pw_buffer to add_buffer; user_data is ours to set.
            let blocks = unsafe {
                (*buffer).user_data = index as usize as *mut std::ffi::c_void;
                blocks_of(buffer)
            };
            ev_add.send(Event::Buffer { index, blocks });
        })
        .remove_buffer(move |_, _, buffer| {
            // SAFETY: user_data was set in add_buffer.
            let index = unsafe { (*buffer).user_data } as usize as u32;
            held_remove.borrow_mut().remove(&index);
        })
        .process(move |stream, _| loop {
            // SAFETY: dequeue_raw_buffer returns null or a buffer we own until queued again.
            let buffer = unsafe { stream.dequeue_raw_buffer() };
            if buffer.is_null() {
                break;
            }
            if !accepting.get() {
                // SAFETY: the buffer just dequeued, given straight back.
                unsafe { stream.queue_raw_buffer(buffer) };
                continue;
            }
            // SAFETY: a buffer just dequeued; user_data was set in add_buffer.
            let index = unsafe { (*buffer).user_data } as usize as u32;
            // SAFETY: as above.
            let info = unsafe { frame_of(index, buffer) };
            held_proc.borrow_mut().insert(index, buffer);
            ev_proc.send(Event::Frame(info));
        })
        .register()
        .map_err(|e| format!("listening to the stream: {e}"))?;
    let formats = pod::spa_formats(wanted.fourcc).map_err(|f| format!("format {f}"))?;
    let bytes = [
        pod::to_bytes(pod::enum_format(
            &formats,
            &wanted,
            Some(crate::DRM_FORMAT_MOD_LINEAR),
        )),
        pod::to_bytes(pod::enum_format(&formats, &wanted, None)),
    ];
    let mut params = pod::pods(&bytes);
    let flags = if node.is_some() {
        StreamFlags::DONT_RECONNECT
    } else {
        StreamFlags::AUTOCONNECT | StreamFlags::DONT_RECONNECT
    };
    stream
        .connect(spa::utils::Direction::Input, None, flags, &mut params)
        .map_err(|e| format!("connecting the stream: {e}"))?;
    Ok(Connected {
        stream,
        _listener: listener,
    })
}

/// The thread's body: connects to the daemon (`Err` at once if there is none), lists the video sources,
/// then serves commands until [`Cmd::Quit`].
pub(super) fn run(
    name: String,
    events: Events,
    commands: pw::channel::Receiver<Cmd>,
    started: mpsc::Sender<Result<(), PwError>>,
) {
    let setup = || -> Result<_, PwError> {
        let (mainloop, context, core) = super::connect_daemon(&name)?;
        let registry = core.get_registry_rc().map_err(|_| PwError::NoDaemon {
            name: name.clone(),
            socket: super::daemon_socket(),
        })?;
        Ok((mainloop, context, core, registry))
    };
    let (mainloop, _context, core, registry) = match setup() {
        Ok(v) => {
            let _ = started.send(Ok(()));
            v
        }
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let nodes = Rc::new(RefCell::new(Vec::new()));
    let watched = Rc::new(Cell::new(None::<u32>));
    let linker: SharedLinker = Rc::new(RefCell::new(Linker::default()));
    let (nodes_g, watched_r, ev_r) = (nodes.clone(), watched.clone(), events.clone());
    let (linker_g, core_g, ev_g) = (linker.clone(), core.clone(), events.clone());
    let _registry_listener = registry
        .add_listener_local()
        .global(move |g| {
            if let Some(n) = node_info(g) {
                nodes_g.borrow_mut().push(n);
            }
            if let Some(port) = port_info(g) {
                let mut l = linker_g.borrow_mut();
                l.ports.push(port);
                l.try_link(&core_g, &ev_g);
            }
        })
        .global_remove(move |id| {
            if watched_r.get() == Some(id) {
                ev_r.send(Event::Gone);
            }
        })
        .register();
    let pending = core.sync(0).ok();
    let (nodes_d, ev_d, ev_e) = (nodes.clone(), events.clone(), events.clone());
    let _core_listener = core
        .add_listener_local()
        .done(move |id, seq| {
            if id == pw::core::PW_ID_CORE && Some(seq) == pending {
                ev_d.send(Event::Nodes(nodes_d.borrow().clone()));
            }
        })
        .error(move |id, _seq, res, message| {
            tracing::debug!("PipeWire error on object {id}: {message} ({res})");
            if id == pw::core::PW_ID_CORE {
                ev_e.send(Event::Failed(format!(
                    "the daemon: {message} ({})",
                    std::io::Error::from_raw_os_error(-res)
                )));
            }
        })
        .register();
    let held: Held = Rc::new(RefCell::new(HashMap::new()));
    let connected: Rc<RefCell<Option<Connected>>> = Rc::new(RefCell::new(None));
    let accepting = Rc::new(Cell::new(false));
    let ml = mainloop.clone();
    let _commands = commands.attach(mainloop.loop_(), move |cmd| match cmd {
        Cmd::Connect(request) => {
            let node = request.node;
            if let Some(old) = connected.borrow_mut().take() {
                let _ = old.stream.disconnect();
            }
            held.borrow_mut().clear();
            watched.set(node);
            {
                let mut l = linker.borrow_mut();
                l.want = None;
                l.link = None;
            }
            accepting.set(false);
            match connect(&core, &events, &held, &accepting, request, &linker) {
                Ok(c) => *connected.borrow_mut() = Some(c),
                Err(e) => events.send(Event::Failed(e)),
            }
        }
        Cmd::Activate(on) => accepting.set(on),
        Cmd::Release(index) => {
            let buffer = held.borrow_mut().remove(&index);
            if let (Some(buffer), Some(c)) = (buffer, connected.borrow().as_ref()) {
                // SAFETY: a buffer this stream handed out and we have not queued since.
                unsafe { c.stream.queue_raw_buffer(buffer) };
            }
        }
        Cmd::Quit => {
            if let Some(old) = connected.borrow_mut().take() {
                let _ = old.stream.disconnect();
            }
            ml.quit();
        }
    });
    mainloop.run();
}
