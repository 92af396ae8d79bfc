//! PipeWire: cameras the desktop shares, as one more kind of input (`-d pipewire`, `-d pipewire:NODE`).
//!
//! On today's desktops PipeWire (with WirePlumber and the camera portal) owns the cameras; an application
//! that opens the V4L2 node itself finds it busy. A PipeWire input connects a consumer stream to a video
//! source node (the camera's v4l2 node, GStreamer's `pipewiresink`, another dmacam) and takes its buffers as
//! they are: dma-bufs when the producer offers them (SPA_DATA_DmaBuf, no copy), memfds otherwise (said, like
//! the pattern's memfd fallback). The PipeWire side runs on a thread of its own (`consumer.rs`): its loop is
//! not `Send`, and a frame is released from whichever thread drops it last.
//!
//! - [`PwInput`] / [`PwSource`] (`source.rs`): the input and the streaming source, behind
//!   [`crate::Input::PipeWire`] and [`crate::Source::PipeWire`];
//! - `pool.rs`: the producer's buffers as frames hold them (a release queues the buffer back);
//! - [`pod`]: the SPA parameters both directions negotiate with (formats from the catalogue's `spa` codes,
//!   dma-buf modifiers, buffer types);
//! - [`daemon_socket`]: where the daemon listens (for `doctor` and the error lines).

mod consumer;
pub mod pod;
mod pool;
mod producer;
mod source;

use std::path::PathBuf;
use std::sync::Once;

use thiserror::Error;

pub use pool::Memory;
pub use producer::{ProducerOptions, ProducerStats, PwProducer};
pub use source::{PwInput, PwSource};

/// How `-d` names a PipeWire node: `pipewire` (the default video source) or `pipewire:NODE`.
pub const PREFIX: &str = "pipewire";

/// Which node a PipeWire input asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The session manager's default video source.
    Default,
    /// A node by id or object serial (a number), or by `node.name`, `node.description`, `object.path` or
    /// the camera's device path (`api.v4l2.path`).
    Named(String),
}

impl Target {
    /// `pipewire` → [`Target::Default`], `pipewire:NODE` → [`Target::Named`]; anything else is not a
    /// PipeWire name (`None`). An empty node name is an error.
    pub fn parse(name: &str) -> Option<Result<Target, PwError>> {
        let rest = name.strip_prefix(PREFIX)?;
        if rest.is_empty() {
            return Some(Ok(Target::Default));
        }
        let node = rest.strip_prefix(':')?;
        if node.trim().is_empty() {
            return Some(Err(PwError::EmptyTarget));
        }
        Some(Ok(Target::Named(node.to_owned())))
    }

    /// `pipewire` or `pipewire:NODE`, as the user wrote it.
    pub fn display_name(&self) -> String {
        match self {
            Target::Default => PREFIX.to_owned(),
            Target::Named(n) => format!("{PREFIX}:{n}"),
        }
    }
}

/// What went wrong talking to PipeWire; every message names the node or the daemon and what to do.
#[derive(Debug, Error)]
pub enum PwError {
    #[error("-d pipewire: give a node after the colon (an id, a node name or a device path), or just `pipewire` for the default camera")]
    EmptyTarget,
    #[error("{name}: no PipeWire daemon at {socket} (start pipewire and wireplumber in this session, or check XDG_RUNTIME_DIR / PIPEWIRE_REMOTE)")]
    NoDaemon { name: String, socket: PathBuf },
    #[error("{name}: PipeWire has no video source node '{node}'; video sources: {offered} (see `pw-cli ls Node`)")]
    NoSuchNode {
        name: String,
        node: String,
        offered: String,
    },
    #[error(
        "{name}: PipeWire has no video source (is a camera plugged in, and wireplumber running?)"
    )]
    NoSources { name: String },
    #[error("{name}: no format was agreed with the PipeWire node within {secs} s: it offers none dmacam takes ({wanted}), or no session manager links the stream (is wireplumber running?)")]
    NoFormat {
        name: String,
        secs: u64,
        wanted: String,
    },
    #[error("{name}: the PipeWire node gave {format}, which dmacam cannot take")]
    Unsupported { name: String, format: String },
    #[error("{name}: the PipeWire stream failed: {what}")]
    Stream { name: String, what: String },
    #[error("{name}: the PipeWire node went away mid-stream (its producer stopped or the camera was unplugged)")]
    Gone { name: String },
    #[error("{name}: the PipeWire thread stopped unexpectedly")]
    Thread { name: String },
    #[error("{name}: {what}: {source}")]
    Io {
        name: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Initialises libpipewire once per process.
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(pipewire::init);
}

/// Connects to the session's daemon on a new loop (on the calling thread, which then runs the loop); one
/// [`PwError::NoDaemon`] for any step that fails.
pub(crate) fn connect_daemon(
    name: &str,
) -> Result<
    (
        pipewire::main_loop::MainLoopRc,
        pipewire::context::ContextRc,
        pipewire::core::CoreRc,
    ),
    PwError,
> {
    init();
    let no_daemon = |_| PwError::NoDaemon {
        name: name.to_owned(),
        socket: daemon_socket(),
    };
    let mainloop = pipewire::main_loop::MainLoopRc::new(None).map_err(no_daemon)?;
    let context = pipewire::context::ContextRc::new(&mainloop, None).map_err(no_daemon)?;
    let core = context.connect_rc(None).map_err(no_daemon)?;
    Ok((mainloop, context, core))
}

/// The header meta (sequence, timestamp) of a PipeWire buffer, if it has one of the full size.
///
/// # Safety
/// `buffer` must be a valid `spa_buffer` with `n_metas` valid metas; the pointer is valid while the buffer is.
pub(crate) unsafe fn header_meta(
    buffer: &pipewire::spa::sys::spa_buffer,
) -> Option<*mut pipewire::spa::sys::spa_meta_header> {
    use pipewire::spa::sys as s;
    (0..buffer.n_metas as usize).find_map(|i| {
        // SAFETY: i < n_metas (the caller's contract).
        let m = unsafe { &*buffer.metas.add(i) };
        (m.type_ == s::SPA_META_Header
            && m.size as usize >= std::mem::size_of::<s::spa_meta_header>()
            && !m.data.is_null())
        .then_some(m.data as *mut s::spa_meta_header)
    })
}

/// Where the PipeWire daemon of this session listens: `$PIPEWIRE_REMOTE` (a socket name or path) under
/// `$XDG_RUNTIME_DIR` (or `$PIPEWIRE_RUNTIME_DIR`), `pipewire-0` by default.
pub fn daemon_socket() -> PathBuf {
    let remote = std::env::var("PIPEWIRE_REMOTE").unwrap_or_else(|_| "pipewire-0".to_owned());
    if remote.starts_with('/') {
        return PathBuf::from(remote);
    }
    let dir = std::env::var_os("PIPEWIRE_RUNTIME_DIR")
        .or_else(|| std::env::var_os("XDG_RUNTIME_DIR"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", nix::unistd::getuid())));
    dir.join(remote)
}

/// Whether a PipeWire daemon accepts connections at [`daemon_socket`] (a plain connect, no protocol).
pub fn daemon_reachable() -> Result<PathBuf, (PathBuf, std::io::Error)> {
    let socket = daemon_socket();
    match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(_) => Ok(socket),
        Err(e) => Err((socket, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_as_targets() {
        assert_eq!(Target::parse("pipewire").unwrap().unwrap(), Target::Default);
        assert_eq!(
            Target::parse("pipewire:42").unwrap().unwrap(),
            Target::Named("42".into())
        );
        assert_eq!(
            Target::parse("pipewire:/dev/video0").unwrap().unwrap(),
            Target::Named("/dev/video0".into())
        );
        assert!(matches!(
            Target::parse("pipewire:"),
            Some(Err(PwError::EmptyTarget))
        ));
        assert!(Target::parse("/dev/video0").is_none());
        assert!(Target::parse("pipewirex").is_none());
        assert!(Target::parse("pattern").is_none());
    }
}
