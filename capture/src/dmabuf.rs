//! dma-buf objects as dmacam passes them between stages, and CPU access to them.
//!
//! A [`Dmabuf`] describes one frame's memory: per plane an fd (shared, `Arc<OwnedFd>`), offset and stride, plus
//! the frame's fourcc, size and DRM format modifier. Capture produces them, the render stage imports them into
//! Vulkan, the display stage hands them to the compositor or KMS. The CPU only touches pixels through a
//! [`Mapping`] of the dma-buf itself, bracketed by `DMA_BUF_IOCTL_SYNC` (see [`Mapping::read`]).

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::unistd::{lseek, Whence};
use thiserror::Error;

/// `DRM_FORMAT_MOD_LINEAR`: plain row-major memory, rows `stride` bytes apart.
pub const DRM_FORMAT_MOD_LINEAR: u64 = 0;

/// A four-character code (V4L2 pixel format or DRM format, as the context says).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fourcc(pub u32);

impl Fourcc {
    /// From the four characters, e.g. `Fourcc::new(b"YUYV")`.
    pub const fn new(code: &[u8; 4]) -> Self {
        Fourcc(u32::from_le_bytes(*code))
    }

    /// The four characters.
    pub fn bytes(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

impl fmt::Display for Fourcc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.bytes() {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fourcc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fourcc({self})")
    }
}

impl std::str::FromStr for Fourcc {
    type Err = String;
    /// Accepts exactly four ASCII characters; shorter codes are padded with spaces (V4L2's "RGB3" style names
    /// are all four characters already).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > 4 || !b.iter().all(|c| c.is_ascii_graphic()) {
            return Err(format!(
                "'{s}' is not a fourcc (four ASCII characters, e.g. YUYV, NV12)"
            ));
        }
        let mut code = [b' '; 4];
        code[..b.len()].copy_from_slice(b);
        Ok(Fourcc::new(&code))
    }
}

/// One plane of a [`Dmabuf`].
#[derive(Debug, Clone)]
pub struct DmabufPlane {
    /// The dma-buf fd; several planes may share one (single-buffer formats such as NV12).
    pub fd: Arc<OwnedFd>,
    /// Byte offset of the plane's first row in the dma-buf.
    pub offset: u32,
    /// Bytes from one row to the next.
    pub stride: u32,
}

/// A frame's memory as dma-bufs.
#[derive(Debug, Clone)]
pub struct Dmabuf {
    pub width: u32,
    pub height: u32,
    /// The pixel format (V4L2 fourcc of the capture format).
    pub fourcc: Fourcc,
    /// DRM format modifier; V4L2 buffers are always [`DRM_FORMAT_MOD_LINEAR`].
    pub modifier: u64,
    pub planes: Vec<DmabufPlane>,
}

/// The identity of a dma-buf, stable across fds and processes: the inode of its anonymous file and the name
/// of the exporter (`exp_name` in `/proc/self/fdinfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmabufIdentity {
    pub inode: u64,
    pub exp_name: String,
}

/// Reads the identity of the dma-buf behind `fd`; fails if `fd` is not a dma-buf.
pub fn identity(fd: BorrowedFd<'_>) -> io::Result<DmabufIdentity> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io::Error::from)?;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    let exp_name = info
        .lines()
        .find_map(|l| l.strip_prefix("exp_name:"))
        .map(|s| s.trim().to_owned())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a dma-buf (no exp_name in fdinfo)",
            )
        })?;
    Ok(DmabufIdentity {
        inode: st.st_ino,
        exp_name,
    })
}

/// Whether `fd` is plain shared memory (a memfd or another shmem file) rather than a dma-buf: shmem files
/// answer `F_GET_SEALS`, dma-bufs (udmabuf's included) do not. Such memory needs no `DMA_BUF_IOCTL_SYNC`
/// (there is no device cache to maintain) and cannot be imported by a compositor, GPU or KMS.
pub fn is_shmem(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GET_SEALS only reads the seals of a live fd; it has no memory-safety preconditions.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) >= 0 }
}

/// Size in bytes of the dma-buf behind `fd` (dma-bufs report it through `lseek(SEEK_END)`).
pub fn size_of(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let end = lseek(fd.as_raw_fd(), 0, Whence::SeekEnd).map_err(io::Error::from)?;
    lseek(fd.as_raw_fd(), 0, Whence::SeekSet).map_err(io::Error::from)?;
    usize::try_from(end)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "dma-buf size overflows"))
}

mod raw {
    //! `DMA_BUF_IOCTL_SYNC` from `<linux/dma-buf.h>`.
    #[repr(C)]
    pub struct DmaBufSync {
        pub flags: u64,
    }
    pub const DMA_BUF_SYNC_READ: u64 = 1;
    pub const DMA_BUF_SYNC_WRITE: u64 = 1 << 1;
    pub const DMA_BUF_SYNC_START: u64 = 0;
    pub const DMA_BUF_SYNC_END: u64 = 1 << 2;
    nix::ioctl_write_ptr!(dma_buf_ioctl_sync, b'b', 0, DmaBufSync);
}

/// Why a dma-buf could not be mapped or synchronised.
#[derive(Debug, Error)]
pub enum MapError {
    #[error("cannot size the dma-buf: {0}")]
    Size(#[source] io::Error),
    #[error("the dma-buf is empty")]
    Empty,
    #[error("mmap of the dma-buf failed: {0}")]
    Mmap(#[source] io::Error),
    #[error("DMA_BUF_IOCTL_SYNC failed: {0}")]
    Sync(#[source] io::Error),
}

/// A shared, whole-buffer CPU mapping of a dma-buf. Access goes through [`Mapping::read`] /
/// [`Mapping::write`], which bracket it with `DMA_BUF_IOCTL_SYNC` start/end for cache coherency.
///
/// A memfd (the pattern source's fallback where the kernel offers no dma-buf allocator) maps the same way;
/// being plain memory it needs no sync, so none is issued for it (see [`is_shmem`]).
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    /// Whether accesses are bracketed with `DMA_BUF_IOCTL_SYNC` (false for shmem).
    dmabuf: bool,
    fd: Arc<OwnedFd>,
}

// SAFETY: the mapping is plain shared memory owned by this value; access to the bytes is only handed out
// through guards that borrow the mapping (shared for reads, exclusive for writes).
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only gives read guards.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the whole dma-buf behind `fd`, read-only or read-write.
    pub fn new(fd: Arc<OwnedFd>, writable: bool) -> Result<Self, MapError> {
        let len = size_of(fd.as_fd()).map_err(MapError::Size)?;
        let nz = NonZeroUsize::new(len).ok_or(MapError::Empty)?;
        let prot = if writable {
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
        } else {
            ProtFlags::PROT_READ
        };
        // SAFETY: a fresh shared mapping of a dma-buf at a kernel-chosen address; it aliases no Rust memory.
        // The length is the dma-buf's own size, so every byte of the mapping is backed.
        let ptr = unsafe { mmap(None, nz, prot, MapFlags::MAP_SHARED, fd.as_fd(), 0) }
            .map_err(|e| MapError::Mmap(e.into()))?;
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
            writable,
            dmabuf: !is_shmem(fd.as_fd()),
            fd,
        })
    }

    /// Length of the mapping (the dma-buf's size) in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the dma-buf is empty (never true for a successful mapping).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The dma-buf fd this maps.
    pub fn fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    /// Whether this maps a dma-buf (accesses synced) rather than plain shared memory.
    pub fn is_dmabuf(&self) -> bool {
        self.dmabuf
    }

    fn sync(&self, flags: u64) -> Result<(), MapError> {
        if !self.dmabuf {
            return Ok(());
        }
        let arg = raw::DmaBufSync { flags };
        loop {
            // SAFETY: `arg` is a valid `dma_buf_sync` for the duration of the call; the fd is a live dma-buf.
            match unsafe { raw::dma_buf_ioctl_sync(self.fd.as_raw_fd(), &arg) } {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
                Err(e) => return Err(MapError::Sync(e.into())),
            }
        }
    }

    /// Begins a CPU read (`SYNC_START|READ`); the guard ends it (`SYNC_END|READ`) when dropped.
    pub fn read(&self) -> Result<ReadGuard<'_>, MapError> {
        self.sync(raw::DMA_BUF_SYNC_START | raw::DMA_BUF_SYNC_READ)?;
        Ok(ReadGuard { map: self })
    }

    /// Begins a CPU write (`SYNC_START|READ|WRITE`); the guard ends it when dropped. Panics if the mapping was
    /// made read-only.
    pub fn write(&mut self) -> Result<WriteGuard<'_>, MapError> {
        assert!(self.writable, "Mapping::write on a read-only mapping");
        self.sync(raw::DMA_BUF_SYNC_START | raw::DMA_BUF_SYNC_READ | raw::DMA_BUF_SYNC_WRITE)?;
        Ok(WriteGuard { map: self })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, and no guard (which borrows `self`) is alive.
        if let Err(e) = unsafe { munmap(self.ptr.cast(), self.len) } {
            tracing::warn!("munmap of a dma-buf mapping failed: {e}");
        }
    }
}

/// CPU read access to a mapped dma-buf, between `SYNC_START` and `SYNC_END`.
pub struct ReadGuard<'a> {
    map: &'a Mapping,
}

impl std::ops::Deref for ReadGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes, alive while `self.map` is borrowed.
        unsafe { std::slice::from_raw_parts(self.map.ptr.as_ptr(), self.map.len) }
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self
            .map
            .sync(raw::DMA_BUF_SYNC_END | raw::DMA_BUF_SYNC_READ)
        {
            tracing::warn!("ending a CPU read of a dma-buf: {e}");
        }
    }
}

/// CPU read-write access to a mapped dma-buf, between `SYNC_START` and `SYNC_END`.
pub struct WriteGuard<'a> {
    map: &'a mut Mapping,
}

impl std::ops::Deref for WriteGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes, alive while `self.map` is borrowed.
        unsafe { std::slice::from_raw_parts(self.map.ptr.as_ptr(), self.map.len) }
    }
}

impl std::ops::DerefMut for WriteGuard<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` writable bytes (checked in `write`), exclusively borrowed through
        // `&mut Mapping`.
        unsafe { std::slice::from_raw_parts_mut(self.map.ptr.as_ptr(), self.map.len) }
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let flags = raw::DMA_BUF_SYNC_END | raw::DMA_BUF_SYNC_READ | raw::DMA_BUF_SYNC_WRITE;
        if let Err(e) = self.map.sync(flags) {
            tracing::warn!("ending a CPU write of a dma-buf: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_round_trips_and_rejects_garbage() {
        let f: Fourcc = "NV12".parse().unwrap();
        assert_eq!(f, Fourcc::new(b"NV12"));
        assert_eq!(f.to_string(), "NV12");
        assert_eq!(f.0, 0x3231_564e);
        assert!("".parse::<Fourcc>().is_err());
        assert!("TOOLONG".parse::<Fourcc>().is_err());
        assert!("a b".parse::<Fourcc>().is_err());
    }
}
