//! The viewer's errors: [`DisplayError`], each naming the display it talks to.

use std::io;

use dmacam_capture::dmabuf::MapError;
use dmacam_capture::Fourcc;
use thiserror::Error;
use wayland_client::globals::GlobalError;

/// Errors of the Wayland viewer. Each names the display it talks to.
#[derive(Debug, Error)]
pub enum DisplayError {
    #[error("no Wayland display: {detail}")]
    NoDisplay { detail: String },
    #[error("cannot connect to the Wayland display {display}: {source}")]
    Connect {
        display: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the registry of the Wayland display {display}: {source}")]
    Registry {
        display: String,
        #[source]
        source: GlobalError,
    },
    #[error("the compositor at {display} lacks {interface}, which a dmacam window needs")]
    Missing {
        display: String,
        interface: &'static str,
    },
    #[error("the Wayland compositor ({display}) went away: {detail}")]
    Disconnected { display: String, detail: String },
    #[error(
        "the compositor ({display}) could not import a {fourcc} {width}x{height} dma-buf (modifier {modifier:#x}), \
         and the shm fallback is not allowed on this path"
    )]
    Import {
        display: String,
        fourcc: Fourcc,
        width: u32,
        height: u32,
        modifier: u64,
    },
    #[error("cannot show a {fourcc} frame: {detail}")]
    Frame { fourcc: Fourcc, detail: String },
    #[error("cannot map a frame's dma-buf for the shm copy: {0}")]
    Map(#[from] MapError),
    #[error("cannot create a wl_shm buffer: {0}")]
    Shm(String),
    #[error("polling the Wayland fd of {display}: {source}")]
    Poll {
        display: String,
        #[source]
        source: io::Error,
    },
}
