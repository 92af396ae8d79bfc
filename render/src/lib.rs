//! Vulkan stage of dmacam: imports camera dma-bufs as external memory, converts and processes them in compute
//! shaders, and exports the result as a dma-buf.
//!
//! Layers, bottom up: `ash` (raw Vulkan) → typed objects (instance, device, imported buffers) → the
//! processing pipeline.

pub mod probe;

pub use probe::{probe, DeviceReport, ProbeError, OPTIONAL_EXTENSIONS, REQUIRED_EXTENSIONS};
