//! Small helpers shared by the renderer's files: a clean-up guard for multi-handle creation, a `Send` mapped
//! pointer into Vulkan memory, and the one-level colour subresource range.

use ash::vk;

/// A mapped pointer into Vulkan memory owned by an `OutputSlot` or the upload buffer.
pub(super) struct MappedPtr(pub(super) *mut u8);
// SAFETY: the pointer is to memory owned by the object holding it and only read through `&self` after the
// frame's fence has signalled.
unsafe impl Send for MappedPtr {}
// SAFETY: as above.
unsafe impl Sync for MappedPtr {}

/// Runs a clean-up closure on drop unless defused (for multi-handle creation).
pub(super) struct Guard<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Guard<F> {
    pub(super) fn new(f: F) -> Self {
        Guard(Some(f))
    }
    pub(super) fn defuse(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for Guard<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

pub(super) fn color_range() -> vk::ImageSubresourceRange {
    vk::ImageSubresourceRange {
        aspect_mask: vk::ImageAspectFlags::COLOR,
        base_mip_level: 0,
        level_count: 1,
        base_array_layer: 0,
        layer_count: 1,
    }
}
