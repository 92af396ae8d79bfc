//! Fences as fds: sync_files (a `dma_fence` the kernel hands to user space), how a consumer learns that one
//! has signalled without waiting, attaching one to a dma-buf (`DMA_BUF_IOCTL_IMPORT_SYNC_FILE`, Linux 6.0:
//! an implicit-sync consumer then waits for it), and the release fence a display hands back with a buffer.
//!
//! The GPU stage passes its completion on as a sync_file instead of waiting for it (ARCHITECTURE.md, "Fences
//! to the display"); these are the pieces the render and display crates share.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

mod raw {
    //! `DMA_BUF_IOCTL_EXPORT_SYNC_FILE` / `DMA_BUF_IOCTL_IMPORT_SYNC_FILE` from `<linux/dma-buf.h>`.
    /// `struct dma_buf_export_sync_file` / `struct dma_buf_import_sync_file` (the same layout).
    #[repr(C)]
    pub struct SyncFileArg {
        pub flags: u32,
        pub fd: i32,
    }
    pub const DMA_BUF_SYNC_WRITE: u32 = 1 << 1;
    nix::ioctl_readwrite!(export_sync_file, b'b', 2, SyncFileArg);
    nix::ioctl_write_ptr!(import_sync_file, b'b', 3, SyncFileArg);
}

/// Whether the fence behind `fd` (a sync_file, or any fd that becomes readable when its work is done) has
/// signalled within `timeout` (zero: now), by poll(2); an interrupted poll is retried.
pub fn poll_signalled(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let ms = timeout.as_millis().min(u128::from(u16::MAX)) as u16;
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) => return Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether the fence behind `fd` has signalled; never blocks. A failed poll counts as signalled: whoever
/// waits on it then sees the error.
pub fn is_signalled(fd: BorrowedFd<'_>) -> bool {
    poll_signalled(fd, Duration::ZERO).unwrap_or(true)
}

/// Whether `fd` is a kernel sync_file (its anonymous inode says `sync_file`), not some other fd that merely
/// becomes readable (an eventfd standing in for work already done).
pub fn is_sync_file(fd: BorrowedFd<'_>) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|p| p.as_os_str() == "anon_inode:sync_file")
}

/// Attaches `sync_file` to `dmabuf` as its write fence: an implicit-sync consumer (a compositor or a KMS
/// driver reading the buffer) waits for it before reading.
pub fn attach_write_fence(dmabuf: BorrowedFd<'_>, sync_file: BorrowedFd<'_>) -> io::Result<()> {
    let arg = raw::SyncFileArg {
        flags: raw::DMA_BUF_SYNC_WRITE,
        fd: sync_file.as_raw_fd(),
    };
    // SAFETY: both fds are live for the call; the kernel only reads `arg`, whose layout is the uAPI's.
    unsafe { raw::import_sync_file(dmabuf.as_raw_fd(), &arg) }
        .map(drop)
        .map_err(io::Error::from)
}

/// The fences a writer of `dmabuf` would wait for (its readers' and writers'), as one sync_file.
pub fn export_fences(dmabuf: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    let mut arg = raw::SyncFileArg {
        flags: raw::DMA_BUF_SYNC_WRITE,
        fd: -1,
    };
    // SAFETY: `dmabuf` is live for the call and `arg` matches the kernel's struct for this ioctl.
    unsafe { raw::export_sync_file(dmabuf.as_raw_fd(), &mut arg) }.map_err(io::Error::from)?;
    // SAFETY: on success the kernel gave us a new sync_file fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(arg.fd) })
}

/// The release fence a display hands back with a buffer it has let go: the buffer may be written again only
/// once the fence has signalled (a compositor's GPU may still be reading it). Shared between the buffer's
/// producer, which checks [`ReleaseFence::ready`] before it reuses the buffer, and the display, which
/// [`ReleaseFence::set`]s it.
#[derive(Debug, Default)]
pub struct ReleaseFence(Mutex<Option<OwnedFd>>);

impl ReleaseFence {
    /// The display let the buffer go with this fence.
    pub fn set(&self, fence: OwnedFd) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(fence);
    }

    /// Whether the buffer may be written: no release fence, or one that has signalled (then it is dropped).
    pub fn ready(&self) -> bool {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if f.as_ref().is_some_and(|fd| !is_signalled(fd.as_fd())) {
            return false;
        }
        *f = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::eventfd::{EfdFlags, EventFd};

    #[test]
    fn a_release_fence_holds_the_buffer_until_it_signals() {
        let r = ReleaseFence::default();
        assert!(r.ready(), "no fence: ready");
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC).unwrap();
        let signal = efd.as_fd().try_clone_to_owned().unwrap();
        r.set(OwnedFd::from(efd));
        assert!(!r.ready(), "an unsignalled fence holds the buffer");
        nix::unistd::write(&signal, &1u64.to_ne_bytes()).unwrap();
        assert!(r.ready(), "a signalled fence lets it go");
        assert!(r.ready(), "and is forgotten");
    }

    #[test]
    fn an_eventfd_is_not_a_sync_file() {
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC).unwrap();
        assert!(!is_sync_file(efd.as_fd()));
        assert!(!is_signalled(efd.as_fd()));
    }
}
