//! Bare DRM/KMS output: frames scanned out directly by a display controller, with no compositor and no CPU
//! copy. Each frame's dma-buf is imported into the DRM device (PRIME), wrapped in a framebuffer and put on a
//! plane with atomic commits (legacy SETCRTC/PAGE_FLIP where the driver has no atomic modesetting).
//!
//! Layers, bottom up:
//! - the `drm` crate's ioctl wrappers (the raw layer, used only inside this module tree);
//! - the typed device: [`Card`] (open, DRM master, capabilities), [`Output`] (connector, CRTC, plane and
//!   mode chosen from an [`OutputRequest`]), RAII [`GemHandle`] / [`Framebuffer`] objects and the
//!   [`ImportCache`] that imports each distinct dma-buf once;
//! - the pipeline object [`Scanout`]: the page-flip state machine (pending → queued → active) that keeps a
//!   frame alive until the flip that replaced it on screen has completed, restores the CRTC configuration it
//!   found when it is finished or dropped, and can capture what the CRTC composed through a writeback
//!   connector ([`Scanout::capture_writeback`]).

mod card;
mod choice;
mod colour;
mod commit;
mod error;
mod frame;
mod import;
mod output;
mod poll;
mod props;
mod scanout;
mod stats;
mod writeback;

pub use crate::formats::drm_format_for;
pub use card::{Card, CardInfo};
pub use choice::{kms_path, no_plane, plane_for};
pub use colour::{PlaneColour, KMS_ASSUMES};
pub use error::KmsError;
pub use import::{Framebuffer, GemHandle, ImportCache};
pub use output::{ModeRequest, Output, OutputRequest, Placement, PlaneKind};
pub use scanout::{Scanout, ScanoutFrame, ScanoutState};
pub use stats::{KmsStats, KmsSummary};
pub use writeback::WritebackImage;
