//! Importing a camera buffer into Vulkan: [`Imported`] (the memories, buffers or images, views and descriptor
//! set of one V4L2 buffer index, cached by the renderer while the index shows the same dma-bufs) and
//! [`import`], which builds one for the storage-buffer or the image import path.

use std::sync::Arc;

use ash::vk;
use dmacam_capture::{Fourcc, DRM_FORMAT_MOD_LINEAR};

use super::dmabuf::{
    check_plane_fits, fd_props, import_memory, inode, Dedicated, ImportKey, PlaneRef,
};
use super::options::ImportPath;
use super::pipeline::{alloc_set, write_buffer_set, Shared};
use super::util::color_range;
use crate::RenderError;

/// A camera buffer imported into Vulkan, kept for as long as its buffer index shows the same dma-bufs.
pub(super) struct Imported {
    shared: Arc<Shared>,
    /// The path this buffer was imported through (the renderer's, or the buffer path it fell back to).
    pub(super) path: ImportPath,
    pub(super) key: ImportKey,
    pub(super) memories: Vec<vk::DeviceMemory>,
    pub(super) buffers: Vec<vk::Buffer>,
    pub(super) images: Vec<vk::Image>,
    views: Vec<vk::ImageView>,
    pub(super) set: vk::DescriptorSet,
    /// Per shader plane: the plane offset and stride (buffer path) — the image path carries them in the image.
    pub(super) planes: Vec<(u32, u32)>,
    pub(super) used: bool,
    /// Inodes of the dma-bufs imported (one per distinct dma-buf, in plane order): what the trace reports.
    pub(super) inodes: Vec<u64>,
}

impl Imported {
    /// `vkAllocateMemory` imports this buffer needed.
    pub(super) fn memory_imports(&self) -> u64 {
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

/// Imports a camera buffer's planes (each distinct dma-buf once, fds dup'd) through `path`.
pub(super) fn import(
    shared: &Arc<Shared>,
    path: ImportPath,
    fourcc: Fourcc,
    planes: &[PlaneRef],
    key: ImportKey,
) -> Result<Imported, RenderError> {
    let mut imp = Imported {
        shared: shared.clone(),
        path,
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
    let gpu = &shared.gpu;
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
    match path {
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
            let set = alloc_set(shared, shared.set0_layout)?;
            imp.set = set;
            // Bindings past the format's planes are not read; they repeat the last plane's buffer.
            let b1 = *by_plane.get(1).unwrap_or(&by_plane[0]);
            let b2 = *by_plane.get(2).unwrap_or(&b1);
            write_buffer_set(shared, set, &[by_plane[0], b1, b2]);
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
                    let mut explicit = vk::ImageDrmFormatModifierExplicitCreateInfoEXT::default()
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
                    let mut reqs2 = vk::MemoryRequirements2::default().push_next(&mut dedicated);
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
            let set = alloc_set(shared, shared.set0_layout)?;
            imp.set = set;
            // Bindings past the format's planes are not read; they repeat the last plane's view.
            let v1 = views.get(1).map(|v| v.1).unwrap_or(views[0].1);
            let v2 = views.get(2).map(|v| v.1).unwrap_or(v1);
            let infos = [views[0].1, v1, v2].map(|view| {
                [vk::DescriptorImageInfo::default()
                    .image_view(view)
                    .image_layout(vk::ImageLayout::GENERAL)]
            });
            let writes = [0u32, 1, 2].map(|b| {
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
