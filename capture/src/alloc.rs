//! dma-buf allocators for DMABUF-import streaming: the DMA-BUF system heap (`/dev/dma_heap/system`) and
//! udmabuf over a sealed memfd (`/dev/udmabuf`).

use std::ffi::CStr;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::raw;

/// Default DMA-BUF heap.
pub const SYSTEM_HEAP: &str = "/dev/dma_heap/system";
/// The udmabuf device.
pub const UDMABUF: &str = "/dev/udmabuf";

/// Why a dma-buf could not be allocated.
#[derive(Debug, Error)]
pub enum AllocError {
    #[error("cannot open {path}: {source}{hint}")]
    Open {
        path: PathBuf,
        hint: String,
        #[source]
        source: io::Error,
    },
    #[error("allocating {size} bytes from {path} failed: {source}")]
    Alloc {
        path: PathBuf,
        size: u64,
        #[source]
        source: io::Error,
    },
    #[error("creating the memfd behind a udmabuf failed: {0}")]
    Memfd(#[source] io::Error),
}

/// Where DMABUF-import buffers come from.
#[derive(Debug)]
pub enum Allocator {
    /// A DMA-BUF heap (`DMA_HEAP_IOCTL_ALLOC`).
    DmaHeap { fd: OwnedFd, path: PathBuf },
    /// udmabuf (`UDMABUF_CREATE`) over a memfd sealed against shrinking.
    Udmabuf { fd: OwnedFd, path: PathBuf },
}

fn open_dev(path: &Path) -> Result<OwnedFd, AllocError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|source| AllocError::Open {
            path: path.to_path_buf(),
            hint: match source.kind() {
                io::ErrorKind::PermissionDenied => format!(
                    " ({}): {}, or use --io mmap",
                    node_owner(path),
                    access_remedy(path)
                ),
                io::ErrorKind::NotFound => " (the kernel lacks it; use --io mmap)".to_owned(),
                _ => String::new(),
            },
            source,
        })
}

/// Who owns device node `path`, for a user who cannot open it: `group kvm, mode 0660`, or `owner root,
/// group root, mode 0600` when only its owner may open it.
pub fn node_owner(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) if m.mode() & 0o060 == 0 => format!(
            "owner {}, group {}, mode {:04o}",
            user_name(m.uid()),
            group_name(m.gid()),
            m.mode() & 0o7777
        ),
        Ok(m) => format!(
            "group {}, mode {:04o}",
            group_name(m.gid()),
            m.mode() & 0o7777
        ),
        Err(e) => e.to_string(),
    }
}

/// What a user who cannot open device node `path` (`/dev/udmabuf`, `/dev/dma_heap/NAME`) can do: join the
/// group that may open it (unless that is root's), or give the node to `video` with a udev rule.
pub fn access_remedy(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let matches = if path.parent() == Some(Path::new("/dev/dma_heap")) {
        format!("SUBSYSTEM==\"dma_heap\", KERNEL==\"{name}\"")
    } else {
        format!("KERNEL==\"{name}\"")
    };
    let rule = format!(
        "add a udev rule, e.g. /etc/udev/rules.d/70-dmacam.rules: {matches}, GROUP=\"video\", MODE=\"0660\""
    );
    match std::fs::metadata(path) {
        Ok(m) if m.gid() != 0 && m.mode() & 0o060 != 0 => {
            let g = group_name(m.gid());
            format!("join group {g} (sudo usermod -aG {g} $USER, then log in again) or {rule}")
        }
        _ => rule,
    }
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string())
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

pub(crate) fn page_align(size: u64) -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    size.div_ceil(page) * page
}

impl Allocator {
    /// Opens a DMA-BUF heap (normally [`SYSTEM_HEAP`]).
    pub fn dma_heap(path: impl AsRef<Path>) -> Result<Self, AllocError> {
        let path = path.as_ref().to_path_buf();
        Ok(Allocator::DmaHeap {
            fd: open_dev(&path)?,
            path,
        })
    }

    /// Opens udmabuf (normally [`UDMABUF`]).
    pub fn udmabuf(path: impl AsRef<Path>) -> Result<Self, AllocError> {
        let path = path.as_ref().to_path_buf();
        Ok(Allocator::Udmabuf {
            fd: open_dev(&path)?,
            path,
        })
    }

    /// The allocator's device path.
    pub fn path(&self) -> &Path {
        match self {
            Allocator::DmaHeap { path, .. } | Allocator::Udmabuf { path, .. } => path,
        }
    }

    /// A new read-write, close-on-exec dma-buf of at least `size` bytes (rounded up to pages).
    pub fn alloc(&self, size: u64) -> Result<OwnedFd, AllocError> {
        let size = page_align(size);
        let err = |source: io::Error| AllocError::Alloc {
            path: self.path().to_path_buf(),
            size,
            source,
        };
        match self {
            Allocator::DmaHeap { fd, .. } => {
                raw::dma_heap_alloc(fd.as_fd(), size).map_err(|e| err(e.into()))
            }
            Allocator::Udmabuf { fd, .. } => {
                let memfd = sealed_memfd(c"dmacam-udmabuf", size)?;
                // The udmabuf holds its own references to the memfd's pages; the memfd closes here.
                raw::udmabuf_create(fd.as_fd(), memfd.as_fd(), size).map_err(|e| err(e.into()))
            }
        }
    }
}

/// A close-on-exec shmem memfd named `name` of `size` bytes, sealed with `F_SEAL_SHRINK` (what udmabuf
/// requires; it also keeps a mapping of it from ever losing its pages to a truncation).
pub(crate) fn sealed_memfd(name: &CStr, size: u64) -> Result<OwnedFd, AllocError> {
    // SAFETY: `name` is a valid NUL-terminated string; the flags are valid memfd_create flags.
    let raw_fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw_fd < 0 {
        return Err(AllocError::Memfd(io::Error::last_os_error()));
    }
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let memfd = unsafe { OwnedFd::from_raw_fd(raw_fd) };
    let file = std::fs::File::from(memfd);
    file.set_len(size).map_err(AllocError::Memfd)?;
    let memfd = OwnedFd::from(file);
    // SAFETY: F_ADD_SEALS on a live memfd with a valid seal mask.
    let r = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&memfd),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK,
        )
    };
    if r < 0 {
        return Err(AllocError::Memfd(io::Error::last_os_error()));
    }
    Ok(memfd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_the_user_cannot_open_names_its_owner_and_the_remedy() {
        // /dev/null is root:root 0666 everywhere: a group-readable node of group root gets no "join root".
        assert_eq!(node_owner(Path::new("/dev/null")), "group root, mode 0666");
        assert_eq!(
            access_remedy(Path::new("/dev/null")),
            "add a udev rule, e.g. /etc/udev/rules.d/70-dmacam.rules: KERNEL==\"null\", GROUP=\"video\", \
             MODE=\"0660\""
        );
        // A heap is matched by its subsystem too (whether or not this machine has one).
        assert!(access_remedy(Path::new("/dev/dma_heap/system")).ends_with(
            "SUBSYSTEM==\"dma_heap\", KERNEL==\"system\", GROUP=\"video\", MODE=\"0660\""
        ));
    }
}
