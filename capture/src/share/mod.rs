//! Sharing one camera between processes by fd: `dmacam serve` and `--from SOCKET` consumers.
//!
//! The server owns the camera (or the pattern source) and a Unix socket. Each consumer gets the camera's very
//! buffers (the exported dma-bufs, passed once with SCM_RIGHTS), then per frame a "ready" message naming the
//! buffer; it answers "release" when done. A buffer returns to the camera once every consumer that got its frame
//! has released it or has been dropped. No pixel is copied: the trace of each process shows the same dma-buf
//! inodes.
//!
//! # Protocol, version 1
//!
//! `AF_UNIX`, `SOCK_SEQPACKET` (message boundaries kept; fds travel with exactly one message). Every message:
//!
//! | bytes | field |
//! |---|---|
//! | 0–1 | version, `u16` LE (= 1) |
//! | 2–3 | kind, `u16` LE |
//! | 4–7 | body length, `u32` LE (= datagram length − 8) |
//! | 8… | body |
//!
//! The whole datagram is at most 1024 bytes; all integers little-endian; strings are a `u16` length and at
//! most 256 bytes of UTF-8; plane counts at most 4, buffer counts 1 to 32.
//!
//! | kind | direction | body | fds |
//! |---|---|---|---|
//! | 1 hello | consumer → server, first | (empty) | 0 |
//! | 2 release | consumer → server | `u32` index, `u32` sequence | 0 |
//! | 16 stream | server → consumer, first | `u32` fourcc, width, height; `u8` mplane; `u32` colorspace, ycbcr_enc, quantization, interval numerator, denominator; `u64` modifier; `u8` n, n × (`u32` bytesperline, sizeimage); `u32` buffers; `u8` memory (0 exported, 1 DMA-BUF heap, 2 udmabuf, 3 memfd); string source name | 0 |
//! | 17 buffer | server → consumer, once per buffer after stream | `u32` index; `u8` n, n × `u32` length | n |
//! | 18 ready | server → consumer, per frame | `u32` index, sequence; `u64` timestamp (ns); `u32` flags, field; `u8` n, n × (`u32` bytesused, data_offset) | 0 |
//! | 19 end | server → consumer, last | `u8` code (0 stopping, 1 camera failed, 2 too slow, 3 refused / protocol error); string reason | 0 |
//!
//! The server refuses a peer whose uid (SO_PEERCRED) is not its own (or, with `--allow-group`, whose gid is
//! not its group), a malformed message, an unknown version or kind, a message with fds, a release of a frame
//! the consumer does not hold, and a consumer that holds a frame longer than `--max-hold`: each gets an end
//! message with the reason and is disconnected; the server and the other consumers carry on. The socket file
//! is created mode 0600 (0660 with `--allow-group`) before it listens. A consumer checks everything it
//! receives the same way (format known, plane counts and sizes consistent, each fd at least its stated size).
//! memfd-backed buffers (the pattern source's fallback) are sealed against shrinking, so a peer cannot truncate
//! them under the server.

pub(crate) mod client;
mod server;
pub(crate) mod sock;
pub mod wire;

pub use crate::error::ShareError;
pub use client::{RemoteInput, RemoteSource};
pub use server::{ServeOptions, ServeStats, Server};
pub use wire::EndCode;
