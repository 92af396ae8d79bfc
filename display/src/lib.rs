//! Display stage of dmacam: a Wayland viewer (linux-dmabuf with v3 modifiers or v4 feedback, xdg-shell,
//! wp_viewporter, presentation time, wl_shm fallback with one counted copy) fed with [`dmacam_capture::Dmabuf`]s
//! from any producer.
//!
//! Layers: [`formats`] and [`convert`] (pixel layouts and the shm fallback's CPU pass), [`path`] (which buffer
//! path, and why), [`viewer`] (the window and its event loop), [`stats`] (what was measured), [`pattern`]
//! (colour bars in dma-bufs, to test all of this without a camera).

pub mod convert;
pub mod formats;
pub mod kms;
pub mod path;
pub mod pattern;
pub mod stats;
pub mod trace;
pub mod viewer;
pub mod wayland_probe;

pub use dmacam_capture::DRM_FORMAT_MOD_LINEAR;
pub use path::{colour_mismatch, select_path, BufferPath, PathDecision, PathInputs, PathRequest};
pub use stats::{CpuWrites, DecodeSummary, Intake, SourceWrite, Stats, Summary};
pub use trace::{DisplayRecord, FrameTrace};
pub use viewer::{
    BufferMode, Capabilities, DisplayError, Fences, FrameScript, Picture, Viewer, ViewerOptions,
};
pub use wayland_probe::{probe_wayland, ProbeError, WaylandReport};
