//! V4L2 capture for dmacam.
//!
//! Layers, bottom up:
//! - raw ioctls: `v4l2r::ioctl` (one safe function per V4L2 ioctl), plus this crate's own for the
//!   dma-buf side;
//! - typed device: [`device::Device`], an opened node with its capabilities;
//! - pipeline objects built on the device (streams of dma-buf frames).

pub mod device;
pub mod dmabuf;

pub use device::{enumerate_nodes, Device, DeviceInfo, NodeKind, OpenError};
pub use dmabuf::{Dmabuf, DmabufPlane, Fourcc, Mapping, DRM_FORMAT_MOD_LINEAR};
