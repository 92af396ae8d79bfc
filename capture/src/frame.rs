//! A [`Frame`]: one picture in a dma-buf, with its own metadata (sequence, capture time, flags, payload
//! per plane), handed out by a [`FramePool`] (a V4L2 queue, the pattern's ring, the MJPEG decode ring, a
//! served socket) that gets its buffer back when the frame's last clone is dropped. See the ownership rules
//! in [`crate::stream`].

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::dmabuf::{Dmabuf, Mapping};
use crate::error::StreamError;
use crate::raw::b;

/// `V4L2_BUF_FLAG_ERROR`.
pub const BUF_FLAG_ERROR: u32 = b::V4L2_BUF_FLAG_ERROR;
/// `V4L2_BUF_FLAG_TIMESTAMP_MASK`.
pub const BUF_FLAG_TIMESTAMP_MASK: u32 = b::V4L2_BUF_FLAG_TIMESTAMP_MASK;
/// `V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC`.
pub const BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = b::V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;

/// What wrote a frame's pixels into its buffer: the first link of the zero-copy proof. Only the two camera
/// origins are zero-copy from the sensor on; the others name the one CPU write that made the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The V4L2 driver, into its own buffer exported with VIDIOC_EXPBUF (MMAP memory).
    CameraExport,
    /// The V4L2 driver, into a dma-buf dmacam allocated and queued (DMABUF memory: `--io dma-heap|udmabuf`).
    CameraImport,
    /// The CPU, once per frame: the built-in pattern source painted it.
    Pattern,
    /// The CPU, once per frame: the MJPEG decoder decoded the camera's JPEG into it.
    Decode,
    /// `dmacam serve` handed it over from another process (what wrote it is the server's to say).
    Served,
    /// A PipeWire producer handed it over (a camera's v4l2 node, another application, another dmacam).
    PipeWire,
}

impl Origin {
    /// The name in traces and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::CameraExport => "camera-export",
            Origin::CameraImport => "camera-import",
            Origin::Pattern => "pattern",
            Origin::Decode => "mjpeg-decode",
            Origin::Served => "served",
            Origin::PipeWire => "pipewire",
        }
    }

    /// The CPU write that made each frame, if one did.
    pub fn cpu_write(self) -> Option<&'static str> {
        match self {
            Origin::Pattern => Some("the pattern"),
            Origin::Decode => Some("MJPEG decode"),
            _ => None,
        }
    }
}

/// What a source's own CPU write put into its frames so far (the pattern paints each frame): counted where it
/// happens, like the MJPEG decode's bytes, so that no summary calls such frames copy-free.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuWrites {
    /// Frames the CPU wrote.
    pub frames: u64,
    /// Bytes it wrote into them.
    pub bytes: u64,
}

/// Where a [`Frame`]'s buffer comes from, and where it goes back when the frame's last clone is dropped: a
/// V4L2 queue ([`Stream`]) or the ring of the built-in pattern source.
pub(crate) trait FramePool: std::fmt::Debug + Send + Sync {
    /// The device path or source name, for error messages.
    fn name(&self) -> &Path;
    /// The memory planes (fds) of buffer `index`.
    fn memory(&self, index: usize) -> &[Arc<OwnedFd>];
    /// The read-only CPU mappings of buffer `index`, made on first use.
    fn maps(&self, index: usize) -> &OnceLock<Vec<Mapping>>;
    /// Buffer `index` is free again (every holder of its frame is done).
    fn release(&self, index: usize);
    /// What writes this pool's frames.
    fn origin(&self) -> Origin;
}

#[derive(Debug)]
struct FrameInner {
    dmabuf: Dmabuf,
    pool: Arc<dyn FramePool>,
    index: usize,
    sequence: u32,
    timestamp: Duration,
    flags: u32,
    field: u32,
    bytesused: Vec<u32>,
    data_offset: Vec<u32>,
    cpu_bytes_copied: u64,
}

impl Drop for FrameInner {
    fn drop(&mut self) {
        self.pool.release(self.index);
    }
}

/// A dequeued frame. Clones share it; the buffer is queued again when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Frame(Arc<FrameInner>);

/// What a producer other than a V4L2 queue says about a frame it hands out (see [`Frame::from_pool`]).
pub(crate) struct FrameMeta {
    pub index: usize,
    pub dmabuf: Dmabuf,
    pub sequence: u32,
    pub timestamp: Duration,
    pub flags: u32,
    pub field: u32,
    pub bytesused: Vec<u32>,
    pub data_offset: Vec<u32>,
    /// Bytes the CPU wrote to make this frame (the MJPEG decode); 0 for a frame straight from its producer.
    pub cpu_bytes_copied: u64,
}

impl Frame {
    /// A frame of buffer `meta.index` of `pool`; the pool gets it back when the last clone is dropped.
    pub(crate) fn from_pool(pool: Arc<dyn FramePool>, meta: FrameMeta) -> Frame {
        Frame(Arc::new(FrameInner {
            dmabuf: meta.dmabuf,
            pool,
            index: meta.index,
            sequence: meta.sequence,
            timestamp: meta.timestamp,
            flags: meta.flags,
            field: meta.field,
            bytesused: meta.bytesused,
            data_offset: meta.data_offset,
            cpu_bytes_copied: meta.cpu_bytes_copied,
        }))
    }

    /// The frame's memory as dma-bufs (fds shared with the stream; dup them to hand ownership away). Plane
    /// offsets include the driver's `data_offset` for this frame.
    pub fn dmabuf(&self) -> &Dmabuf {
        &self.0.dmabuf
    }

    /// The driver's sequence number (gaps mean dropped frames).
    pub fn sequence(&self) -> u32 {
        self.0.sequence
    }

    /// The buffer timestamp (CLOCK_MONOTONIC if [`Frame::flags`] has `BUF_FLAG_TIMESTAMP_MONOTONIC`).
    pub fn timestamp(&self) -> Duration {
        self.0.timestamp
    }

    /// When the frame was captured, on CLOCK_MONOTONIC (the clock every stage measures latency against);
    /// `None` if the driver stamps buffers on another clock.
    pub fn capture_time(&self) -> Option<Duration> {
        (self.0.flags & BUF_FLAG_TIMESTAMP_MASK == BUF_FLAG_TIMESTAMP_MONOTONIC)
            .then_some(self.0.timestamp)
    }

    /// Whether the timestamp is on CLOCK_MONOTONIC (see [`Frame::capture_time`]).
    pub fn is_monotonic(&self) -> bool {
        self.capture_time().is_some()
    }

    /// The V4L2 buffer flags.
    pub fn flags(&self) -> u32 {
        self.0.flags
    }

    /// The V4L2 field of the buffer.
    pub fn field(&self) -> u32 {
        self.0.field
    }

    /// Whether the driver marked the buffer as erroneous (`V4L2_BUF_FLAG_ERROR`).
    pub fn is_error(&self) -> bool {
        self.0.flags & BUF_FLAG_ERROR != 0
    }

    /// The buffer slot index.
    pub fn index(&self) -> usize {
        self.0.index
    }

    /// Bytes of payload in each memory plane.
    pub fn bytesused(&self) -> &[u32] {
        &self.0.bytesused
    }

    /// Offset of the payload in each memory plane.
    pub fn data_offset(&self) -> &[u32] {
        &self.0.data_offset
    }

    /// Bytes the CPU wrote to make this frame: the MJPEG decode into its buffer ([`crate::decode`]); 0 for
    /// a frame as the camera, the pattern source or a served socket delivered it.
    pub fn cpu_bytes_copied(&self) -> u64 {
        self.0.cpu_bytes_copied
    }

    /// What wrote this frame's pixels (the camera, or which CPU write).
    pub fn origin(&self) -> Origin {
        self.0.pool.origin()
    }

    /// The exported dma-buf of each memory plane (what [`Frame::read`] maps).
    pub fn memory(&self) -> &[Arc<OwnedFd>] {
        self.0.pool.memory(self.0.index)
    }

    /// The CPU mappings of this buffer's dma-bufs (made once per buffer, on first use).
    pub fn mappings(&self) -> Result<&[Mapping], StreamError> {
        let cell = self.0.pool.maps(self.0.index);
        if let Some(m) = cell.get() {
            return Ok(m);
        }
        let maps = self
            .memory()
            .iter()
            .map(|fd| Mapping::new(fd.clone(), false))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| StreamError::Map {
                path: self.0.pool.name().to_path_buf(),
                source,
            })?;
        let _ = cell.set(maps);
        Ok(cell.get().expect("mappings were just set"))
    }

    /// Reads the frame on the CPU: calls `f` with each memory plane's whole bytes, between
    /// `DMA_BUF_IOCTL_SYNC` start and end on the exported dma-bufs.
    pub fn read<R>(&self, f: impl FnOnce(&[&[u8]]) -> R) -> Result<R, StreamError> {
        let maps = self.mappings()?;
        let guards = maps
            .iter()
            .map(|m| m.read())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| StreamError::Map {
                path: self.0.pool.name().to_path_buf(),
                source,
            })?;
        let slices: Vec<&[u8]> = guards.iter().map(|g| &g[..]).collect();
        Ok(f(&slices))
    }
}
