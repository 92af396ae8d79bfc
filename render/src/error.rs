//! The render stage's errors: each says what was attempted, on which device or format, and what to do.

use ash::vk;
use dmacam_capture::Fourcc;

use crate::spec::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot load the Vulkan loader (libvulkan.so.1): {0}; install libvulkan1 and a Vulkan driver (e.g. mesa-vulkan-drivers)")]
    Loader(#[from] ash::LoadingError),
    #[error("{what} failed: {source}")]
    Vk {
        what: &'static str,
        #[source]
        source: vk::Result,
    },
    #[error(
        "no Vulkan device found; install a Vulkan driver (e.g. mesa-vulkan-drivers for lavapipe)"
    )]
    NoDevice,
    #[error("Vulkan device '{device}' lacks {missing} (needed to {why}); dmacam cannot import camera dma-bufs on it")]
    MissingExtensions {
        device: String,
        missing: String,
        why: &'static str,
    },
    #[error(
        "Vulkan device '{device}' is Vulkan {major}.{minor}; the render stage needs 1.1 or newer"
    )]
    TooOld {
        device: String,
        major: u32,
        minor: u32,
    },
    #[error(
        "the render stage cannot read {fourcc} frames; it reads {}",
        crate::conv::readable_names()
    )]
    UnsupportedFormat { fourcc: Fourcc },
    #[error("unsupported colorimetry: {what}")]
    UnsupportedColorimetry { what: String },
    #[error("the import path '{path}' was requested but is unavailable on '{device}': {reason}")]
    PathUnavailable {
        path: &'static str,
        device: String,
        reason: String,
    },
    #[error("bad {fourcc} {width}x{height} frame: {reason}")]
    BadFrame {
        fourcc: Fourcc,
        width: u32,
        height: u32,
        reason: String,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("cannot duplicate the dma-buf fd of plane {plane}: {source}")]
    Dup {
        plane: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("importing plane {plane} ({fourcc}) as Vulkan memory: {what} failed: {source}")]
    Import {
        plane: usize,
        fourcc: Fourcc,
        what: &'static str,
        #[source]
        source: vk::Result,
    },
    #[error("importing plane {plane} ({fourcc}): {reason}")]
    ImportRejected {
        plane: usize,
        fourcc: Fourcc,
        reason: String,
    },
    #[error("exporting output buffer {index} as a dma-buf: {source}{cause}")]
    Export {
        index: usize,
        /// Why, when it is known: `"; "` and the cause with its remedy, else empty.
        cause: String,
        #[source]
        source: vk::Result,
    },
    #[error("Vulkan device '{device}' cannot export its output as a dma-buf ({source}): {cause}")]
    ExportUnavailable {
        device: String,
        /// Why, and what to do.
        cause: String,
        #[source]
        source: vk::Result,
    },
    #[error("all {ring} output buffers are still held by their consumers; release an OutputFrame before processing the next frame")]
    RingExhausted { ring: usize },
    #[error("the GPU did not finish frame {seq} within {ms} ms")]
    Timeout { seq: u64, ms: u64 },
    #[error("frame uses buffer index {index}, but at most {max} camera buffers can be imported")]
    TooManyBuffers { index: u32, max: u32 },
    #[error("this renderer was created in host-memory mode and cannot import dma-bufs; use Mode::Dmabuf")]
    HostOnly,
    #[error("cannot create {what}: {source}")]
    Os {
        what: &'static str,
        source: std::io::Error,
    },
}
