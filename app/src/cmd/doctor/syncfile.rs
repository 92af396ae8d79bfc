//! Whether the kernel attaches and hands out fences on a dma-buf as sync_files
//! (`DMA_BUF_IOCTL_EXPORT_SYNC_FILE` / `DMA_BUF_IOCTL_IMPORT_SYNC_FILE`, Linux 6.0), tried on a udmabuf: the
//! way an implicit-sync compositor can be made to wait on the GPU rather than on dmacam.

use std::os::fd::AsFd;

use dmacam_capture::alloc::Allocator;
use dmacam_capture::fence::{attach_write_fence, export_fences};
use serde_json::{json, Value};

/// Exports the (signalled) fences of a fresh udmabuf as a sync_file and attaches it back as the write
/// fence. Each step is `"yes"` or the reason it failed.
pub(super) fn probe() -> Value {
    let buf = match Allocator::udmabuf("/dev/udmabuf").and_then(|a| a.alloc(4096)) {
        Ok(b) => b,
        Err(e) => return json!({ "error": format!("no udmabuf to try it on: {e}") }),
    };
    let sync = match export_fences(buf.as_fd()) {
        Ok(fd) => fd,
        Err(e) => {
            return json!({ "export": format!("DMA_BUF_IOCTL_EXPORT_SYNC_FILE: {e}"), "import": "not tried" })
        }
    };
    let import = match attach_write_fence(buf.as_fd(), sync.as_fd()) {
        Ok(()) => "yes".to_owned(),
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
