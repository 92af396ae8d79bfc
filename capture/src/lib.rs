//! V4L2 capture for dmacam.
//!
//! Layers, bottom up:
//! - raw ioctls (crate-private `raw`): one `nix` ioctl per V4L2 / dma-heap / udmabuf request over the
//!   kernel structures `v4l2r` generates;
//! - typed device: [`device::Device`], an opened node with its capabilities, its formats, sizes and
//!   intervals ([`format`]) and controls ([`controls`]);
//! - pipeline objects built on the device: a [`stream::Stream`] of [`stream::Frame`]s, each a [`Dmabuf`]
//!   that goes back to the driver when its last holder drops it.
//!
//! Besides V4L2, the built-in [`pattern`] source generates frames into dma-bufs dmacam allocates; the
//! [`source`] module puts both behind one interface ([`Input`] → [`Source`] → the same [`Frame`]s). The
//! [`share`] module shares a source between processes by fd (`dmacam serve`), and makes a served socket one
//! more kind of input.

pub mod alloc;
pub mod clock;
pub mod colour;
pub mod controls;
pub mod decode;
pub mod device;
pub mod dmabuf;
mod error;
pub mod fence;
pub mod format;
mod frame;
pub mod jpeg;
pub mod pattern;
pub mod pipewire;
mod raw;
mod ring;
pub mod share;
pub mod source;
pub mod stream;
mod timer;

pub use clock::{monotonic_now, monotonic_ns};
pub use controls::{Control, ControlError, ControlSetting, ControlType};
pub use device::{enumerate_nodes, Device, DeviceInfo, NodeKind, OpenError};
pub use dmabuf::{Dmabuf, DmabufPlane, Fourcc, Mapping, DRM_FORMAT_MOD_LINEAR};
pub use format::{Format, FormatError, FormatRequest, Layout, PixelFormat};
pub use pattern::{PatternKind, PatternSource};
pub use share::{RemoteInput, RemoteSource, ServeOptions, ServeStats, Server, ShareError};
pub use source::{Input, Source};
pub use stream::{CpuWrites, Frame, IoMode, Origin, Stream, StreamError, StreamOptions};
