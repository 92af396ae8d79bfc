//! The connection to the compositor: finding and opening the Wayland socket, polling its fd together with the
//! producer's, and describing a lost connection.

use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use wayland_client::Connection;

use super::error::DisplayError;

pub(super) fn display_name(opt: &Option<String>) -> String {
    opt.clone()
        .or_else(|| std::env::var("WAYLAND_DISPLAY").ok())
        .unwrap_or_else(|| "wayland-0".into())
}

pub(super) fn connect(opt: &Option<String>) -> Result<Connection, DisplayError> {
    let name = display_name(opt);
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let path =
        if name.starts_with('/') {
            PathBuf::from(&name)
        } else {
            match &runtime {
                Some(dir) => dir.join(&name),
                None => return Err(DisplayError::NoDisplay {
                    detail:
                        "XDG_RUNTIME_DIR is not set, so there is no Wayland socket to connect to"
                            .into(),
                }),
            }
        };
    if opt.is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() && !path.exists() {
        return Err(DisplayError::NoDisplay {
            detail: format!(
                "WAYLAND_DISPLAY is not set and {} does not exist",
                path.display()
            ),
        });
    }
    if !path.exists() {
        return Err(DisplayError::NoDisplay {
            detail: format!(
                "the socket {} of display '{name}' does not exist",
                path.display()
            ),
        });
    }
    let stream = UnixStream::connect(&path).map_err(|source| DisplayError::Connect {
        display: path.display().to_string(),
        source,
    })?;
    Connection::from_socket(stream).map_err(|e| DisplayError::Connect {
        display: path.display().to_string(),
        source: io::Error::other(e),
    })
}

/// Polls `extra` plus the optional Wayland fd; returns the Wayland fd's revents and which extras are ready.
pub(super) fn poll_fds(
    extra: &[BorrowedFd<'_>],
    wl: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
) -> io::Result<(PollFlags, Vec<bool>)> {
    let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(extra.len() + 1);
    let base = usize::from(wl.is_some());
    if let Some(fd) = wl {
        fds.push(PollFd::new(fd, PollFlags::POLLIN));
    }
    for fd in extra {
        fds.push(PollFd::new(*fd, PollFlags::POLLIN | PollFlags::POLLPRI));
    }
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(d) => PollTimeout::try_from(d.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX),
    };
    match nix::poll::poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok((PollFlags::empty(), vec![false; extra.len()])),
        Err(e) => return Err(e.into()),
    }
    let wl_rev = if base == 1 {
        fds[0].revents().unwrap_or(PollFlags::empty())
    } else {
        PollFlags::empty()
    };
    let ready = fds[base..]
        .iter()
        .map(|f| !f.revents().unwrap_or(PollFlags::empty()).is_empty())
        .collect();
    Ok((wl_rev, ready))
}

pub(super) fn disconnected(conn: &Connection, display: &str, detail: &str) -> DisplayError {
    let detail = match conn.protocol_error() {
        Some(p) => format!(
            "protocol error {} on {}@{}: {}",
            p.code, p.object_interface, p.object_id, p.message
        ),
        None => detail.to_owned(),
    };
    DisplayError::Disconnected {
        display: display.to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_display_is_one_clear_error() {
        let e = match connect(&Some("/nonexistent/wayland-42".into())) {
            Err(e) => e,
            Ok(_) => panic!("connected to a missing socket"),
        };
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
