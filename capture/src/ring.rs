//! A ring of buffers dmacam allocates itself and writes on the CPU: the pattern source paints into one, the
//! MJPEG decoder ([`crate::decode`]) decodes into one. Both hand the buffers out as [`crate::Frame`]s.
//!
//! The buffers are udmabuf (over sealed memfds) or the DMA-BUF system heap, whichever the kernel offers
//! (`--io udmabuf` / `--io dma-heap` insist on one). Where neither is usable (no driver, or no permission) the
//! ring falls back to plain sealed memfds ([`IoMode::Memfd`]): the CPU reads them like dma-bufs, but they are
//! **not** dma-bufs, so a compositor, the GPU stage or KMS cannot import them; the reason is kept. A buffer
//! is written only while no frame of it is alive: a consumer holding a frame keeps its pixels.

use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::alloc::{page_align, sealed_memfd, AllocError, Allocator, SYSTEM_HEAP, UDMABUF};
use crate::dmabuf::{Dmabuf, Mapping, DRM_FORMAT_MOD_LINEAR};
use crate::format::{Format, PixelFormat};
use crate::stream::{buffer_dmabuf, FramePool, IoMode, Origin, StreamError};

/// One buffer of the ring.
#[derive(Debug)]
pub(crate) struct Slot {
    memory: Vec<Arc<OwnedFd>>,
    pub dmabuf: Dmabuf,
    /// Read-only mappings for `Frame::read`, made on first use.
    maps: OnceLock<Vec<Mapping>>,
    /// A frame of this buffer is alive: it must not be written.
    held: AtomicBool,
    writer: Mutex<Writer>,
}

/// The writable mapping of a slot, and what its owner remembers about the contents.
#[derive(Debug)]
pub(crate) struct Writer {
    pub map: Mapping,
    /// Set by the owner once the parts of the picture that never change are in place.
    pub static_done: bool,
}

/// The ring: see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Ring {
    name: PathBuf,
    slots: Vec<Slot>,
    io: IoMode,
    not_dmabuf: Option<String>,
    /// Where the search for a free buffer starts: the one after the last taken (round robin).
    next: AtomicUsize,
    /// The CPU writer of this ring's frames.
    origin: Origin,
}

impl Ring {
    /// Allocates `count` buffers of `format`'s `sizeimage` for source `name`. `io`: [`IoMode::Mmap`] takes
    /// udmabuf, else the DMA-BUF heap, else memfd; any other mode insists on that allocator. `origin` is
    /// the CPU writer the frames are for (in the log, and in each frame's [`Frame::origin`](crate::Frame::origin)).
    pub fn allocate(
        name: PathBuf,
        format: &Format,
        pixel: PixelFormat,
        count: usize,
        io: IoMode,
        origin: Origin,
    ) -> Result<Ring, StreamError> {
        let what = origin.cpu_write().unwrap_or("frames");
        let size = u64::from(format.planes[0].sizeimage);
        let order: &[IoMode] = match io {
            IoMode::Mmap => &[IoMode::Udmabuf, IoMode::DmaHeap, IoMode::Memfd],
            IoMode::Udmabuf => &[IoMode::Udmabuf],
            IoMode::DmaHeap => &[IoMode::DmaHeap],
            IoMode::Memfd => &[IoMode::Memfd],
        };
        let mut why = Vec::new();
        let mut got = None;
        for &mode in order {
            match alloc_all(mode, size, count) {
                Ok(fds) => {
                    got = Some((mode, fds));
                    break;
                }
                Err(source) if order.len() == 1 => {
                    return Err(StreamError::Alloc { path: name, source })
                }
                Err(e) => why.push(short_reason(&e)),
            }
        }
        let (io, fds) = got.ok_or_else(|| StreamError::NoIo {
            path: name.clone(),
            mode: "any buffer",
        })?;
        let not_dmabuf = (io == IoMode::Memfd).then(|| {
            if why.is_empty() {
                "--io memfd was asked for".to_owned()
            } else {
                why.join("; ")
            }
        });
        match &not_dmabuf {
            None => tracing::info!(
                source = %name.display(),
                "{count} {what} buffers of {size} bytes from {}: real dma-bufs",
                io.as_str()
            ),
            Some(reason) => tracing::info!(
                source = %name.display(),
                "{count} {what} buffers of {size} bytes in memfds ({reason}); memfds are not dma-bufs, so no \
                 compositor, GPU or KMS can import them"
            ),
        }
        let mut slots = Vec::with_capacity(count);
        for fd in fds {
            let fd = Arc::new(fd);
            let memory = vec![fd.clone()];
            // Single-buffer formats only: every colour plane is in this one memory plane.
            let dmabuf = buffer_dmabuf(format, pixel, &memory, DRM_FORMAT_MOD_LINEAR);
            let map = Mapping::new(fd.clone(), true).map_err(|source| StreamError::Map {
                path: name.clone(),
                source,
            })?;
            slots.push(Slot {
                memory,
                dmabuf,
                maps: OnceLock::new(),
                held: AtomicBool::new(false),
                writer: Mutex::new(Writer {
                    map,
                    static_done: false,
                }),
            });
        }
        Ok(Ring {
            name,
            slots,
            io,
            not_dmabuf,
            next: AtomicUsize::new(0),
            origin,
        })
    }

    /// The source name the ring belongs to.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// The allocator the buffers came from.
    pub fn io(&self) -> IoMode {
        self.io
    }

    /// `Some(why)` if the buffers are memfds, not dma-bufs.
    pub fn not_dmabuf_reason(&self) -> Option<&str> {
        self.not_dmabuf.as_deref()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn slot(&self, index: usize) -> &Slot {
        &self.slots[index]
    }

    /// The memory planes of buffer `index`, if there is such a buffer.
    pub fn buffer_memory(&self, index: usize) -> Option<&[Arc<OwnedFd>]> {
        self.slots.get(index).map(|s| &s.memory[..])
    }

    /// Takes the next free buffer, round robin. The buffer is free again when the frame made of it is
    /// dropped ([`FramePool::release`]). Fails with [`StreamError::Starved`] if every buffer is held.
    pub fn acquire(&self) -> Result<usize, StreamError> {
        let count = self.slots.len();
        let start = self.next.load(Ordering::SeqCst);
        let index = (0..count)
            .map(|i| (start + i) % count)
            .find(|&i| {
                self.slots[i]
                    .held
                    .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            })
            .ok_or_else(|| StreamError::Starved {
                path: self.name.clone(),
                count,
            })?;
        self.next.store((index + 1) % count, Ordering::SeqCst);
        Ok(index)
    }

    /// The writable mapping of buffer `index` (taken with [`Ring::acquire`]).
    pub fn writer(&self, index: usize) -> MutexGuard<'_, Writer> {
        self.slots[index]
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The [`StreamError`] of a failed write into a buffer of this ring.
    pub fn map_err(&self, source: crate::dmabuf::MapError) -> StreamError {
        StreamError::Map {
            path: self.name.clone(),
            source,
        }
    }
}

impl FramePool for Ring {
    fn name(&self) -> &Path {
        &self.name
    }

    fn memory(&self, index: usize) -> &[Arc<OwnedFd>] {
        &self.slots[index].memory
    }

    fn maps(&self, index: usize) -> &OnceLock<Vec<Mapping>> {
        &self.slots[index].maps
    }

    fn release(&self, index: usize) {
        self.slots[index].held.store(false, Ordering::SeqCst);
    }

    fn origin(&self) -> Origin {
        self.origin
    }
}

/// Allocates `count` buffers of `size` bytes with `mode`.
fn alloc_all(mode: IoMode, size: u64, count: usize) -> Result<Vec<OwnedFd>, AllocError> {
    let allocator = match mode {
        IoMode::DmaHeap => Some(Allocator::dma_heap(SYSTEM_HEAP)?),
        IoMode::Udmabuf => Some(Allocator::udmabuf(UDMABUF)?),
        _ => None,
    };
    let name: &CStr = c"dmacam-ring";
    (0..count)
        .map(|_| match &allocator {
            Some(a) => a.alloc(size),
            None => sealed_memfd(name, page_align(size)),
        })
        .collect()
}

/// Why an allocator could not be used, briefly (for the memfd fallback's explanation).
fn short_reason(e: &AllocError) -> String {
    match e {
        AllocError::Open { path, source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => format!("no {}", path.display()),
            std::io::ErrorKind::PermissionDenied => {
                format!("no permission to open {}", path.display())
            }
            _ => format!("cannot open {}: {source}", path.display()),
        },
        e => e.to_string(),
    }
}
