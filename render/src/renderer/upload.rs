//! Host-memory input: the [`HostFrame`] a caller passes to `Renderer::process_host`, and the mapped staging
//! buffer ([`Upload`]) its planes are copied into, grown when a larger frame arrives.

use std::sync::Arc;

use ash::vk;
use dmacam_capture::Fourcc;

use super::pipeline::{alloc_set, write_buffer_set, Shared};
use super::util::{Guard, MappedPtr};
use crate::device::vkerr;
use crate::RenderError;

/// A frame in CPU memory, for [`Renderer::process_host`](crate::Renderer::process_host).
#[derive(Debug, Clone)]
pub struct HostFrame<'a> {
    pub width: u32,
    pub height: u32,
    pub fourcc: Fourcc,
    pub planes: Vec<HostPlane<'a>>,
}

#[derive(Debug, Clone, Copy)]
pub struct HostPlane<'a> {
    pub data: &'a [u8],
    pub stride: u32,
}

/// CPU staging memory for [`Renderer::process_host`](crate::Renderer::process_host).
pub(super) struct Upload {
    shared: Arc<Shared>,
    pub(super) buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    pub(super) size: u64,
    pub(super) ptr: MappedPtr,
    pub(super) set: vk::DescriptorSet,
}

impl Drop for Upload {
    fn drop(&mut self) {
        let d = &self.shared.gpu.device;
        // SAFETY: dropped only by the renderer between frames; the GPU is done with it.
        unsafe {
            let _ = d.free_descriptor_sets(self.shared.desc_pool, &[self.set]);
            d.destroy_buffer(self.buffer, None);
            d.unmap_memory(self.memory);
            d.free_memory(self.memory, None);
        }
    }
}

/// Makes `upload` a staging buffer of at least `size` bytes (dropping a smaller one first).
pub(super) fn ensure_upload(
    upload: &mut Option<Upload>,
    sh: &Arc<Shared>,
    size: u64,
) -> Result<(), RenderError> {
    if upload.as_ref().is_some_and(|u| u.size >= size) {
        return Ok(());
    }
    *upload = None;
    let d = &sh.gpu.device;
    let info = vk::BufferCreateInfo::default()
        .size(size)
        .usage(vk::BufferUsageFlags::STORAGE_BUFFER)
        .sharing_mode(vk::SharingMode::EXCLUSIVE);
    // SAFETY: valid create info.
    let buffer =
        unsafe { d.create_buffer(&info, None) }.map_err(vkerr("vkCreateBuffer (upload)"))?;
    let guard = Guard::new(|| {
        // SAFETY: the buffer was just created and is unused.
        unsafe { d.destroy_buffer(buffer, None) }
    });
    // SAFETY: `buffer` is live.
    let reqs = unsafe { d.get_buffer_memory_requirements(buffer) };
    let host = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
    let ty = sh
        .gpu
        .memory_type(reqs.memory_type_bits, host)
        .filter(|&t| sh.gpu.is_host_visible(t))
        .ok_or(RenderError::Vk {
            what: "finding host-visible memory for uploads",
            source: vk::Result::ERROR_FEATURE_NOT_PRESENT,
        })?;
    let alloc = vk::MemoryAllocateInfo::default()
        .allocation_size(reqs.size)
        .memory_type_index(ty);
    // SAFETY: valid allocate info.
    let memory =
        unsafe { d.allocate_memory(&alloc, None) }.map_err(vkerr("vkAllocateMemory (upload)"))?;
    let mguard = Guard::new(|| {
        // SAFETY: the memory was just allocated and is unused.
        unsafe { d.free_memory(memory, None) }
    });
    // SAFETY: both live, memory type fits the requirements.
    unsafe { d.bind_buffer_memory(buffer, memory, 0) }
        .map_err(vkerr("vkBindBufferMemory (upload)"))?;
    // SAFETY: host-visible memory, mapped once for its lifetime.
    let ptr = unsafe { d.map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty()) }
        .map_err(vkerr("vkMapMemory (upload)"))?;
    let set = alloc_set(sh, sh.set0_layout)?;
    write_buffer_set(sh, set, &[buffer, buffer, buffer]);
    guard.defuse();
    mguard.defuse();
    *upload = Some(Upload {
        shared: sh.clone(),
        buffer,
        memory,
        size,
        ptr: MappedPtr(ptr.cast()),
        set,
    });
    Ok(())
}
