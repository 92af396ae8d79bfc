//! The output ring: [`OutputSlot`]s (an XRGB8888 storage buffer each, exported as a dma-buf, with its
//! descriptor set, command buffer and fence), the [`OutputFrame`] handed to consumers, and acquiring a free
//! slot (rebuilding the ring when the output size changes).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use ash::vk;
use dmacam_capture::fence::ReleaseFence;
use dmacam_capture::{Dmabuf, DmabufPlane, Fourcc, DRM_FORMAT_MOD_LINEAR};

use super::options::Mode;
use super::pipeline::{alloc_set, write_buffer_set, Shared};
use super::util::{Guard, MappedPtr};
use crate::device::vkerr;
use crate::RenderError;

/// The output format: DRM `XRGB8888` (little-endian B, G, R, X bytes; X is written as 0xff), same code as
/// V4L2 `XR24`.
pub const OUTPUT_FOURCC: Fourcc = Fourcc::new(b"XR24");

/// One buffer of the output ring.
pub(super) struct OutputSlot {
    shared: Arc<Shared>,
    pub(super) index: usize,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) stride: u32,
    pub(super) size: u64,
    pub(super) buffer: vk::Buffer,
    pub(super) memory: vk::DeviceMemory,
    pub(super) mapped: Option<MappedPtr>,
    pub(super) dmabuf: Option<Dmabuf>,
    pub(super) set: vk::DescriptorSet,
    pub(super) cmd: vk::CommandBuffer,
    pub(super) fence: vk::Fence,
    /// Who holds the slot: its conversion in flight ([`super::Pending`]) and each [`OutputFrame`] of it. The
    /// slot is written again only when none does and its [`ReleaseFence`] (if the display gave one) has
    /// signalled.
    pub(super) holds: AtomicU32,
    pub(super) release: Arc<ReleaseFence>,
    pub(super) used: AtomicBool,
}

impl Drop for OutputSlot {
    fn drop(&mut self) {
        let d = &self.shared.gpu.device;
        // SAFETY: a slot is dropped only when no `OutputFrame` holds it and its last submission was waited for;
        // the descriptor set and command buffer go with their pools (in `Shared`), or are freed by the
        // renderer before it drops a slot it replaces.
        unsafe {
            d.destroy_fence(self.fence, None);
            d.destroy_buffer(self.buffer, None);
            if self.mapped.is_some() {
                d.unmap_memory(self.memory);
            }
            d.free_memory(self.memory, None);
        }
    }
}

/// Bytes per row of an output buffer `width` pixels wide: XRGB8888 rows padded to 64 bytes.
pub fn output_stride(width: u32) -> u32 {
    (width * 4).next_multiple_of(64)
}

/// A processed frame: XRGB8888, LINEAR. The GPU has finished with it (and with the camera buffer it came
/// from), unless it was taken while still in flight ([`super::Renderer::output_in_flight`]: for a consumer
/// that waits on the conversion's sync_file itself). The output buffer is not reused until this value is
/// dropped, so keep it until the consumer (compositor, KMS, file writer) has released the buffer; a release
/// fence the consumer gives back goes into [`OutputFrame::release_fence`].
pub struct OutputFrame {
    pub(super) slot: Arc<OutputSlot>,
    pub(super) seq: u64,
    /// Taken before the GPU was done: its pixels are not for the CPU.
    pub(super) in_flight: bool,
}

impl OutputFrame {
    /// The exported dma-buf (fd, offset 0, stride, LINEAR) — `None` in [`Mode::HostMemory`] and
    /// [`Mode::ImportOnly`].
    pub fn dmabuf(&self) -> Option<&Dmabuf> {
        self.slot.dmabuf.as_ref()
    }
    pub fn width(&self) -> u32 {
        self.slot.width
    }
    pub fn height(&self) -> u32 {
        self.slot.height
    }
    /// Bytes from one row to the next.
    pub fn stride(&self) -> u32 {
        self.slot.stride
    }
    /// Index of the output buffer in the ring.
    pub fn buffer_index(&self) -> usize {
        self.slot.index
    }
    /// Frame sequence number of this renderer (0, 1, …).
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// The pixels through the Vulkan mapping, when the output memory is host-visible (always on lavapipe).
    /// The dma-buf path reads them through the exported dma-buf instead (`dmacam_capture::Mapping`).
    pub fn host_pixels(&self) -> Option<&[u8]> {
        if self.in_flight {
            return None;
        }
        let p = self.slot.mapped.as_ref()?;
        // SAFETY: the mapping covers `size` bytes of memory owned by the slot, which this frame keeps alive;
        // the frame's fence has signalled and a host-read barrier was recorded, and the GPU does not write the
        // slot again until this frame is dropped.
        Some(unsafe { std::slice::from_raw_parts(p.0, self.slot.size as usize) })
    }
}

impl OutputFrame {
    /// Where the consumer puts the fence it released the buffer with: the buffer is written again only
    /// once that has signalled.
    pub fn release_fence(&self) -> Arc<ReleaseFence> {
        self.slot.release.clone()
    }
}

impl Drop for OutputFrame {
    fn drop(&mut self) {
        self.slot.holds.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for OutputFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputFrame")
            .field("seq", &self.seq)
            .field("buffer_index", &self.slot.index)
            .field("width", &self.slot.width)
            .field("height", &self.slot.height)
            .field("stride", &self.slot.stride)
            .finish()
    }
}

/// A free output slot of the given size; the ring is (re)built when the size changes.
pub(super) fn acquire_slot(
    slots: &mut Vec<Arc<OutputSlot>>,
    shared: &Arc<Shared>,
    ring: usize,
    mode: Mode,
    width: u32,
    height: u32,
) -> Result<Arc<OutputSlot>, RenderError> {
    let fits = slots
        .first()
        .is_some_and(|s| s.width == width && s.height == height);
    if !fits {
        if slots.iter().any(|s| Arc::strong_count(s) > 1) {
            return Err(RenderError::RingExhausted { ring: slots.len() });
        }
        drop_slots(slots, shared);
        for i in 0..ring {
            let slot = create_slot(shared, i, width, height, mode.exports())?;
            slots.push(Arc::new(slot));
        }
    }
    for s in slots.iter() {
        // Held by nobody, and the display's release fence (if any) has signalled.
        if s.holds.load(Ordering::Acquire) == 0
            && s.release.ready()
            && s.holds
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Ok(s.clone());
        }
    }
    Err(RenderError::RingExhausted { ring: slots.len() })
}

fn drop_slots(slots: &mut Vec<Arc<OutputSlot>>, shared: &Shared) {
    let d = &shared.gpu.device;
    for s in slots.drain(..) {
        // SAFETY: no frame holds the slot (checked by the caller), its last submission was waited for, and
        // the pools are only used by the renderer.
        unsafe {
            let _ = d.free_descriptor_sets(shared.desc_pool, &[s.set]);
            d.free_command_buffers(shared.cmd_pool, &[s.cmd]);
        }
    }
}

/// One output buffer: XRGB8888 storage buffer, exported as a dma-buf when `export`.
fn create_slot(
    sh: &Arc<Shared>,
    index: usize,
    width: u32,
    height: u32,
    export: bool,
) -> Result<OutputSlot, RenderError> {
    let gpu = &sh.gpu;
    let d = &gpu.device;
    let stride = output_stride(width);
    let size = stride as u64 * height as u64;
    let handle = vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT;
    let usage = vk::BufferUsageFlags::STORAGE_BUFFER | vk::BufferUsageFlags::TRANSFER_SRC;
    let export_err = |source| RenderError::Export {
        index,
        cause: format!("; {}", super::export::cause(gpu)),
        source,
    };
    if export && !super::export::exportable(gpu, usage) {
        return Err(export_err(vk::Result::ERROR_FORMAT_NOT_SUPPORTED));
    }
    let mut ext = vk::ExternalMemoryBufferCreateInfo::default().handle_types(handle);
    let mut info = vk::BufferCreateInfo::default()
        .size(size)
        .usage(usage)
        .sharing_mode(vk::SharingMode::EXCLUSIVE);
    if export {
        info = info.push_next(&mut ext);
    }
    // SAFETY: valid create info.
    let buffer =
        unsafe { d.create_buffer(&info, None) }.map_err(vkerr("vkCreateBuffer (output)"))?;
    let bguard = Guard::new(|| {
        // SAFETY: created above, unused.
        unsafe { d.destroy_buffer(buffer, None) }
    });
    let mut dedicated = vk::MemoryDedicatedRequirements::default();
    let mut reqs2 = vk::MemoryRequirements2::default().push_next(&mut dedicated);
    // SAFETY: `buffer` is live; chained struct outlives the call.
    unsafe {
        d.get_buffer_memory_requirements2(
            &vk::BufferMemoryRequirementsInfo2::default().buffer(buffer),
            &mut reqs2,
        )
    };
    let reqs = reqs2.memory_requirements;
    let host = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
    let ty = gpu
        .memory_type(reqs.memory_type_bits, host)
        .ok_or(RenderError::Vk {
            what: "finding memory for the output ring",
            source: vk::Result::ERROR_OUT_OF_DEVICE_MEMORY,
        })?;
    if !export && !gpu.is_host_visible(ty) {
        return Err(RenderError::Vk {
            what: "finding host-visible memory for the output ring (host-memory mode)",
            source: vk::Result::ERROR_FEATURE_NOT_PRESENT,
        });
    }
    let mut export_info = vk::ExportMemoryAllocateInfo::default().handle_types(handle);
    let mut ded = vk::MemoryDedicatedAllocateInfo::default().buffer(buffer);
    let mut alloc = vk::MemoryAllocateInfo::default()
        .allocation_size(reqs.size)
        .memory_type_index(ty);
    if export {
        alloc = alloc.push_next(&mut export_info);
    }
    if dedicated.requires_dedicated_allocation == vk::TRUE
        || dedicated.prefers_dedicated_allocation == vk::TRUE
    {
        alloc = alloc.push_next(&mut ded);
    }
    // SAFETY: valid allocate info.
    let memory = unsafe { d.allocate_memory(&alloc, None) }.map_err(|e| {
        if export {
            export_err(e)
        } else {
            RenderError::Vk {
                what: "vkAllocateMemory (output)",
                source: e,
            }
        }
    })?;
    let mguard = Guard::new(|| {
        // SAFETY: allocated above, unused.
        unsafe { d.free_memory(memory, None) }
    });
    // SAFETY: both live, type from the requirements.
    unsafe { d.bind_buffer_memory(buffer, memory, 0) }
        .map_err(vkerr("vkBindBufferMemory (output)"))?;
    let mapped = if gpu.is_host_visible(ty) {
        // SAFETY: host-visible memory, mapped once for the slot's lifetime, unmapped in its Drop.
        let p = unsafe { d.map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty()) }
            .map_err(vkerr("vkMapMemory (output)"))?;
        Some(MappedPtr(p.cast()))
    } else {
        None
    };
    let unmap = Guard::new(|| {
        if mapped.is_some() {
            // SAFETY: mapped above.
            unsafe { d.unmap_memory(memory) }
        }
    });
    let dmabuf = if export {
        let ext_fd = gpu.ext_fd.as_ref().ok_or(RenderError::HostOnly)?;
        let ginfo = vk::MemoryGetFdInfoKHR::default()
            .memory(memory)
            .handle_type(handle);
        // SAFETY: the memory was allocated exportable as DMA_BUF; the returned fd is new and ours.
        let raw = unsafe { ext_fd.get_memory_fd(&ginfo) }.map_err(export_err)?;
        // SAFETY: `raw` is a fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_cloexec(&fd).map_err(|_| export_err(vk::Result::ERROR_INVALID_EXTERNAL_HANDLE))?;
        Some(Dmabuf {
            width,
            height,
            fourcc: OUTPUT_FOURCC,
            modifier: DRM_FORMAT_MOD_LINEAR,
            planes: vec![DmabufPlane {
                fd: Arc::new(fd),
                offset: 0,
                stride,
            }],
        })
    } else {
        None
    };
    let set = alloc_set(sh, sh.set1_layout)?;
    write_buffer_set(sh, set, &[buffer]);
    let cinfo = vk::CommandBufferAllocateInfo::default()
        .command_pool(sh.cmd_pool)
        .level(vk::CommandBufferLevel::PRIMARY)
        .command_buffer_count(1);
    // SAFETY: pool is live and used only from the renderer.
    let cmd = unsafe { d.allocate_command_buffers(&cinfo) }
        .map_err(vkerr("vkAllocateCommandBuffers"))?[0];
    let mut export = vk::ExportFenceCreateInfo::default()
        .handle_types(vk::ExternalFenceHandleTypeFlags::SYNC_FD);
    let mut finfo = vk::FenceCreateInfo::default();
    if sh.gpu.fence_fd.is_some() {
        finfo = finfo.push_next(&mut export);
    }
    // SAFETY: valid create info (the export chain only where the device exports SYNC_FD fences).
    let fence = unsafe { d.create_fence(&finfo, None) }.map_err(vkerr("vkCreateFence"))?;
    unmap.defuse();
    mguard.defuse();
    bguard.defuse();
    tracing::debug!(
        index,
        width,
        height,
        stride,
        exported = dmabuf.is_some(),
        "output buffer ready"
    );
    Ok(OutputSlot {
        shared: sh.clone(),
        index,
        width,
        height,
        stride,
        size,
        buffer,
        memory,
        mapped,
        dmabuf,
        set,
        cmd,
        fence,
        holds: AtomicU32::new(0),
        release: Arc::default(),
        used: AtomicBool::new(false),
    })
}

fn set_cloexec(fd: &OwnedFd) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let flags = FdFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFD)?);
    fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_SETFD(flags | FdFlag::FD_CLOEXEC),
    )?;
    Ok(())
}
