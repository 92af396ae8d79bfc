//! Streaming: buffers set up with VIDIOC_REQBUFS, each plane exported as a dma-buf (MMAP + VIDIOC_EXPBUF,
//! `O_CLOEXEC | O_RDWR`) or allocated by dmacam and imported (DMABUF memory from a DMA-BUF heap or udmabuf),
//! then poll-driven VIDIOC_DQBUF.
//!
//! # Frames and buffer ownership
//!
//! [`Stream::next_frame`] returns a [`Frame`]: the dequeued buffer's [`Dmabuf`] plus its sequence number,
//! timestamp, per-plane `bytesused` and flags. A `Frame` is a cheap handle (`Clone` shares it); the buffer
//! goes back to the driver (VIDIOC_QBUF) only when **the last clone is dropped**. A consumer that must keep
//! the pixels until a GPU fence signals, a compositor releases a `wl_buffer` or a page flip completes simply
//! holds a clone until then. If every buffer is held, [`Stream::next_frame`] fails with
//! [`StreamError::Starved`] instead of hanging.
//!
//! Frames may outlive the [`Stream`]: the dma-bufs stay valid (each holds its own reference to the memory),
//! but once the stream has stopped a dropped frame is no longer queued.
//!
//! The CPU reads pixels only through [`Frame::read`], which maps the exported dma-buf (once per buffer) and
//! brackets the access with `DMA_BUF_IOCTL_SYNC`; V4L2's own `mmap` of the node is never used.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::alloc::Allocator;
use crate::device::Device;
use crate::dmabuf::{Dmabuf, DmabufPlane, Mapping, DRM_FORMAT_MOD_LINEAR};
use crate::format::{fourcc_name, supported_names, Format, PixelFormat};
use crate::raw::{self, b, BufferArg};

pub use crate::error::StreamError;
pub use crate::frame::{
    CpuWrites, Frame, Origin, BUF_FLAG_ERROR, BUF_FLAG_TIMESTAMP_MASK, BUF_FLAG_TIMESTAMP_MONOTONIC,
};
pub(crate) use crate::frame::{FrameMeta, FramePool};

/// Where the buffer memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// The driver allocates (REQBUFS MMAP) and dmacam exports each plane with VIDIOC_EXPBUF.
    Mmap,
    /// dmacam allocates from the DMA-BUF system heap and imports (DMABUF memory).
    DmaHeap,
    /// dmacam allocates udmabufs over sealed memfds and imports (DMABUF memory).
    Udmabuf,
    /// Plain sealed memfds, not dma-bufs: only the built-in pattern source uses them, where the kernel offers
    /// neither udmabuf nor a DMA-BUF heap. The CPU reads them; a compositor, GPU or KMS cannot import them.
    Memfd,
}

impl IoMode {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            IoMode::Mmap => "mmap",
            IoMode::DmaHeap => "dma-heap",
            IoMode::Udmabuf => "udmabuf",
            IoMode::Memfd => "memfd",
        }
    }
}

/// Options for [`Stream::new`].
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Buffers to request (the driver may give more).
    pub buffers: u32,
    pub io: IoMode,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            buffers: 4,
            io: IoMode::Mmap,
        }
    }
}

/// `V4L2_MEMORY_MMAP` / `V4L2_MEMORY_DMABUF`.
const MEMORY_MMAP: u32 = b::v4l2_memory_V4L2_MEMORY_MMAP;
const MEMORY_DMABUF: u32 = b::v4l2_memory_V4L2_MEMORY_DMABUF;

/// One buffer slot: its memory planes as dma-bufs, and the frame description built on them.
#[derive(Debug)]
struct Slot {
    /// One fd per memory plane (one for single-planar formats, one per colour plane for `...M` formats).
    memory: Vec<Arc<OwnedFd>>,
    /// Size of each memory plane in bytes.
    lengths: Vec<u32>,
    dmabuf: Dmabuf,
    /// CPU mappings of `memory`, made on first read.
    maps: OnceLock<Vec<Mapping>>,
}

#[derive(Debug)]
struct Shared {
    device: Device,
    queue: u32,
    memory_type: u32,
    mplane: bool,
    slots: Vec<Slot>,
    streaming: AtomicBool,
    queued: AtomicUsize,
}

impl Shared {
    fn err(&self, what: &'static str, e: Errno) -> StreamError {
        let path = self.device.path().to_path_buf();
        match e {
            Errno::EBUSY => StreamError::Busy { path },
            _ => StreamError::Ioctl {
                path,
                what,
                source: e.into(),
            },
        }
    }

    fn queue(&self, index: usize) -> Result<(), StreamError> {
        let slot = &self.slots[index];
        let mut arg = BufferArg::new(self.queue, self.memory_type, index as u32, self.mplane);
        if self.memory_type == MEMORY_DMABUF {
            use std::os::fd::AsRawFd;
            if arg.mplane() {
                arg.buf.length = slot.memory.len() as u32;
                for (i, fd) in slot.memory.iter().enumerate() {
                    arg.planes[i].m.fd = fd.as_raw_fd();
                    arg.planes[i].length = slot.lengths[i];
                }
            } else {
                arg.buf.m.fd = slot.memory[0].as_raw_fd();
                arg.buf.length = slot.lengths[0];
            }
        } else if arg.mplane() {
            arg.buf.length = slot.memory.len() as u32;
        }
        raw::qbuf(self.device.as_fd(), &mut arg).map_err(|e| self.err("VIDIOC_QBUF", e))?;
        self.queued.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A capture stream on a device with negotiated format. See the [module docs](self) for buffer ownership.
#[derive(Debug)]
pub struct Stream {
    shared: Arc<Shared>,
    format: Format,
    pixel: PixelFormat,
    io: IoMode,
}

impl Stream {
    /// Requests buffers for `format` (as returned by [`Device::negotiate`]) and exports or allocates their
    /// dma-bufs. Streaming starts with [`Stream::start`].
    pub fn new(
        device: Device,
        format: Format,
        opts: &StreamOptions,
    ) -> Result<Stream, StreamError> {
        let path = device.path().to_path_buf();
        let pixel = PixelFormat::lookup(format.fourcc).ok_or_else(|| StreamError::Unsupported {
            path: path.clone(),
            format: fourcc_name(format.fourcc),
            supported: supported_names(),
        })?;
        if pixel.multi_buffer != (format.planes.len() > 1) {
            return Err(StreamError::Unsupported {
                path,
                format: format!("{format} (unexpected number of memory planes)"),
                supported: supported_names(),
            });
        }
        let queue = format.queue_type();
        let mplane = format.mplane;
        let allocator = match opts.io {
            IoMode::Memfd => {
                return Err(StreamError::NoIo {
                    path,
                    mode: "memfd (memfd buffers are for the built-in pattern source only)",
                })
            }
            IoMode::Mmap => None,
            IoMode::DmaHeap => Some(Allocator::dma_heap(crate::alloc::SYSTEM_HEAP)),
            IoMode::Udmabuf => Some(Allocator::udmabuf(crate::alloc::UDMABUF)),
        }
        .transpose()
        .map_err(|source| StreamError::Alloc {
            path: path.clone(),
            source,
        })?;
        let memory_type = if allocator.is_some() {
            MEMORY_DMABUF
        } else {
            MEMORY_MMAP
        };
        let mut shared = Shared {
            device,
            queue,
            memory_type,
            mplane,
            slots: Vec::new(),
            streaming: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
        };
        let mut req = b::v4l2_requestbuffers {
            count: opts.buffers.max(2),
            type_: queue,
            memory: memory_type,
            ..Default::default()
        };
        raw::reqbufs(shared.device.as_fd(), &mut req).map_err(|e| match e {
            // EINVAL means "this memory type is not supported", or that the driver refused the buffers
            // (vivid's "Inject VIDIOC_REQBUFS Error"): a request for no buffers tells which.
            Errno::EINVAL if !supports_memory(&shared.device, queue, memory_type) => {
                StreamError::NoIo {
                    path: path.clone(),
                    mode: opts.io.as_str(),
                }
            }
            e => shared.err("VIDIOC_REQBUFS", e),
        })?;
        if req.count == 0 {
            return Err(StreamError::NoIo {
                path,
                mode: opts.io.as_str(),
            });
        }
        let n_mem = format.planes.len();
        for index in 0..req.count {
            let mut q = BufferArg::new(queue, memory_type, index, mplane);
            raw::querybuf(shared.device.as_fd(), &mut q)
                .map_err(|e| shared.err("VIDIOC_QUERYBUF", e))?;
            let mut memory = Vec::with_capacity(n_mem);
            let mut lengths = Vec::with_capacity(n_mem);
            for p in 0..n_mem {
                let len = if mplane {
                    q.planes[p].length
                } else {
                    q.buf.length
                };
                let len = len.max(format.planes[p].sizeimage);
                let fd = match &allocator {
                    None => raw::expbuf(
                        shared.device.as_fd(),
                        queue,
                        index,
                        p as u32,
                        (libc::O_CLOEXEC | libc::O_RDWR) as u32,
                    )
                    .map_err(|e| shared.err("VIDIOC_EXPBUF", e))?,
                    Some(a) => a
                        .alloc(u64::from(len))
                        .map_err(|source| StreamError::Alloc {
                            path: path.clone(),
                            source,
                        })?,
                };
                memory.push(Arc::new(fd));
                lengths.push(len);
            }
            let dmabuf = buffer_dmabuf(&format, pixel, &memory, DRM_FORMAT_MOD_LINEAR);
            shared.slots.push(Slot {
                memory,
                lengths,
                dmabuf,
                maps: OnceLock::new(),
            });
        }
        tracing::debug!(
            device = %path.display(),
            buffers = req.count,
            io = opts.io.as_str(),
            "buffers ready as dma-bufs"
        );
        Ok(Stream {
            shared: Arc::new(shared),
            format,
            pixel,
            io: opts.io,
        })
    }

    /// Queues every buffer and starts streaming (VIDIOC_STREAMON).
    pub fn start(&mut self) -> Result<(), StreamError> {
        let s = &self.shared;
        for i in 0..s.slots.len() {
            s.queue(i)?;
        }
        raw::streamon(s.device.as_fd(), s.queue).map_err(|e| s.err("VIDIOC_STREAMON", e))?;
        s.streaming.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stops streaming (VIDIOC_STREAMOFF); frames still held are not queued again.
    pub fn stop(&mut self) -> Result<(), StreamError> {
        let s = &self.shared;
        if s.streaming.swap(false, Ordering::SeqCst) {
            s.queued.store(0, Ordering::SeqCst);
            match raw::streamoff(s.device.as_fd(), s.queue) {
                // A disconnected device took its queue with it: nothing is left to stop.
                Ok(()) | Err(Errno::ENODEV) => {}
                Err(e) => return Err(s.err("VIDIOC_STREAMOFF", e)),
            }
        }
        Ok(())
    }

    /// The negotiated format.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// What dmacam knows about the pixel format.
    pub fn pixel_format(&self) -> PixelFormat {
        self.pixel
    }

    /// The device (for controls while streaming).
    pub fn device(&self) -> &Device {
        &self.shared.device
    }

    /// How the buffers were allocated.
    pub fn io(&self) -> IoMode {
        self.io
    }

    /// Number of buffers.
    /// The memory planes (exported or imported dma-bufs) of buffer `index`, if there is such a buffer.
    pub fn buffer_memory(&self, index: usize) -> Option<&[Arc<OwnedFd>]> {
        self.shared.slots.get(index).map(|s| &s.memory[..])
    }

    pub fn buffer_count(&self) -> usize {
        self.shared.slots.len()
    }

    /// Waits (poll) up to `timeout` for the next filled buffer and dequeues it.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Frame, StreamError> {
        let s = &self.shared;
        let path = || s.device.path().to_path_buf();
        if !s.streaming.load(Ordering::SeqCst) {
            return Err(StreamError::NotStarted { path: path() });
        }
        if s.queued.load(Ordering::SeqCst) == 0 {
            return Err(StreamError::Starved {
                path: path(),
                count: s.slots.len(),
            });
        }
        let deadline = Instant::now() + timeout;
        loop {
            let mut arg = BufferArg::new(s.queue, s.memory_type, 0, s.mplane);
            match raw::dqbuf(s.device.as_fd(), &mut arg) {
                Ok(()) => {
                    s.queued.fetch_sub(1, Ordering::SeqCst);
                    return Ok(self.frame_from(&arg));
                }
                Err(Errno::EAGAIN) => {}
                Err(Errno::ENODEV) => return Err(StreamError::Disconnected { path: path() }),
                Err(Errno::EIO) | Err(Errno::EPIPE) => {
                    return Err(StreamError::Failed { path: path() })
                }
                Err(e) => return Err(s.err("VIDIOC_DQBUF", e)),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StreamError::Timeout {
                    path: path(),
                    timeout,
                });
            }
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&s.device.as_fd()),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: `pfd` is one valid pollfd for the duration of the call.
            let r = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
            if r < 0 {
                let e = Errno::last();
                if e != Errno::EINTR {
                    return Err(s.err("poll", e));
                }
            } else if r > 0 && pfd.revents & libc::POLLERR != 0 && pfd.revents & libc::POLLIN == 0 {
                // vb2 signals POLLERR when the queue hit an error (or nothing is queued).
                let mut arg = BufferArg::new(s.queue, s.memory_type, 0, s.mplane);
                match raw::dqbuf(s.device.as_fd(), &mut arg) {
                    Ok(()) => {
                        s.queued.fetch_sub(1, Ordering::SeqCst);
                        return Ok(self.frame_from(&arg));
                    }
                    Err(Errno::EAGAIN) => std::thread::sleep(Duration::from_millis(5)),
                    Err(Errno::ENODEV) => return Err(StreamError::Disconnected { path: path() }),
                    Err(_) => return Err(StreamError::Failed { path: path() }),
                }
            }
        }
    }

    fn frame_from(&self, arg: &BufferArg) -> Frame {
        let buf = &arg.buf;
        let n = self.shared.slots[buf.index as usize].memory.len();
        let (bytesused, data_offset) = if arg.mplane() {
            (
                arg.planes[..n].iter().map(|p| p.bytesused).collect(),
                arg.planes[..n].iter().map(|p| p.data_offset).collect(),
            )
        } else {
            (vec![buf.bytesused], vec![0])
        };
        // The payload of each memory plane starts `data_offset` bytes in (vivid uses this for NV16M/NV61M).
        let slot = &self.shared.slots[buf.index as usize];
        let dmabuf = with_data_offsets(&slot.dmabuf, &slot.memory, &data_offset);
        Frame::from_pool(
            self.shared.clone(),
            FrameMeta {
                index: buf.index as usize,
                dmabuf,
                sequence: buf.sequence,
                timestamp: Duration::new(
                    buf.timestamp.tv_sec.max(0) as u64,
                    (buf.timestamp.tv_usec.max(0) as u32).saturating_mul(1000),
                ),
                flags: buf.flags,
                field: buf.field,
                bytesused,
                data_offset,
                cpu_bytes_copied: 0,
            },
        )
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("{e}");
        }
    }
}

/// Whether the queue takes buffers of `memory` (a VIDIOC_REQBUFS of no buffers reports the queue's
/// capabilities, kernel 4.20 and later; an older kernel's plain success counts as yes).
fn supports_memory(device: &Device, queue: u32, memory: u32) -> bool {
    let mut req = b::v4l2_requestbuffers {
        count: 0,
        type_: queue,
        memory,
        ..Default::default()
    };
    if raw::reqbufs(device.as_fd(), &mut req).is_err() {
        return false;
    }
    let bit = match memory {
        b::v4l2_memory_V4L2_MEMORY_MMAP => b::V4L2_BUF_CAP_SUPPORTS_MMAP,
        b::v4l2_memory_V4L2_MEMORY_DMABUF => b::V4L2_BUF_CAP_SUPPORTS_DMABUF,
        _ => 0,
    };
    req.capabilities == 0 || req.capabilities & bit != 0
}

/// The description of a buffer of `format` whose memory planes are `memory`: each colour plane where
/// [`Format::color_plane_location`] puts it.
pub(crate) fn buffer_dmabuf(
    format: &Format,
    pixel: PixelFormat,
    memory: &[Arc<OwnedFd>],
    modifier: u64,
) -> Dmabuf {
    let planes = (0..pixel.color_planes())
        .map(|i| {
            let (mem, offset, stride) = format.color_plane_location(pixel, i);
            DmabufPlane {
                fd: memory[mem].clone(),
                offset,
                stride,
            }
        })
        .collect();
    Dmabuf {
        width: format.width,
        height: format.height,
        fourcc: format.fourcc,
        modifier,
        planes,
    }
}

/// `base` (a buffer over `memory`) for one frame: each plane moved by its memory plane's `data_offset`, where
/// the payload starts in this frame.
pub(crate) fn with_data_offsets(
    base: &Dmabuf,
    memory: &[Arc<OwnedFd>],
    data_offset: &[u32],
) -> Dmabuf {
    let mut dmabuf = base.clone();
    for plane in &mut dmabuf.planes {
        if let Some(mem) = memory.iter().position(|m| Arc::ptr_eq(m, &plane.fd)) {
            plane.offset = plane
                .offset
                .saturating_add(data_offset.get(mem).copied().unwrap_or(0));
        }
    }
    dmabuf
}

impl FramePool for Shared {
    fn name(&self) -> &Path {
        self.device.path()
    }

    fn memory(&self, index: usize) -> &[Arc<OwnedFd>] {
        &self.slots[index].memory
    }

    fn maps(&self, index: usize) -> &OnceLock<Vec<Mapping>> {
        &self.slots[index].maps
    }

    fn origin(&self) -> Origin {
        if self.memory_type == MEMORY_DMABUF {
            Origin::CameraImport
        } else {
            Origin::CameraExport
        }
    }

    fn release(&self, index: usize) {
        if !self.streaming.load(Ordering::SeqCst) {
            return;
        }
        let errno = |e: &StreamError| match e {
            StreamError::Ioctl { source, .. } => source.raw_os_error(),
            _ => None,
        };
        match self.queue(index) {
            Ok(()) => {}
            // The queue is in error (a fatal streaming error) or the device is gone: the next DQBUF says so.
            Err(e) if matches!(errno(&e), Some(libc::EIO) | Some(libc::ENODEV)) => {
                tracing::debug!("re-queueing buffer {index}: {e}")
            }
            // A driver may refuse one QBUF (vivid's "Inject VIDIOC_QBUF Error" fails the next buffer
            // preparation once): try again once, so the stream does not lose the buffer for good.
            Err(e) => match self.queue(index) {
                Ok(()) => tracing::warn!("re-queueing buffer {index}: {e}; retried: queued"),
                Err(again) => tracing::warn!(
                    "re-queueing buffer {index}: {again}; the stream continues with one buffer fewer"
                ),
            },
        }
    }
}
