//! dmacam as a PipeWire producer (`dmacam serve --pipewire`): a video source node (media.class
//! Video/Source, a driver) whose buffers are the camera's own. Buffer `i` of the node is the camera's buffer
//! `i` handed over as a dma-buf (SPA_DATA_DmaBuf) when the consumer takes dma-bufs, or as the memfd it is
//! (the pattern's memfd fallback); the camera frame is held until PipeWire gives the buffer back (every
//! consumer released it), and only then goes back to the camera. A consumer that takes neither dma-bufs nor
//! this memory gets copies in memfds of the producer's own: counted per frame and byte
//! ([`ProducerStats::copied`]), never silent.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use pipewire as pw;
use pw::spa;
use pw::spa::buffer::DataType;
use pw::spa::param::ParamType;
use pw::stream::{StreamFlags, StreamState};

use super::pod;
use super::PwError;
use crate::dmabuf::{size_of, Mapping};
use crate::format::{Format, PixelFormat};
use crate::source::Source;
use crate::stream::Frame;

/// `SPA_DATA_FLAG_MAPPABLE` (a macro the bindings do not carry): the memory may be mapped by the consumer.
const DATA_FLAG_MAPPABLE: u32 = 1 << 2;

/// How the node is named in the graph.
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// `node.name` (what consumers target: `pipewiresrc target-object=NAME`, `dmacam -d pipewire:NAME`).
    pub name: String,
    /// `node.description` (what desktop camera pickers show).
    pub description: String,
    /// How long PipeWire may keep a camera buffer before the producer takes it back for the camera (a
    /// consumer killed while holding buffers does not always give them back, and the camera would starve).
    pub max_hold: Duration,
}

/// What the producer did, for its final report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStats {
    /// Frames queued to PipeWire.
    pub published: u64,
    /// Of those, handed over in the camera's own buffer (no copy).
    pub shared: u64,
    /// Of those, copied by the CPU into the producer's memfds (a consumer that took no dma-buf), and the
    /// bytes copied.
    pub copied: u64,
    pub copied_bytes: u64,
    /// Frames not published: no consumer linked, or the buffer still out with a consumer, or a newer frame
    /// came before PipeWire asked for one.
    pub skipped: u64,
    /// Buffers taken back for the camera after `max_hold` without PipeWire returning them.
    pub reclaimed: u64,
}

/// What the app tells the PipeWire thread.
enum Cmd {
    Frame(Frame),
    /// Time passes: take back buffers kept over `max_hold` (the camera may be starved of every buffer).
    Tick,
    Quit,
}

/// The camera's buffers, as the node hands them over.
struct Camera {
    memory: Vec<Vec<Arc<OwnedFd>>>,
    dmabuf: bool,
    format: Format,
    pixel: PixelFormat,
    fps: (u32, u32),
}

/// How one PipeWire buffer is filled.
enum Fill {
    /// It is camera buffer `i` itself.
    Shared,
    /// A memfd of the producer's own, written by the CPU per frame.
    Copy(Box<Mapping>),
}

struct Buffer {
    ptr: *mut pw::sys::pw_buffer,
    fill: Fill,
}

#[derive(Default)]
struct Shared {
    stats: ProducerStats,
    failed: Option<String>,
}

/// A camera published as a PipeWire node: a Video/Source node whose buffers are the camera's own.
pub struct PwProducer {
    name: String,
    cmd: pw::channel::Sender<Cmd>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Mutex<Shared>>,
    node_id: Arc<AtomicU32>,
}

impl std::fmt::Debug for PwProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PwProducer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PwProducer {
    /// Publishes `source`'s stream (set up, not necessarily started) as a PipeWire node; waits until the
    /// node exists. `interval` is the camera's frame interval (seconds per frame).
    pub fn new(
        source: &Source,
        interval: (u32, u32),
        opts: ProducerOptions,
    ) -> Result<PwProducer, PwError> {
        let name = format!("pipewire node '{}'", opts.name);
        let pixel = source.pixel_format();
        let spa_format = pixel.spa.ok_or_else(|| PwError::Unsupported {
            name: name.clone(),
            format: format!("{} (PipeWire has no such raw video format)", pixel.name()),
        })?;
        let memory = (0..source.buffer_count())
            .map(|i| {
                source
                    .buffer_memory(i)
                    .map(<[_]>::to_vec)
                    .unwrap_or_default()
            })
            .collect();
        let camera = Camera {
            memory,
            dmabuf: source.not_dmabuf_reason().is_none(),
            format: source.format().clone(),
            pixel,
            fps: (interval.1, interval.0.max(1)),
        };
        let (cmd, cmd_rx) = pw::channel::channel();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let node_id = Arc::new(AtomicU32::new(u32::MAX));
        let (started_tx, started_rx) = mpsc::channel();
        let (shared_t, node_t, name_t) = (shared.clone(), node_id.clone(), name.clone());
        let thread = std::thread::Builder::new()
            .name("pipewire-out".into())
            .spawn(move || {
                run(
                    name_t, opts, camera, spa_format, cmd_rx, shared_t, node_t, started_tx,
                )
            })
            .map_err(|source| PwError::Io {
                name: name.clone(),
                what: "starting the PipeWire thread",
                source,
            })?;
        let producer = PwProducer {
            name: name.clone(),
            cmd,
            thread: Some(thread),
            shared,
            node_id,
        };
        match started_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(PwError::Thread { name }),
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while producer.node_id().is_none() {
            if let Some(what) = producer.failed() {
                return Err(PwError::Stream { name, what });
            }
            if Instant::now() > deadline {
                return Err(PwError::Stream {
                    name,
                    what: "the node was not created within 5 s".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(producer)
    }

    /// The node's id in the graph, once it exists.
    pub fn node_id(&self) -> Option<u32> {
        Some(self.node_id.load(Ordering::SeqCst)).filter(|&id| id != u32::MAX)
    }

    /// Hands a camera frame to the node (it goes back to the camera when PipeWire is done with it).
    pub fn publish(&self, frame: Frame) {
        let _ = self.cmd.send(Cmd::Frame(frame));
    }

    /// Lets the node take back buffers PipeWire kept over `max_hold`; call it when no frame came for a while
    /// (every buffer may be out, so no frame will come to do it).
    pub fn tick(&self) {
        let _ = self.cmd.send(Cmd::Tick);
    }

    pub fn stats(&self) -> ProducerStats {
        self.lock().stats
    }

    /// Why the node failed, if it did.
    pub fn failed(&self) -> Option<String> {
        self.lock().failed.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for PwProducer {
    fn drop(&mut self) {
        let _ = self.cmd.send(Cmd::Quit);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn fail(shared: &Mutex<Shared>, what: String) {
    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
    s.failed.get_or_insert(what);
}

fn count(shared: &Mutex<Shared>, f: impl FnOnce(&mut ProducerStats)) {
    f(&mut shared.lock().unwrap_or_else(|p| p.into_inner()).stats)
}

/// The thread's state of the node's buffers.
struct Node {
    camera: Camera,
    buffers: Vec<Buffer>,
    /// Buffers dequeued and free, by index.
    free: HashMap<usize, *mut pw::sys::pw_buffer>,
    /// Camera frames out with consumers, by buffer index, and since when.
    out: HashMap<usize, (Frame, Instant)>,
    pending: Option<Frame>,
    max_hold: Duration,
}

impl Node {
    /// Sets up a buffer PipeWire asks the producer to fill in (ALLOC_BUFFERS): the camera's buffer of the same
    /// index when the consumer takes its memory type, else a memfd of our own.
    fn add(&mut self, buffer: *mut pw::sys::pw_buffer) -> Result<(), String> {
        let index = self.buffers.len();
        // SAFETY: a pw_buffer handed to add_buffer, with its spa_buffer and n_datas datas.
        let spa_buf = unsafe { &mut *(*buffer).buffer };
        let n = spa_buf.n_datas as usize;
        // SAFETY: n_datas >= 1 for a video buffer; the first data's type is the mask of types allowed.
        let allowed = unsafe { (*spa_buf.datas).type_ };
        let takes = |t: DataType| allowed & (1 << t.as_raw()) != 0;
        let cam = self.camera.memory.get(index);
        let fill = match cam {
            Some(mem) if mem.len() == n && self.camera.dmabuf && takes(DataType::DmaBuf) => {
                self.hand_over(spa_buf, mem, DataType::DmaBuf)?;
                Fill::Shared
            }
            Some(mem) if mem.len() == n && !self.camera.dmabuf && takes(DataType::MemFd) => {
                self.hand_over(spa_buf, mem, DataType::MemFd)?;
                Fill::Shared
            }
            _ if n == 1 && takes(DataType::MemFd) => {
                let size = self.camera.format.planes[0].sizeimage as u64;
                let fd = crate::alloc::sealed_memfd(c"dmacam-pipewire", size)
                    .map_err(|e| format!("a memfd for a copy: {e}"))?;
                let fd = Arc::new(fd);
                let map = Mapping::new(fd.clone(), true)
                    .map_err(|e| format!("mapping a memfd for a copy: {e}"))?;
                // SAFETY: the one data of this buffer; the fd lives as long as the mapping we keep.
                let d = unsafe { &mut *spa_buf.datas };
                d.type_ = DataType::MemFd.as_raw();
                d.fd = fd.as_raw_fd() as i64;
                d.flags = spa::sys::SPA_DATA_FLAG_READWRITE | DATA_FLAG_MAPPABLE;
                d.mapoffset = 0;
                d.maxsize = size as u32;
                d.data = std::ptr::null_mut();
                tracing::warn!(
                    "PipeWire buffer {index}: the consumer takes no dma-buf; frames are copied into memfds (counted)"
                );
                Fill::Copy(Box::new(map))
            }
            _ => {
                return Err(format!(
                "the consumer takes neither dma-bufs nor memfds (allowed data types {allowed:#x})"
            ))
            }
        };
        // SAFETY: user_data is ours to set.
        unsafe { (*buffer).user_data = index as *mut std::ffi::c_void };
        self.buffers.push(Buffer { ptr: buffer, fill });
        Ok(())
    }

    fn hand_over(
        &self,
        spa_buf: &mut spa::sys::spa_buffer,
        mem: &[Arc<OwnedFd>],
        kind: DataType,
    ) -> Result<(), String> {
        for (j, fd) in mem.iter().enumerate() {
            let size = size_of(fd.as_fd()).map_err(|e| format!("size of a camera buffer: {e}"))?;
            // SAFETY: j < n_datas (checked by the caller: mem.len() == n_datas).
            let d = unsafe { &mut *spa_buf.datas.add(j) };
            d.type_ = kind.as_raw();
            // The camera's fd: it stays open as long as the source (and this node) lives.
            d.fd = fd.as_raw_fd() as i64;
            d.flags = spa::sys::SPA_DATA_FLAG_READABLE | DATA_FLAG_MAPPABLE;
            d.mapoffset = 0;
            d.maxsize = size as u32;
            d.data = std::ptr::null_mut();
        }
        Ok(())
    }

    /// PipeWire asks for a frame: take back the buffers consumers are done with (their camera frames go back
    /// to the camera), then publish the pending frame.
    fn process(&mut self, stream: &pw::stream::Stream, shared: &Mutex<Shared>) {
        loop {
            // SAFETY: null or a buffer of this stream that we now own until we queue it.
            let b = unsafe { stream.dequeue_raw_buffer() };
            if b.is_null() {
                break;
            }
            // SAFETY: user_data was set in add.
            let index = unsafe { (*b).user_data } as usize;
            self.out.remove(&index);
            self.free.insert(index, b);
        }
        let Some(frame) = self.pending.take() else {
            return;
        };
        let shared_index = frame.index();
        let pick = match self.buffers.get(shared_index).map(|b| &b.fill) {
            Some(Fill::Shared) => self.free.remove(&shared_index).map(|p| (shared_index, p)),
            _ => {
                let any = self
                    .free
                    .keys()
                    .copied()
                    .find(|i| matches!(self.buffers[*i].fill, Fill::Copy(_)));
                any.and_then(|i| self.free.remove(&i).map(|p| (i, p)))
            }
        };
        let Some((index, ptr)) = pick else {
            count(shared, |s| s.skipped += 1);
            return;
        };
        let copied = match &mut self.buffers[index].fill {
            Fill::Shared => {
                self.fill_chunks(ptr, &frame, false);
                None
            }
            Fill::Copy(map) => match copy_frame(&frame, map) {
                Ok(n) => {
                    self.fill_chunks(ptr, &frame, true);
                    Some(n)
                }
                Err(e) => {
                    fail(shared, format!("copying a frame: {e}"));
                    self.free.insert(index, ptr);
                    return;
                }
            },
        };
        // SAFETY: a buffer of this stream we dequeued and filled.
        unsafe { stream.queue_raw_buffer(ptr) };
        match copied {
            None => {
                self.out.insert(index, (frame, Instant::now()));
                count(shared, |s| {
                    s.published += 1;
                    s.shared += 1;
                });
            }
            Some(n) => count(shared, |s| {
                s.published += 1;
                s.copied += 1;
                s.copied_bytes += n;
            }),
        }
    }

    /// Takes back, for the camera, every buffer PipeWire has kept longer than `max_hold`; the buffer is
    /// used again as if returned. Returns how many.
    fn reclaim(&mut self) -> u64 {
        let stale: Vec<usize> = self
            .out
            .iter()
            .filter(|(_, (_, since))| since.elapsed() > self.max_hold)
            .map(|(&i, _)| i)
            .collect();
        for &i in &stale {
            self.out.remove(&i);
            if let Some(b) = self.buffers.get(i).filter(|b| !b.ptr.is_null()) {
                self.free.insert(i, b.ptr);
            }
        }
        if !stale.is_empty() {
            tracing::warn!(
                "PipeWire kept {} buffers over {:?}: taken back for the camera (a consumer went away holding them?)",
                stale.len(),
                self.max_hold
            );
        }
        stale.len() as u64
    }

    /// Where the frame's payload is in each block, and its header.
    fn fill_chunks(&self, ptr: *mut pw::sys::pw_buffer, frame: &Frame, copied: bool) {
        // SAFETY: a dequeued buffer of this stream.
        let spa_buf = unsafe { &mut *(*ptr).buffer };
        for j in 0..spa_buf.n_datas as usize {
            // SAFETY: j < n_datas; every data has a chunk.
            let c = unsafe { &mut *(*spa_buf.datas.add(j)).chunk };
            let plane = &self.camera.format.planes[j.min(self.camera.format.planes.len() - 1)];
            c.offset = if copied {
                0
            } else {
                frame.data_offset().get(j).copied().unwrap_or(0)
            };
            c.size = frame.bytesused().get(j).copied().unwrap_or(plane.sizeimage);
            c.stride = plane.bytesperline as i32;
            c.flags = if frame.is_error() {
                spa::sys::SPA_CHUNK_FLAG_CORRUPTED as i32
            } else {
                0
            };
        }
        // SAFETY: the dequeued buffer's metas; the header is ours to write while the buffer is dequeued.
        if let Some(h) = unsafe { super::header_meta(spa_buf).map(|h| &mut *h) } {
            h.seq = u64::from(frame.sequence());
            h.pts = frame.timestamp().as_nanos() as i64;
            h.flags = 0;
            h.offset = 0;
            h.dts_offset = 0;
        }
    }
}

/// Copies a (single-plane-buffer) frame into `map`; returns the bytes copied.
fn copy_frame(frame: &Frame, map: &mut Mapping) -> Result<u64, String> {
    let used = frame.bytesused().first().copied().unwrap_or(0) as usize;
    let offset = frame.data_offset().first().copied().unwrap_or(0) as usize;
    let mut dst = map.write().map_err(|e| e.to_string())?;
    frame
        .read(|mem| {
            let src = mem.first().copied().unwrap_or(&[]);
            let end = (offset + used).min(src.len());
            let n = (end.saturating_sub(offset)).min(dst.len());
            dst[..n].copy_from_slice(&src[offset..offset + n]);
            n as u64
        })
        .map_err(|e| e.to_string())
}

#[allow(clippy::too_many_arguments)]
fn run(
    name: String,
    opts: ProducerOptions,
    camera: Camera,
    spa_format: u32,
    commands: pw::channel::Receiver<Cmd>,
    shared: Arc<Mutex<Shared>>,
    node_id: Arc<AtomicU32>,
    started: mpsc::Sender<Result<(), PwError>>,
) {
    let setup = || -> Result<_, PwError> {
        let (mainloop, context, core) = super::connect_daemon(&name)?;
        let mut props = pw::properties::PropertiesBox::new();
        props.insert("media.type", "Video");
        props.insert("media.category", "Capture");
        props.insert("media.role", "Camera");
        props.insert("media.class", "Video/Source");
        props.insert("node.name", opts.name.as_str());
        props.insert("node.description", opts.description.as_str());
        let stream = pw::stream::StreamRc::new(core.clone(), &opts.name, props).map_err(|e| {
            PwError::Stream {
                name: name.clone(),
                what: format!("creating the stream: {e}"),
            }
        })?;
        Ok((mainloop, context, core, stream))
    };
    let (mainloop, _context, _core, stream) = match setup() {
        Ok(v) => v,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let (w, h) = (camera.format.width, camera.format.height);
    let planes = camera.memory.first().map_or(1, Vec::len) as u32;
    let count_buffers = camera.memory.len() as u32;
    let stride = camera.format.planes[0].bytesperline;
    let size = camera.format.planes[0].sizeimage;
    let types = if camera.dmabuf {
        pod::data_type_bit(DataType::DmaBuf) | pod::data_type_bit(DataType::MemFd)
    } else {
        pod::data_type_bit(DataType::MemFd)
    };
    let fps = camera.fps;
    tracing::debug!(
        "publishing {} {w}x{h} as PipeWire node '{}'",
        camera.pixel.name(),
        opts.name
    );
    let node = Rc::new(RefCell::new(Node {
        camera,
        buffers: Vec::new(),
        free: HashMap::new(),
        out: HashMap::new(),
        pending: None,
        max_hold: opts.max_hold,
    }));
    let (n_add, n_remove, n_proc) = (node.clone(), node.clone(), node.clone());
    let (s_state, s_param, s_add, s_proc) = (
        shared.clone(),
        shared.clone(),
        shared.clone(),
        shared.clone(),
    );
    let listener = stream
        .add_local_listener_with_user_data(())
        .state_changed(move |stream, _, _old, new| match new {
            StreamState::Error(e) => fail(&s_state, format!("the stream failed: {e}")),
            StreamState::Paused | StreamState::Streaming => {
                node_id.store(stream.node_id(), Ordering::SeqCst);
            }
            _ => {}
        })
        .param_changed(move |stream, _, id, param| {
            if id != ParamType::Format.as_raw() || param.is_none() {
                return;
            }
            let bytes = [
                pod::to_bytes(pod::buffers(
                    (count_buffers, count_buffers, count_buffers),
                    Some(planes),
                    types,
                    Some((size, stride)),
                )),
                pod::to_bytes(pod::header_meta()),
            ];
            let mut params = pod::pods(&bytes);
            if let Err(e) = stream.update_params(&mut params) {
                fail(&s_param, format!("setting the buffer parameters: {e}"));
            }
        })
        .add_buffer(move |_, _, buffer| {
            if let Err(e) = n_add.borrow_mut().add(buffer) {
                fail(&s_add, e);
            }
        })
        .remove_buffer(move |_, _, buffer| {
            let mut n = n_remove.borrow_mut();
            // SAFETY: user_data was set in add (or is 0 for a buffer add refused).
            let index = unsafe { (*buffer).user_data } as usize;
            n.free.remove(&index);
            n.out.remove(&index);
            if let Some(b) = n.buffers.get_mut(index) {
                b.ptr = std::ptr::null_mut();
            }
            // A new set follows a renegotiation: start indexing from 0 again.
            if n.buffers.iter().all(|b| b.ptr.is_null()) {
                n.buffers.clear();
            }
        })
        .process(move |stream, _| n_proc.borrow_mut().process(stream, &s_proc))
        .register();
    let listener = match listener {
        Ok(l) => l,
        Err(e) => {
            let _ = started.send(Err(PwError::Stream {
                name,
                what: format!("listening to the stream: {e}"),
            }));
            return;
        }
    };
    let bytes = [pod::to_bytes(pod::fixed_format(spa_format, w, h, fps))];
    let mut params = pod::pods(&bytes);
    if let Err(e) = stream.connect(
        spa::utils::Direction::Output,
        None,
        StreamFlags::DRIVER | StreamFlags::ALLOC_BUFFERS,
        &mut params,
    ) {
        let _ = started.send(Err(PwError::Stream {
            name,
            what: format!("connecting the stream: {e}"),
        }));
        return;
    }
    let _ = started.send(Ok(()));
    let ml = mainloop.clone();
    let (n_cmd, s_cmd, st_cmd) = (node.clone(), shared.clone(), stream.clone());
    let _commands = commands.attach(mainloop.loop_(), move |cmd| match cmd {
        Cmd::Frame(frame) => {
            let mut n = n_cmd.borrow_mut();
            let reclaimed = n.reclaim();
            if reclaimed > 0 {
                count(&s_cmd, |s| s.reclaimed += reclaimed);
            }
            if n.pending.replace(frame).is_some() {
                count(&s_cmd, |s| s.skipped += 1);
            }
            drop(n);
            // SAFETY: the stream is alive (owned by this thread) and a driver. When no consumer is linked
            // (the node is not running) the frame waits and the next one replaces it.
            let _ = unsafe { pw::sys::pw_stream_trigger_process(st_cmd.as_raw_ptr()) };
        }
        Cmd::Tick => {
            let reclaimed = n_cmd.borrow_mut().reclaim();
            if reclaimed > 0 {
                count(&s_cmd, |s| s.reclaimed += reclaimed);
            }
        }
        Cmd::Quit => ml.quit(),
    });
    mainloop.run();
    let _ = stream.disconnect();
    drop(listener);
    let mut n = node.borrow_mut();
    if n.pending.take().is_some() {
        count(&shared, |s| s.skipped += 1);
    }
    n.out.clear();
}
