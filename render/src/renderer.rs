//! The processing pipeline: camera frame (imported once per buffer index) → compute shader → output ring of
//! exported dma-bufs.
//!
//! Ownership graph (every arrow an `Arc`, so destruction order is fixed by the types): `OutputFrame` →
//! `OutputSlot` → `Shared` (pipeline, pools) → `Gpu` (device, instance). Imports live only in the renderer.

use std::collections::HashMap;
use std::io::Cursor;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ash::vk;
use dmacam_capture::{Dmabuf, DmabufPlane, Fourcc, DRM_FORMAT_MOD_LINEAR};

use crate::conv::{colour_params, Colorimetry, SourceFormat};
use crate::device::{vkerr, Gpu};
use crate::spec::{Filter, ProcessSpec};
use crate::RenderError;

/// The output format: DRM `XRGB8888` (little-endian B, G, R, X bytes; X is written as 0xff), same code as
/// V4L2 `XR24`.
pub const OUTPUT_FOURCC: Fourcc = Fourcc::new(b"XR24");

/// At most this many camera buffers are imported at once (V4L2's own limit is 32 per queue).
pub const MAX_IMPORTS: u32 = 64;

/// How long a frame may take on the GPU before we give up (lavapipe under TCG emulation is slow).
const FENCE_TIMEOUT_NS: u64 = 60_000_000_000;

const SPV_BUFFER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/convert_buffer.spv"));
const SPV_IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/convert_image.spv"));

/// Where frames come from and where results go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Import camera dma-bufs and export outputs as dma-bufs. Requires [`crate::REQUIRED_EXTENSIONS`].
    #[default]
    Dmabuf,
    /// No dma-bufs: frames are uploaded from CPU memory ([`Renderer::process_host`]) and outputs are read
    /// through a Vulkan mapping. For machines whose driver lacks dma-buf import (e.g. host lavapipe); every
    /// upload is counted in [`Stats::cpu_bytes_copied`].
    HostMemory,
}

/// How the shader reads camera buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportPath {
    /// Each plane imported as an `R8_UINT` image with an explicit DRM format modifier (LINEAR) and the V4L2
    /// plane offset and row pitch (VK_EXT_image_drm_format_modifier).
    ImageDrmModifier,
    /// Each dma-buf imported as a storage buffer, read with the V4L2 plane offsets and strides.
    StorageBuffer,
}

impl ImportPath {
    pub fn name(self) -> &'static str {
        match self {
            Self::ImageDrmModifier => "image-drm-modifier",
            Self::StorageBuffer => "storage-buffer",
        }
    }
}

/// Which import path to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportPreference {
    /// The image path when the device supports it for dma-buf import, else the buffer path.
    #[default]
    Auto,
    /// Only the image path (an error if unavailable).
    Image,
    /// Only the buffer path.
    Buffer,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub mode: Mode,
    pub import: ImportPreference,
    /// Number of output buffers (2..=8).
    pub ring: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Dmabuf,
            import: ImportPreference::Auto,
            ring: 3,
        }
    }
}

/// Counters for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames processed.
    pub frames: u64,
    /// Camera buffers imported (one per buffer index, again only if the buffer behind an index changed).
    pub imports: u64,
    /// `vkAllocateMemory` calls that imported a dma-buf fd.
    pub memory_imports: u64,
    /// Imports currently cached.
    pub live_imports: usize,
    /// Bytes the CPU copied to get frames to or from the GPU (0 on the dma-buf path).
    pub cpu_bytes_copied: u64,
}

/// A frame in CPU memory, for [`Renderer::process_host`].
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

/// Pipeline objects shared by the renderer, its imports and its output slots.
struct Shared {
    gpu: Arc<Gpu>,
    set0_layout: vk::DescriptorSetLayout,
    set1_layout: vk::DescriptorSetLayout,
    pipeline_layout: vk::PipelineLayout,
    pipeline: vk::Pipeline,
    desc_pool: vk::DescriptorPool,
    cmd_pool: vk::CommandPool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let d = &self.gpu.device;
        // SAFETY: every import and output slot holds an `Arc<Shared>`, so none is alive; the device is idle for
        // all of them (slots wait for their fence before being dropped, the renderer waits for idle).
        unsafe {
            let _ = d.device_wait_idle();
            d.destroy_command_pool(self.cmd_pool, None);
            d.destroy_descriptor_pool(self.desc_pool, None);
            d.destroy_pipeline(self.pipeline, None);
            d.destroy_pipeline_layout(self.pipeline_layout, None);
            d.destroy_descriptor_set_layout(self.set1_layout, None);
            d.destroy_descriptor_set_layout(self.set0_layout, None);
        }
    }
}

/// Push constants, laid out exactly as `Params` in `assets/shaders/convert.wgsl`.
#[derive(Debug, Default)]
struct Params {
    u: [u32; 16],
    f: [f32; 9],
}

impl Params {
    fn bytes(&self) -> Vec<u8> {
        self.u
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .chain(self.f.iter().flat_map(|v| v.to_ne_bytes()))
            .collect()
    }
}

/// One plane as the shader reads it.
#[derive(Debug, Clone)]
struct PlaneRef {
    fd: Arc<OwnedFd>,
    offset: u32,
    stride: u32,
    row_bytes: u32,
    rows: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ImportKey {
    fourcc: Fourcc,
    width: u32,
    height: u32,
    planes: Vec<(u64, u64, u32, u32)>,
}

/// A camera buffer imported into Vulkan, kept for as long as its buffer index shows the same dma-bufs.
struct Imported {
    shared: Arc<Shared>,
    key: ImportKey,
    memories: Vec<vk::DeviceMemory>,
    buffers: Vec<vk::Buffer>,
    images: Vec<vk::Image>,
    views: Vec<vk::ImageView>,
    set: vk::DescriptorSet,
    /// Per shader plane: the plane offset and stride (buffer path) — the image path carries them in the image.
    planes: Vec<(u32, u32)>,
    used: bool,
    /// Inodes of the dma-bufs imported (one per distinct dma-buf, in plane order): what the trace reports.
    inodes: Vec<u64>,
}

impl Imported {
    /// `vkAllocateMemory` imports this buffer needed.
    fn memory_imports(&self) -> u64 {
        self.memories.len() as u64
    }
}

impl Drop for Imported {
    fn drop(&mut self) {
        let d = &self.shared.gpu.device;
        // SAFETY: imports are dropped only by the renderer, between frames (every submitted frame has been
        // waited for), so the GPU no longer uses these objects; the descriptor pool allows freeing sets and is
        // only used from the renderer.
        unsafe {
            if self.set != vk::DescriptorSet::null() {
                let _ = d.free_descriptor_sets(self.shared.desc_pool, &[self.set]);
            }
            for &v in &self.views {
                d.destroy_image_view(v, None);
            }
            for &i in &self.images {
                d.destroy_image(i, None);
            }
            for &b in &self.buffers {
                d.destroy_buffer(b, None);
            }
            for &m in &self.memories {
                d.free_memory(m, None);
            }
        }
    }
}

/// A mapped pointer into Vulkan memory owned by an [`OutputSlot`] or the upload buffer.
struct MappedPtr(*mut u8);
// SAFETY: the pointer is to memory owned by the object holding it and only read through `&self` after the
// frame's fence has signalled.
unsafe impl Send for MappedPtr {}
// SAFETY: as above.
unsafe impl Sync for MappedPtr {}

/// One buffer of the output ring.
struct OutputSlot {
    shared: Arc<Shared>,
    index: usize,
    width: u32,
    height: u32,
    stride: u32,
    size: u64,
    buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    mapped: Option<MappedPtr>,
    dmabuf: Option<Dmabuf>,
    set: vk::DescriptorSet,
    cmd: vk::CommandBuffer,
    fence: vk::Fence,
    in_use: AtomicBool,
    used: AtomicBool,
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
/// from). The output buffer is not reused until this value is dropped, so keep it until the consumer
/// (compositor, KMS, file writer) has released the buffer.
pub struct OutputFrame {
    slot: Arc<OutputSlot>,
    seq: u64,
}

impl OutputFrame {
    /// The exported dma-buf (fd, offset 0, stride, LINEAR) — `None` in [`Mode::HostMemory`].
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
        let p = self.slot.mapped.as_ref()?;
        // SAFETY: the mapping covers `size` bytes of memory owned by the slot, which this frame keeps alive;
        // the frame's fence has signalled and a host-read barrier was recorded, and the GPU does not write the
        // slot again until this frame is dropped.
        Some(unsafe { std::slice::from_raw_parts(p.0, self.slot.size as usize) })
    }
}

impl Drop for OutputFrame {
    fn drop(&mut self) {
        self.slot.in_use.store(false, Ordering::Release);
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

/// CPU staging memory for [`Renderer::process_host`].
struct Upload {
    shared: Arc<Shared>,
    buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    size: u64,
    ptr: MappedPtr,
    set: vk::DescriptorSet,
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

/// The render stage.
pub struct Renderer {
    // Field order is drop order: imports and slots before the pipeline objects they reference.
    imports: HashMap<u32, Imported>,
    upload: Option<Upload>,
    slots: Vec<Arc<OutputSlot>>,
    shared: Arc<Shared>,
    path: ImportPath,
    path_reason: String,
    mode: Mode,
    ring: usize,
    stats: Stats,
}

impl Renderer {
    /// Sets up the device, the compute pipeline for the chosen import path, and (lazily, at the first frame's
    /// size) the output ring.
    pub fn new(opts: Options) -> Result<Self, RenderError> {
        let gpu = Gpu::new(opts.mode == Mode::Dmabuf)?;
        let (path, path_reason) = choose_path(&gpu, opts)?;
        tracing::info!(path = path.name(), reason = %path_reason, "render import path");
        let shared = Arc::new(create_pipeline(gpu, path)?);
        Ok(Renderer {
            imports: HashMap::new(),
            upload: None,
            slots: vec![],
            shared,
            path,
            path_reason,
            mode: opts.mode,
            ring: opts.ring.clamp(2, 8),
            stats: Stats::default(),
        })
    }

    /// The import path in use.
    pub fn import_path(&self) -> ImportPath {
        self.path
    }

    /// Why that path was chosen (for `dmacam list --pipeline` and logs).
    pub fn import_path_reason(&self) -> &str {
        &self.path_reason
    }

    /// The inodes of the dma-bufs imported for camera buffer `index` (one per distinct dma-buf, in plane
    /// order; Vulkan holds a dup of each), if that buffer is imported.
    pub fn import_inodes(&self, index: u32) -> Option<&[u64]> {
        self.imports.get(&index).map(|i| i.inodes.as_slice())
    }

    pub fn device_name(&self) -> &str {
        &self.shared.gpu.name
    }

    pub fn driver_name(&self) -> &str {
        &self.shared.gpu.driver
    }

    pub fn caps(&self) -> crate::Caps {
        self.shared.gpu.caps
    }

    pub fn stats(&self) -> Stats {
        Stats {
            live_imports: self.imports.len(),
            ..self.stats
        }
    }

    /// Converts and processes a camera frame read in place from its dma-buf(s). `index` is the V4L2 buffer
    /// index: the first frame on an index imports its planes (dup'd fds, once), later frames reuse the import.
    /// When this returns, the GPU has finished reading `frame`, so its buffer may be queued to V4L2 again.
    pub fn process(
        &mut self,
        frame: &Dmabuf,
        index: u32,
        colour: Colorimetry,
        spec: &ProcessSpec,
    ) -> Result<OutputFrame, RenderError> {
        if self.mode != Mode::Dmabuf {
            return Err(RenderError::HostOnly);
        }
        if index >= MAX_IMPORTS {
            return Err(RenderError::TooManyBuffers {
                index,
                max: MAX_IMPORTS,
            });
        }
        let format = SourceFormat::require(frame.fourcc)?;
        let planes = plane_refs(frame, format)?;
        let (out_w, out_h) = spec.output_size(frame.width, frame.height)?;
        let key = import_key(frame, &planes)?;
        if self.imports.get(&index).is_some_and(|i| i.key != key) {
            tracing::debug!(
                index,
                "buffer index now holds different dma-bufs; importing again"
            );
            self.imports.remove(&index);
        }
        if !self.imports.contains_key(&index) {
            let imported = self.import(frame.fourcc, &planes, key)?;
            self.stats.imports += 1;
            self.stats.memory_imports += imported.memory_imports();
            self.imports.insert(index, imported);
        }
        let slot = self.acquire_slot(out_w, out_h)?;
        let imported = self.imports.get_mut(&index).expect("inserted above");
        let first_use = !imported.used;
        imported.used = true;
        let params = make_params(
            frame.width,
            frame.height,
            format,
            &imported.planes,
            colour,
            spec,
            &slot,
        )?;
        let input = InputBinding {
            set: imported.set,
            buffers: imported.buffers.clone(),
            images: imported.images.clone(),
            first_use,
            external: true,
        };
        let seq = self.stats.frames;
        self.submit(&slot, &input, &params, seq)?;
        self.stats.frames += 1;
        Ok(OutputFrame { slot, seq })
    }

    /// Like [`Self::process`] for a frame in CPU memory: the planes are copied into a staging buffer (counted
    /// in [`Stats::cpu_bytes_copied`]) and run through the same shader as the storage-buffer import path.
    pub fn process_host(
        &mut self,
        frame: &HostFrame<'_>,
        colour: Colorimetry,
        spec: &ProcessSpec,
    ) -> Result<OutputFrame, RenderError> {
        if self.path != ImportPath::StorageBuffer {
            return Err(RenderError::PathUnavailable {
                path: "host upload",
                device: self.shared.gpu.name.clone(),
                reason: "host frames use the storage-buffer shader; create the renderer with ImportPreference::Buffer"
                    .into(),
            });
        }
        let format = SourceFormat::require(frame.fourcc)?;
        let bad = |reason: String| RenderError::BadFrame {
            fourcc: frame.fourcc,
            width: frame.width,
            height: frame.height,
            reason,
        };
        if frame.planes.len() != format.planes() {
            return Err(bad(format!(
                "{} planes given, the format has {}",
                frame.planes.len(),
                format.planes()
            )));
        }
        let mut layout = vec![];
        let mut total = 0u64;
        for (i, p) in frame.planes.iter().enumerate() {
            let (row_bytes, rows) = format.plane_extent(i, frame.width, frame.height);
            if p.stride < row_bytes {
                return Err(bad(format!(
                    "plane {i} stride {} is below its row size {row_bytes}",
                    p.stride
                )));
            }
            let need = p.stride as u64 * (rows as u64 - 1) + row_bytes as u64;
            if (p.data.len() as u64) < need {
                return Err(bad(format!(
                    "plane {i} has {} bytes, needs {need}",
                    p.data.len()
                )));
            }
            layout.push((total as u32, p.stride));
            total = (total + p.data.len() as u64).next_multiple_of(4);
        }
        let (out_w, out_h) = spec.output_size(frame.width, frame.height)?;
        self.ensure_upload(total.max(4))?;
        let upload = self.upload.as_ref().expect("ensured");
        for (p, &(off, _)) in frame.planes.iter().zip(&layout) {
            // SAFETY: the staging mapping is `upload.size >= total` bytes; each plane lands in its own range
            // [off, off + len) within `total`; the GPU is not using the buffer (every frame is waited for).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    p.data.as_ptr(),
                    upload.ptr.0.add(off as usize),
                    p.data.len(),
                )
            };
            self.stats.cpu_bytes_copied += p.data.len() as u64;
        }
        let set = upload.set;
        let buffer = upload.buffer;
        let slot = self.acquire_slot(out_w, out_h)?;
        let params = make_params(
            frame.width,
            frame.height,
            format,
            &layout,
            colour,
            spec,
            &slot,
        )?;
        let input = InputBinding {
            set,
            buffers: vec![buffer],
            images: vec![],
            first_use: false,
            external: false,
        };
        let seq = self.stats.frames;
        self.submit(&slot, &input, &params, seq)?;
        if slot.dmabuf.is_none() {
            // Reading the result back through the Vulkan mapping is a copy too (done by the caller).
            self.stats.cpu_bytes_copied += slot.size;
        }
        self.stats.frames += 1;
        Ok(OutputFrame { slot, seq })
    }

    /// Drops every cached import (e.g. after the capture stage re-allocated its buffers).
    pub fn forget_imports(&mut self) {
        self.imports.clear();
    }

    fn ensure_upload(&mut self, size: u64) -> Result<(), RenderError> {
        if self.upload.as_ref().is_some_and(|u| u.size >= size) {
            return Ok(());
        }
        self.upload = None;
        let sh = &self.shared;
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
        let memory = unsafe { d.allocate_memory(&alloc, None) }
            .map_err(vkerr("vkAllocateMemory (upload)"))?;
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
        write_buffer_set(sh, set, &[buffer, buffer]);
        guard.defuse();
        mguard.defuse();
        self.upload = Some(Upload {
            shared: sh.clone(),
            buffer,
            memory,
            size,
            ptr: MappedPtr(ptr.cast()),
            set,
        });
        Ok(())
    }

    /// A free output slot of the given size; the ring is (re)built when the size changes.
    fn acquire_slot(&mut self, width: u32, height: u32) -> Result<Arc<OutputSlot>, RenderError> {
        let fits = self
            .slots
            .first()
            .is_some_and(|s| s.width == width && s.height == height);
        if !fits {
            if self.slots.iter().any(|s| Arc::strong_count(s) > 1) {
                return Err(RenderError::RingExhausted {
                    ring: self.slots.len(),
                });
            }
            self.drop_slots();
            for i in 0..self.ring {
                let slot = create_slot(&self.shared, i, width, height, self.mode == Mode::Dmabuf)?;
                self.slots.push(Arc::new(slot));
            }
        }
        for s in &self.slots {
            if s.in_use
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(s.clone());
            }
        }
        Err(RenderError::RingExhausted {
            ring: self.slots.len(),
        })
    }

    fn drop_slots(&mut self) {
        let d = &self.shared.gpu.device;
        for s in self.slots.drain(..) {
            // SAFETY: no frame holds the slot (checked by the caller), its last submission was waited for, and
            // the pools are only used by the renderer.
            unsafe {
                let _ = d.free_descriptor_sets(self.shared.desc_pool, &[s.set]);
                d.free_command_buffers(self.shared.cmd_pool, &[s.cmd]);
            }
        }
    }

    fn import(
        &self,
        fourcc: Fourcc,
        planes: &[PlaneRef],
        key: ImportKey,
    ) -> Result<Imported, RenderError> {
        let mut imp = Imported {
            shared: self.shared.clone(),
            key,
            memories: vec![],
            buffers: vec![],
            images: vec![],
            views: vec![],
            set: vk::DescriptorSet::null(),
            planes: vec![],
            used: false,
            inodes: vec![],
        };
        let gpu = &self.shared.gpu;
        let ext_fd = gpu.ext_fd.as_ref().ok_or(RenderError::HostOnly)?;
        let d = &gpu.device;
        // Distinct dma-bufs, by inode, in plane order.
        let mut groups: Vec<(u64, Vec<usize>)> = vec![];
        for (i, p) in planes.iter().enumerate() {
            let ino = inode(&p.fd, i)?;
            match groups.iter_mut().find(|g| g.0 == ino) {
                Some(g) => g.1.push(i),
                None => groups.push((ino, vec![i])),
            }
        }
        imp.inodes = groups.iter().map(|g| g.0).collect();
        let rejected = |plane: usize, reason: String| RenderError::ImportRejected {
            plane,
            fourcc,
            reason,
        };
        let vk_import = |plane: usize, what: &'static str| {
            move |source| RenderError::Import {
                plane,
                fourcc,
                what,
                source,
            }
        };
        match self.path {
            ImportPath::StorageBuffer => {
                let mut by_plane = vec![vk::Buffer::null(); planes.len()];
                for (_, members) in &groups {
                    let first = members[0];
                    let fd = &planes[first].fd;
                    let (size, type_bits) = fd_props(ext_fd, fd, first, fourcc)?;
                    for &m in members {
                        check_plane_fits(&planes[m], size).map_err(|r| rejected(m, r))?;
                    }
                    let mut ext = vk::ExternalMemoryBufferCreateInfo::default()
                        .handle_types(vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT);
                    let info = vk::BufferCreateInfo::default()
                        .size(size)
                        .usage(vk::BufferUsageFlags::STORAGE_BUFFER)
                        .sharing_mode(vk::SharingMode::EXCLUSIVE)
                        .push_next(&mut ext);
                    // SAFETY: valid create info; VUID-VkBufferCreateInfo-pNext-00920: DMA_BUF is an external
                    // handle type this device supports (VK_EXT_external_memory_dma_buf is enabled).
                    let buffer = unsafe { d.create_buffer(&info, None) }
                        .map_err(vk_import(first, "vkCreateBuffer"))?;
                    imp.buffers.push(buffer);
                    let mut dedicated = vk::MemoryDedicatedRequirements::default();
                    let mut reqs2 = vk::MemoryRequirements2::default().push_next(&mut dedicated);
                    let rinfo = vk::BufferMemoryRequirementsInfo2::default().buffer(buffer);
                    // SAFETY: `buffer` is live; the chained struct outlives the call.
                    unsafe { d.get_buffer_memory_requirements2(&rinfo, &mut reqs2) };
                    let reqs = reqs2.memory_requirements;
                    let dedicated_needed = dedicated.requires_dedicated_allocation == vk::TRUE
                        || dedicated.prefers_dedicated_allocation == vk::TRUE;
                    let memory = import_memory(
                        gpu,
                        fd,
                        size,
                        reqs,
                        type_bits,
                        dedicated_needed.then_some(Dedicated::Buffer(buffer)),
                    )
                    .map_err(|e| e.at(first, fourcc))?;
                    imp.memories.push(memory);
                    // SAFETY: both live; the memory type was chosen from the buffer's requirements.
                    unsafe { d.bind_buffer_memory(buffer, memory, 0) }
                        .map_err(vk_import(first, "vkBindBufferMemory"))?;
                    for &m in members {
                        by_plane[m] = buffer;
                    }
                }
                imp.planes = planes.iter().map(|p| (p.offset, p.stride)).collect();
                let set = alloc_set(&self.shared, self.shared.set0_layout)?;
                imp.set = set;
                let b1 = *by_plane.get(1).unwrap_or(&by_plane[0]);
                write_buffer_set(&self.shared, set, &[by_plane[0], b1]);
            }
            ImportPath::ImageDrmModifier => {
                let mut views = vec![];
                for (_, members) in &groups {
                    let first = members[0];
                    let fd = &planes[first].fd;
                    let (size, mut type_bits) = fd_props(ext_fd, fd, first, fourcc)?;
                    let mut imgs = vec![];
                    let mut any_dedicated = false;
                    let mut need = 0u64;
                    for &m in members {
                        let p = &planes[m];
                        check_plane_fits(p, size).map_err(|r| rejected(m, r))?;
                        let layouts = [vk::SubresourceLayout {
                            offset: p.offset as u64,
                            size: 0,
                            row_pitch: p.stride as u64,
                            array_pitch: 0,
                            depth_pitch: 0,
                        }];
                        let mut explicit =
                            vk::ImageDrmFormatModifierExplicitCreateInfoEXT::default()
                                .drm_format_modifier(DRM_FORMAT_MOD_LINEAR)
                                .plane_layouts(&layouts);
                        let mut ext = vk::ExternalMemoryImageCreateInfo::default()
                            .handle_types(vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT);
                        let info = vk::ImageCreateInfo::default()
                            .image_type(vk::ImageType::TYPE_2D)
                            .format(vk::Format::R8_UINT)
                            .extent(vk::Extent3D {
                                width: p.row_bytes,
                                height: p.rows,
                                depth: 1,
                            })
                            .mip_levels(1)
                            .array_layers(1)
                            .samples(vk::SampleCountFlags::TYPE_1)
                            // VUID-VkImageCreateInfo-tiling-02261: DRM_FORMAT_MODIFIER_EXT with an explicit
                            // modifier struct chained.
                            .tiling(vk::ImageTiling::DRM_FORMAT_MODIFIER_EXT)
                            .usage(vk::ImageUsageFlags::SAMPLED)
                            .sharing_mode(vk::SharingMode::EXCLUSIVE)
                            // VUID-VkImageCreateInfo-pNext-01443: external memory images start UNDEFINED.
                            .initial_layout(vk::ImageLayout::UNDEFINED)
                            .push_next(&mut ext)
                            .push_next(&mut explicit);
                        // SAFETY: valid create info; the format/modifier/handle type combination was checked
                        // importable when the path was chosen.
                        let image = unsafe { d.create_image(&info, None) }
                            .map_err(vk_import(m, "vkCreateImage"))?;
                        imp.images.push(image);
                        let mut dedicated = vk::MemoryDedicatedRequirements::default();
                        let mut reqs2 =
                            vk::MemoryRequirements2::default().push_next(&mut dedicated);
                        let rinfo = vk::ImageMemoryRequirementsInfo2::default().image(image);
                        // SAFETY: `image` is live; the chained struct outlives the call.
                        unsafe { d.get_image_memory_requirements2(&rinfo, &mut reqs2) };
                        let reqs = reqs2.memory_requirements;
                        if reqs.size > size {
                            return Err(rejected(
                                m,
                                format!(
                                    "the image needs {} bytes, the dma-buf has {size}",
                                    reqs.size
                                ),
                            ));
                        }
                        any_dedicated |= dedicated.requires_dedicated_allocation == vk::TRUE;
                        type_bits &= reqs.memory_type_bits;
                        need = need.max(reqs.size);
                        imgs.push((m, image, reqs));
                    }
                    if any_dedicated || imgs.len() == 1 {
                        // One import per image (each import dup's the fd again).
                        for &(m, image, reqs) in &imgs {
                            let ded = any_dedicated.then_some(Dedicated::Image(image));
                            let memory = import_memory(gpu, fd, size, reqs, type_bits, ded)
                                .map_err(|e| e.at(m, fourcc))?;
                            imp.memories.push(memory);
                            // SAFETY: both live; the memory type fits the image's requirements.
                            unsafe { d.bind_image_memory(image, memory, 0) }
                                .map_err(vk_import(m, "vkBindImageMemory"))?;
                        }
                    } else {
                        let reqs = vk::MemoryRequirements {
                            size: need,
                            alignment: 1,
                            memory_type_bits: type_bits,
                        };
                        let memory = import_memory(gpu, fd, size, reqs, type_bits, None)
                            .map_err(|e| e.at(first, fourcc))?;
                        imp.memories.push(memory);
                        for &(m, image, _) in &imgs {
                            // SAFETY: both live; the memory type fits every image sharing it; the images alias
                            // the same dma-buf at their own plane offsets and are only read.
                            unsafe { d.bind_image_memory(image, memory, 0) }
                                .map_err(vk_import(m, "vkBindImageMemory"))?;
                        }
                    }
                    for &(m, image, _) in &imgs {
                        let vinfo = vk::ImageViewCreateInfo::default()
                            .image(image)
                            .view_type(vk::ImageViewType::TYPE_2D)
                            .format(vk::Format::R8_UINT)
                            .subresource_range(color_range());
                        // SAFETY: `image` is live and bound.
                        let view = unsafe { d.create_image_view(&vinfo, None) }
                            .map_err(vk_import(m, "vkCreateImageView"))?;
                        imp.views.push(view);
                        views.push((m, view));
                    }
                }
                views.sort_by_key(|v| v.0);
                // Images are recorded in plane order for the barriers.
                let mut order: Vec<vk::Image> = vec![];
                for v in &views {
                    let idx = imp
                        .views
                        .iter()
                        .position(|x| *x == v.1)
                        .expect("view recorded");
                    order.push(imp.images[idx]);
                }
                imp.images = order;
                imp.planes = planes.iter().map(|p| (p.offset, p.stride)).collect();
                let set = alloc_set(&self.shared, self.shared.set0_layout)?;
                imp.set = set;
                let v1 = views.get(1).map(|v| v.1).unwrap_or(views[0].1);
                let infos = [
                    [vk::DescriptorImageInfo::default()
                        .image_view(views[0].1)
                        .image_layout(vk::ImageLayout::GENERAL)],
                    [vk::DescriptorImageInfo::default()
                        .image_view(v1)
                        .image_layout(vk::ImageLayout::GENERAL)],
                ];
                let writes = [0u32, 1].map(|b| {
                    vk::WriteDescriptorSet::default()
                        .dst_set(set)
                        .dst_binding(b)
                        .descriptor_type(vk::DescriptorType::SAMPLED_IMAGE)
                        .image_info(&infos[b as usize])
                });
                // SAFETY: the set and views are live; the set is not in use by any submission.
                unsafe { d.update_descriptor_sets(&writes, &[]) };
            }
        }
        Ok(imp)
    }

    fn submit(
        &mut self,
        slot: &OutputSlot,
        input: &InputBinding,
        params: &Params,
        seq: u64,
    ) -> Result<(), RenderError> {
        let sh = &self.shared;
        let d = &sh.gpu.device;
        let ours = sh.gpu.family;
        let foreign = sh.gpu.external_family();
        let cmd = slot.cmd;
        let begin = vk::CommandBufferBeginInfo::default()
            .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
        let input_barriers = |acquire: bool| -> (
            Vec<vk::BufferMemoryBarrier<'static>>,
            Vec<vk::ImageMemoryBarrier<'static>>,
        ) {
            if !input.external {
                return (vec![], vec![]);
            }
            let (src, dst) = if acquire {
                (foreign, ours)
            } else {
                (ours, foreign)
            };
            let access = if acquire {
                vk::AccessFlags::SHADER_READ
            } else {
                vk::AccessFlags::empty()
            };
            let (src_access, dst_access) = if acquire {
                (vk::AccessFlags::empty(), access)
            } else {
                (vk::AccessFlags::SHADER_READ, vk::AccessFlags::empty())
            };
            let bufs = input
                .buffers
                .iter()
                .map(|&b| {
                    vk::BufferMemoryBarrier::default()
                        .buffer(b)
                        .size(vk::WHOLE_SIZE)
                        .src_queue_family_index(src)
                        .dst_queue_family_index(dst)
                        .src_access_mask(src_access)
                        .dst_access_mask(dst_access)
                })
                .collect();
            let old = if acquire && input.first_use {
                vk::ImageLayout::UNDEFINED
            } else {
                vk::ImageLayout::GENERAL
            };
            let imgs = input
                .images
                .iter()
                .map(|&i| {
                    vk::ImageMemoryBarrier::default()
                        .image(i)
                        .subresource_range(color_range())
                        .old_layout(old)
                        .new_layout(vk::ImageLayout::GENERAL)
                        .src_queue_family_index(src)
                        .dst_queue_family_index(dst)
                        .src_access_mask(src_access)
                        .dst_access_mask(dst_access)
                })
                .collect();
            (bufs, imgs)
        };
        let exported = slot.dmabuf.is_some();
        let first_out = !slot.used.swap(true, Ordering::AcqRel);
        // SAFETY: the command buffer belongs to this slot, which this renderer holds exclusively (in_use), and
        // its previous submission was waited for; every handle recorded is live until the fence is waited below.
        unsafe {
            d.reset_command_buffer(cmd, vk::CommandBufferResetFlags::empty())
                .map_err(vkerr("vkResetCommandBuffer"))?;
            d.begin_command_buffer(cmd, &begin)
                .map_err(vkerr("vkBeginCommandBuffer"))?;
            let (mut bufs, imgs) = input_barriers(true);
            if exported && !first_out {
                // Take the output back from its consumer.
                bufs.push(
                    vk::BufferMemoryBarrier::default()
                        .buffer(slot.buffer)
                        .size(vk::WHOLE_SIZE)
                        .src_queue_family_index(foreign)
                        .dst_queue_family_index(ours)
                        .dst_access_mask(vk::AccessFlags::SHADER_WRITE),
                );
            }
            if !bufs.is_empty() || !imgs.is_empty() {
                d.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::TOP_OF_PIPE,
                    vk::PipelineStageFlags::COMPUTE_SHADER,
                    vk::DependencyFlags::empty(),
                    &[],
                    &bufs,
                    &imgs,
                );
            }
            d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, sh.pipeline);
            d.cmd_bind_descriptor_sets(
                cmd,
                vk::PipelineBindPoint::COMPUTE,
                sh.pipeline_layout,
                0,
                &[input.set, slot.set],
                &[],
            );
            d.cmd_push_constants(
                cmd,
                sh.pipeline_layout,
                vk::ShaderStageFlags::COMPUTE,
                0,
                &params.bytes(),
            );
            d.cmd_dispatch(cmd, slot.width.div_ceil(8), slot.height.div_ceil(8), 1);
            let (mut bufs, imgs) = input_barriers(false);
            if exported {
                // Hand the output to its consumer.
                bufs.push(
                    vk::BufferMemoryBarrier::default()
                        .buffer(slot.buffer)
                        .size(vk::WHOLE_SIZE)
                        .src_queue_family_index(ours)
                        .dst_queue_family_index(foreign)
                        .src_access_mask(vk::AccessFlags::SHADER_WRITE),
                );
            }
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::COMPUTE_SHADER,
                vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                vk::DependencyFlags::empty(),
                &[],
                &bufs,
                &imgs,
            );
            // Make the result visible to CPU reads through the Vulkan mapping too.
            let host = [vk::MemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::SHADER_WRITE)
                .dst_access_mask(vk::AccessFlags::HOST_READ)];
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::COMPUTE_SHADER,
                vk::PipelineStageFlags::HOST,
                vk::DependencyFlags::empty(),
                &host,
                &[],
                &[],
            );
            d.end_command_buffer(cmd)
                .map_err(vkerr("vkEndCommandBuffer"))?;
            let cmds = [cmd];
            let submit = [vk::SubmitInfo::default().command_buffers(&cmds)];
            d.queue_submit(sh.gpu.queue, &submit, slot.fence)
                .map_err(vkerr("vkQueueSubmit"))?;
            let waited = d.wait_for_fences(&[slot.fence], true, FENCE_TIMEOUT_NS);
            match waited {
                Ok(()) => {}
                Err(vk::Result::TIMEOUT) => {
                    return Err(RenderError::Timeout {
                        seq,
                        ms: FENCE_TIMEOUT_NS / 1_000_000,
                    });
                }
                Err(e) => {
                    return Err(RenderError::Vk {
                        what: "vkWaitForFences",
                        source: e,
                    })
                }
            }
            d.reset_fences(&[slot.fence])
                .map_err(vkerr("vkResetFences"))?;
        }
        Ok(())
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        // SAFETY: the device is live (we hold `shared`); waiting makes every submission complete before the
        // imports and slots are destroyed.
        unsafe {
            let _ = self.shared.gpu.device.device_wait_idle();
        }
    }
}

struct InputBinding {
    set: vk::DescriptorSet,
    buffers: Vec<vk::Buffer>,
    images: Vec<vk::Image>,
    first_use: bool,
    external: bool,
}

/// Runs a clean-up closure on drop unless defused (for multi-handle creation).
struct Guard<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Guard<F> {
    fn new(f: F) -> Self {
        Guard(Some(f))
    }
    fn defuse(mut self) {
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

fn color_range() -> vk::ImageSubresourceRange {
    vk::ImageSubresourceRange {
        aspect_mask: vk::ImageAspectFlags::COLOR,
        base_mip_level: 0,
        level_count: 1,
        base_array_layer: 0,
        layer_count: 1,
    }
}

/// The planes the shader reads, from a frame's dma-bufs. A single-buffer NV12 frame may come as one plane;
/// its CbCr plane then follows the Y plane in the same buffer.
fn plane_refs(frame: &Dmabuf, format: SourceFormat) -> Result<Vec<PlaneRef>, RenderError> {
    let bad = |reason: String| RenderError::BadFrame {
        fourcc: frame.fourcc,
        width: frame.width,
        height: frame.height,
        reason,
    };
    if frame.modifier != DRM_FORMAT_MOD_LINEAR {
        return Err(bad(format!(
            "DRM modifier {:#x} is not LINEAR; only LINEAR buffers can be read",
            frame.modifier
        )));
    }
    if frame.width == 0 || frame.height == 0 {
        return Err(bad("empty frame".into()));
    }
    let mut given: Vec<DmabufPlane> = frame.planes.clone();
    if format == SourceFormat::Nv12 && given.len() == 1 {
        let p = &given[0];
        given.push(DmabufPlane {
            fd: p.fd.clone(),
            offset: p.offset + p.stride * frame.height,
            stride: p.stride,
        });
    }
    if given.len() != format.planes() {
        return Err(bad(format!(
            "{} planes given, the format has {}",
            given.len(),
            format.planes()
        )));
    }
    given
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let (row_bytes, rows) = format.plane_extent(i, frame.width, frame.height);
            if p.stride < row_bytes {
                return Err(bad(format!(
                    "plane {i} stride {} is below its row size {row_bytes}",
                    p.stride
                )));
            }
            Ok(PlaneRef {
                fd: p.fd,
                offset: p.offset,
                stride: p.stride,
                row_bytes,
                rows,
            })
        })
        .collect()
}

fn inode(fd: &Arc<OwnedFd>, plane: usize) -> Result<u64, RenderError> {
    nix::sys::stat::fstat(fd.as_raw_fd())
        .map(|st| st.st_ino)
        .map_err(|e| RenderError::Dup {
            plane,
            source: e.into(),
        })
}

fn import_key(frame: &Dmabuf, planes: &[PlaneRef]) -> Result<ImportKey, RenderError> {
    let mut v = vec![];
    for (i, p) in planes.iter().enumerate() {
        let st = nix::sys::stat::fstat(p.fd.as_raw_fd()).map_err(|e| RenderError::Dup {
            plane: i,
            source: e.into(),
        })?;
        v.push((st.st_dev, st.st_ino, p.offset, p.stride));
    }
    Ok(ImportKey {
        fourcc: frame.fourcc,
        width: frame.width,
        height: frame.height,
        planes: v,
    })
}

fn check_plane_fits(p: &PlaneRef, size: u64) -> Result<(), String> {
    let need = p.offset as u64 + p.stride as u64 * (p.rows as u64 - 1) + p.row_bytes as u64;
    if need > size {
        return Err(format!(
            "the plane needs {need} bytes (offset {} + {} rows of stride {}), the dma-buf has only {size}",
            p.offset, p.rows, p.stride
        ));
    }
    Ok(())
}

/// Size of the dma-buf behind `fd` and the memory types it can be imported into.
fn fd_props(
    ext_fd: &ash::khr::external_memory_fd::Device,
    fd: &Arc<OwnedFd>,
    plane: usize,
    fourcc: Fourcc,
) -> Result<(u64, u32), RenderError> {
    let size =
        dmacam_capture::dmabuf::size_of(fd.as_fd()).map_err(|e| RenderError::ImportRejected {
            plane,
            fourcc,
            reason: format!("the fd is not a dma-buf (cannot size it: {e})"),
        })? as u64;
    let mut props = vk::MemoryFdPropertiesKHR::default();
    // SAFETY: `fd` is a live fd; the call only inspects it and does not take ownership.
    unsafe {
        ext_fd.get_memory_fd_properties(
            vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT,
            fd.as_raw_fd(),
            &mut props,
        )
    }
    .map_err(|source| RenderError::Import {
        plane,
        fourcc,
        what: "vkGetMemoryFdPropertiesKHR",
        source,
    })?;
    Ok((size, props.memory_type_bits))
}

enum Dedicated {
    Buffer(vk::Buffer),
    Image(vk::Image),
}

/// An import failure before the plane is known.
struct ImportFailure {
    what: &'static str,
    reason: Result<vk::Result, String>,
}

impl ImportFailure {
    fn at(self, plane: usize, fourcc: Fourcc) -> RenderError {
        match self.reason {
            Ok(source) => RenderError::Import {
                plane,
                fourcc,
                what: self.what,
                source,
            },
            Err(reason) => RenderError::ImportRejected {
                plane,
                fourcc,
                reason,
            },
        }
    }
}

/// Imports the dma-buf behind `fd` (dup'd: a successful import owns the duplicate).
fn import_memory(
    gpu: &Gpu,
    fd: &Arc<OwnedFd>,
    size: u64,
    reqs: vk::MemoryRequirements,
    fd_type_bits: u32,
    dedicated: Option<Dedicated>,
) -> Result<vk::DeviceMemory, ImportFailure> {
    if reqs.size > size {
        return Err(ImportFailure {
            what: "size check",
            reason: Err(format!(
                "Vulkan needs {} bytes, the dma-buf has {size}",
                reqs.size
            )),
        });
    }
    let bits = reqs.memory_type_bits & fd_type_bits;
    let ty = gpu
        .memory_type(bits, vk::MemoryPropertyFlags::empty())
        .ok_or(ImportFailure {
            what: "memory type",
            reason: Err(format!(
                "no memory type fits both the resource ({:#x}) and the dma-buf ({fd_type_bits:#x})",
                reqs.memory_type_bits
            )),
        })?;
    let dup = fd.try_clone().map_err(|e| ImportFailure {
        what: "dup",
        reason: Err(format!("cannot duplicate the fd: {e}")),
    })?;
    let mut import = vk::ImportMemoryFdInfoKHR::default()
        .handle_type(vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT)
        .fd(dup.as_raw_fd());
    let mut ded = vk::MemoryDedicatedAllocateInfo::default();
    match dedicated {
        Some(Dedicated::Buffer(b)) => ded = ded.buffer(b),
        Some(Dedicated::Image(i)) => ded = ded.image(i),
        None => {}
    }
    let mut info = vk::MemoryAllocateInfo::default()
        .allocation_size(size)
        .memory_type_index(ty)
        .push_next(&mut import);
    if dedicated.is_some() {
        info = info.push_next(&mut ded);
    }
    // SAFETY: valid allocate info; the fd is a dma-buf (sized above) whose memory types include `ty`
    // (VUID-VkImportMemoryFdInfoKHR-handleType-00670). On success Vulkan owns the fd (released below).
    let memory = unsafe { gpu.device.allocate_memory(&info, None) }.map_err(|e| ImportFailure {
        what: "vkAllocateMemory (dma-buf import)",
        reason: Ok(e),
    })?;
    // The driver owns the duplicate now: forget it without closing.
    let _ = dup.into_raw_fd();
    Ok(memory)
}

fn alloc_set(
    sh: &Shared,
    layout: vk::DescriptorSetLayout,
) -> Result<vk::DescriptorSet, RenderError> {
    let layouts = [layout];
    let info = vk::DescriptorSetAllocateInfo::default()
        .descriptor_pool(sh.desc_pool)
        .set_layouts(&layouts);
    // SAFETY: pool and layout are live; the pool is used only from the renderer.
    let sets = unsafe { sh.gpu.device.allocate_descriptor_sets(&info) }
        .map_err(vkerr("vkAllocateDescriptorSets"))?;
    Ok(sets[0])
}

fn write_buffer_set(sh: &Shared, set: vk::DescriptorSet, buffers: &[vk::Buffer]) {
    let infos: Vec<[vk::DescriptorBufferInfo; 1]> = buffers
        .iter()
        .map(|&b| {
            [vk::DescriptorBufferInfo::default()
                .buffer(b)
                .range(vk::WHOLE_SIZE)]
        })
        .collect();
    let writes: Vec<vk::WriteDescriptorSet> = infos
        .iter()
        .enumerate()
        .map(|(i, info)| {
            vk::WriteDescriptorSet::default()
                .dst_set(set)
                .dst_binding(i as u32)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .buffer_info(info)
        })
        .collect();
    // SAFETY: set and buffers are live; the set is not used by a pending submission.
    unsafe { sh.gpu.device.update_descriptor_sets(&writes, &[]) };
}

fn make_params(
    width: u32,
    height: u32,
    format: SourceFormat,
    planes: &[(u32, u32)],
    colour: Colorimetry,
    spec: &ProcessSpec,
    slot: &OutputSlot,
) -> Result<Params, RenderError> {
    let crop = spec.crop_rect(width, height)?;
    let turns = spec.rotate.quarter_turns();
    let (sw, sh) = if turns % 2 == 1 {
        (slot.height, slot.width)
    } else {
        (slot.width, slot.height)
    };
    let transform = turns
        | (spec.mirror_x as u32) << 2
        | (spec.mirror_y as u32) << 3
        | ((spec.filter == Filter::Bilinear) as u32) << 4;
    let c = colour_params(colour);
    let (off1, stride1) = planes.get(1).copied().unwrap_or(planes[0]);
    Ok(Params {
        u: [
            format.shader_id(),
            width,
            height,
            planes[0].0,
            planes[0].1,
            off1,
            stride1,
            slot.width,
            slot.height,
            slot.stride / 4,
            crop.x,
            crop.y,
            crop.width,
            crop.height,
            transform,
            format.is_yuv() as u32,
        ],
        f: [
            c.y_off,
            c.y_scale,
            c.c_scale,
            c.cr_r,
            c.cb_g,
            c.cr_g,
            c.cb_b,
            crop.width as f32 / sw as f32,
            crop.height as f32 / sh as f32,
        ],
    })
}

/// Picks the import path and says why.
fn choose_path(gpu: &Gpu, opts: Options) -> Result<(ImportPath, String), RenderError> {
    if opts.mode == Mode::HostMemory {
        if opts.import == ImportPreference::Image {
            return Err(RenderError::PathUnavailable {
                path: "image-drm-modifier",
                device: gpu.name.clone(),
                reason: "host-memory mode uploads into storage buffers".into(),
            });
        }
        return Ok((
            ImportPath::StorageBuffer,
            "host-memory mode: frames are uploaded into storage buffers".into(),
        ));
    }
    let image = image_path_support(gpu);
    match (opts.import, image) {
        (ImportPreference::Buffer, _) => Ok((ImportPath::StorageBuffer, "storage-buffer import requested".into())),
        (_, Ok(())) => Ok((
            ImportPath::ImageDrmModifier,
            "VK_EXT_image_drm_format_modifier offers LINEAR R8_UINT images importable from dma-bufs".into(),
        )),
        (ImportPreference::Image, Err(reason)) => Err(RenderError::PathUnavailable {
            path: "image-drm-modifier",
            device: gpu.name.clone(),
            reason,
        }),
        (ImportPreference::Auto, Err(reason)) => Ok((ImportPath::StorageBuffer, format!("storage-buffer import: {reason}"))),
    }
}

/// Whether LINEAR `R8_UINT` images can be imported from dma-bufs and sampled.
fn image_path_support(gpu: &Gpu) -> Result<(), String> {
    if !gpu.caps.drm_modifier || gpu.drm_mod.is_none() {
        return Err("the device does not offer VK_EXT_image_drm_format_modifier".into());
    }
    let mut mods = vec![vk::DrmFormatModifierPropertiesEXT::default(); 64];
    let mut list =
        vk::DrmFormatModifierPropertiesListEXT::default().drm_format_modifier_properties(&mut mods);
    let mut fp = vk::FormatProperties2::default().push_next(&mut list);
    // SAFETY: `pd` belongs to the instance; the chained list points to `mods`, which outlives the call.
    unsafe {
        gpu.instance
            .get_physical_device_format_properties2(gpu.pd, vk::Format::R8_UINT, &mut fp)
    };
    let count = list.drm_format_modifier_count as usize;
    let linear = mods[..count.min(mods.len())]
        .iter()
        .find(|m| m.drm_format_modifier == DRM_FORMAT_MOD_LINEAR);
    match linear {
        Some(m)
            if m.drm_format_modifier_tiling_features
                .contains(vk::FormatFeatureFlags::SAMPLED_IMAGE) => {}
        Some(_) => return Err("R8_UINT with the LINEAR modifier cannot be sampled".into()),
        None => return Err("R8_UINT is not offered with the LINEAR DRM modifier".into()),
    }
    let mut mod_info = vk::PhysicalDeviceImageDrmFormatModifierInfoEXT::default()
        .drm_format_modifier(DRM_FORMAT_MOD_LINEAR)
        .sharing_mode(vk::SharingMode::EXCLUSIVE);
    let mut ext_info = vk::PhysicalDeviceExternalImageFormatInfo::default()
        .handle_type(vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT);
    let info = vk::PhysicalDeviceImageFormatInfo2::default()
        .format(vk::Format::R8_UINT)
        .ty(vk::ImageType::TYPE_2D)
        .tiling(vk::ImageTiling::DRM_FORMAT_MODIFIER_EXT)
        .usage(vk::ImageUsageFlags::SAMPLED)
        .push_next(&mut mod_info)
        .push_next(&mut ext_info);
    let mut ext_props = vk::ExternalImageFormatProperties::default();
    let mut props = vk::ImageFormatProperties2::default().push_next(&mut ext_props);
    // SAFETY: valid query structs that outlive the call.
    unsafe {
        gpu.instance
            .get_physical_device_image_format_properties2(gpu.pd, &info, &mut props)
    }
    .map_err(|e| format!("LINEAR R8_UINT images with dma-buf memory are not supported ({e})"))?;
    let max = props.image_format_properties.max_extent;
    let feats = ext_props
        .external_memory_properties
        .external_memory_features;
    if !feats.contains(vk::ExternalMemoryFeatureFlags::IMPORTABLE) {
        return Err("LINEAR R8_UINT images cannot import dma-bufs".into());
    }
    if max.width < 8192 {
        return Err(format!(
            "LINEAR R8_UINT images are limited to {} bytes per row",
            max.width
        ));
    }
    Ok(())
}

fn create_pipeline(gpu: Arc<Gpu>, path: ImportPath) -> Result<Shared, RenderError> {
    let d = &gpu.device;
    let input_type = match path {
        ImportPath::StorageBuffer => vk::DescriptorType::STORAGE_BUFFER,
        ImportPath::ImageDrmModifier => vk::DescriptorType::SAMPLED_IMAGE,
    };
    let b0 = [0u32, 1].map(|b| {
        vk::DescriptorSetLayoutBinding::default()
            .binding(b)
            .descriptor_type(input_type)
            .descriptor_count(1)
            .stage_flags(vk::ShaderStageFlags::COMPUTE)
    });
    let b1 = [vk::DescriptorSetLayoutBinding::default()
        .binding(0)
        .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
        .descriptor_count(1)
        .stage_flags(vk::ShaderStageFlags::COMPUTE)];
    let spv = match path {
        ImportPath::StorageBuffer => SPV_BUFFER,
        ImportPath::ImageDrmModifier => SPV_IMAGE,
    };
    let code =
        ash::util::read_spv(&mut Cursor::new(spv)).expect("build.rs wrote whole SPIR-V words");
    // SAFETY: (whole block) plain object creation with valid create infos that outlive each call; on failure,
    // everything created so far is destroyed by the `Shared` drop (null handles are ignored by Vulkan).
    unsafe {
        let mut sh = Shared {
            gpu: gpu.clone(),
            set0_layout: vk::DescriptorSetLayout::null(),
            set1_layout: vk::DescriptorSetLayout::null(),
            pipeline_layout: vk::PipelineLayout::null(),
            pipeline: vk::Pipeline::null(),
            desc_pool: vk::DescriptorPool::null(),
            cmd_pool: vk::CommandPool::null(),
        };
        sh.set0_layout = d
            .create_descriptor_set_layout(
                &vk::DescriptorSetLayoutCreateInfo::default().bindings(&b0),
                None,
            )
            .map_err(vkerr("vkCreateDescriptorSetLayout"))?;
        sh.set1_layout = d
            .create_descriptor_set_layout(
                &vk::DescriptorSetLayoutCreateInfo::default().bindings(&b1),
                None,
            )
            .map_err(vkerr("vkCreateDescriptorSetLayout"))?;
        let set_layouts = [sh.set0_layout, sh.set1_layout];
        let push = [vk::PushConstantRange::default()
            .stage_flags(vk::ShaderStageFlags::COMPUTE)
            .offset(0)
            .size(Params::default().bytes().len() as u32)];
        sh.pipeline_layout = d
            .create_pipeline_layout(
                &vk::PipelineLayoutCreateInfo::default()
                    .set_layouts(&set_layouts)
                    .push_constant_ranges(&push),
                None,
            )
            .map_err(vkerr("vkCreatePipelineLayout"))?;
        let module = d
            .create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&code), None)
            .map_err(vkerr("vkCreateShaderModule"))?;
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(module)
            .name(c"main");
        let info = [vk::ComputePipelineCreateInfo::default()
            .stage(stage)
            .layout(sh.pipeline_layout)];
        let created = d.create_compute_pipelines(vk::PipelineCache::null(), &info, None);
        d.destroy_shader_module(module, None);
        sh.pipeline = created.map_err(|(_, e)| RenderError::Vk {
            what: "vkCreateComputePipelines",
            source: e,
        })?[0];
        let n = MAX_IMPORTS + 16;
        let sizes = [
            vk::DescriptorPoolSize {
                ty: vk::DescriptorType::STORAGE_BUFFER,
                descriptor_count: 2 * n + 16,
            },
            vk::DescriptorPoolSize {
                ty: vk::DescriptorType::SAMPLED_IMAGE,
                descriptor_count: 2 * n,
            },
        ];
        sh.desc_pool = d
            .create_descriptor_pool(
                &vk::DescriptorPoolCreateInfo::default()
                    .flags(vk::DescriptorPoolCreateFlags::FREE_DESCRIPTOR_SET)
                    .max_sets(n + 16)
                    .pool_sizes(&sizes),
                None,
            )
            .map_err(vkerr("vkCreateDescriptorPool"))?;
        sh.cmd_pool = d
            .create_command_pool(
                &vk::CommandPoolCreateInfo::default()
                    .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER)
                    .queue_family_index(gpu.family),
                None,
            )
            .map_err(vkerr("vkCreateCommandPool"))?;
        Ok(sh)
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
    let export_err = |source| RenderError::Export { index, source };
    if export {
        let info = vk::PhysicalDeviceExternalBufferInfo::default()
            .usage(usage)
            .handle_type(handle);
        let mut props = vk::ExternalBufferProperties::default();
        // SAFETY: valid query structs that outlive the call.
        unsafe {
            gpu.instance
                .get_physical_device_external_buffer_properties(gpu.pd, &info, &mut props)
        };
        if !props
            .external_memory_properties
            .external_memory_features
            .contains(vk::ExternalMemoryFeatureFlags::EXPORTABLE)
        {
            return Err(export_err(vk::Result::ERROR_FORMAT_NOT_SUPPORTED));
        }
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
    // SAFETY: valid create info.
    let fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }
        .map_err(vkerr("vkCreateFence"))?;
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
        in_use: AtomicBool::new(false),
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
