//! The share protocol's socket calls: `AF_UNIX` `SOCK_SEQPACKET` sockets (one message per datagram, so fds
//! can only travel with a whole message), SCM_RIGHTS, SO_PEERCRED. Every fd made or received here is
//! close-on-exec and owned at once.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::cmsg_space;
use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockType, UnixAddr,
};

use super::wire::{MAX_MESSAGE, MAX_PLANES};

fn unix_socket(nonblocking: bool) -> io::Result<OwnedFd> {
    let mut flags = SockFlag::SOCK_CLOEXEC;
    if nonblocking {
        flags |= SockFlag::SOCK_NONBLOCK;
    }
    Ok(socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        flags,
        None,
    )?)
}

/// A non-blocking listening socket at `path` with file mode `mode`. The mode is set before `listen`, so no
/// peer can connect while the file still has the umask's mode (connecting to a socket that does not listen
/// yet is refused).
pub(crate) fn listen(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    let fd = unix_socket(true)?;
    let addr = UnixAddr::new(path)?;
    socket::bind(fd.as_raw_fd(), &addr)?;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    if let Err(e) = socket::listen(&fd, Backlog::new(16).expect("16 is a valid backlog")) {
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    Ok(fd)
}

/// A blocking connection to the socket at `path`.
pub(crate) fn connect(path: &Path) -> io::Result<OwnedFd> {
    let fd = unix_socket(false)?;
    socket::connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

/// The next pending connection, non-blocking and close-on-exec, or `None` if there is none.
pub(crate) fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    match socket::accept4(
        listener.as_raw_fd(),
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    ) {
        // SAFETY: accept4 just returned this fd; nothing else owns it.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(Errno::EAGAIN) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The peer's (uid, gid, pid) as the kernel recorded them at connect (SO_PEERCRED).
pub(crate) fn peer(fd: BorrowedFd<'_>) -> io::Result<(u32, u32, i32)> {
    let cred = socket::getsockopt(&fd, socket::sockopt::PeerCredentials)?;
    Ok((cred.uid(), cred.gid(), cred.pid()))
}

/// Sends one datagram with `fds` attached. `MSG_NOSIGNAL`: a peer that went away is an `EPIPE` error, not a
/// signal. On a non-blocking socket a full socket buffer is `WouldBlock`.
pub(crate) fn send(fd: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsgs };
    let iov = [io::IoSlice::new(bytes)];
    let n = socket::sendmsg::<UnixAddr>(fd.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    if n != bytes.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short send of a datagram",
        ));
    }
    Ok(())
}

/// One received datagram.
pub(crate) enum Received {
    /// The peer closed its end.
    Closed,
    /// A datagram of `data.len()` bytes with the fds it carried (owned: dropping them closes them).
    /// `truncated` if it was longer than [`MAX_MESSAGE`] or carried more fds than a message may.
    Message {
        data: Vec<u8>,
        fds: Vec<OwnedFd>,
        truncated: bool,
    },
}

/// Receives one datagram (blocking or not, as the socket is; `WouldBlock` when none is waiting). Received fds
/// are close-on-exec (`MSG_CMSG_CLOEXEC`) and owned before anything else can fail.
pub(crate) fn recv(fd: BorrowedFd<'_>) -> io::Result<Received> {
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let mut cmsg = cmsg_space!([RawFd; MAX_PLANES]);
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let msg = socket::recvmsg::<UnixAddr>(
        fd.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs() {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for r in raw {
                // SAFETY: the kernel installed these fds in this process for this message; nothing else
                // refers to them.
                fds.push(unsafe { OwnedFd::from_raw_fd(r) });
            }
        }
    }
    let truncated = msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
    let n = msg.bytes;
    if n == 0 && fds.is_empty() && !truncated {
        return Ok(Received::Closed);
    }
    buf.truncate(n.min(MAX_MESSAGE + 1));
    Ok(Received::Message {
        data: buf,
        fds,
        truncated,
    })
}

/// Waits up to `timeout_ms` (−1: forever) for `fd` to be readable; `Ok(false)` on timeout.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reads and discards what the peer already sent (closing any fds it carried), so that closing the socket
/// does not reset the connection: a peer is told ECONNRESET, before it can read our last message, when we
/// close with its messages unread.
pub(crate) fn drain(fd: BorrowedFd<'_>) {
    for _ in 0..256 {
        match recv_nonblocking(fd) {
            Ok(Received::Message { .. }) => continue,
            _ => return,
        }
    }
}

fn recv_nonblocking(fd: BorrowedFd<'_>) -> io::Result<Received> {
    if !wait_readable(fd, 0)? {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    recv(fd)
}
