//! The share protocol's messages and their byte encoding: pure functions, no I/O, so the decoder can be
//! fuzzed on its own (see `tests/host/share_fuzz.rs`).
//!
//! Every message is one `SOCK_SEQPACKET` datagram: an 8-byte header (`u16` version, `u16` kind, `u32` body
//! length, all little-endian) and the body. The decoder refuses a datagram whose length disagrees with the
//! header, a body longer than [`MAX_MESSAGE`], an unknown version or kind, counts above the protocol's limits,
//! trailing bytes, and strings that are not UTF-8. It never allocates more than the datagram's own size.

use thiserror::Error;

/// The protocol version this build speaks. A peer with another one is disconnected with a reason.
pub const VERSION: u16 = 1;
/// The largest datagram either side sends or accepts (header included).
pub const MAX_MESSAGE: usize = 1024;
/// Header size in bytes.
pub const HEADER: usize = 8;
/// Most memory planes per buffer (V4L2's `VIDEO_MAX_PLANES` is 8; dmacam's formats use up to 3).
pub const MAX_PLANES: usize = 4;
/// Most buffers a stream may have (V4L2's `VIDEO_MAX_FRAME`).
pub const MAX_BUFFERS: u32 = 32;
/// Longest string (source name, end reason) in bytes.
pub const MAX_TEXT: usize = 256;

const KIND_HELLO: u16 = 1;
const KIND_RELEASE: u16 = 2;
const KIND_STREAM: u16 = 16;
const KIND_BUFFER: u16 = 17;
const KIND_READY: u16 = 18;
const KIND_END: u16 = 19;

/// How the server's buffers were allocated (what the fds are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// dma-bufs exported by the V4L2 driver (VIDIOC_EXPBUF).
    Exported,
    /// dma-bufs from a DMA-BUF heap.
    DmaHeap,
    /// udmabufs over sealed memfds.
    Udmabuf,
    /// Sealed memfds, not dma-bufs (CPU consumers only).
    Memfd,
}

impl Memory {
    fn code(self) -> u8 {
        match self {
            Memory::Exported => 0,
            Memory::DmaHeap => 1,
            Memory::Udmabuf => 2,
            Memory::Memfd => 3,
        }
    }

    fn from_code(c: u8) -> Option<Memory> {
        Some(match c {
            0 => Memory::Exported,
            1 => Memory::DmaHeap,
            2 => Memory::Udmabuf,
            3 => Memory::Memfd,
            _ => return None,
        })
    }
}

/// The stream description the server sends first: the V4L2 format of every buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDesc {
    /// The V4L2 fourcc.
    pub fourcc: u32,
    pub width: u32,
    pub height: u32,
    /// Whether the camera uses the multi-planar API (one memory plane per colour plane for `...M` formats).
    pub mplane: bool,
    pub colorspace: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    /// The frame interval, seconds per frame as a fraction.
    pub interval: (u32, u32),
    /// The DRM format modifier of every plane.
    pub modifier: u64,
    /// Per memory plane: (bytesperline, sizeimage).
    pub planes: Vec<(u32, u32)>,
    /// How many buffers follow (as [`Message::Buffer`]s).
    pub buffers: u32,
    pub memory: Memory,
    /// The camera's device path or the source's name, for messages.
    pub source: String,
}

/// Why the server ends a client's session (the last message before it closes the socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCode {
    /// The server is stopping (Ctrl-C, `--frames` reached).
    Stopping,
    /// The camera failed; the reason says how.
    CameraFailed,
    /// This client held a frame longer than the server waits.
    TooSlow,
    /// This client sent something the protocol does not allow.
    Protocol,
}

impl EndCode {
    fn code(self) -> u8 {
        match self {
            EndCode::Stopping => 0,
            EndCode::CameraFailed => 1,
            EndCode::TooSlow => 2,
            EndCode::Protocol => 3,
        }
    }

    fn from_code(c: u8) -> Option<EndCode> {
        Some(match c {
            0 => EndCode::Stopping,
            1 => EndCode::CameraFailed,
            2 => EndCode::TooSlow,
            3 => EndCode::Protocol,
            _ => return None,
        })
    }
}

/// One protocol message. `Hello` and `Release` go client → server, the rest server → client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The client's first message.
    Hello,
    /// The client is done with the frame `sequence` in buffer `index`.
    Release { index: u32, sequence: u32 },
    /// The stream description (the server's first message).
    Stream(StreamDesc),
    /// Buffer `index`'s memory planes, each `lengths[i]` bytes: the datagram carries one fd per plane
    /// (SCM_RIGHTS), sent once per client.
    Buffer { index: u32, lengths: Vec<u32> },
    /// A frame is in buffer `index`. Per memory plane: bytes used and payload offset.
    Ready {
        index: u32,
        sequence: u32,
        timestamp_ns: u64,
        flags: u32,
        field: u32,
        bytesused: Vec<u32>,
        data_offset: Vec<u32>,
    },
    /// The session ends; the server closes the socket after this.
    End { code: EndCode, reason: String },
}

impl Message {
    /// How many fds must travel with this message.
    pub fn fds(&self) -> usize {
        match self {
            Message::Buffer { lengths, .. } => lengths.len(),
            _ => 0,
        }
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello => "hello",
            Message::Release { .. } => "release",
            Message::Stream(_) => "stream",
            Message::Buffer { .. } => "buffer",
            Message::Ready { .. } => "ready",
            Message::End { .. } => "end",
        }
    }
}

/// Why a datagram is not a valid message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("message of {0} bytes is shorter than the {HEADER}-byte header")]
    Short(usize),
    #[error("message of {0} bytes is longer than the {MAX_MESSAGE}-byte limit")]
    TooLong(usize),
    #[error("protocol version {0}, but this dmacam speaks version {VERSION}")]
    Version(u16),
    #[error("unknown message kind {0}")]
    Kind(u16),
    #[error("header says {header} body bytes, the message has {actual}")]
    Length { header: usize, actual: usize },
    #[error("{what} ends early")]
    Truncated { what: &'static str },
    #[error("{what} is {value}, above the limit {limit}")]
    Limit {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    #[error("{what} has an unknown value {value}")]
    Value { what: &'static str, value: u64 },
    #[error("{0} trailing bytes after the {1} message")]
    Trailing(usize, &'static str),
    #[error("{0} is not UTF-8")]
    Text(&'static str),
}

/// Encodes `msg` as one datagram. Panics only on a message this program built wrongly (counts above the
/// protocol's limits), never on input from a peer.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    let kind = match msg {
        Message::Hello => KIND_HELLO,
        Message::Release { index, sequence } => {
            w.u32(*index);
            w.u32(*sequence);
            KIND_RELEASE
        }
        Message::Stream(s) => {
            w.u32(s.fourcc);
            w.u32(s.width);
            w.u32(s.height);
            w.u8(s.mplane as u8);
            w.u32(s.colorspace);
            w.u32(s.ycbcr_enc);
            w.u32(s.quantization);
            w.u32(s.interval.0);
            w.u32(s.interval.1);
            w.u64(s.modifier);
            assert!(s.planes.len() <= MAX_PLANES, "too many planes to encode");
            w.u8(s.planes.len() as u8);
            for &(bpl, size) in &s.planes {
                w.u32(bpl);
                w.u32(size);
            }
            w.u32(s.buffers);
            w.u8(s.memory.code());
            w.text(&s.source);
            KIND_STREAM
        }
        Message::Buffer { index, lengths } => {
            w.u32(*index);
            assert!(lengths.len() <= MAX_PLANES, "too many planes to encode");
            w.u8(lengths.len() as u8);
            for &l in lengths {
                w.u32(l);
            }
            KIND_BUFFER
        }
        Message::Ready {
            index,
            sequence,
            timestamp_ns,
            flags,
            field,
            bytesused,
            data_offset,
        } => {
            w.u32(*index);
            w.u32(*sequence);
            w.u64(*timestamp_ns);
            w.u32(*flags);
            w.u32(*field);
            assert!(
                bytesused.len() <= MAX_PLANES && bytesused.len() == data_offset.len(),
                "bad plane counts to encode"
            );
            w.u8(bytesused.len() as u8);
            for (&u, &o) in bytesused.iter().zip(data_offset) {
                w.u32(u);
                w.u32(o);
            }
            KIND_READY
        }
        Message::End { code, reason } => {
            w.u8(code.code());
            w.text(reason);
            KIND_END
        }
    };
    let body = w.0;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    assert!(out.len() <= MAX_MESSAGE, "message too long to encode");
    out
}

/// Decodes one datagram. Any deviation from the protocol is an error; nothing in `data` can make it panic.
pub fn decode(data: &[u8]) -> Result<Message, WireError> {
    if data.len() > MAX_MESSAGE {
        return Err(WireError::TooLong(data.len()));
    }
    if data.len() < HEADER {
        return Err(WireError::Short(data.len()));
    }
    let version = u16::from_le_bytes([data[0], data[1]]);
    let kind = u16::from_le_bytes([data[2], data[3]]);
    let len = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let body = &data[HEADER..];
    if len != body.len() {
        return Err(WireError::Length {
            header: len,
            actual: body.len(),
        });
    }
    let mut r = Reader(body);
    let msg = match kind {
        KIND_HELLO => Message::Hello,
        KIND_RELEASE => Message::Release {
            index: r.u32("release index")?,
            sequence: r.u32("release sequence")?,
        },
        KIND_STREAM => {
            let fourcc = r.u32("fourcc")?;
            let width = r.u32("width")?;
            let height = r.u32("height")?;
            let mplane = match r.u8("mplane")? {
                0 => false,
                1 => true,
                v => return Err(value("mplane", v)),
            };
            let colorspace = r.u32("colorspace")?;
            let ycbcr_enc = r.u32("ycbcr_enc")?;
            let quantization = r.u32("quantization")?;
            let interval = (r.u32("interval")?, r.u32("interval")?);
            let modifier = r.u64("modifier")?;
            let n = r.count("plane count", MAX_PLANES)?;
            let mut planes = Vec::with_capacity(n);
            for _ in 0..n {
                planes.push((r.u32("bytesperline")?, r.u32("sizeimage")?));
            }
            let buffers = r.u32("buffer count")?;
            if buffers == 0 || buffers > MAX_BUFFERS {
                return Err(WireError::Limit {
                    what: "buffer count",
                    value: buffers as u64,
                    limit: MAX_BUFFERS as u64,
                });
            }
            let m = r.u8("memory")?;
            let memory = Memory::from_code(m).ok_or(value("memory", m))?;
            let source = r.text("source name")?;
            Message::Stream(StreamDesc {
                fourcc,
                width,
                height,
                mplane,
                colorspace,
                ycbcr_enc,
                quantization,
                interval,
                modifier,
                planes,
                buffers,
                memory,
                source,
            })
        }
        KIND_BUFFER => {
            let index = r.u32("buffer index")?;
            let n = r.count("plane count", MAX_PLANES)?;
            let mut lengths = Vec::with_capacity(n);
            for _ in 0..n {
                lengths.push(r.u32("plane length")?);
            }
            Message::Buffer { index, lengths }
        }
        KIND_READY => {
            let index = r.u32("ready index")?;
            let sequence = r.u32("sequence")?;
            let timestamp_ns = r.u64("timestamp")?;
            let flags = r.u32("flags")?;
            let field = r.u32("field")?;
            let n = r.count("plane count", MAX_PLANES)?;
            let mut bytesused = Vec::with_capacity(n);
            let mut data_offset = Vec::with_capacity(n);
            for _ in 0..n {
                bytesused.push(r.u32("bytesused")?);
                data_offset.push(r.u32("data_offset")?);
            }
            Message::Ready {
                index,
                sequence,
                timestamp_ns,
                flags,
                field,
                bytesused,
                data_offset,
            }
        }
        KIND_END => {
            let c = r.u8("end code")?;
            let code = EndCode::from_code(c).ok_or(value("end code", c))?;
            Message::End {
                code,
                reason: r.text("end reason")?,
            }
        }
        other => return Err(WireError::Kind(other)),
    };
    if !r.0.is_empty() {
        return Err(WireError::Trailing(r.0.len(), msg.name()));
    }
    Ok(msg)
}

fn value(what: &'static str, v: u8) -> WireError {
    WireError::Value {
        what,
        value: v as u64,
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// A `u16` length and the bytes, cut at [`MAX_TEXT`] on a character boundary.
    fn text(&mut self, s: &str) {
        let mut end = s.len().min(MAX_TEXT);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.0.extend_from_slice(&(end as u16).to_le_bytes());
        self.0.extend_from_slice(&s.as_bytes()[..end]);
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated { what })?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take::<1>(what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.take(what)?))
    }
    fn count(&mut self, what: &'static str, limit: usize) -> Result<usize, WireError> {
        let n = self.u8(what)? as usize;
        if n > limit {
            return Err(WireError::Limit {
                what,
                value: n as u64,
                limit: limit as u64,
            });
        }
        Ok(n)
    }
    fn text(&mut self, what: &'static str) -> Result<String, WireError> {
        let n = u16::from_le_bytes(self.take(what)?) as usize;
        if n > MAX_TEXT {
            return Err(WireError::Limit {
                what,
                value: n as u64,
                limit: MAX_TEXT as u64,
            });
        }
        if self.0.len() < n {
            return Err(WireError::Truncated { what });
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        std::str::from_utf8(s)
            .map(str::to_owned)
            .map_err(|_| WireError::Text(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello,
            Message::Release {
                index: 3,
                sequence: 77,
            },
            Message::Stream(StreamDesc {
                fourcc: u32::from_le_bytes(*b"NM12"),
                width: 640,
                height: 360,
                mplane: true,
                colorspace: 1,
                ycbcr_enc: 1,
                quantization: 2,
                interval: (1, 30),
                modifier: 0,
                planes: vec![(640, 640 * 360), (640, 640 * 180)],
                buffers: 4,
                memory: Memory::Exported,
                source: "/dev/video1 é".into(),
            }),
            Message::Buffer {
                index: 1,
                lengths: vec![4096, 8192],
            },
            Message::Ready {
                index: 2,
                sequence: 9,
                timestamp_ns: 123_456_789_000,
                flags: 0x4000,
                field: 1,
                bytesused: vec![100, 50],
                data_offset: vec![0, 0],
            },
            Message::End {
                code: EndCode::TooSlow,
                reason: "held buffer 1 for 2 s".into(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in samples() {
            let bytes = encode(&m);
            assert_eq!(decode(&bytes), Ok(m.clone()), "{m:?}");
            // Every strict prefix is refused.
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "{m:?} cut at {cut}");
            }
            // A trailing byte is refused (with the header fixed up to match, and without).
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode(&longer).is_err());
            let body = (longer.len() - HEADER) as u32;
            longer[4..8].copy_from_slice(&body.to_le_bytes());
            assert_eq!(decode(&longer), Err(WireError::Trailing(1, m.name())));
        }
    }

    #[test]
    fn bad_headers_are_named() {
        let mut b = encode(&Message::Hello);
        b[0] = 2;
        assert_eq!(decode(&b), Err(WireError::Version(2)));
        let mut b = encode(&Message::Hello);
        b[2] = 99;
        assert_eq!(decode(&b), Err(WireError::Kind(99)));
        assert_eq!(
            decode(&vec![0; MAX_MESSAGE + 1]),
            Err(WireError::TooLong(MAX_MESSAGE + 1))
        );
        let mut b = encode(&Message::Hello);
        b[4] = 200;
        assert_eq!(
            decode(&b),
            Err(WireError::Length {
                header: 200,
                actual: 0
            })
        );
    }

    #[test]
    fn limits_are_enforced() {
        let m = Message::Buffer {
            index: 0,
            lengths: vec![1],
        };
        let mut b = encode(&m);
        b[HEADER + 4] = (MAX_PLANES + 1) as u8;
        assert!(matches!(decode(&b), Err(WireError::Limit { .. })));
        let long = "x".repeat(MAX_TEXT + 10);
        let m = Message::End {
            code: EndCode::Stopping,
            reason: long,
        };
        match decode(&encode(&m)) {
            Ok(Message::End { reason, .. }) => assert_eq!(reason.len(), MAX_TEXT),
            other => panic!("{other:?}"),
        }
    }
}
