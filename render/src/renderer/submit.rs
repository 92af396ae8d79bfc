//! Recording and submitting one frame: the push constants and shader variant for a frame ([`make_params`]),
//! the input it reads ([`InputBinding`]), and [`submit`], which records the queue-family transfers, the
//! dispatch and the host-read barrier, submits, and waits for the slot's fence or leaves that to the frame in
//! flight (`inflight`).

use std::sync::atomic::Ordering;

use ash::vk;

use super::output::OutputSlot;
use super::pipeline::{Params, Shared};
use super::util::color_range;
use super::variant::{self, Variant};
use crate::conv::{colour_params, Colorimetry, SourceFormat};
use crate::device::vkerr;
use crate::spec::ProcessSpec;
use crate::RenderError;

/// How long a frame may take on the GPU before we give up (lavapipe under TCG emulation is slow).
pub(super) const FENCE_TIMEOUT_NS: u64 = 60_000_000_000;

/// The camera input a frame reads: its descriptor set and the handles its barriers name.
pub(super) struct InputBinding {
    pub(super) set: vk::DescriptorSet,
    pub(super) buffers: Vec<vk::Buffer>,
    pub(super) images: Vec<vk::Image>,
    pub(super) first_use: bool,
    pub(super) external: bool,
}

/// The compute work of one frame: which variant, how many workgroups, and its push constants.
pub(super) struct Work {
    pub(super) variant: Variant,
    pub(super) groups: (u32, u32),
    pub(super) params: Params,
}

pub(super) fn make_params(
    width: u32,
    height: u32,
    format: SourceFormat,
    planes: &[(u32, u32)],
    colour: Colorimetry,
    spec: &ProcessSpec,
    slot: &OutputSlot,
) -> Result<Work, RenderError> {
    let crop = spec.crop_rect(width, height)?;
    let turns = spec.rotate.quarter_turns();
    let (sw, sh) = if turns % 2 == 1 {
        (slot.height, slot.width)
    } else {
        (slot.width, slot.height)
    };
    let chosen = variant::choose(format, spec, crop, planes, (slot.width, slot.height));
    let transform = turns | (spec.mirror_x as u32) << 2 | (spec.mirror_y as u32) << 3;
    // The unscaled variants run over the crop's pixels (turned, the output's are its transpose), the others
    // over the output's.
    let grid = if chosen.op.over_crop() {
        (crop.width, crop.height)
    } else {
        (slot.width, slot.height)
    };
    let c = colour_params(colour);
    let (off1, stride1) = planes.get(1).copied().unwrap_or(planes[0]);
    let (off2, stride2) = planes.get(2).copied().unwrap_or((off1, stride1));
    let params = Params {
        u: [
            width,
            height,
            planes[0].0,
            planes[0].1,
            off1,
            stride1,
            off2,
            stride2,
            slot.width,
            slot.height,
            slot.stride / 4,
            crop.x,
            crop.y,
            crop.width,
            crop.height,
            transform,
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
    };
    Ok(Work {
        variant: chosen,
        groups: variant::workgroups(format, chosen, grid.0, grid.1),
        params,
    })
}

/// Records the frame into the slot's command buffer and submits it, signalling the slot's fence; with
/// `wait`, waits for that fence (and resets it) before returning, else the caller does (see `inflight`).
pub(super) fn submit(
    sh: &Shared,
    slot: &OutputSlot,
    input: &InputBinding,
    pipeline: vk::Pipeline,
    work: &Work,
    seq: u64,
    wait: bool,
) -> Result<(), RenderError> {
    let d = &sh.gpu.device;
    let ours = sh.gpu.family;
    let foreign = sh.gpu.external_family();
    let cmd = slot.cmd;
    let begin =
        vk::CommandBufferBeginInfo::default().flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
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
    // SAFETY: the command buffer belongs to this slot, which this renderer holds exclusively (holds), and
    // its previous submission was waited for; every handle recorded is live until the fence has signalled
    // (waited for below, or by the holder of the frame in flight: `inflight`).
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
        d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, pipeline);
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
            &work.params.bytes(),
        );
        d.cmd_dispatch(cmd, work.groups.0, work.groups.1, 1);
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
    }
    if wait {
        wait_fence(sh, slot.fence, seq)?;
        reset_fence(sh, slot.fence)?;
    }
    Ok(())
}

/// Waits for `fence` (of frame `seq`), up to [`FENCE_TIMEOUT_NS`].
pub(super) fn wait_fence(sh: &Shared, fence: vk::Fence, seq: u64) -> Result<(), RenderError> {
    // SAFETY: the fence is live (its slot is held by the caller) and has a submission pending or done;
    // waiting needs no external synchronisation.
    let waited = unsafe {
        sh.gpu
            .device
            .wait_for_fences(&[fence], true, FENCE_TIMEOUT_NS)
    };
    match waited {
        Ok(()) => Ok(()),
        Err(vk::Result::TIMEOUT) => Err(RenderError::Timeout {
            seq,
            ms: FENCE_TIMEOUT_NS / 1_000_000,
        }),
        Err(e) => Err(RenderError::Vk {
            what: "vkWaitForFences",
            source: e,
        }),
    }
}

/// Resets a signalled `fence` for its slot's next submission.
pub(super) fn reset_fence(sh: &Shared, fence: vk::Fence) -> Result<(), RenderError> {
    // SAFETY: the fence is live and signalled, and no other thread uses it now (the waiter thread is done
    // with it: see `inflight`).
    unsafe { sh.gpu.device.reset_fences(&[fence]) }.map_err(vkerr("vkResetFences"))
}
