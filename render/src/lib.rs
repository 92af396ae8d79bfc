//! Vulkan stage of dmacam: imports camera dma-bufs as external memory, converts and processes them in compute
//! shaders, and exports the result as a dma-buf.
//!
//! Layers, bottom up: `ash` (raw Vulkan) → typed objects ([`device`]: instance + device with its capabilities;
//! imported camera buffers and exported output buffers in [`renderer`]) → the processing pipeline
//! ([`Renderer`]).
//!
//! ```text
//! let mut r = Renderer::new(Options::default())?;                // needs dma-buf import
//! let out = r.process(&frame, buffer_index, colorimetry, &"scale=1280x720,mirror".parse()?)?;
//! // the GPU has finished reading `frame`: it may go back to the V4L2 queue now
//! display(out.dmabuf());                                          // XRGB8888, LINEAR; drop `out` when released
//! ```

pub mod conv;
mod debug;
pub mod device;
mod error;
pub mod probe;
pub mod renderer;
pub mod spec;

pub use conv::{readable_names, Colorimetry, Quantization, SourceFormat, YcbcrEnc};
pub use debug::validation_messages;
pub use device::Caps;
pub use error::RenderError;
pub use probe::{
    probe, DeviceReport, ProbeError, SyncFdSupport, OPTIONAL_EXTENSIONS, REQUIRED_EXTENSIONS,
};
pub use renderer::{
    output_stride, probe_export, HostFrame, HostPlane, ImportPath, ImportPreference, Mode, Options,
    OutputFrame, Pending, Renderer, Stats, OUTPUT_FOURCC,
};
pub use spec::{Filter, ProcessSpec, Rect, Rotation, SpecError};
