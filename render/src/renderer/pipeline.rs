//! The compute pipeline's shared part: which import path the shaders read camera buffers through (and why),
//! descriptor set layouts, pipeline layout and pools ([`Shared`]), the push constants ([`Params`]) and
//! descriptor-set helpers. The pipelines themselves, one per shader variant, are in `variant.rs`.

use std::sync::Arc;

use ash::vk;
use dmacam_capture::DRM_FORMAT_MOD_LINEAR;

use super::options::{ImportPath, ImportPreference, Mode, Options, MAX_IMPORTS};
use crate::device::{vkerr, Gpu};
use crate::RenderError;

/// Pipeline objects shared by the renderer, its imports and its output slots.
pub(super) struct Shared {
    pub(super) gpu: Arc<Gpu>,
    pub(super) set0_layout: vk::DescriptorSetLayout,
    pub(super) set1_layout: vk::DescriptorSetLayout,
    pub(super) pipeline_layout: vk::PipelineLayout,
    pub(super) desc_pool: vk::DescriptorPool,
    pub(super) cmd_pool: vk::CommandPool,
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
            d.destroy_pipeline_layout(self.pipeline_layout, None);
            d.destroy_descriptor_set_layout(self.set1_layout, None);
            d.destroy_descriptor_set_layout(self.set0_layout, None);
        }
    }
}

/// Push constants, laid out exactly as `Params` in `assets/shaders/common.wgsl`.
#[derive(Debug, Default)]
pub(super) struct Params {
    pub(super) u: [u32; 16],
    pub(super) f: [f32; 9],
}

impl Params {
    pub(super) fn bytes(&self) -> Vec<u8> {
        self.u
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .chain(self.f.iter().flat_map(|v| v.to_ne_bytes()))
            .collect()
    }
}

/// Picks the import path and says why.
pub(super) fn choose_path(gpu: &Gpu, opts: Options) -> Result<(ImportPath, String), RenderError> {
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

/// The layouts and pools every shader variant of `path` shares.
pub(super) fn create_shared(gpu: Arc<Gpu>, path: ImportPath) -> Result<Shared, RenderError> {
    let d = &gpu.device;
    let input_type = match path {
        ImportPath::StorageBuffer => vk::DescriptorType::STORAGE_BUFFER,
        ImportPath::ImageDrmModifier => vk::DescriptorType::SAMPLED_IMAGE,
    };
    // One binding per plane the shaders read (Y, CbCr or Cb, Cr).
    let b0 = [0u32, 1, 2].map(|b| {
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
    // SAFETY: (whole block) plain object creation with valid create infos that outlive each call; on failure,
    // everything created so far is destroyed by the `Shared` drop (null handles are ignored by Vulkan).
    unsafe {
        let mut sh = Shared {
            gpu: gpu.clone(),
            set0_layout: vk::DescriptorSetLayout::null(),
            set1_layout: vk::DescriptorSetLayout::null(),
            pipeline_layout: vk::PipelineLayout::null(),
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
        let n = MAX_IMPORTS + 16;
        let sizes = [
            vk::DescriptorPoolSize {
                ty: vk::DescriptorType::STORAGE_BUFFER,
                descriptor_count: 3 * n + 16,
            },
            vk::DescriptorPoolSize {
                ty: vk::DescriptorType::SAMPLED_IMAGE,
                descriptor_count: 3 * n,
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

pub(super) fn alloc_set(
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

pub(super) fn write_buffer_set(sh: &Shared, set: vk::DescriptorSet, buffers: &[vk::Buffer]) {
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
