//! Whether the device can export an output buffer as a dma-buf, found by exporting a small one, and why not
//! in words a user can act on. Lavapipe exports through `/dev/udmabuf`: a desktop user is often not allowed
//! to open it (systemd's rules give it to group `kvm`), and the driver then answers "format not supported".

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use ash::vk;
use dmacam_capture::alloc::{access_remedy, node_owner, UDMABUF};

use super::util::Guard;
use crate::device::Gpu;
use crate::RenderError;

/// Exports one small storage buffer as a dma-buf, as the output ring does; `Err` names the device, the
/// cause and the remedy.
pub(super) fn probe(gpu: &Gpu) -> Result<(), RenderError> {
    try_export(gpu).map_err(|source| RenderError::ExportUnavailable {
        device: gpu.name.clone(),
        cause: cause(gpu),
        source,
    })
}

/// Whether the first Vulkan device that imports dma-bufs can also export its output as one (what `doctor`
/// reports, and what the gpu path of a viewer needs).
pub fn probe_export() -> Result<(), RenderError> {
    let gpu = Gpu::new(true)?;
    probe(&gpu)
}

fn try_export(gpu: &Gpu) -> Result<(), vk::Result> {
    let d = &gpu.device;
    let handle = vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT;
    let usage = vk::BufferUsageFlags::STORAGE_BUFFER | vk::BufferUsageFlags::TRANSFER_SRC;
    let Some(ext_fd) = gpu.ext_fd.as_ref() else {
        return Err(vk::Result::ERROR_EXTENSION_NOT_PRESENT);
    };
    if !exportable(gpu, usage) {
        return Err(vk::Result::ERROR_FORMAT_NOT_SUPPORTED);
    }
    let mut ext = vk::ExternalMemoryBufferCreateInfo::default().handle_types(handle);
    let binfo = vk::BufferCreateInfo::default()
        .size(4096)
        .usage(usage)
        .sharing_mode(vk::SharingMode::EXCLUSIVE)
        .push_next(&mut ext);
    // SAFETY: valid create info whose chained struct outlives the call.
    let buffer = unsafe { d.create_buffer(&binfo, None) }?;
    let _buffer = Guard::new(|| {
        // SAFETY: created above; never bound to a submission.
        unsafe { d.destroy_buffer(buffer, None) }
    });
    // SAFETY: `buffer` is live.
    let reqs = unsafe { d.get_buffer_memory_requirements(buffer) };
    let ty = gpu
        .memory_type(reqs.memory_type_bits, vk::MemoryPropertyFlags::HOST_VISIBLE)
        .ok_or(vk::Result::ERROR_OUT_OF_DEVICE_MEMORY)?;
    let mut export = vk::ExportMemoryAllocateInfo::default().handle_types(handle);
    let mut dedicated = vk::MemoryDedicatedAllocateInfo::default().buffer(buffer);
    let alloc = vk::MemoryAllocateInfo::default()
        .allocation_size(reqs.size)
        .memory_type_index(ty)
        .push_next(&mut export)
        .push_next(&mut dedicated);
    // SAFETY: valid allocate info whose chained structs outlive the call; `buffer` is live.
    let memory = unsafe { d.allocate_memory(&alloc, None) }?;
    let _memory = Guard::new(|| {
        // SAFETY: allocated above, used by nothing but the export below.
        unsafe { d.free_memory(memory, None) }
    });
    let ginfo = vk::MemoryGetFdInfoKHR::default()
        .memory(memory)
        .handle_type(handle);
    // SAFETY: the memory was allocated exportable as DMA_BUF; the fd returned is new and ours.
    let raw = unsafe { ext_fd.get_memory_fd(&ginfo) }?;
    // SAFETY: `raw` is a fresh fd owned by nobody else; dropping it closes it.
    drop(unsafe { OwnedFd::from_raw_fd(raw) });
    Ok(())
}

/// Whether the device says buffers of `usage` can be exported as dma-bufs.
pub(super) fn exportable(gpu: &Gpu, usage: vk::BufferUsageFlags) -> bool {
    let info = vk::PhysicalDeviceExternalBufferInfo::default()
        .usage(usage)
        .handle_type(vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT);
    let mut props = vk::ExternalBufferProperties::default();
    // SAFETY: valid query structs that outlive the call.
    unsafe {
        gpu.instance
            .get_physical_device_external_buffer_properties(gpu.pd, &info, &mut props)
    };
    props
        .external_memory_properties
        .external_memory_features
        .contains(vk::ExternalMemoryFeatureFlags::EXPORTABLE)
}

/// Why this device cannot export, and what to do.
pub(super) fn cause(gpu: &Gpu) -> String {
    let lavapipe = gpu.driver.contains("llvmpipe") || gpu.name.starts_with("llvmpipe");
    if !lavapipe {
        return format!(
            "driver '{}' offers no dma-buf export for storage buffers; the gpu path needs one (use \
             passthrough or shm, or another Vulkan driver)",
            gpu.driver
        );
    }
    let how = "lavapipe exports dma-bufs through /dev/udmabuf";
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(UDMABUF)
    {
        Ok(_) => format!("{how}, which opens here, and still refused"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("{how}, which does not exist: load it (sudo modprobe udmabuf)")
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let node = Path::new(UDMABUF);
            format!(
                "{how}, which this user cannot open ({}): {}",
                node_owner(node),
                access_remedy(node)
            )
        }
        Err(e) => format!("{how}, which cannot be opened: {e}"),
    }
}
