//! A PipeWire video source as a dmacam input: [`PwInput`] finds the node and agrees a format, [`PwSource`]
//! hands out [`Frame`]s over the producer's own buffers (dma-bufs, or memfds when that is all it offers),
//! each queued back to the producer when its last holder drops it.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pipewire as pw;

use super::consumer::{self, Block, Cmd, CmdTx, Event, EventRx, FrameInfo, NodeInfo, Request};
use super::pod::{self, Negotiated, Wanted};
use super::pool::{add_buffer, Memory, Pool, Slot, MAX_BUFFERS};
use super::{PwError, Target};
use crate::colour::v4l2 as cv;
use crate::dmabuf::{Dmabuf, DmabufPlane};
use crate::format::{fourcc_name, Format, FormatError, FormatRequest, Fraction, PixelFormat};
use crate::format::{PlaneFormat, CATALOGUE};
use crate::frame::{Frame, FrameMeta, BUF_FLAG_ERROR, BUF_FLAG_TIMESTAMP_MONOTONIC};
use crate::stream::{buffer_dmabuf, IoMode, StreamError};

/// How long connecting, listing the nodes and agreeing a format may each take.
const HANDSHAKE: Duration = Duration::from_secs(5);
/// After the first buffer, how long to wait for the rest of the set before streaming.
const BUFFERS_SETTLE: Duration = Duration::from_millis(300);

/// The PipeWire thread: told to quit and joined when the input or source using it is dropped.
#[derive(Debug)]
struct Thread {
    cmd: CmdTx,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Thread {
    fn drop(&mut self) {
        let _ = self.cmd.send(Cmd::Quit);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What the input learnt so far; behind a mutex because [`crate::Input::negotiate`] takes `&self`.
#[derive(Debug, Default)]
struct State {
    negotiated: Option<Negotiated>,
    format: Option<Format>,
}

/// A PipeWire video source node, found and connected (see the [module docs](super)).
pub struct PwInput {
    name: PathBuf,
    node: Option<NodeInfo>,
    thread: Arc<Thread>,
    events: EventRx,
    pool: Arc<Pool>,
    state: Mutex<State>,
}

impl std::fmt::Debug for PwInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PwInput")
            .field("name", &self.name)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The node `target` names among `nodes`.
fn resolve(name: &str, target: &Target, nodes: &[NodeInfo]) -> Result<Option<NodeInfo>, PwError> {
    let Target::Named(want) = target else {
        if nodes.is_empty() {
            return Err(PwError::NoSources { name: name.into() });
        }
        return Ok(None);
    };
    let hit = nodes.iter().find(|n| {
        n.id.to_string() == *want
            || n.serial.as_deref() == Some(want)
            || n.name == *want
            || n.description.as_deref() == Some(want)
            || n.object_path.as_deref() == Some(want)
            || n.v4l2_path.as_deref() == Some(want)
            // The registry's announcement carries `object.path` (`v4l2:/dev/video0`), not the device path.
            || n.object_path.as_deref() == Some(&format!("v4l2:{want}"))
    });
    match hit {
        Some(n) => Ok(Some(n.clone())),
        None if nodes.is_empty() => Err(PwError::NoSources { name: name.into() }),
        None => Err(PwError::NoSuchNode {
            name: name.into(),
            node: want.clone(),
            offered: nodes
                .iter()
                .map(|n| format!("{} ({})", n.id, n.name))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl PwInput {
    /// Connects to the session's PipeWire daemon and finds the node `target` names: one clear error if
    /// there is no daemon, no video source, or no such node.
    pub fn open(target: &Target) -> Result<PwInput, PwError> {
        let name = target.display_name();
        let io = |what| {
            let name = name.clone();
            move |source| PwError::Io { name, what, source }
        };
        let (events, rx) = consumer::events().map_err(io("creating an eventfd"))?;
        let (cmd, cmd_rx) = pw::channel::channel();
        let (started_tx, started_rx) = mpsc::channel();
        let thread_name = name.clone();
        let handle = std::thread::Builder::new()
            .name("pipewire".into())
            .spawn(move || consumer::run(thread_name, events, cmd_rx, started_tx))
            .map_err(io("starting the PipeWire thread"))?;
        let cmd = CmdTx(cmd);
        let thread = Arc::new(Thread {
            cmd: cmd.clone(),
            handle: Some(handle),
        });
        match started_rx.recv_timeout(HANDSHAKE) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(PwError::Thread { name }),
        }
        let deadline = Instant::now() + HANDSHAKE;
        let nodes = loop {
            match wait_event(&rx, &name, deadline)? {
                Some(Event::Nodes(n)) => break n,
                Some(Event::Failed(what)) => return Err(PwError::Stream { name, what }),
                Some(_) => {}
                None => {
                    return Err(PwError::Stream {
                        name,
                        what: "the daemon did not answer within 5 s".into(),
                    })
                }
            }
        };
        let node = resolve(&name, target, &nodes)?;
        if let Some(n) = &node {
            tracing::debug!(source = %name, "PipeWire node {} '{}' ({})", n.id, n.name, n.media_class);
        }
        Ok(PwInput {
            pool: Arc::new(Pool {
                name: PathBuf::from(&name),
                cmd: Mutex::new(cmd),
                slots: (0..MAX_BUFFERS).map(|_| OnceLock::new()).collect(),
            }),
            name: PathBuf::from(name),
            node,
            thread,
            events: rx,
            state: Mutex::new(State::default()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.name
    }

    /// The node's id and name, when the input names one.
    pub fn node(&self) -> Option<(u32, &str)> {
        self.node.as_ref().map(|n| (n.id, n.name.as_str()))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, e: PwError) -> FormatError {
        FormatError::PipeWire(e)
    }

    /// Connects the stream asking for `req` and waits for the format PipeWire agrees with the producer,
    /// then for the producer's buffers.
    pub fn negotiate(&self, req: &FormatRequest) -> Result<Format, FormatError> {
        let name = self.name.display().to_string();
        let wanted = Wanted {
            fourcc: req.fourcc,
            size: req.size,
            fps: req.fps,
        };
        if let Some(f) = req.fourcc {
            pod::spa_formats(Some(f)).map_err(|_| FormatError::NotOffered {
                path: self.name.clone(),
                format: fourcc_name(f),
                offered: supported_names(),
                first: "YUYV".into(),
            })?;
        }
        let target = self
            .node
            .as_ref()
            .map(|n| n.serial.clone().unwrap_or_else(|| n.name.clone()));
        let _ = self.thread.cmd.send(Cmd::Connect(Request {
            wanted,
            target,
            node: self.node.as_ref().map(|n| n.id),
        }));
        let deadline = Instant::now() + HANDSHAKE;
        let negotiated = loop {
            match wait_event(&self.events, &name, deadline).map_err(|e| self.err(e))? {
                Some(Event::Format(n)) => break n,
                Some(Event::Failed(what)) => return Err(self.err(PwError::Stream { name, what })),
                Some(Event::Gone) => return Err(self.err(PwError::Gone { name })),
                Some(Event::Buffer { index, blocks }) => self.add_buffer(index, blocks)?,
                Some(_) => {}
                None => {
                    return Err(self.err(PwError::NoFormat {
                        name,
                        secs: HANDSHAKE.as_secs(),
                        wanted: req.fourcc.map(fourcc_name).unwrap_or_else(supported_names),
                    }))
                }
            }
        };
        let pixel = negotiated.pixel.ok_or_else(|| {
            self.err(PwError::Unsupported {
                name: name.clone(),
                format: pod::spa_format_name(negotiated.spa_format),
            })
        })?;
        let format = format_of(&negotiated, pixel);
        // The buffers follow the format; take the whole set before streaming.
        let mut settle = Instant::now() + HANDSHAKE;
        loop {
            match wait_event(&self.events, &name, settle).map_err(|e| self.err(e))? {
                Some(Event::Buffer { index, blocks }) => {
                    self.add_buffer(index, blocks)?;
                    settle = Instant::now() + BUFFERS_SETTLE;
                }
                Some(Event::Failed(what)) => return Err(self.err(PwError::Stream { name, what })),
                Some(_) => {}
                None => break,
            }
        }
        tracing::info!(
            source = %name,
            "PipeWire agreed {} {}x{} at {}/{} fps{}, {} buffers of {}",
            pixel.name(),
            format.width,
            format.height,
            negotiated.framerate.0,
            negotiated.framerate.1,
            negotiated
                .modifier
                .map(|m| format!(", modifier {m:#x}"))
                .unwrap_or_default(),
            self.buffer_count(),
            self.memory().map_or("unknown memory", Memory::as_str)
        );
        let mut st = self.state();
        st.negotiated = Some(negotiated);
        st.format = Some(format.clone());
        Ok(format)
    }

    fn add_buffer(&self, index: u32, blocks: Vec<Block>) -> Result<(), FormatError> {
        add_buffer(&self.pool, index, blocks).map_err(FormatError::PipeWire)
    }

    fn buffer_count(&self) -> usize {
        self.pool.slots.iter().filter(|s| s.get().is_some()).count()
    }

    fn memory(&self) -> Option<Memory> {
        self.pool.slots.iter().find_map(|s| s.get().map(|s| s.kind))
    }

    /// The agreed frame interval; 1/30 s before a format is agreed or when the producer's rate varies.
    pub fn frame_interval(&self) -> Fraction {
        match self.state().negotiated.map(|n| n.framerate) {
            Some((num, den)) if num > 0 => Fraction {
                numerator: den,
                denominator: num,
            },
            _ => Fraction {
                numerator: 1,
                denominator: 30,
            },
        }
    }

    /// Starts taking frames from the agreed format (after [`PwInput::negotiate`]).
    pub fn into_source(self) -> Result<PwSource, StreamError> {
        let (negotiated, format) = {
            let st = self.state();
            (st.negotiated, st.format.clone())
        };
        let (Some(negotiated), Some(format)) = (negotiated, format) else {
            return Err(StreamError::NotStarted {
                path: self.name.clone(),
            });
        };
        Ok(PwSource {
            pixel: negotiated.pixel.expect("a negotiated format dmacam takes"),
            negotiated,
            format,
            input: self,
            sequence: 0,
            redelivered: 0,
        })
    }
}

fn supported_names() -> String {
    let mut v: Vec<String> = CATALOGUE
        .iter()
        .filter(|p| p.capture && !p.multi_buffer && p.spa.is_some())
        .map(|p| p.name())
        .collect();
    v.dedup();
    v.join(" ")
}

/// Waits for the next event until `deadline`; `Ok(None)` when the deadline passed.
fn wait_event(rx: &EventRx, name: &str, deadline: Instant) -> Result<Option<Event>, PwError> {
    loop {
        match rx.try_next() {
            Ok(Some(e)) => return Ok(Some(e)),
            Ok(None) => {}
            Err(()) => return Err(PwError::Thread { name: name.into() }),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        if let Err(source) = crate::share::sock::wait_readable(rx.fd(), ms) {
            return Err(PwError::Io {
                name: name.into(),
                what: "poll",
                source,
            });
        }
    }
}

/// The V4L2-style format of a negotiated PipeWire format (tightly packed until a frame says its stride).
fn format_of(n: &Negotiated, pixel: PixelFormat) -> Format {
    use pw::spa::sys as s;
    let stride = pixel.min_stride(0, n.width);
    let ycbcr_enc = match n.color_matrix {
        s::SPA_VIDEO_COLOR_MATRIX_BT601 => cv::YCBCR_ENC_601,
        s::SPA_VIDEO_COLOR_MATRIX_BT709 => cv::YCBCR_ENC_709,
        s::SPA_VIDEO_COLOR_MATRIX_BT2020 => cv::YCBCR_ENC_BT2020,
        _ => 0,
    };
    let quantization = match n.color_range {
        s::SPA_VIDEO_COLOR_RANGE_0_255 => cv::QUANTIZATION_FULL_RANGE,
        s::SPA_VIDEO_COLOR_RANGE_16_235 => cv::QUANTIZATION_LIM_RANGE,
        _ => 0,
    };
    Format {
        fourcc: pixel.fourcc,
        width: n.width,
        height: n.height,
        mplane: false,
        planes: vec![PlaneFormat {
            bytesperline: stride,
            sizeimage: pixel.frame_bytes(n.width, n.height) as u32,
        }],
        colorspace: 0,
        ycbcr_enc,
        quantization,
    }
}

/// Frames from a PipeWire node (see [`PwInput`]).
#[derive(Debug)]
pub struct PwSource {
    input: PwInput,
    negotiated: Negotiated,
    format: Format,
    pixel: PixelFormat,
    /// Our own count, for producers that send no header meta.
    sequence: u32,
    /// Frames skipped because the producer sent again a buffer dmacam still held (said once).
    redelivered: u64,
}

impl PwSource {
    fn err(&self, e: PwError) -> StreamError {
        StreamError::PipeWire {
            path: self.input.name.clone(),
            source: e,
        }
    }

    fn name(&self) -> String {
        self.input.name.display().to_string()
    }

    pub fn start(&mut self) -> Result<(), StreamError> {
        let _ = self.input.thread.cmd.send(Cmd::Activate(true));
        Ok(())
    }

    pub fn stop(&mut self) -> Result<(), StreamError> {
        let _ = self.input.thread.cmd.send(Cmd::Activate(false));
        Ok(())
    }

    /// Readable when PipeWire has something for this source (a frame, a buffer, the end).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.input.events.fd()
    }

    /// Waits up to `timeout` for the producer's next frame.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Frame, StreamError> {
        let deadline = Instant::now() + timeout;
        let name = self.name();
        loop {
            let event = wait_event(&self.input.events, &name, deadline).map_err(|e| self.err(e))?;
            match event {
                Some(Event::Frame(info)) if self.holds(info.index) => {
                    // PipeWire's v4l2 source gives a buffer back to the driver whether or not the
                    // consumer has queued it (seen with PipeWire 1.4 when a compositor holds one frame
                    // on screen): it arrives again, refilled, while our frame of it lives. It is not a
                    // second frame; the buffer goes back once, when our frame is dropped.
                    self.redelivered += 1;
                    if self.redelivered == 1 {
                        tracing::warn!(
                            source = %name,
                            "the PipeWire producer refilled buffer {} while dmacam still held it (the frame \
                             shown from it may tear); frames it sends in buffers dmacam holds are skipped",
                            info.index
                        );
                    }
                }
                Some(Event::Frame(info)) => return self.frame(info),
                Some(Event::Buffer { index, blocks }) => {
                    add_buffer(&self.input.pool, index, blocks).map_err(|e| self.err(e))?
                }
                Some(Event::Format(n)) if n != self.negotiated => {
                    return Err(self.err(PwError::Stream {
                        name,
                        what: format!(
                            "the producer changed its format mid-stream to {} {}x{}",
                            pod::spa_format_name(n.spa_format),
                            n.width,
                            n.height
                        ),
                    }))
                }
                Some(Event::Failed(what)) => return Err(self.err(PwError::Stream { name, what })),
                Some(Event::Gone) => return Err(self.err(PwError::Gone { name })),
                Some(_) => {}
                None => {
                    return Err(StreamError::Timeout {
                        path: self.input.name.clone(),
                        timeout,
                    })
                }
            }
        }
    }

    /// Whether a frame of buffer `index` is still held by dmacam.
    fn holds(&self, index: u32) -> bool {
        self.input
            .pool
            .slots
            .get(index as usize)
            .and_then(OnceLock::get)
            .is_some_and(|s| s.held.load(Ordering::SeqCst))
    }

    fn frame(&mut self, info: FrameInfo) -> Result<Frame, StreamError> {
        let pool = self.input.pool.clone();
        let index = info.index as usize;
        let name = self.name();
        let slot = pool
            .slots
            .get(index)
            .and_then(OnceLock::get)
            .ok_or_else(|| {
                self.err(PwError::Stream {
                    name: name.clone(),
                    what: format!("a frame in buffer {index}, which was never announced"),
                })
            })?;
        if info.chunks.len() != slot.memory.len() {
            return Err(self.err(PwError::Stream {
                name,
                what: format!(
                    "a frame with {} blocks in a buffer of {}",
                    info.chunks.len(),
                    slot.memory.len()
                ),
            }));
        }
        if slot.held.swap(true, Ordering::SeqCst) {
            return Err(self.err(PwError::Stream {
                name,
                what: format!("a frame in buffer {index}, which dmacam still holds"),
            }));
        }
        let data_offset: Vec<u32> = info
            .chunks
            .iter()
            .zip(&slot.mapoffsets)
            .map(|(c, &m)| m.saturating_add(c.offset))
            .collect();
        let dmabuf = self.dmabuf(slot, &info, &data_offset);
        let sequence = match info.seq {
            Some(s) => s as u32,
            None => {
                self.sequence = self.sequence.wrapping_add(1);
                self.sequence - 1
            }
        };
        let now = crate::clock::monotonic_ns();
        // The producer's time is CLOCK_MONOTONIC when it is a camera; a stream time (GStreamer's running
        // time) is not, and then the frame is stamped on arrival.
        let timestamp = match info.pts_ns {
            Some(p) if p > 0 && (p as u64) <= now && now - (p as u64) < 5_000_000_000 => p as u64,
            _ => now,
        };
        Ok(Frame::from_pool(
            pool.clone(),
            FrameMeta {
                index,
                dmabuf,
                sequence,
                timestamp: Duration::from_nanos(timestamp),
                // Either way the timestamp is CLOCK_MONOTONIC: say so, as a V4L2 driver does, or the frame
                // has no capture time (`Frame::capture_time`) and no latency can be measured from it.
                flags: BUF_FLAG_TIMESTAMP_MONOTONIC
                    | if info.corrupted { BUF_FLAG_ERROR } else { 0 },
                field: 0,
                bytesused: info.chunks.iter().map(|c| c.size).collect(),
                data_offset,
                cpu_bytes_copied: 0,
            },
        ))
    }

    /// The frame's planes: one block holds every plane (at the format's offsets, the chunk's stride), or
    /// each plane has a block of its own.
    fn dmabuf(&self, slot: &Slot, info: &FrameInfo, data_offset: &[u32]) -> Dmabuf {
        let modifier = self
            .negotiated
            .modifier
            .unwrap_or(crate::DRM_FORMAT_MOD_LINEAR);
        if slot.memory.len() == 1 {
            let mut format = self.format.clone();
            if let Some(c) = info.chunks.first().filter(|c| c.stride > 0) {
                format.planes[0].bytesperline = c.stride as u32;
            }
            let mut d = buffer_dmabuf(&format, self.pixel, &slot.memory, modifier);
            for p in &mut d.planes {
                p.offset = p.offset.saturating_add(data_offset[0]);
            }
            return d;
        }
        let planes = slot
            .memory
            .iter()
            .zip(info.chunks.iter().zip(data_offset))
            .enumerate()
            .map(|(i, (fd, (c, &off)))| DmabufPlane {
                fd: fd.clone(),
                offset: off,
                stride: if c.stride > 0 {
                    c.stride as u32
                } else {
                    self.pixel.min_stride(i, self.format.width)
                },
            })
            .collect();
        Dmabuf {
            width: self.format.width,
            height: self.format.height,
            fourcc: self.format.fourcc,
            modifier,
            planes,
        }
    }

    pub fn format(&self) -> &Format {
        &self.format
    }

    pub fn pixel_format(&self) -> PixelFormat {
        self.pixel
    }

    /// What the producer's buffers are.
    pub fn memory(&self) -> Option<Memory> {
        self.input.memory()
    }

    /// The producer's dma-bufs count as exported buffers; memfds as memfds.
    pub fn io(&self) -> IoMode {
        match self.memory() {
            Some(Memory::MemFd) => IoMode::Memfd,
            _ => IoMode::Mmap,
        }
    }

    pub fn buffer_count(&self) -> usize {
        self.input.buffer_count()
    }

    pub fn buffer_memory(&self, index: usize) -> Option<&[Arc<OwnedFd>]> {
        self.input
            .pool
            .slots
            .get(index)
            .and_then(OnceLock::get)
            .map(|s| &s.memory[..])
    }

    pub fn path(&self) -> &Path {
        &self.input.name
    }

    /// `Some(why)` if the producer's buffers are memfds.
    pub fn not_dmabuf_reason(&self) -> Option<&str> {
        (self.memory() == Some(Memory::MemFd))
            .then_some("the PipeWire producer's buffers are memfds (it offers no dma-buf)")
    }

    /// The frame interval the producer agreed.
    pub fn frame_interval(&self) -> Fraction {
        self.input.frame_interval()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32, name: &str, v4l2: Option<&str>) -> NodeInfo {
        NodeInfo {
            id,
            serial: Some((id + 100).to_string()),
            name: name.into(),
            description: Some(format!("{name} camera")),
            object_path: v4l2.map(|p| format!("v4l2:{p}")),
            v4l2_path: v4l2.map(str::to_owned),
            media_class: "Video/Source".into(),
        }
    }

    #[test]
    fn targets_resolve_by_id_serial_name_and_device() {
        let mut bare = node(42, "v4l2_input.other", None);
        bare.object_path = Some("v4l2:/dev/video2".into());
        let nodes = [
            node(40, "v4l2_input.vivid", Some("/dev/video0")),
            node(41, "dmacam-serve", None),
            bare,
        ];
        let find = |s: &str| {
            resolve("pipewire:x", &Target::Named(s.into()), &nodes).map(|n| n.unwrap().id)
        };
        assert_eq!(find("40").unwrap(), 40);
        assert_eq!(find("141").unwrap(), 41);
        assert_eq!(find("dmacam-serve").unwrap(), 41);
        assert_eq!(find("/dev/video0").unwrap(), 40);
        assert_eq!(find("v4l2:/dev/video0").unwrap(), 40);
        assert_eq!(find("/dev/video2").unwrap(), 42);
        let e = find("nope").unwrap_err().to_string();
        assert!(
            e.contains("no video source node 'nope'") && e.contains("40 (v4l2_input.vivid)"),
            "{e}"
        );
        let e = resolve("pipewire", &Target::Default, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no video source"), "{e}");
        assert!(resolve("pipewire", &Target::Default, &nodes)
            .unwrap()
            .is_none());
    }
}
