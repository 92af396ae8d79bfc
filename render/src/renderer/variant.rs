//! Shader variants: which operation a frame needs ([`choose`]), how many invocations it takes, and the
//! compute pipelines built for them, one per (input format, operation), compiled at first use and cached
//! ([`Pipelines`]). The SPIR-V of every variant comes from `render/build.rs` (`shaders.rs` in `OUT_DIR`).

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use ash::vk;

use super::options::ImportPath;
use super::pipeline::Shared;
use crate::conv::SourceFormat;
use crate::device::vkerr;
use crate::spec::{Filter, ProcessSpec, Rect};
use crate::RenderError;

include!(concat!(env!("OUT_DIR"), "/shaders.rs"));

/// What a shader variant does besides reading its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Op {
    /// 1:1, crop only: several pixels per invocation where the format packs them (`op_packed422.wgsl`,
    /// `op_nv12.wgsl`), one otherwise (`op_copy.wgsl`); no resampling.
    Fast,
    /// Crop, mirror, quarter turns and nearest-neighbour scaling (`op_transform.wgsl`).
    Nearest,
    /// The same with bilinear filtering, for frames actually resampled.
    Bilinear,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Nearest => "nearest",
            Self::Bilinear => "bilinear",
        }
    }
}

/// The cheapest variant that computes `spec` exactly for a frame with these plane (offset, stride) pairs,
/// crop rectangle and output size.
pub(super) fn choose(
    format: SourceFormat,
    spec: &ProcessSpec,
    crop: Rect,
    planes: &[(u32, u32)],
    out: (u32, u32),
) -> Op {
    let turns = spec.rotate.quarter_turns();
    let unrotated = if turns % 2 == 1 { (out.1, out.0) } else { out };
    let unscaled = unrotated == (crop.width, crop.height);
    let plain = unscaled && turns == 0 && !spec.mirror_x && !spec.mirror_y;
    let aligned = |to: u32| {
        planes
            .iter()
            .all(|&(off, stride)| off % to == 0 && stride % to == 0)
    };
    // The fast variants read whole 4:2:2 words and 4:2:0 blocks, so their grid must match the crop's.
    let fits = match format {
        SourceFormat::Yuyv | SourceFormat::Uyvy => crop.x % 2 == 0 && aligned(4),
        SourceFormat::Nv12 => crop.x % 2 == 0 && crop.y % 2 == 0 && aligned(2),
        SourceFormat::Grey | SourceFormat::Bgrx | SourceFormat::Rgb3 | SourceFormat::Bgr3 => true,
    };
    if plain && fits {
        Op::Fast
    } else if unscaled || spec.filter == Filter::Nearest {
        // Unscaled, every output pixel centre falls on a source pixel centre: bilinear would weigh one pixel.
        Op::Nearest
    } else {
        Op::Bilinear
    }
}

/// Workgroups (of 8x8 invocations) for a `width`×`height` output.
pub(super) fn workgroups(format: SourceFormat, op: Op, width: u32, height: u32) -> (u32, u32) {
    let (x, y) = match (op, format) {
        (Op::Fast, SourceFormat::Yuyv | SourceFormat::Uyvy) => (width.div_ceil(2), height),
        (Op::Fast, SourceFormat::Nv12) => (width.div_ceil(2), height.div_ceil(2)),
        _ => (width, height),
    };
    (x.div_ceil(8), y.div_ceil(8))
}

/// The compute pipelines built so far for one import path's reader.
pub(super) struct Pipelines {
    shared: Arc<Shared>,
    reader: &'static str,
    built: HashMap<(SourceFormat, Op), vk::Pipeline>,
}

impl Drop for Pipelines {
    fn drop(&mut self) {
        let d = &self.shared.gpu.device;
        // SAFETY: the renderer drops its pipelines only after waiting for the device to go idle, so no
        // submission that binds one is pending; each handle was created by this device and is destroyed once.
        unsafe {
            let _ = d.device_wait_idle();
            for (_, pipeline) in self.built.drain() {
                d.destroy_pipeline(pipeline, None);
            }
        }
    }
}

impl Pipelines {
    pub(super) fn new(shared: Arc<Shared>, path: ImportPath) -> Self {
        let reader = match path {
            ImportPath::StorageBuffer => "buffer",
            ImportPath::ImageDrmModifier => "image",
        };
        Pipelines {
            shared,
            reader,
            built: HashMap::new(),
        }
    }

    /// The pipeline of the variant that reads `format` and does `op`, built at its first use.
    pub(super) fn get(
        &mut self,
        format: SourceFormat,
        op: Op,
    ) -> Result<vk::Pipeline, RenderError> {
        if let Some(&p) = self.built.get(&(format, op)) {
            return Ok(p);
        }
        let (name, op_name) = (format.shader_name(), op.name());
        let spv = SHADERS
            .iter()
            .find(|(r, f, o, _)| *r == self.reader && *f == name && *o == op_name)
            .map(|v| v.3)
            .expect("render/build.rs compiles every (reader, format, operation)");
        let code =
            ash::util::read_spv(&mut Cursor::new(spv)).expect("build.rs wrote whole SPIR-V words");
        let d = &self.shared.gpu.device;
        // SAFETY: valid create infos that outlive each call; the module is destroyed once the pipeline (which
        // does not need it afterwards) has been created or has failed.
        let pipeline = unsafe {
            let module = d
                .create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&code), None)
                .map_err(vkerr("vkCreateShaderModule"))?;
            let stage = vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::COMPUTE)
                .module(module)
                .name(c"main");
            let info = [vk::ComputePipelineCreateInfo::default()
                .stage(stage)
                .layout(self.shared.pipeline_layout)];
            let created = d.create_compute_pipelines(vk::PipelineCache::null(), &info, None);
            d.destroy_shader_module(module, None);
            created.map_err(|(_, e)| RenderError::Vk {
                what: "vkCreateComputePipelines",
                source: e,
            })?[0]
        };
        tracing::debug!(
            reader = self.reader,
            format = name,
            op = op_name,
            "built shader variant"
        );
        self.built.insert((format, op), pipeline);
        Ok(pipeline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(format: SourceFormat, spec: &str, crop: Rect, planes: &[(u32, u32)]) -> Op {
        let mut spec: ProcessSpec = spec.parse().unwrap();
        spec.crop = Some(crop);
        let out = spec
            .output_size(crop.x + crop.width, crop.y + crop.height)
            .unwrap();
        choose(format, &spec, crop, planes, out)
    }

    #[test]
    fn the_cheapest_exact_variant_is_chosen() {
        let full = Rect {
            x: 0,
            y: 0,
            width: 64,
            height: 48,
        };
        let odd = Rect { x: 1, ..full };
        let yuyv = SourceFormat::Yuyv;
        assert_eq!(op(yuyv, "convert", full, &[(0, 128)]), Op::Fast);
        assert_eq!(op(yuyv, "convert", full, &[(2, 128)]), Op::Nearest);
        assert_eq!(op(yuyv, "convert", full, &[(0, 130)]), Op::Nearest);
        assert_eq!(op(yuyv, "rotate=90", full, &[(0, 128)]), Op::Nearest);
        assert_eq!(op(yuyv, "mirror", full, &[(0, 128)]), Op::Nearest);
        assert_eq!(op(yuyv, "scale=64x48", full, &[(0, 128)]), Op::Fast);
        assert_eq!(op(yuyv, "scale=65x48", full, &[(0, 128)]), Op::Bilinear);
        assert_eq!(
            op(yuyv, "scale=65x48,filter=nearest", full, &[(0, 128)]),
            Op::Nearest
        );
        let nv12 = SourceFormat::Nv12;
        let planes = [(0, 66), (66 * 48, 66)];
        assert_eq!(op(nv12, "convert", full, &planes), Op::Fast);
        assert_eq!(
            op(nv12, "convert", Rect { y: 1, ..full }, &planes),
            Op::Nearest
        );
        assert_eq!(
            op(nv12, "convert", full, &[(0, 65), (65 * 48, 65)]),
            Op::Nearest
        );
        assert_eq!(op(SourceFormat::Rgb3, "convert", odd, &[(3, 93)]), Op::Fast);
        assert_eq!(workgroups(yuyv, Op::Fast, 17, 9), (2, 2));
        assert_eq!(workgroups(nv12, Op::Fast, 17, 17), (2, 2));
        assert_eq!(workgroups(nv12, Op::Bilinear, 17, 17), (3, 3));
    }
}
