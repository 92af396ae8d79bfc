//! Whether the kernel attaches and hands out fences on a dma-buf as sync_files
//! (`DMA_BUF_IOCTL_EXPORT_SYNC_FILE` / `DMA_BUF_IOCTL_IMPORT_SYNC_FILE`, Linux 6.0), tried on a udmabuf: the
//! way an implicit-sync compositor can be made to wait on the GPU rather than on dmacam.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use dmacam_capture::alloc::Allocator;
use serde_json::{json, Value};

/// `struct dma_buf_export_sync_file` / `struct dma_buf_import_sync_file` (the same layout).
#[repr(C)]
struct SyncFileArg {
    flags: u32,
    fd: i32,
}

const DMA_BUF_SYNC_WRITE: u32 = 2;

nix::ioctl_readwrite!(export_sync_file, b'b', 2, SyncFileArg);
nix::ioctl_write_ptr!(import_sync_file, b'b', 3, SyncFileArg);

/// Exports the (signalled) write fence of a fresh udmabuf as a sync_file and attaches it back as the write
/// fence. Each step is `"yes"` or the reason it failed.
pub(super) fn probe() -> Value {
    let buf = match Allocator::udmabuf("/dev/udmabuf").and_then(|a| a.alloc(4096)) {
        Ok(b) => b,
        Err(e) => return json!({ "error": format!("no udmabuf to try it on: {e}") }),
    };
    let mut arg = SyncFileArg {
        flags: DMA_BUF_SYNC_WRITE,
        fd: -1,
    };
    // SAFETY: `buf` is a live dma-buf fd and `arg` matches the kernel's struct for this ioctl.
    let sync = match unsafe { export_sync_file(buf.as_raw_fd(), &mut arg) } {
        // SAFETY: on success the kernel gave us a new sync_file fd that nothing else owns.
        Ok(_) => unsafe { OwnedFd::from_raw_fd(arg.fd) },
        Err(e) => {
            return json!({ "export": format!("DMA_BUF_IOCTL_EXPORT_SYNC_FILE: {e}"), "import": "not tried" })
        }
    };
    let arg = SyncFileArg {
        flags: DMA_BUF_SYNC_WRITE,
        fd: sync.as_raw_fd(),
    };
    // SAFETY: both fds are live; the kernel only reads `arg`.
    let import = match unsafe { import_sync_file(buf.as_raw_fd(), &arg) } {
        Ok(_) => "yes".to_owned(),
        Err(e) => format!("DMA_BUF_IOCTL_IMPORT_SYNC_FILE: {e}"),
    };
    json!({ "export": "yes", "import": import })
}

/// The report's one line for it.
pub(super) fn line(v: &Value) -> String {
    match v["error"].as_str() {
        Some(e) => format!("dma-buf sync_file (kernel): not tried: {e}"),
        None => format!(
            "dma-buf sync_file (kernel, on a udmabuf): export {}, import {}",
            v["export"].as_str().unwrap_or("?"),
            v["import"].as_str().unwrap_or("?")
        ),
    }
}
