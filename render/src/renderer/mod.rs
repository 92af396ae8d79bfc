//! The processing pipeline: camera frame (imported once per buffer index) → compute shader → output ring of
//! exported dma-bufs.
//!
//! Ownership graph (every arrow an `Arc`, so destruction order is fixed by the types): `OutputFrame` →
//! `OutputSlot` → `Shared` (layouts, pools) → `Gpu` (device, instance). Imports and the compute pipelines live
//! only in the renderer.
//!
//! Files, bottom up: `options` (public configuration and counters), `util` (small helpers), `pipeline`
//! (import-path choice, layouts, pools), `variant` (the shader variant a frame needs and the pipelines built
//! for them), `dmabuf` (a frame's planes and one dma-buf's import as memory), `import` (a cached camera-buffer
//! import), `export` (whether outputs can be exported, and why not), `output` (the output ring and
//! [`OutputFrame`]), `upload` (host-memory input), `submit` (recording
//! and submitting a frame); this file holds [`Renderer`], which owns them.

mod dmabuf;
mod export;
mod import;
mod inflight;
mod options;
mod output;
mod pipeline;
mod submit;
mod upload;
mod util;
mod variant;

use std::collections::HashMap;
use std::sync::Arc;

use dmacam_capture::Dmabuf;

pub use export::probe_export;
pub use inflight::Pending;
pub use options::{ImportPath, ImportPreference, Mode, Options, Stats, MAX_IMPORTS};
pub use output::{output_stride, OutputFrame, OUTPUT_FOURCC};
pub use upload::{HostFrame, HostPlane};

use dmabuf::{import_key, plane_refs};
use import::{import, Imported};
use inflight::{Completion, Waiter};
use output::OutputSlot;
use pipeline::{choose_path, create_shared, Shared};
use submit::{make_params, submit, InputBinding};
use upload::{ensure_upload, Upload};
use variant::Pipelines;

use crate::conv::{Colorimetry, SourceFormat};
use crate::device::Gpu;
use crate::spec::ProcessSpec;
use crate::RenderError;

/// The render stage.
pub struct Renderer {
    // Field order is drop order: the waiter (done with every fence: the renderer waited for idle) first,
    // then imports and slots before the pipeline objects they reference.
    waiter: Option<Waiter>,
    imports: HashMap<u32, Imported>,
    upload: Option<Upload>,
    slots: Vec<Arc<OutputSlot>>,
    pipelines: Pipelines,
    /// The storage-buffer layouts and pipelines for buffers the image path refuses (see
    /// [`Self::import_buffer`]); made at the first such buffer.
    fallback: Option<(Arc<Shared>, Pipelines)>,
    shared: Arc<Shared>,
    path: ImportPath,
    path_reason: String,
    mode: Mode,
    ring: usize,
    stats: Stats,
    /// The driver's SYNC_FD export was seen to wait for the GPU ([`Self::submit`]): completions go to the
    /// waiter thread instead, unless [`Self::keep_exporting_fences`] was asked.
    export_waits: bool,
    keep_exporting: bool,
}

/// A SYNC_FD export that takes longer than this and gives a fence that has already signalled is taken for a
/// driver that waits for the GPU before it exports (lavapipe does: ARCHITECTURE.md, "Fences to the
/// display"); a driver with real fences exports in microseconds.
const EXPORT_WAITS: std::time::Duration = std::time::Duration::from_millis(2);

impl Renderer {
    /// Sets up the device, the layouts for the chosen import path, and (lazily: the shader variants at their
    /// first use, the output ring at the first frame's size) the compute pipelines and the output ring.
    pub fn new(opts: Options) -> Result<Self, RenderError> {
        let gpu = Gpu::new(opts.mode.imports())?;
        if opts.mode.exports() {
            // Found now, not at the first frame: a caller that can do without an exported output (`auto`
            // paths, CPU readers) chooses another way before it starts.
            export::probe(&gpu)?;
        }
        let (path, path_reason) = choose_path(&gpu, opts)?;
        tracing::info!(path = path.name(), reason = %path_reason, "render import path");
        let shared = Arc::new(create_shared(gpu, path)?);
        Ok(Renderer {
            waiter: None,
            export_waits: false,
            keep_exporting: false,
            imports: HashMap::new(),
            upload: None,
            slots: vec![],
            pipelines: Pipelines::new(shared.clone(), path),
            fallback: None,
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

    /// The path camera buffer `index` was imported through, if it is imported: the renderer's
    /// [`Self::import_path`], or the storage-buffer path for a buffer whose layout the image path refused.
    pub fn buffer_import_path(&self, index: u32) -> Option<ImportPath> {
        self.imports.get(&index).map(|i| i.path)
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
    /// (A loop that keeps frames in flight uses [`Self::submit`] and [`Self::finish`] instead.)
    pub fn process(
        &mut self,
        frame: &Dmabuf,
        index: u32,
        colour: Colorimetry,
        spec: &ProcessSpec,
    ) -> Result<OutputFrame, RenderError> {
        let (slot, seq) = self.record(frame, index, colour, spec, true)?;
        Ok(OutputFrame {
            slot,
            seq,
            in_flight: false,
        })
    }

    /// [`Self::process`] without waiting: the conversion is submitted and returned in flight. The GPU reads
    /// `frame` until the [`Pending`] is done (keep the camera buffer until then); [`Self::completion_fd`]
    /// becomes readable when a submission finishes, and [`Self::finish`] gives its output.
    pub fn submit(
        &mut self,
        frame: &Dmabuf,
        index: u32,
        colour: Colorimetry,
        spec: &ProcessSpec,
    ) -> Result<Pending, RenderError> {
        let sync_file =
            self.shared.gpu.fence_fd.is_some() && (!self.export_waits || self.keep_exporting);
        if !sync_file && self.waiter.is_none() {
            self.waiter = Some(Waiter::start(self.shared.clone())?);
        }
        let (slot, seq) = self.record(frame, index, colour, spec, false)?;
        let export_start = std::time::Instant::now();
        let exported = sync_file
            .then(|| inflight::export_sync_file(&self.shared, slot.fence))
            .transpose();
        if let Ok(Some(done)) = &exported {
            let took = export_start.elapsed();
            if !self.export_waits && took > EXPORT_WAITS && done.signalled() {
                tracing::info!(
                    "the Vulkan driver's SYNC_FD fence export waited {} ms for the GPU and gave a signalled \
                     fence: GPU completions go to the waiter thread (the loop must not wait in the export)",
                    took.as_millis()
                );
                self.export_waits = true;
            }
        }
        let done = match exported {
            Ok(Some(done)) => done,
            Ok(None) => Completion::Waiter(self.watch(slot.fence, seq)?),
            Err(e) => {
                // The fence still has its submission pending: the waiter thread waits for it instead.
                tracing::warn!(
                    seq,
                    "GPU sync_file export failed ({e}); waiting on a thread instead"
                );
                Completion::Waiter(self.watch(slot.fence, seq)?)
            }
        };
        Ok(Pending {
            slot: Some(slot),
            shared: self.shared.clone(),
            seq,
            done,
        })
    }

    /// Exports every submission's fence as a sync_file even where the driver was seen to wait for the GPU
    /// to do so (to exercise a display's fence mechanisms with it: `DMACAM_DISPLAY_SYNC`).
    pub fn keep_exporting_fences(&mut self) {
        self.keep_exporting = true;
    }

    /// Whether the driver's SYNC_FD export was seen to wait for the GPU (see [`Self::submit`]).
    pub fn export_waits(&self) -> bool {
        self.export_waits
    }

    /// Hands `fence` (of frame `seq`, just submitted) to the waiter thread, starting it if need be.
    fn watch(
        &mut self,
        fence: ash::vk::Fence,
        seq: u64,
    ) -> Result<Arc<inflight::Done>, RenderError> {
        if self.waiter.is_none() {
            self.waiter = Some(Waiter::start(self.shared.clone())?);
        }
        Ok(self
            .waiter
            .as_ref()
            .expect("started above")
            .watch(fence, seq))
    }

    /// Readable while a submission the waiter thread watches has finished since the last
    /// [`Self::clear_completions`]; poll it with the loop's other fds. `None` while no submission has gone
    /// to the waiter thread (where the driver exports sync_files, each [`Pending::completion_fd`] says).
    pub fn completion_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.waiter.as_ref().map(Waiter::fd)
    }

    /// Takes the readable state off [`Self::completion_fd`] (then check each [`Pending::is_done`]).
    pub fn clear_completions(&self) {
        if let Some(w) = &self.waiter {
            w.clear();
        }
    }

    /// The output of a conversion still on the GPU, for a consumer that waits for it itself on
    /// [`Pending::sync_file`] (a compositor given it as an acquire fence, KMS as the plane's IN_FENCE_FD, an
    /// implicit-sync reader through the dma-buf's attached fence). Its pixels are not for the CPU; the slot is
    /// written again only once this frame is dropped and the conversion retired ([`Self::retire`]).
    pub fn output_in_flight(&self, pending: &Pending) -> Option<OutputFrame> {
        let slot = pending.slot.clone()?;
        slot.holds.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Some(OutputFrame {
            slot,
            seq: pending.seq,
            in_flight: true,
        })
    }

    /// Ends a finished conversion whose output was taken in flight ([`Self::output_in_flight`]).
    pub fn retire(&mut self, pending: Pending) -> Result<(), RenderError> {
        self.finish(pending).map(drop)
    }

    /// The output of a finished conversion (waits for it if it is not [`Pending::is_done`] yet).
    pub fn finish(&mut self, mut pending: Pending) -> Result<OutputFrame, RenderError> {
        let seq = pending.seq;
        let slot = pending.complete()?;
        Ok(OutputFrame {
            slot,
            seq,
            in_flight: false,
        })
    }

    /// Imports (once) and records `frame` into a free output slot and submits it; with `wait`, waits for it.
    fn record(
        &mut self,
        frame: &Dmabuf,
        index: u32,
        colour: Colorimetry,
        spec: &ProcessSpec,
        wait: bool,
    ) -> Result<(Arc<OutputSlot>, u64), RenderError> {
        if !self.mode.imports() {
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
            let imported = self.import_buffer(frame, index, &planes, key)?;
            self.stats.imports += 1;
            self.stats.memory_imports += imported.memory_imports();
            self.imports.insert(index, imported);
        }
        let slot = self.acquire_slot(out_w, out_h)?;
        // A frame that fails before or in its submission gives its slot back.
        let release = |e: RenderError| {
            slot.holds.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            e
        };
        let imported = self.imports.get_mut(&index).expect("inserted above");
        let first_use = !imported.used;
        imported.used = true;
        let work = make_params(
            frame.width,
            frame.height,
            format,
            &imported.planes,
            colour,
            spec,
            &slot,
        )
        .map_err(release)?;
        let input = InputBinding {
            set: imported.set,
            buffers: imported.buffers.clone(),
            images: imported.images.clone(),
            first_use,
            external: true,
        };
        let seq = self.stats.frames;
        let (shared, pipelines) = match (&mut self.fallback, imported.path == self.path) {
            (Some((shared, pipelines)), false) => (&*shared, pipelines),
            _ => (&self.shared, &mut self.pipelines),
        };
        let pipeline = pipelines.get(format, work.variant).map_err(release)?;
        // A fallback import's layouts are the buffer path's; the output slot's set layout is defined
        // identically in both, so the slot's set binds with either pipeline layout
        // (VUID-vkCmdBindDescriptorSets-pDescriptorSets-00358).
        submit(shared, &slot, &input, pipeline, &work, seq, wait).map_err(release)?;
        self.stats.frames += 1;
        Ok((slot, seq))
    }

    /// Imports camera buffer `index` through the renderer's path. When that is the image path and the
    /// driver refuses this buffer's layout (a LINEAR image of this size wants another row pitch or more
    /// bytes than the dma-buf has, as lavapipe does for 642x362 YUYV), the buffer is imported as a storage
    /// buffer instead, and the log says so; the buffer path reads any offset and stride.
    fn import_buffer(
        &mut self,
        frame: &Dmabuf,
        index: u32,
        planes: &[dmabuf::PlaneRef],
        key: dmabuf::ImportKey,
    ) -> Result<Imported, RenderError> {
        let refused = match import(&self.shared, self.path, frame.fourcc, planes, key.clone()) {
            Err(e @ (RenderError::Import { .. } | RenderError::ImportRejected { .. }))
                if self.path == ImportPath::ImageDrmModifier =>
            {
                e
            }
            other => {
                if other.is_ok() {
                    tracing::debug!(index, path = self.path.name(), "camera buffer imported");
                }
                return other;
            }
        };
        if self.fallback.is_none() {
            let path = ImportPath::StorageBuffer;
            let shared = Arc::new(create_shared(self.shared.gpu.clone(), path)?);
            self.fallback = Some((shared.clone(), Pipelines::new(shared, path)));
        }
        let (shared, _) = self.fallback.as_ref().expect("made above");
        let imported = import(
            shared,
            ImportPath::StorageBuffer,
            frame.fourcc,
            planes,
            key,
        )
        .inspect_err(|_| {
            tracing::warn!(index, image_error = %refused, "the storage-buffer import failed too");
        })?;
        tracing::info!(
            index,
            fourcc = %frame.fourcc,
            width = frame.width,
            height = frame.height,
            path = ImportPath::StorageBuffer.name(),
            reason = %refused,
            "the image import refused this camera buffer; imported it as a storage buffer"
        );
        Ok(imported)
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
        ensure_upload(&mut self.upload, &self.shared, total.max(4))?;
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
        let work = make_params(
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
        let pipeline = self.pipelines.get(format, work.variant)?;
        submit(&self.shared, &slot, &input, pipeline, &work, seq, true)?;
        if slot.dmabuf.is_none() {
            // Reading the result back through the Vulkan mapping is a copy too (done by the caller).
            self.stats.cpu_bytes_copied += slot.size;
        }
        self.stats.frames += 1;
        Ok(OutputFrame {
            slot,
            seq,
            in_flight: false,
        })
    }

    /// Drops every cached import (e.g. after the capture stage re-allocated its buffers).
    pub fn forget_imports(&mut self) {
        self.imports.clear();
    }

    /// A free output slot of the given size; the ring is (re)built when the size changes.
    fn acquire_slot(&mut self, width: u32, height: u32) -> Result<Arc<OutputSlot>, RenderError> {
        output::acquire_slot(
            &mut self.slots,
            &self.shared,
            self.ring,
            self.mode,
            width,
            height,
        )
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
