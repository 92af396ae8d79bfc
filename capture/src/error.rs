//! The crate's stream and sharing error types: [`StreamError`] (a remote source's failure is a
//! [`ShareError`]) and [`ShareError`]. Both live here so that `stream` and `share` need not use each other;
//! they are re-exported as `stream::StreamError` and `share::ShareError`.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::alloc::AllocError;
use crate::dmabuf::MapError;
use crate::share::wire::EndCode;

/// Why streaming could not be set up or continue.
#[derive(Debug, Error)]
pub enum StreamError {
    #[error("{path}: {format} cannot be streamed by dmacam; supported: {supported}")]
    Unsupported {
        path: PathBuf,
        format: String,
        supported: String,
    },
    #[error("{path} is busy: another process is streaming from it (close that program or pick another device)")]
    Busy { path: PathBuf },
    #[error("{path} does not support {mode} streaming I/O")]
    NoIo { path: PathBuf, mode: &'static str },
    #[error("{what} on {path} failed: {source}")]
    Ioctl {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Alloc {
        path: PathBuf,
        #[source]
        source: AllocError,
    },
    #[error("{path} delivered no frame within {timeout:?} (is the device producing frames?)")]
    Timeout { path: PathBuf, timeout: Duration },
    #[error(
        "{path} stopped streaming with an error (the driver reported a fatal streaming error)"
    )]
    Failed { path: PathBuf },
    #[error("{path} was disconnected mid-stream (the device went away: unplugged, or its driver unbound)")]
    Disconnected { path: PathBuf },
    #[error(
        "{path}: all {count} buffers are held by consumers; drop frames before asking for more"
    )]
    Starved { path: PathBuf, count: usize },
    #[error("{path}: the stream is not started")]
    NotStarted { path: PathBuf },
    #[error("{source}")]
    Remote {
        path: PathBuf,
        #[source]
        source: ShareError,
    },
    #[error("{path}: mapping the frame's dma-buf: {source}")]
    Map {
        path: PathBuf,
        #[source]
        source: MapError,
    },
    #[error("{path}: {source}")]
    Jpeg {
        path: PathBuf,
        #[source]
        source: crate::jpeg::JpegError,
    },
    #[error("{source}")]
    PipeWire {
        path: PathBuf,
        #[source]
        source: crate::pipewire::PwError,
    },
}

impl StreamError {
    /// Whether the source is gone rather than broken: the camera was unplugged (ENODEV), or the `serve`
    /// server ended the stream, dropped this consumer or closed the connection. The frames taken before are
    /// good; a writer keeps them.
    pub fn is_source_gone(&self) -> bool {
        matches!(
            self,
            StreamError::Disconnected { .. }
                | StreamError::Remote {
                    source: ShareError::Ended { .. } | ShareError::Closed { .. },
                    ..
                }
        )
    }
}

/// Why sharing failed, on either side.
#[derive(Debug, Error)]
pub enum ShareError {
    #[error("cannot connect to {path}: {source} (is `dmacam serve --socket {path}` running?)")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen at {path}: {source}")]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is in use by another server; stop it or give another --socket")]
    InUse { path: PathBuf },
    #[error("{what} on {path} failed: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the server sent {what}; disconnected")]
    Protocol { path: PathBuf, what: String },
    #[error("{path}: the server did not answer within 5 s")]
    Unresponsive { path: PathBuf },
    #[error("{path}: the server closed the connection")]
    Closed { path: PathBuf },
    #[error("{path}: {}: {reason}", code.describe())]
    Ended {
        path: PathBuf,
        code: EndCode,
        reason: String,
    },
}
