//! The renderer's public configuration and report types: [`Options`] (mode, import preference, ring size) and
//! their defaults, the import-path names, the import limit and the [`Stats`] counters.

/// At most this many camera buffers are imported at once (V4L2's own limit is 32 per queue).
pub const MAX_IMPORTS: u32 = 64;

/// Where frames come from and where results go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Import camera dma-bufs and export outputs as dma-bufs. Requires [`crate::REQUIRED_EXTENSIONS`].
    #[default]
    Dmabuf,
    /// No dma-bufs: frames are uploaded from CPU memory
    /// ([`Renderer::process_host`](crate::Renderer::process_host)) and outputs are read through a Vulkan
    /// mapping. For machines whose driver lacks dma-buf import (e.g. host lavapipe); every upload is counted in
    /// [`Stats::cpu_bytes_copied`].
    HostMemory,
    /// Import camera dma-bufs as in [`Mode::Dmabuf`], but keep the outputs in host-visible memory that the
    /// caller reads through [`OutputFrame::host_pixels`](crate::OutputFrame::host_pixels); nothing is
    /// exported. For consumers that read the result on the CPU (a file writer), which need no dma-buf, and
    /// for drivers that cannot export one (lavapipe without `/dev/udmabuf`).
    ImportOnly,
}

impl Mode {
    /// Whether camera dma-bufs are imported (needs [`crate::REQUIRED_EXTENSIONS`]).
    pub fn imports(self) -> bool {
        self != Mode::HostMemory
    }
    /// Whether outputs are exported as dma-bufs.
    pub fn exports(self) -> bool {
        self == Mode::Dmabuf
    }
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
