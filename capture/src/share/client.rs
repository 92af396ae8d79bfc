//! The consumer side: [`RemoteInput`] connects to a `dmacam serve` socket and receives the stream description
//! and every buffer's fds once; [`RemoteSource`] then hands out [`Frame`]s over those very buffers (the
//! server's dma-bufs, no copy), each released back to the server when its last holder drops it.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::sock::{self, Received};
use super::wire::{self, EndCode, Memory, Message, StreamDesc};
use crate::dmabuf::{size_of, Dmabuf, Fourcc, Mapping};
use crate::error::ShareError;
use crate::format::{Format, PixelFormat, PlaneFormat};
use crate::stream::{
    buffer_dmabuf, with_data_offsets, Frame, FrameMeta, FramePool, IoMode, Origin, StreamError,
};

/// How long the handshake may take before the server is declared unresponsive.
const HANDSHAKE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Slot {
    memory: Vec<Arc<OwnedFd>>,
    dmabuf: Dmabuf,
    maps: OnceLock<Vec<Mapping>>,
    held: AtomicBool,
    sequence: AtomicU32,
}

/// The buffers received from the server, shared by every frame handed out.
#[derive(Debug)]
struct Pool {
    path: PathBuf,
    sock: Arc<OwnedFd>,
    slots: Vec<Slot>,
}

impl FramePool for Pool {
    fn name(&self) -> &Path {
        &self.path
    }

    fn memory(&self, index: usize) -> &[Arc<OwnedFd>] {
        &self.slots[index].memory
    }

    fn maps(&self, index: usize) -> &OnceLock<Vec<Mapping>> {
        &self.slots[index].maps
    }

    fn release(&self, index: usize) {
        let slot = &self.slots[index];
        let msg = Message::Release {
            index: index as u32,
            sequence: slot.sequence.load(Ordering::SeqCst),
        };
        slot.held.store(false, Ordering::SeqCst);
        if let Err(e) = sock::send(self.sock.as_fd(), &wire::encode(&msg), &[]) {
            // The server is gone or dropped us; the next read says so.
            tracing::debug!(socket = %self.path.display(), "release of buffer {index}: {e}");
        }
    }

    fn origin(&self) -> Origin {
        Origin::Served
    }
}

/// A connection to a `dmacam serve` socket after the handshake: the stream's format and its buffers.
#[derive(Debug)]
pub struct RemoteInput {
    desc: StreamDesc,
    format: Format,
    pixel: PixelFormat,
    pool: Arc<Pool>,
}

fn proto(path: &Path, what: impl Into<String>) -> ShareError {
    ShareError::Protocol {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// Receives one message within `deadline`; fds are returned with it (the caller checks they belong).
fn recv_message(
    path: &Path,
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
) -> Result<(Message, Vec<OwnedFd>), ShareError> {
    if let Some(d) = deadline {
        let left = d.saturating_duration_since(Instant::now());
        let ready = sock::wait_readable(fd, left.as_millis().min(i32::MAX as u128) as i32)
            .map_err(|source| ShareError::Io {
                path: path.to_path_buf(),
                what: "poll",
                source,
            })?;
        if !ready {
            return Err(ShareError::Unresponsive {
                path: path.to_path_buf(),
            });
        }
    }
    match sock::recv(fd).map_err(|source| ShareError::Io {
        path: path.to_path_buf(),
        what: "receive",
        source,
    })? {
        Received::Closed => Err(ShareError::Closed {
            path: path.to_path_buf(),
        }),
        Received::Message {
            truncated: true, ..
        } => Err(proto(path, "a message above the size or fd limit")),
        Received::Message { data, fds, .. } => {
            let msg = wire::decode(&data).map_err(|e| proto(path, e.to_string()))?;
            if let Message::End { code, reason } = msg {
                return Err(ShareError::Ended {
                    path: path.to_path_buf(),
                    code,
                    reason,
                });
            }
            if fds.len() != msg.fds() {
                return Err(proto(
                    path,
                    format!("{} fds with a {} message", fds.len(), msg.name()),
                ));
            }
            Ok((msg, fds))
        }
    }
}

impl RemoteInput {
    /// Connects to the server at `path`, says hello and receives the stream description and every buffer.
    /// Everything received is checked: a format dmacam does not know, plane counts or sizes that disagree
    /// with it, or an fd smaller than its stated length end the connection with a [`ShareError`].
    pub fn connect(path: &Path) -> Result<RemoteInput, ShareError> {
        let sock = sock::connect(path).map_err(|source| ShareError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let hello = wire::encode(&Message::Hello);
        let deadline = Some(Instant::now() + HANDSHAKE);
        if let Err(source) = sock::send(sock.as_fd(), &hello, &[]) {
            // A server that refuses a consumer says why and closes at once: its reason beats EPIPE.
            return Err(match recv_message(path, sock.as_fd(), deadline) {
                Err(e @ ShareError::Ended { .. }) => e,
                _ => ShareError::Io {
                    path: path.to_path_buf(),
                    what: "send",
                    source,
                },
            });
        }
        let desc = match recv_message(path, sock.as_fd(), deadline)?.0 {
            Message::Stream(d) => d,
            other => {
                return Err(proto(
                    path,
                    format!("a {} message instead of the stream", other.name()),
                ))
            }
        };
        let fourcc = Fourcc(desc.fourcc);
        let pixel = PixelFormat::lookup(fourcc).ok_or_else(|| {
            proto(
                path,
                format!("format {fourcc}, which this dmacam cannot handle"),
            )
        })?;
        let memory_planes = if pixel.multi_buffer {
            pixel.color_planes()
        } else {
            1
        };
        if desc.planes.len() != memory_planes {
            return Err(proto(
                path,
                format!(
                    "{} memory planes for {fourcc}, which has {memory_planes}",
                    desc.planes.len()
                ),
            ));
        }
        if desc.width == 0 || desc.height == 0 || desc.width > 16384 || desc.height > 16384 {
            return Err(proto(
                path,
                format!("frame size {}x{}", desc.width, desc.height),
            ));
        }
        let format = Format {
            fourcc,
            width: desc.width,
            height: desc.height,
            mplane: desc.mplane,
            planes: desc
                .planes
                .iter()
                .map(|&(bytesperline, sizeimage)| PlaneFormat {
                    bytesperline,
                    sizeimage,
                })
                .collect(),
            colorspace: desc.colorspace,
            ycbcr_enc: desc.ycbcr_enc,
            quantization: desc.quantization,
        };
        let mut slots: Vec<Option<Slot>> = (0..desc.buffers).map(|_| None).collect();
        for _ in 0..desc.buffers {
            let (msg, fds) = recv_message(path, sock.as_fd(), deadline)?;
            let Message::Buffer { index, lengths } = msg else {
                return Err(proto(
                    path,
                    format!("a {} message instead of a buffer", msg.name()),
                ));
            };
            let slot = slots
                .get_mut(index as usize)
                .filter(|s| s.is_none())
                .ok_or_else(|| proto(path, format!("buffer index {index} out of place")))?;
            if lengths.len() != memory_planes {
                return Err(proto(
                    path,
                    format!("buffer {index} has {} planes", lengths.len()),
                ));
            }
            let mut memory = Vec::with_capacity(fds.len());
            for (i, (fd, &len)) in fds.into_iter().zip(&lengths).enumerate() {
                let actual = size_of(fd.as_fd()).map_err(|source| ShareError::Io {
                    path: path.to_path_buf(),
                    what: "size of a received buffer",
                    source,
                })?;
                if (actual as u64) < len as u64 || len < format.planes[i].sizeimage {
                    return Err(proto(
                        path,
                        format!(
                            "buffer {index} plane {i}: {actual} bytes, stated {len}, format needs {}",
                            format.planes[i].sizeimage
                        ),
                    ));
                }
                memory.push(Arc::new(fd));
            }
            *slot = Some(Slot {
                dmabuf: buffer_dmabuf(&format, pixel, &memory, desc.modifier),
                memory,
                maps: OnceLock::new(),
                held: AtomicBool::new(false),
                sequence: AtomicU32::new(0),
            });
        }
        let slots = slots.into_iter().flatten().collect::<Vec<_>>();
        tracing::debug!(
            socket = %path.display(),
            source = %desc.source,
            buffers = slots.len(),
            "connected: {fourcc} {}x{}",
            format.width,
            format.height
        );
        Ok(RemoteInput {
            pool: Arc::new(Pool {
                path: path.to_path_buf(),
                sock: Arc::new(sock),
                slots,
            }),
            desc,
            format,
            pixel,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.pool.path
    }

    /// The format the server streams.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// The server's frame interval (seconds per frame).
    pub fn interval(&self) -> (u32, u32) {
        self.desc.interval
    }

    /// The camera's device path or source name, as the server said.
    pub fn source_name(&self) -> &str {
        &self.desc.source
    }

    /// Starts taking frames.
    pub fn into_source(self) -> RemoteSource {
        RemoteSource {
            input: self,
            seen: HashSet::new(),
        }
    }
}

/// Frames from a `dmacam serve` socket (see [`RemoteInput`]).
#[derive(Debug)]
pub struct RemoteSource {
    input: RemoteInput,
    /// Sequence numbers seen, to refuse a server that sends the same frame twice (kept small).
    seen: HashSet<u32>,
}

impl RemoteSource {
    fn err(&self, source: ShareError) -> StreamError {
        StreamError::Remote {
            path: self.input.pool.path.clone(),
            source,
        }
    }

    /// Waits up to `timeout` for the server's next frame.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Frame, StreamError> {
        let pool = self.input.pool.clone();
        let path = &pool.path;
        let deadline = Instant::now() + timeout;
        let (msg, _) =
            recv_message(path, pool.sock.as_fd(), Some(deadline)).map_err(|e| match e {
                ShareError::Unresponsive { .. } => StreamError::Timeout {
                    path: path.clone(),
                    timeout,
                },
                e => self.err(e),
            })?;
        let Message::Ready {
            index,
            sequence,
            timestamp_ns,
            flags,
            field,
            bytesused,
            data_offset,
        } = msg
        else {
            return Err(self.err(proto(
                path,
                format!("a {} message instead of a frame", msg.name()),
            )));
        };
        let slot = pool
            .slots
            .get(index as usize)
            .ok_or_else(|| self.err(proto(path, format!("frame in unknown buffer {index}"))))?;
        if bytesused.len() != slot.memory.len() {
            return Err(self.err(proto(
                path,
                format!("frame with {} planes", bytesused.len()),
            )));
        }
        if slot.held.swap(true, Ordering::SeqCst) {
            return Err(self.err(proto(
                path,
                format!("frame in buffer {index}, which this consumer still holds"),
            )));
        }
        if self.seen.len() > 64 {
            self.seen.clear();
        }
        if !self.seen.insert(sequence) {
            slot.held.store(false, Ordering::SeqCst);
            return Err(self.err(proto(path, format!("frame {sequence} a second time"))));
        }
        slot.sequence.store(sequence, Ordering::SeqCst);
        let dmabuf = with_data_offsets(&slot.dmabuf, &slot.memory, &data_offset);
        Ok(Frame::from_pool(
            pool.clone(),
            FrameMeta {
                index: index as usize,
                dmabuf,
                sequence,
                timestamp: Duration::from_nanos(timestamp_ns),
                flags,
                field,
                bytesused,
                data_offset,
                // A decode (MJPEG) happened in the server, which reports it.
                cpu_bytes_copied: 0,
            },
        ))
    }

    /// The socket: readable when a frame (or the end) arrives.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.input.pool.sock.as_fd()
    }

    pub fn format(&self) -> &Format {
        &self.input.format
    }

    pub fn pixel_format(&self) -> PixelFormat {
        self.input.pixel
    }

    /// How the server's buffers were allocated.
    pub fn io(&self) -> IoMode {
        match self.input.desc.memory {
            Memory::Exported => IoMode::Mmap,
            Memory::DmaHeap => IoMode::DmaHeap,
            Memory::Udmabuf => IoMode::Udmabuf,
            Memory::Memfd => IoMode::Memfd,
        }
    }

    pub fn buffer_count(&self) -> usize {
        self.input.pool.slots.len()
    }

    /// The memory planes of buffer `index`, as received from the server.
    pub fn buffer_memory(&self, index: usize) -> Option<&[Arc<OwnedFd>]> {
        self.input.pool.slots.get(index).map(|s| &s.memory[..])
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.input.pool.path
    }

    /// `Some(why)` if the server's buffers are memfds, not dma-bufs.
    pub fn not_dmabuf_reason(&self) -> Option<&str> {
        (self.input.desc.memory == Memory::Memfd)
            .then_some("the server's buffers are memfds (its source has no dma-buf allocator)")
    }

    /// The camera's device path or source name, as the server said.
    pub fn source_name(&self) -> &str {
        &self.input.desc.source
    }
}

impl EndCode {
    /// What the code means, for the consumer's error line.
    pub fn describe(self) -> &'static str {
        match self {
            EndCode::Stopping => "the server stopped",
            EndCode::CameraFailed => "the server's camera failed",
            EndCode::TooSlow => "the server dropped this consumer for holding a frame too long",
            EndCode::Protocol => "the server refused this consumer",
        }
    }
}
