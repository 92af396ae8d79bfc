//! Display stage of dmacam: Wayland (linux-dmabuf, xdg-shell, presentation time, shm fallback) and bare
//! DRM/KMS output.

pub mod wayland_probe;

pub use wayland_probe::{probe_wayland, ProbeError, WaylandReport};
