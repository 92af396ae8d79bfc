//! Shader variants: which operation a frame needs and whether its rows can be read as whole words
//! ([`choose`]), how many invocations it takes, and the compute pipelines built for them, one per (input
//! format, operation, words), compiled at first use and cached ([`Pipelines`]). The SPIR-V of every variant comes from `render/build.rs` (`shaders.rs` in `OUT_DIR`).

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use ash::vk;

use super::options::ImportPath;
use super::pipeline::Shared;
use crate::conv::{Family, SourceFormat};
use crate::device::vkerr;
use crate::spec::{Filter, ProcessSpec, Rect};
use crate::RenderError;

include!(concat!(env!("OUT_DIR"), "/shaders.rs"));

/// What a shader variant does besides reading its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Op {
    /// Unscaled (crop, mirrors, quarter turns): several pixels per invocation where the format packs them
    /// (`op_packed422.wgsl`, `op_block.wgsl`), one otherwise (`op_copy.wgsl`); eight of a row when wide
    /// (`op_*_wide.wgsl`); no resampling.
    Fast,
    /// Unscaled with a quarter turn, always wide: two columns of four rows per invocation, which the turn
    /// makes two output rows (`op_*_columns.wgsl`). A variant of its own, not a branch in the wide
    /// [`Op::Fast`]: lavapipe would run both ways of a branch on the transform.
    FastColumns,
    /// Crop, mirror, quarter turns and nearest-neighbour scaling, output pixel by output pixel, one per
    /// invocation or four when wide (`op_transform.wgsl`): for unscaled frames whose crop or rows
    /// [`Op::Fast`] cannot take, and for `filter=nearest`.
    Nearest,
    /// The same with bilinear filtering, for frames actually resampled.
    Bilinear,
    /// Bilinear without a quarter turn where the output is at least as wide as the crop, always wide: four
    /// neighbouring output pixels share five source columns' taps (`op_bilinear_rows.wgsl`).
    BilinearRows,
}

impl Op {
    /// Whether the variant runs over the crop's pixels (the unscaled ones, which fold mirrors and turns into
    /// where they write) rather than over the output's.
    pub(super) fn over_crop(self) -> bool {
        matches!(self, Op::Fast | Op::FastColumns)
    }
}

/// One shader variant of a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Variant {
    pub(super) op: Op,
    /// Pixels are read as whole words (`fetch_words` in `fmt_*.wgsl`): the format has a word reader and the
    /// frame's plane offsets and strides are aligned to it. Always so for [`Op::Fast`] of formats that have one.
    pub(super) words: bool,
    /// Four output pixels per store (`wide.wgsl`): [`Op::Fast`] without a quarter turn on a crop whose width
    /// is a multiple of 8 (eight pixels of a row per invocation) or with one on a crop whose height is a
    /// multiple of 4 ([`Op::FastColumns`]), the others on an output whose width is a multiple of 4. lavapipe
    /// stores lane by lane, 32 bits at a time: this is most of a 1:1 conversion's cost there.
    pub(super) wide: bool,
}

impl Variant {
    /// The operation's name in `render/build.rs`.
    fn name(self) -> &'static str {
        match (self.op, self.words, self.wide) {
            (Op::Fast, _, false) => "fast",
            (Op::Fast, _, true) => "fast_wide",
            (Op::FastColumns, _, _) => "fast_columns",
            (Op::Nearest, false, false) => "nearest",
            (Op::Nearest, false, true) => "nearest_wide",
            (Op::Nearest, true, false) => "nearest_w",
            (Op::Nearest, true, true) => "nearest_w_wide",
            (Op::Bilinear, false, false) => "bilinear",
            (Op::Bilinear, false, true) => "bilinear_wide",
            (Op::Bilinear, true, false) => "bilinear_w",
            (Op::Bilinear, true, true) => "bilinear_w_wide",
            (Op::BilinearRows, false, _) => "bilinear_rows",
            (Op::BilinearRows, true, _) => "bilinear_rows_w",
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
) -> Variant {
    let turns = spec.rotate.quarter_turns();
    let unrotated = if turns % 2 == 1 { (out.1, out.0) } else { out };
    let unscaled = unrotated == (crop.width, crop.height);
    let aligned = |planes: &[(u32, u32)], to: u32| {
        planes
            .iter()
            .all(|&(off, stride)| off % to == 0 && stride % to == 0)
    };
    // Whether the format's word reader may be used (`None`: it has none), whether the fast variant's grid
    // (whole 4:2:2 words, 2x2 blocks sharing 4:2:0 chroma) matches the crop's, and whether the rows are
    // aligned as the fast variant reads them.
    let (words, fits, fast_aligned) = match format.family() {
        Family::Packed422 => {
            let a = aligned(planes, 4);
            (Some(a), crop.x % 2 == 0, a)
        }
        Family::SemiPlanar { vsub } => {
            let a = aligned(planes, 2);
            (Some(a), crop.x % 2 == 0 && crop.y % vsub == 0, a)
        }
        // Luma is read in pairs, chroma by the byte.
        Family::Planar420 => (
            None,
            crop.x % 2 == 0 && crop.y % 2 == 0,
            aligned(&planes[..1], 2),
        ),
        Family::Pixel { bpp: 4 } => {
            let a = aligned(planes, 4);
            (Some(a), true, a)
        }
        Family::Pixel { .. } => (None, true, true),
    };
    // The unscaled variants fold mirrors and turns into where they write.
    let op = if unscaled && fits && fast_aligned {
        Op::Fast
    } else if unscaled || spec.filter == Filter::Nearest {
        // Unscaled, every output pixel centre falls on a source pixel centre: bilinear would weigh one pixel.
        Op::Nearest
    } else {
        Op::Bilinear
    };
    let wide = match op {
        Op::Fast if turns % 2 == 1 => crop.height % 4 == 0,
        Op::Fast => crop.width % 8 == 0,
        _ => out.0 % 4 == 0,
    };
    let op = match op {
        Op::Fast if wide && turns % 2 == 1 => Op::FastColumns,
        // Not narrowed across and not turned: four neighbouring pixels' taps lie within five source columns.
        Op::Bilinear if wide && turns % 2 == 0 && crop.width <= out.0 => Op::BilinearRows,
        op => op,
    };
    Variant {
        op,
        words: words == Some(true),
        wide,
    }
}

/// Workgroups (of 8x8 invocations) for a `width`×`height` grid: the crop where [`Op::over_crop`], else the
/// output.
pub(super) fn workgroups(format: SourceFormat, v: Variant, width: u32, height: u32) -> (u32, u32) {
    let block = matches!(
        format.family(),
        Family::SemiPlanar { .. } | Family::Planar420
    );
    // Pixels across and rows per invocation.
    let (across, rows) = match (v.op, v.wide) {
        (Op::Fast, false) if block => (2, 2),
        (Op::Fast, false) if format.family() == Family::Packed422 => (2, 1),
        (Op::FastColumns, _) => (2, 4),
        (Op::Fast, true) if block => (8, 2),
        (Op::Fast, true) => (8, 1),
        (_, false) => (1, 1),
        (_, true) => (4, 1),
    };
    (
        width.div_ceil(across).div_ceil(8),
        height.div_ceil(rows).div_ceil(8),
    )
}

/// The compute pipelines built so far for one import path's reader.
pub(super) struct Pipelines {
    shared: Arc<Shared>,
    reader: &'static str,
    built: HashMap<(SourceFormat, Variant), vk::Pipeline>,
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

    /// The pipeline of `format`'s variant `v`, built at its first use.
    pub(super) fn get(
        &mut self,
        format: SourceFormat,
        v: Variant,
    ) -> Result<vk::Pipeline, RenderError> {
        if let Some(&p) = self.built.get(&(format, v)) {
            return Ok(p);
        }
        let (name, op_name) = (format.shader_name(), v.name());
        let spv = SHADERS
            .iter()
            .find(|(r, f, o, _)| *r == self.reader && *f == name && *o == op_name)
            .map(|v| v.3)
            .expect("render/build.rs compiles every (reader, format, operation)");
        let pipeline = self.create(spv)?;
        tracing::debug!(
            reader = self.reader,
            format = name,
            op = op_name,
            "built shader variant"
        );
        self.built.insert((format, v), pipeline);
        Ok(pipeline)
    }

    /// A compute pipeline running `spv`'s `main` with the shared layout.
    fn create(&self, spv: &[u8]) -> Result<vk::Pipeline, RenderError> {
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
        Ok(pipeline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Gpu;
    use crate::renderer::pipeline::create_shared;

    /// Every variant the renderer can choose, for both readers, becomes a pipeline on this device: the image
    /// reader's variants run only in the VM (host lavapipe imports no dma-bufs), so this is their one host
    /// check (of the driver's SPIR-V intake; lavapipe generates machine code only at the first dispatch).
    #[test]
    fn every_variant_builds_on_this_device() {
        let gpu = Gpu::new(false).unwrap_or_else(|e| {
            panic!("no usable Vulkan device (install mesa-vulkan-drivers): {e}")
        });
        for path in [ImportPath::StorageBuffer, ImportPath::ImageDrmModifier] {
            let shared = Arc::new(create_shared(gpu.clone(), path).expect("layouts"));
            let mut pipelines = Pipelines::new(shared, path);
            for format in SourceFormat::ALL {
                let has_words = !matches!(
                    format.family(),
                    Family::Planar420 | Family::Pixel { bpp: 1 | 3 }
                );
                let ops = [
                    Op::Fast,
                    Op::FastColumns,
                    Op::Nearest,
                    Op::Bilinear,
                    Op::BilinearRows,
                ];
                for op in ops {
                    for words in [false, true].into_iter().filter(|&w| !w || has_words) {
                        for wide in [false, true] {
                            // These two come wide only.
                            if !wide && matches!(op, Op::FastColumns | Op::BilinearRows) {
                                continue;
                            }
                            let v = Variant { op, words, wide };
                            pipelines.get(format, v).unwrap_or_else(|e| {
                                panic!("{} {format:?} {}: {e}", path.name(), v.name())
                            });
                        }
                    }
                }
            }
        }
    }

    /// The name of the variant chosen for a `spec` on a frame cropped to `crop`.
    fn name(format: SourceFormat, spec: &str, crop: Rect, planes: &[(u32, u32)]) -> &'static str {
        let mut spec: ProcessSpec = spec.parse().unwrap();
        spec.crop = Some(crop);
        let out = spec
            .output_size(crop.x + crop.width, crop.y + crop.height)
            .unwrap();
        choose(format, &spec, crop, planes, out).name()
    }

    #[test]
    fn the_cheapest_exact_variant_is_chosen() {
        let full = Rect {
            x: 0,
            y: 0,
            width: 64,
            height: 48,
        };
        let yuyv = SourceFormat::Yuyv;
        let row = [(0, 128)];
        for (spec, crop, planes, want) in [
            ("convert", full, &row[..], "fast_wide"),
            ("convert", Rect { width: 60, ..full }, &row, "fast"),
            ("scale=64x48", full, &row, "fast_wide"),
            ("convert", Rect { x: 1, ..full }, &row, "nearest_w_wide"),
            ("convert", full, &[(2, 128)], "nearest_wide"),
            ("convert", full, &[(0, 130)], "nearest_wide"),
            (
                "convert",
                Rect { width: 61, ..full },
                &[(0, 130)],
                "nearest",
            ),
            ("rotate=90", full, &row, "fast_columns"),
            ("rotate=90", Rect { height: 46, ..full }, &row, "fast"),
            (
                "rotate=270",
                Rect { width: 60, ..full },
                &row,
                "fast_columns",
            ),
            ("mirror", full, &row, "fast_wide"),
            ("mirror=hv,rotate=180", full, &row, "fast_wide"),
            (
                "mirror,scale=64x48",
                Rect { x: 1, ..full },
                &row,
                "nearest_w_wide",
            ),
            ("scale=65x48", full, &row, "bilinear_w"),
            ("scale=65x48", full, &[(0, 130)], "bilinear"),
            ("scale=65x48,filter=nearest", full, &row, "nearest_w"),
            ("scale=64x40", full, &row, "bilinear_rows_w"),
            ("scale=128x96", full, &[(0, 130)], "bilinear_rows"),
            ("mirror,scale=128x36", full, &row, "bilinear_rows_w"),
            ("scale=60x48", full, &row, "bilinear_w_wide"),
            ("rotate=90,scale=96x128", full, &row, "bilinear_w_wide"),
        ] {
            assert_eq!(
                name(yuyv, spec, crop, planes),
                want,
                "{spec} {crop:?} {planes:?}"
            );
        }
        let nv12 = SourceFormat::Nv12;
        let planes = [(0, 66), (66 * 48, 66)];
        assert_eq!(name(nv12, "convert", full, &planes), "fast_wide");
        assert_eq!(
            name(nv12, "convert", Rect { y: 1, ..full }, &planes),
            "nearest_w_wide"
        );
        assert_eq!(
            name(nv12, "convert", full, &[(0, 65), (65 * 48, 65)]),
            "nearest_wide"
        );
        let odd = Rect { x: 1, ..full };
        assert_eq!(
            name(SourceFormat::Rgb3, "rotate=180", odd, &[(3, 93)]),
            "fast_wide"
        );
        assert_eq!(
            name(SourceFormat::Rgb3, "scale=32x48", odd, &[(3, 93)]),
            "bilinear_wide"
        );
        assert_eq!(
            name(SourceFormat::Bgrx, "convert", full, &[(0, 258)]),
            "nearest_wide"
        );
        // 4:2:2 semi-planar blocks take one chroma sample per row: an odd crop y still fits.
        let odd_y = Rect { y: 1, ..full };
        assert_eq!(
            name(SourceFormat::Nv61, "convert", odd_y, &planes),
            "fast_wide"
        );
        assert_eq!(
            name(SourceFormat::Nv21, "convert", odd_y, &planes),
            "nearest_w_wide"
        );
        // Three planes: luma is read in pairs, chroma by the byte, so only the luma rows must be even.
        let yu12 = [(0, 64), (64 * 48, 33), (64 * 48 + 33 * 24, 33)];
        assert_eq!(
            name(SourceFormat::Yu12, "convert", full, &yu12),
            "fast_wide"
        );
        assert_eq!(
            name(SourceFormat::Yv12, "rotate=90", full, &yu12),
            "fast_columns"
        );
        assert_eq!(
            name(
                SourceFormat::Yu12,
                "convert",
                full,
                &[(0, 65), (0, 33), (0, 33)]
            ),
            "nearest_wide"
        );
        assert_eq!(
            name(SourceFormat::Yu12, "convert", odd_y, &yu12),
            "nearest_wide"
        );
        assert_eq!(
            name(SourceFormat::Xrgb, "convert", full, &[(0, 256)]),
            "fast_wide"
        );
        assert_eq!(
            name(SourceFormat::Rgbx, "scale=32x24", full, &[(0, 256)]),
            "bilinear_w_wide"
        );
        let v = |op, wide| Variant {
            op,
            words: true,
            wide,
        };
        let yv12 = SourceFormat::Yv12;
        assert_eq!(workgroups(yv12, v(Op::Fast, false), 17, 17), (2, 2));
        assert_eq!(workgroups(yuyv, v(Op::Fast, false), 17, 9), (2, 2));
        assert_eq!(workgroups(nv12, v(Op::Fast, false), 17, 17), (2, 2));
        assert_eq!(workgroups(nv12, v(Op::Bilinear, false), 17, 17), (3, 3));
        // Wide: eight pixels across per invocation unscaled (two rows for the block formats), or two columns
        // of four rows turned; four pixels across otherwise.
        assert_eq!(workgroups(yuyv, v(Op::Fast, true), 128, 9), (2, 2));
        assert_eq!(workgroups(nv12, v(Op::Fast, true), 128, 34), (2, 3));
        let grey = SourceFormat::Grey;
        assert_eq!(workgroups(grey, v(Op::Fast, true), 64, 8), (1, 1));
        assert_eq!(workgroups(nv12, v(Op::FastColumns, true), 34, 36), (3, 2));
        assert_eq!(workgroups(nv12, v(Op::Bilinear, true), 36, 8), (2, 1));
    }
}
