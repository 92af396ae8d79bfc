//! The publishing side: a [`Server`] owns a streaming [`Source`] and a listening socket, and shares every
//! frame with each connected consumer by fd. A buffer goes back to the camera when every consumer that got
//! its frame has released it, or has been dropped (for holding it longer than [`ServeOptions::max_hold`], for
//! not reading, for breaking the protocol, or for going away). No threads: a consumer can
//! only cost the camera the frames it holds for at most `max_hold`. The caller's loop takes the camera's frames
//! and hands them over ([`Server::publish`]), waiting on the consumers and the camera together
//! ([`Server::wait`]).

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::sock::{self, Received};
use super::wire::{self, EndCode, Memory, Message, StreamDesc};
use crate::dmabuf::{size_of, DRM_FORMAT_MOD_LINEAR};
use crate::error::ShareError;
use crate::source::Source;
use crate::stream::{Frame, IoMode};

/// How a [`Server`] listens and how patient it is.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The socket's path (created; an existing socket file that nobody listens on is replaced).
    pub socket: PathBuf,
    /// Mode 0660 and peers of the server's group accepted, instead of 0600 and the server's uid only.
    pub allow_group: bool,
    /// How long a consumer may hold a frame before it is dropped.
    pub max_hold: Duration,
    /// Most consumers at once; more are refused with a reason.
    pub max_clients: usize,
}

/// What a [`Server`] did, for its final report.
#[derive(Debug, Default, Clone)]
pub struct ServeStats {
    pub frames: u64,
    /// Frames no consumer was connected for (given back to the camera at once).
    pub unwatched: u64,
    pub clients: u64,
    pub refused: u64,
    pub dropped_slow: u64,
    pub dropped_protocol: u64,
    /// Frames the camera dropped (gaps in its sequence numbers): it had no free buffer, typically because
    /// consumers held every one. Zero-copy sharing means a slow consumer can starve the camera; this counts it.
    pub camera_dropped: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Connected, the hello not yet received.
    Greeting,
    Streaming,
}

#[derive(Debug)]
struct Client {
    id: u64,
    pid: i32,
    sock: OwnedFd,
    state: State,
    since: Instant,
    /// Why this peer is refused: told in answer to its hello (closing before reading the hello would reset
    /// the connection, and the peer would never read the reason).
    refusal: Option<String>,
}

/// A frame given to consumers and not yet released by all of them.
#[derive(Debug)]
struct InFlight {
    frame: Frame,
    /// Consumer id → when it got the frame.
    holders: HashMap<u64, Instant>,
}

/// A camera shared over a Unix socket. See the [module docs](self).
#[derive(Debug)]
pub struct Server {
    opts: ServeOptions,
    listener: OwnedFd,
    desc: StreamDesc,
    /// Per buffer: its memory planes and their lengths.
    buffers: Vec<(Vec<std::sync::Arc<OwnedFd>>, Vec<u32>)>,
    clients: Vec<Client>,
    inflight: HashMap<usize, InFlight>,
    next_id: u64,
    uid: u32,
    gid: u32,
    stats: ServeStats,
    /// The sequence number of the last frame taken, to count the camera's drops.
    last_sequence: Option<u32>,
}

/// Whether something listens at `path` (a stale socket file from a killed server does not).
fn in_use(path: &Path) -> bool {
    sock::connect(path).is_ok()
}

impl Server {
    /// Describes `source`'s stream and buffers, and listens at `opts.socket`.
    pub fn new(source: &Source, opts: ServeOptions) -> Result<Server, ShareError> {
        let path = opts.socket.clone();
        let io = |what, source| ShareError::Io {
            path: path.clone(),
            what,
            source,
        };
        let format = source.format();
        let mut buffers = Vec::new();
        for i in 0..source.buffer_count() {
            let memory = source
                .buffer_memory(i)
                .ok_or_else(|| {
                    io(
                        "description of a buffer",
                        std::io::Error::other(format!(
                            "{} has no buffer {i}",
                            source.path().display()
                        )),
                    )
                })?
                .to_vec();
            let lengths = memory
                .iter()
                .map(|fd| size_of(fd.as_fd()).map(|n| n.min(u32::MAX as usize) as u32))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| io("size of a buffer", e))?;
            buffers.push((memory, lengths));
        }
        let desc = StreamDesc {
            fourcc: format.fourcc.0,
            width: format.width,
            height: format.height,
            mplane: format.mplane,
            colorspace: format.colorspace,
            ycbcr_enc: format.ycbcr_enc,
            quantization: format.quantization,
            interval: (1, 30),
            modifier: DRM_FORMAT_MOD_LINEAR,
            planes: format
                .planes
                .iter()
                .map(|p| (p.bytesperline, p.sizeimage))
                .collect(),
            buffers: buffers.len() as u32,
            memory: match source.io() {
                IoMode::Mmap => Memory::Exported,
                IoMode::DmaHeap => Memory::DmaHeap,
                IoMode::Udmabuf => Memory::Udmabuf,
                IoMode::Memfd => Memory::Memfd,
            },
            source: source.path().display().to_string(),
        };
        if path.exists() {
            if in_use(&path) {
                return Err(ShareError::InUse { path });
            }
            // A socket file left by a server that was killed.
            std::fs::remove_file(&path).map_err(|e| io("removal of the stale socket", e))?;
        }
        let mode = if opts.allow_group { 0o660 } else { 0o600 };
        let listener = sock::listen(&path, mode).map_err(|source| ShareError::Listen {
            path: path.clone(),
            source,
        })?;
        Ok(Server {
            opts,
            listener,
            desc,
            buffers,
            clients: Vec::new(),
            inflight: HashMap::new(),
            next_id: 1,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            stats: ServeStats::default(),
            last_sequence: None,
        })
    }

    /// Sets the frame interval announced to consumers.
    pub fn set_interval(&mut self, numerator: u32, denominator: u32) {
        self.desc.interval = (numerator, denominator);
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.opts.socket
    }

    /// Connected consumers (greeting or streaming).
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Frames held by consumers now (their buffers are away from the camera).
    pub fn held(&self) -> usize {
        self.inflight.len()
    }

    /// What the server did so far.
    pub fn stats(&self) -> &ServeStats {
        &self.stats
    }

    /// Waits up to `timeout` (less when a consumer's `max_hold` runs out first) for the consumers and the
    /// caller's `extra` fds (the camera's): reads what consumers sent (releases first: they free buffers for
    /// the camera), accepts new ones, drops those that held a frame too long, and says for each of `extra`
    /// whether it is readable (none when the wait was interrupted by a signal).
    pub fn wait(
        &mut self,
        extra: &[BorrowedFd<'_>],
        timeout: Duration,
    ) -> Result<Vec<bool>, ShareError> {
        let ready = self.poll_once(extra, timeout)?;
        self.drop_slow();
        Ok(ready)
    }

    /// Ends every consumer's stream with the reason (`failure`: the camera failed, and why; `None`: the
    /// server stopped) before its socket closes, and lets every frame go back to the camera.
    pub fn end(&mut self, failure: Option<&str>) {
        let (code, reason) = match failure {
            None => (EndCode::Stopping, "the server stopped"),
            Some(why) => (EndCode::CameraFailed, why),
        };
        for c in std::mem::take(&mut self.clients) {
            let _ = send_end(&c, code, reason);
        }
        self.inflight.clear();
    }

    /// Accepts consumers until `n` of them have the stream, `stop()` says so, or `timeout` passes; returns
    /// whether `n` were reached. For `serve --wait-clients`: start the camera only when every consumer of a
    /// test is there, so they all get the same frames.
    pub fn wait_for_clients(
        &mut self,
        n: usize,
        timeout: Duration,
        stop: &dyn Fn() -> bool,
    ) -> Result<bool, ShareError> {
        let deadline = Instant::now() + timeout;
        loop {
            let streaming = self
                .clients
                .iter()
                .filter(|c| c.state == State::Streaming)
                .count();
            if streaming >= n {
                return Ok(true);
            }
            if stop() || Instant::now() >= deadline {
                return Ok(false);
            }
            self.wait(&[], Duration::from_millis(200))?;
        }
    }

    /// One poll over the listener, `extra` and the consumers: reads what consumers sent, accepts new ones,
    /// and says which of `extra` are readable.
    fn poll_once(
        &mut self,
        extra: &[BorrowedFd<'_>],
        timeout: Duration,
    ) -> Result<Vec<bool>, ShareError> {
        let timeout = self.poll_timeout(timeout);
        let mut fds = vec![pollfd(self.listener.as_fd())];
        fds.extend(extra.iter().map(|fd| pollfd(fd.as_fd())));
        let first_client = fds.len();
        fds.extend(self.clients.iter().map(|c| pollfd(c.sock.as_fd())));
        // SAFETY: `fds` is a valid array of pollfds for the duration of the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(vec![false; extra.len()]);
            }
            return Err(ShareError::Io {
                path: self.opts.socket.clone(),
                what: "poll",
                source: e,
            });
        }
        // Consumers first: their releases free buffers for the camera.
        let ready: Vec<u64> = self
            .clients
            .iter()
            .zip(&fds[first_client..])
            .filter(|(_, p)| p.revents != 0)
            .map(|(c, _)| c.id)
            .collect();
        for id in ready {
            self.read_client(id);
        }
        if fds[0].revents != 0 {
            self.accept_all();
        }
        Ok(fds[1..first_client]
            .iter()
            .map(|p| p.revents != 0)
            .collect())
    }

    /// `most`, or less when a consumer's `max_hold` runs out first; in milliseconds, for poll.
    fn poll_timeout(&self, most: Duration) -> i32 {
        let now = Instant::now();
        let mut t = most;
        for f in self.inflight.values() {
            for since in f.holders.values() {
                t = t.min((*since + self.opts.max_hold).saturating_duration_since(now));
            }
        }
        for c in &self.clients {
            if c.state == State::Greeting {
                t = t.min((c.since + self.opts.max_hold).saturating_duration_since(now));
            }
        }
        t.as_millis().min(i32::MAX as u128 - 1) as i32 + 1
    }

    fn accept_all(&mut self) {
        loop {
            let sock = match sock::accept(self.listener.as_fd()) {
                Ok(Some(s)) => s,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(socket = %self.opts.socket.display(), "accept: {e}");
                    return;
                }
            };
            let (uid, gid, pid) = match sock::peer(sock.as_fd()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(socket = %self.opts.socket.display(), "SO_PEERCRED: {e}; connection refused");
                    self.stats.refused += 1;
                    continue;
                }
            };
            if self.clients.len() >= self.opts.max_clients + 16 {
                // A flood of connections: closed unanswered, so fds stay bounded.
                tracing::warn!(socket = %self.opts.socket.display(), "consumer pid {pid} refused: too many connections");
                self.stats.refused += 1;
                continue;
            }
            let gid_ok = self.opts.allow_group && gid == self.gid;
            let refusal = if uid != self.uid && !gid_ok {
                Some(format!(
                    "uid {uid} is not the server's uid {}{}",
                    self.uid,
                    if self.opts.allow_group {
                        " nor in its group"
                    } else {
                        " (serve --allow-group admits its group)"
                    }
                ))
            } else if self.clients.iter().filter(|c| c.refusal.is_none()).count()
                >= self.opts.max_clients
            {
                Some(format!(
                    "the server has its maximum of {} consumers",
                    self.opts.max_clients
                ))
            } else {
                None
            };
            let id = self.next_id;
            self.next_id += 1;
            if refusal.is_none() {
                tracing::info!(socket = %self.opts.socket.display(), "consumer pid {pid} connected");
            }
            self.clients.push(Client {
                id,
                pid,
                sock,
                state: State::Greeting,
                since: Instant::now(),
                refusal,
            });
        }
    }

    fn read_client(&mut self, id: u64) {
        // Read everything waiting, so a fast stream of releases does not lag behind frames.
        loop {
            let Some(c) = self.clients.iter().find(|c| c.id == id) else {
                return;
            };
            let got = match sock::recv(c.sock.as_fd()) {
                Ok(g) => g,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.drop_client(id, None, &format!("receive failed: {e}"));
                    return;
                }
            };
            let (data, fds, truncated) = match got {
                Received::Closed => {
                    self.drop_client(id, None, "disconnected");
                    return;
                }
                Received::Message {
                    data,
                    fds,
                    truncated,
                } => (data, fds, truncated),
            };
            if truncated {
                self.drop_protocol(id, "sent a message above the size or fd limit");
                return;
            }
            if !fds.is_empty() {
                // Closed here (dropped), never used.
                let n = fds.len();
                drop(fds);
                self.drop_protocol(id, &format!("sent {n} fds, which consumers never send"));
                return;
            }
            if self
                .clients
                .iter()
                .any(|c| c.id == id && c.refusal.is_some())
            {
                self.refuse(id);
                return;
            }
            let msg = match wire::decode(&data) {
                Ok(m) => m,
                Err(e) => {
                    self.drop_protocol(id, &format!("sent a malformed message: {e}"));
                    return;
                }
            };
            if let Err(why) = self.handle(id, msg) {
                self.drop_protocol(id, &why);
                return;
            }
        }
    }

    fn handle(&mut self, id: u64, msg: Message) -> Result<(), String> {
        let c = self
            .clients
            .iter_mut()
            .find(|c| c.id == id)
            .expect("the client exists");
        match (msg, &c.state) {
            (Message::Hello, State::Greeting) => {
                c.state = State::Streaming;
                let c = &*c;
                let r = send(c, &Message::Stream(self.desc.clone()), &[]).and_then(|()| {
                    self.buffers
                        .iter()
                        .enumerate()
                        .try_for_each(|(i, (mem, len))| {
                            let fds: Vec<BorrowedFd<'_>> = mem.iter().map(|f| f.as_fd()).collect();
                            let m = Message::Buffer {
                                index: i as u32,
                                lengths: len.clone(),
                            };
                            send(c, &m, &fds)
                        })
                });
                if let Err(e) = r {
                    self.drop_client(id, None, &format!("handshake failed: {e}"));
                } else {
                    self.stats.clients += 1;
                    tracing::debug!(socket = %self.opts.socket.display(), "consumer pid {} has the stream", c.pid);
                }
                Ok(())
            }
            (Message::Release { index, sequence }, State::Streaming) => {
                let held = self
                    .inflight
                    .get_mut(&(index as usize))
                    .filter(|f| f.frame.sequence() == sequence && f.holders.contains_key(&id));
                let Some(f) = held else {
                    return Err(format!(
                        "released frame {sequence} in buffer {index}, which it does not hold"
                    ));
                };
                f.holders.remove(&id);
                if f.holders.is_empty() {
                    // The last holder: the frame (and with it the camera buffer) goes back.
                    self.inflight.remove(&(index as usize));
                }
                Ok(())
            }
            (m, state) => Err(format!(
                "sent a {} message while {}",
                m.name(),
                if *state == State::Greeting {
                    "expected to say hello"
                } else {
                    "streaming"
                }
            )),
        }
    }

    /// Shares `frame` (from the source the server was made for) with every consumer that has the stream; it
    /// goes back to the camera when the last of them releases it, or at once when there is none.
    pub fn publish(&mut self, frame: Frame) {
        self.stats.frames += 1;
        if let Some(last) = self.last_sequence {
            let missed = frame.sequence().wrapping_sub(last).wrapping_sub(1);
            if missed > 0 && missed < u32::MAX / 2 {
                self.stats.camera_dropped += u64::from(missed);
                tracing::warn!(
                    socket = %self.opts.socket.display(),
                    "the camera dropped {missed} frame(s) before {} ({} of {} buffers held by consumers)",
                    frame.sequence(),
                    self.inflight.len(),
                    self.buffers.len()
                );
            }
        }
        self.last_sequence = Some(frame.sequence());
        let msg = Message::Ready {
            index: frame.index() as u32,
            sequence: frame.sequence(),
            timestamp_ns: frame.timestamp().as_nanos().min(u64::MAX as u128) as u64,
            flags: frame.flags(),
            field: frame.field(),
            bytesused: frame.bytesused().to_vec(),
            data_offset: frame.data_offset().to_vec(),
        };
        let bytes = wire::encode(&msg);
        let now = Instant::now();
        let mut holders = HashMap::new();
        let mut failed = Vec::new();
        for c in self.clients.iter().filter(|c| c.state == State::Streaming) {
            match sock::send(c.sock.as_fd(), &bytes, &[]) {
                Ok(()) => {
                    holders.insert(c.id, now);
                }
                Err(e) => failed.push((c.id, e)),
            }
        }
        for (id, e) in failed {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                self.stats.dropped_slow += 1;
                self.drop_client(id, Some(EndCode::TooSlow), "stopped reading frames");
            } else {
                self.drop_client(id, None, &format!("send failed: {e}"));
            }
        }
        if holders.is_empty() {
            self.stats.unwatched += 1;
            return;
        }
        // A buffer the camera gave again cannot still be held: the old entry's frame was the last holder.
        self.inflight
            .insert(frame.index(), InFlight { frame, holders });
    }

    fn drop_slow(&mut self) {
        let now = Instant::now();
        let mut slow = Vec::new();
        for (index, f) in &self.inflight {
            for (id, since) in &f.holders {
                if now.duration_since(*since) > self.opts.max_hold {
                    slow.push((*id, *index));
                }
            }
        }
        slow.sort();
        slow.dedup_by_key(|(id, _)| *id);
        for (id, index) in slow {
            self.stats.dropped_slow += 1;
            let why = format!(
                "held buffer {index} longer than {:?} (--max-hold)",
                self.opts.max_hold
            );
            self.drop_client(id, Some(EndCode::TooSlow), &why);
        }
        let stuck: Vec<u64> = self
            .clients
            .iter()
            .filter(|c| {
                c.state == State::Greeting && now.duration_since(c.since) > self.opts.max_hold
            })
            .map(|c| c.id)
            .collect();
        for id in stuck {
            if self
                .clients
                .iter()
                .any(|c| c.id == id && c.refusal.is_some())
            {
                self.refuse(id);
            } else {
                self.drop_protocol(id, "did not say hello in time");
            }
        }
    }

    /// Tells a refused peer why and disconnects it.
    fn refuse(&mut self, id: u64) {
        let Some(pos) = self.clients.iter().position(|c| c.id == id) else {
            return;
        };
        let c = self.clients.swap_remove(pos);
        let why = c.refusal.as_deref().unwrap_or("refused");
        tracing::warn!(socket = %self.opts.socket.display(), "consumer pid {} refused: {why}", c.pid);
        let _ = send_end(&c, EndCode::Protocol, why);
        self.stats.refused += 1;
    }

    fn drop_protocol(&mut self, id: u64, why: &str) {
        self.stats.dropped_protocol += 1;
        self.drop_client(id, Some(EndCode::Protocol), why);
    }

    /// Disconnects consumer `id` (telling it `code` and `why` if given) and releases whatever it held.
    fn drop_client(&mut self, id: u64, code: Option<EndCode>, why: &str) {
        let Some(pos) = self.clients.iter().position(|c| c.id == id) else {
            return;
        };
        let c = self.clients.swap_remove(pos);
        match code {
            Some(code) => {
                tracing::warn!(socket = %self.opts.socket.display(), "consumer pid {} dropped: {why}", c.pid);
                let _ = send_end(&c, code, why);
            }
            None => {
                tracing::info!(socket = %self.opts.socket.display(), "consumer pid {} {why}", c.pid)
            }
        }
        self.inflight.retain(|_, f| {
            f.holders.remove(&id);
            !f.holders.is_empty()
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.opts.socket);
    }
}

fn pollfd(fd: BorrowedFd<'_>) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }
}

fn send(c: &Client, msg: &Message, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    sock::send(c.sock.as_fd(), &wire::encode(msg), fds)
}

/// Sends the end message (after reading what the client already sent, see [`sock::drain`]).
fn send_end(c: &Client, code: EndCode, reason: &str) -> std::io::Result<()> {
    sock::drain(c.sock.as_fd());
    send(
        c,
        &Message::End {
            code,
            reason: reason.to_owned(),
        },
        &[],
    )
}
