//! Pixel formats, what a device offers (VIDIOC_ENUM_FMT, ENUM_FRAMESIZES, ENUM_FRAMEINTERVALS), and format
//! negotiation (VIDIOC_S_FMT, VIDIOC_S_PARM).
//!
//! - [`catalogue`]: the one table of pixel formats ([`CATALOGUE`]): layouts, DRM twins, Y4M tags, names;
//! - [`desc`]: what a device offers and sets ([`Format`], [`FormatDesc`], [`FrameSizes`], [`FormatError`]);
//! - `negotiate`: the [`crate::Device`] methods that ask and set.

pub mod catalogue;
pub mod desc;
mod negotiate;
#[cfg(test)]
mod tests;

pub use catalogue::{
    fourcc_name, parse_fourcc, supported, supported_names, Layout, PixelFormat, CATALOGUE,
};
pub use desc::{
    Format, FormatDesc, FormatError, FormatRequest, Fraction, FrameIntervals, FrameSizes,
    PlaneFormat,
};
