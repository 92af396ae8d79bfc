//! Why the KMS output could not start or continue. Every message names the card and says what to do.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// An error of the KMS output.
#[derive(Debug, Error)]
pub enum KmsError {
    #[error("{path}: no such DRM card (the cards on this machine are in /dev/dri/: {available})")]
    NoSuchCard { path: PathBuf, available: String },
    #[error("cannot open {path}: {source} (the user needs read-write access, usually the video group or a seat)")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a DRM card ({source}); give a /dev/dri/cardN node")]
    NotDrm {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is a DRM render node, which cannot drive a display; give the card node /dev/dri/cardN")]
    RenderNode { path: PathBuf },
    #[error("cannot become DRM master of {path}: {holder} ({source}); stop it or switch to a free VT, then retry")]
    NotMaster {
        path: PathBuf,
        /// Who holds the display, as far as can be told.
        holder: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} ({driver}) cannot import dma-bufs (no DRM_CAP_PRIME import); it cannot show frames without a copy")]
    NoPrime { path: PathBuf, driver: String },
    #[error("{path} has no connected connector (connectors: {connectors}); plug in a display or pick another --card")]
    NoConnectedConnector { path: PathBuf, connectors: String },
    #[error("{path} has no connector named {name} (connectors: {connectors})")]
    NoSuchConnector {
        path: PathBuf,
        name: String,
        connectors: String,
    },
    #[error("connector {connector} on {path} is {state}, not connected; pick a connected one (connectors: {connectors})")]
    ConnectorNotConnected {
        path: PathBuf,
        connector: String,
        state: String,
        connectors: String,
    },
    #[error("connector {connector} on {path} has no mode {requested}; it offers {available}")]
    NoSuchMode {
        path: PathBuf,
        connector: String,
        requested: String,
        available: String,
    },
    #[error("connector {connector} on {path} has no CRTC it can be driven by")]
    NoCrtc { path: PathBuf, connector: String },
    #[error("{path}: no plane of CRTC {crtc} scans out {format} (primary plane formats: {primary_formats}); use the GPU path to convert to XR24")]
    NoPlane {
        path: PathBuf,
        crtc: u32,
        format: String,
        primary_formats: String,
    },
    #[error("{path}: {format} has no DRM equivalent a plane could scan out; use the GPU path to convert to XR24")]
    UnknownFormat { path: PathBuf, format: String },
    #[error(
        "{path}: cannot place a {frame_w}x{frame_h} frame on the {mode_w}x{mode_h} mode: {why}"
    )]
    Placement {
        path: PathBuf,
        frame_w: u32,
        frame_h: u32,
        mode_w: u32,
        mode_h: u32,
        why: String,
    },
    #[error("{path}: PRIME import of a dma-buf failed: {source}")]
    Import {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: adding a {format} {width}x{height} framebuffer failed: {source}")]
    AddFb {
        path: PathBuf,
        format: String,
        width: u32,
        height: u32,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {what} failed: {source}")]
    Ioctl {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {object} has no property {name} (the driver's atomic API lacks it)")]
    MissingProperty {
        path: PathBuf,
        object: String,
        name: &'static str,
    },
    #[error("{path}: the driver rejected the {what} commit: {source}")]
    Commit {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path}: no page-flip event within {ms} ms (the display controller stopped flipping)")]
    FlipTimeout { path: PathBuf, ms: u64 },
    #[error("{path}: writeback capture: {why}")]
    Writeback { path: PathBuf, why: String },
}

impl KmsError {
    pub(crate) fn ioctl(path: &std::path::Path, what: &'static str, source: io::Error) -> Self {
        KmsError::Ioctl {
            path: path.to_path_buf(),
            what,
            source,
        }
    }
}
