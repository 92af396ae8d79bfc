//! What the commands capture from: a V4L2 device or the built-in pattern source, behind one interface.
//!
//! [`Input`] is the opened, not yet streaming side (like [`Device`]: its formats, negotiation, frame
//! interval); [`Source`] is the streaming side (like [`Stream`]: start, a pollable fd, `next_frame`). Both
//! give the same [`Frame`]s, so every consumer (file sinks, the checker, the Wayland and KMS outputs) works
//! on either.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::decode::decoded_format;
use crate::device::Device;
use crate::dmabuf::Fourcc;
use crate::format::{
    fourcc_name, Format, FormatDesc, FormatError, FormatRequest, Fraction, PixelFormat,
};
use crate::jpeg::{JpegDecoder, JpegError, JpegStats, DECODED};
use crate::pattern::{self, PatternKind, PatternSource};
use crate::pipewire::{PwInput, PwSource};
use crate::ring::Ring;
use crate::share::client::{RemoteInput, RemoteSource};
use crate::stream::{
    Frame, FrameMeta, FramePool, IoMode, Origin, Stream, StreamError, StreamOptions,
};

/// The pattern source before streaming: its kind and the format negotiated so far.
#[derive(Debug)]
pub struct PatternInput {
    kind: PatternKind,
    name: PathBuf,
    state: Mutex<(Format, u32)>,
    /// `MJPG` only: cut every n-th frame short (see [`PatternSource::set_truncate_every`]).
    truncate_every: Option<u32>,
}

/// The pattern's defaults: YUYV 640x360 at 30 fps.
pub const PATTERN_DEFAULT: (Fourcc, (u32, u32), u32) = (Fourcc::new(b"YUYV"), (640, 360), 30);

impl PatternInput {
    pub fn new(kind: PatternKind) -> PatternInput {
        let (fourcc, (w, h), fps) = PATTERN_DEFAULT;
        let format = pattern::format(fourcc, w, h).expect("the default pattern format is offered");
        PatternInput {
            kind,
            name: PathBuf::from(kind.source_name()),
            state: Mutex::new((format, fps)),
            truncate_every: None,
        }
    }

    /// `MJPG` only: cut every `n`-th frame short, to test the decoder's handling of truncated frames.
    pub fn set_truncate_every(&mut self, n: Option<u32>) {
        self.truncate_every = n;
    }

    pub fn kind(&self) -> PatternKind {
        self.kind
    }

    fn state(&self) -> (Format, u32) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// An opened capture input: a V4L2 device, the built-in pattern, a `dmacam serve` socket, or a PipeWire
/// video source node.
#[derive(Debug)]
pub enum Input {
    Device(Device),
    Pattern(PatternInput),
    Remote(RemoteInput),
    PipeWire(Box<PwInput>),
}

impl Input {
    /// The built-in pattern source of `kind`.
    pub fn pattern(kind: PatternKind) -> Input {
        Input::Pattern(PatternInput::new(kind))
    }

    /// The device path, or the pattern's name (`pattern:bars`).
    pub fn path(&self) -> &Path {
        match self {
            Input::Device(d) => d.path(),
            Input::Pattern(p) => &p.name,
            Input::Remote(r) => r.path(),
            Input::PipeWire(p) => p.path(),
        }
    }

    /// The V4L2 device, if this is one (controls, capabilities).
    pub fn device(&self) -> Option<&Device> {
        match self {
            Input::Device(d) => Some(d),
            Input::Pattern(_) | Input::Remote(_) | Input::PipeWire(_) => None,
        }
    }

    /// The pattern kind, if this is the pattern source.
    pub fn pattern_kind(&self) -> Option<PatternKind> {
        match self {
            Input::Device(_) | Input::Remote(_) | Input::PipeWire(_) => None,
            Input::Pattern(p) => Some(p.kind),
        }
    }

    /// The pixel formats offered (VIDIOC_ENUM_FMT for a device).
    pub fn formats(&self) -> Result<Vec<FormatDesc>, FormatError> {
        match self {
            Input::Device(d) => d.formats(),
            Input::Remote(r) => Ok(vec![FormatDesc {
                fourcc: r.format().fourcc,
                description: format!("{} (served from {})", r.format().fourcc, r.source_name()),
                flags: 0,
                supported: true,
            }]),
            // What a node offers is agreed in negotiation; these are what dmacam can take from one.
            Input::PipeWire(_) => Ok(crate::format::CATALOGUE
                .iter()
                .filter(|p| p.capture && !p.multi_buffer && p.spa.is_some())
                .map(|p| FormatDesc {
                    fourcc: p.fourcc,
                    description: format!("{} (through PipeWire)", p.name()),
                    flags: 0,
                    supported: true,
                })
                .collect()),
            Input::Pattern(_) => Ok(pattern::formats()
                .into_iter()
                .map(|p| FormatDesc {
                    fourcc: p.fourcc,
                    description: format!("{} (generated)", fourcc_name(p.fourcc)),
                    flags: 0,
                    supported: true,
                })
                .collect()),
        }
    }

    /// Sets the format: for a device see [`Device::negotiate`]; the pattern takes any offered format, any
    /// size (clamped and rounded to even, see [`pattern::format`]) and any rate; a served socket has the one
    /// format its server streams, and a request for another is refused naming it.
    pub fn negotiate(&self, req: &FormatRequest) -> Result<Format, FormatError> {
        let p = match self {
            Input::Device(d) => return d.negotiate(req),
            Input::Remote(r) => return remote_negotiate(r, req),
            Input::PipeWire(p) => return p.negotiate(req),
            Input::Pattern(p) => p,
        };
        let (current, fps) = p.state();
        let fourcc = req.fourcc.unwrap_or(current.fourcc);
        let (w, h) = req.size.unwrap_or((current.width, current.height));
        let format = pattern::format(fourcc, w, h).ok_or_else(|| FormatError::NotOffered {
            path: p.name.clone(),
            format: fourcc_name(fourcc),
            offered: pattern::format_names(),
            first: fourcc_name(PATTERN_DEFAULT.0),
        })?;
        if (format.width, format.height) != (w, h) {
            tracing::info!(
                source = %p.name.display(),
                "size {w}x{h} adjusted to {}x{} (even, {}x{} to {}x{})",
                format.width,
                format.height,
                pattern::MIN_SIZE.0,
                pattern::MIN_SIZE.1,
                pattern::MAX_SIZE.0,
                pattern::MAX_SIZE.1
            );
        }
        let fps = req.fps.unwrap_or(fps).clamp(1, 1000);
        *p.state.lock().unwrap_or_else(|e| e.into_inner()) = (format.clone(), fps);
        Ok(format)
    }

    /// The frame interval (seconds per frame).
    pub fn frame_interval(&self) -> Result<Fraction, FormatError> {
        match self {
            Input::Device(d) => d.frame_interval(),
            Input::Remote(r) => Ok(Fraction {
                numerator: r.interval().0,
                denominator: r.interval().1,
            }),
            Input::Pattern(p) => Ok(Fraction {
                numerator: 1,
                denominator: p.state().1,
            }),
            Input::PipeWire(p) => Ok(p.frame_interval()),
        }
    }
}

/// What a served socket offers, against what the command asked for.
fn remote_negotiate(r: &RemoteInput, req: &FormatRequest) -> Result<Format, FormatError> {
    let f = r.format();
    let interval = r.interval();
    let fps = (interval.0 > 0).then(|| interval.1 / interval.0);
    let differs = req.fourcc.is_some_and(|c| c != f.fourcc)
        || req.size.is_some_and(|s| s != (f.width, f.height))
        || req.fps.is_some_and(|n| Some(n) != fps);
    if differs {
        return Err(FormatError::Served {
            path: r.path().to_path_buf(),
            served: format!(
                "{} {}x{}{}",
                fourcc_name(f.fourcc),
                f.width,
                f.height,
                fps.map(|n| format!(" at {n} fps")).unwrap_or_default()
            ),
        });
    }
    Ok(f.clone())
}

/// A streaming source of [`Frame`]s: a V4L2 [`Stream`], the [`PatternSource`], or a `dmacam serve` socket;
/// or one of those delivering compressed (MJPEG) frames, behind the CPU decode stage ([`Decoded`]), which
/// makes them XR24 frames like any other.
#[derive(Debug)]
pub enum Source {
    V4l2(Stream),
    Pattern(PatternSource),
    Remote(RemoteSource),
    PipeWire(Box<PwSource>),
    Decoded(Box<Decoded>),
}

impl Source {
    /// Sets up buffers for `format` (as [`Input::negotiate`] returned it); streaming starts with
    /// [`Source::start`]. For the pattern, `opts.io` picks the allocator (see [`PatternSource::new`]).
    ///
    /// A compressed format (`MJPG`, `JPEG`) gets the decode stage: the source then gives XR24 frames
    /// ([`Source::format`] is the decoded format; [`Source::decode_stats`] counts the decode).
    pub fn new(input: Input, format: Format, opts: &StreamOptions) -> Result<Source, StreamError> {
        let compressed = crate::decode::is_compressed(format.fourcc);
        let source = match input {
            Input::Device(d) => Stream::new(d, format, opts).map(Source::V4l2),
            Input::Pattern(p) => {
                let fps = p.state().1;
                let mut source = PatternSource::new(p.kind, format, fps, opts)?;
                source.set_truncate_every(p.truncate_every);
                Ok(Source::Pattern(source))
            }
            // The server already streams, in the buffers it chose.
            Input::Remote(r) => Ok(Source::Remote(r.into_source())),
            // PipeWire agreed the format and the producer's buffers in `negotiate`.
            Input::PipeWire(p) => p.into_source().map(|s| Source::PipeWire(Box::new(s))),
        }?;
        if compressed {
            Ok(Source::Decoded(Box::new(Decoded::new(source, opts)?)))
        } else {
            Ok(source)
        }
    }

    /// The decode stage's counters, if frames are decoded (MJPEG input).
    pub fn decode_stats(&self) -> Option<JpegStats> {
        match self {
            Source::Decoded(d) => Some(d.stats()),
            _ => None,
        }
    }

    /// What the source's own CPU write put into its frames so far, and what that write is, if the CPU makes
    /// the frames (the pattern; the MJPEG decode has [`Source::decode_stats`]).
    pub fn cpu_writes(&self) -> Option<(&'static str, crate::CpuWrites)> {
        match self {
            Source::Pattern(p) => Some(("the pattern", p.cpu_writes())),
            _ => None,
        }
    }

    /// The format the input delivers before decoding (`MJPG` ...), if frames are decoded.
    pub fn compressed_format(&self) -> Option<&Format> {
        match self {
            Source::Decoded(d) => Some(d.compressed_format()),
            _ => None,
        }
    }

    pub fn start(&mut self) -> Result<(), StreamError> {
        match self {
            Source::V4l2(s) => s.start(),
            Source::Pattern(p) => p.start(),
            Source::Remote(_) => Ok(()),
            Source::PipeWire(p) => p.start(),
            Source::Decoded(d) => d.start(),
        }
    }

    pub fn stop(&mut self) -> Result<(), StreamError> {
        match self {
            Source::V4l2(s) => s.stop(),
            Source::Pattern(p) => p.stop(),
            Source::Remote(_) => Ok(()),
            Source::PipeWire(p) => p.stop(),
            Source::Decoded(d) => d.stop(),
        }
    }

    /// Waits up to `timeout` for the next frame (see [`Stream::next_frame`], [`PatternSource::next_frame`]).
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Frame, StreamError> {
        match self {
            Source::V4l2(s) => s.next_frame(timeout),
            Source::Pattern(p) => p.next_frame(timeout),
            Source::Remote(r) => r.next_frame(timeout),
            Source::PipeWire(p) => p.next_frame(timeout),
            Source::Decoded(d) => d.next_frame(timeout),
        }
    }

    /// The fd to poll for a frame: the V4L2 node, or the pattern's frame clock.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::V4l2(s) => s.device().as_fd(),
            Source::Pattern(p) => p.fd(),
            Source::Remote(r) => r.fd(),
            Source::PipeWire(p) => p.fd(),
            Source::Decoded(d) => d.fd(),
        }
    }

    pub fn format(&self) -> &Format {
        match self {
            Source::V4l2(s) => s.format(),
            Source::Pattern(p) => p.format(),
            Source::Remote(r) => r.format(),
            Source::PipeWire(p) => p.format(),
            Source::Decoded(d) => d.format(),
        }
    }

    pub fn pixel_format(&self) -> PixelFormat {
        match self {
            Source::V4l2(s) => s.pixel_format(),
            Source::Pattern(p) => p.pixel_format(),
            Source::Remote(r) => r.pixel_format(),
            Source::PipeWire(p) => p.pixel_format(),
            Source::Decoded(d) => d.pixel_format(),
        }
    }

    /// How the buffers were allocated.
    pub fn io(&self) -> IoMode {
        match self {
            Source::V4l2(s) => s.io(),
            Source::Pattern(p) => p.io(),
            Source::Remote(r) => r.io(),
            Source::PipeWire(p) => p.io(),
            Source::Decoded(d) => d.io(),
        }
    }

    pub fn buffer_count(&self) -> usize {
        match self {
            Source::V4l2(s) => s.buffer_count(),
            Source::Pattern(p) => p.buffer_count(),
            Source::Remote(r) => r.buffer_count(),
            Source::PipeWire(p) => p.buffer_count(),
            Source::Decoded(d) => d.buffer_count(),
        }
    }

    /// The memory planes of buffer `index` (what a frame in that buffer is made of).
    pub fn buffer_memory(&self, index: usize) -> Option<&[Arc<OwnedFd>]> {
        match self {
            Source::V4l2(s) => s.buffer_memory(index),
            Source::Pattern(p) => p.buffer_memory(index),
            Source::Remote(r) => r.buffer_memory(index),
            Source::PipeWire(p) => p.buffer_memory(index),
            Source::Decoded(d) => d.buffer_memory(index),
        }
    }

    /// The device path or the pattern's name.
    pub fn path(&self) -> &Path {
        match self {
            Source::V4l2(s) => s.device().path(),
            Source::Pattern(p) => p.name(),
            Source::Remote(r) => r.path(),
            Source::PipeWire(p) => p.path(),
            Source::Decoded(d) => d.path(),
        }
    }

    /// The V4L2 device (for controls while streaming), if this is one.
    pub fn device(&self) -> Option<&Device> {
        match self {
            Source::V4l2(s) => Some(s.device()),
            Source::Pattern(_) | Source::Remote(_) | Source::PipeWire(_) => None,
            // Controls while streaming go to the camera behind the decoder.
            Source::Decoded(d) => d.inner().device(),
        }
    }

    /// The pattern source, if this is one.
    pub fn pattern(&self) -> Option<&PatternSource> {
        match self {
            Source::V4l2(_) | Source::Remote(_) | Source::PipeWire(_) => None,
            // The decoded picture is the pattern's only approximately (JPEG is lossy).
            Source::Decoded(_) => None,
            Source::Pattern(p) => Some(p),
        }
    }

    /// `Some(why)` if the frames' buffers are not dma-bufs (the pattern's memfd fallback): then only CPU
    /// consumers (file sinks, the checker, wl_shm) can take them.
    pub fn not_dmabuf_reason(&self) -> Option<&str> {
        match self {
            Source::V4l2(_) => None,
            Source::Pattern(p) => p.not_dmabuf_reason(),
            Source::Remote(r) => r.not_dmabuf_reason(),
            Source::PipeWire(p) => p.not_dmabuf_reason(),
            Source::Decoded(d) => d.not_dmabuf_reason(),
        }
    }
}

/// Buffers in the decoded ring: as many as the compressed source has, so a consumer that holds frames
/// (a compositor: on screen, pending, next) starves the decoder no sooner than it would starve the camera.
fn ring_size(source: &Source) -> usize {
    source.buffer_count().max(3)
}

/// A compressed source and its decoder: see the [module docs](crate::decode).
#[derive(Debug)]
pub struct Decoded {
    inner: Box<Source>,
    compressed: Format,
    decoder: JpegDecoder,
    ring: Arc<Ring>,
    format: Format,
    pixel: PixelFormat,
}

impl Decoded {
    /// Wraps `inner` (whose format is compressed) with a decoder into a ring allocated as `opts.io` says
    /// (see [`Ring::allocate`]; `--io mmap`, the default, takes udmabuf, else the heap, else memfd).
    pub fn new(inner: Source, opts: &StreamOptions) -> Result<Decoded, StreamError> {
        let compressed = inner.format().clone();
        let format = decoded_format(&compressed);
        let pixel = PixelFormat::lookup(DECODED).expect("XR24 is a known format");
        // `--io` also picks the decoded ring's allocator; `mmap` (the camera's own buffers) means the ring's
        // own preference, udmabuf, else the heap, else memfd.
        let ring = Ring::allocate(
            inner.path().to_path_buf(),
            &format,
            pixel,
            ring_size(&inner),
            opts.io,
            Origin::Decode,
        )?;
        let decoder = JpegDecoder::new(
            inner.path().display().to_string(),
            format.width,
            format.height,
        );
        Ok(Decoded {
            inner: Box::new(inner),
            compressed,
            decoder,
            ring: Arc::new(ring),
            format,
            pixel,
        })
    }

    /// The compressed source's format (`MJPG` ...), as negotiated.
    pub fn compressed_format(&self) -> &Format {
        &self.compressed
    }

    /// The compressed source.
    pub fn inner(&self) -> &Source {
        &self.inner
    }

    pub fn start(&mut self) -> Result<(), StreamError> {
        self.inner.start()
    }

    pub fn stop(&mut self) -> Result<(), StreamError> {
        self.inner.stop()
    }

    /// Decoded frames, corrupt frames skipped, and the bytes the decode wrote.
    pub fn stats(&self) -> JpegStats {
        self.decoder.stats()
    }

    /// The decoded format (XR24).
    pub fn format(&self) -> &Format {
        &self.format
    }

    pub fn pixel_format(&self) -> PixelFormat {
        self.pixel
    }

    /// The decoded ring's allocator.
    pub fn io(&self) -> IoMode {
        self.ring.io()
    }

    pub fn buffer_count(&self) -> usize {
        self.ring.len()
    }

    pub fn buffer_memory(&self, index: usize) -> Option<&[Arc<OwnedFd>]> {
        self.ring.buffer_memory(index)
    }

    pub fn not_dmabuf_reason(&self) -> Option<&str> {
        self.ring.not_dmabuf_reason()
    }

    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The fd to poll: the compressed source's.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fd()
    }

    /// Waits up to `timeout` for the next good compressed frame and decodes it into a free buffer of the
    /// ring. Corrupt frames in between are skipped (counted in [`Decoded::stats`]); an errored frame comes
    /// back flagged and undecoded. Fails with [`StreamError::Starved`] if every decoded buffer is held.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Frame, StreamError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self.inner.next_frame(left)?;
            let index = self.ring.acquire()?;
            let decoded = if frame.is_error() {
                Ok(0)
            } else {
                self.decode(&frame, index)
            };
            match decoded {
                Ok(copied) => {
                    return Ok(Frame::from_pool(
                        self.ring.clone(),
                        FrameMeta {
                            index,
                            dmabuf: self.ring.slot(index).dmabuf.clone(),
                            sequence: frame.sequence(),
                            timestamp: frame.timestamp(),
                            flags: frame.flags(),
                            field: frame.field(),
                            bytesused: vec![self.format.planes[0].sizeimage],
                            data_offset: vec![0],
                            cpu_bytes_copied: copied,
                        },
                    ));
                }
                // Skipped and counted by the decoder; the buffer is free again, on to the next frame.
                Err(DecodeFailure::Frame) => self.ring.release(index),
                Err(DecodeFailure::Stream(e)) => {
                    self.ring.release(index);
                    return Err(e);
                }
            }
        }
    }

    /// Decodes `frame` into buffer `index`; returns the bytes written.
    fn decode(&mut self, frame: &Frame, index: usize) -> Result<u64, DecodeFailure> {
        let used = frame.bytesused().first().copied().unwrap_or(0) as usize;
        let offset = frame.data_offset().first().copied().unwrap_or(0) as usize;
        let ring = self.ring.clone();
        let mut writer = ring.writer(index);
        let mut dst = writer
            .map
            .write()
            .map_err(|e| DecodeFailure::Stream(ring.map_err(e)))?;
        let decoder = &mut self.decoder;
        let result = frame
            .read(|mem| {
                let plane = mem.first().copied().unwrap_or(&[]);
                let end = used.min(plane.len());
                decoder.decode_into(&plane[offset.min(end)..end], &mut dst)
            })
            .map_err(DecodeFailure::Stream)?;
        match result {
            // The decoder wrote one whole frame (what it also adds to its `cpu_bytes_written`).
            Ok(()) => Ok(self.decoder.frame_size() as u64),
            Err(JpegError::Corrupt { .. } | JpegError::Size { .. }) => Err(DecodeFailure::Frame),
            Err(source) => Err(DecodeFailure::Stream(StreamError::Jpeg {
                path: ring.name().to_path_buf(),
                source,
            })),
        }
    }
}

/// How decoding one frame failed.
enum DecodeFailure {
    /// This frame is bad (skipped, counted); the stream goes on.
    Frame,
    /// The stream cannot go on.
    Stream(StreamError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::frames_format;
    use crate::jpeg::MJPG;

    fn mjpeg_pattern(truncate_every: Option<u32>) -> Source {
        let mut p = PatternInput::new(PatternKind::Bars);
        p.set_truncate_every(truncate_every);
        let input = Input::Pattern(p);
        let format = input
            .negotiate(&FormatRequest {
                fourcc: Some(MJPG),
                size: Some((64, 48)),
                fps: Some(200),
            })
            .unwrap();
        assert_eq!(format.fourcc, MJPG);
        let opts = StreamOptions {
            buffers: 3,
            io: IoMode::Memfd,
        };
        Source::new(input, format, &opts).unwrap()
    }

    #[test]
    fn compressed_frames_come_out_decoded_and_counted() {
        let mut s = mjpeg_pattern(None);
        assert_eq!(s.format().fourcc, DECODED);
        assert_eq!(s.compressed_format().map(|f| f.fourcc), Some(MJPG));
        assert_eq!(frames_format(s.compressed_format().unwrap()), *s.format());
        s.start().unwrap();
        for _ in 0..3 {
            let f = s.next_frame(Duration::from_secs(5)).unwrap();
            assert_eq!(f.cpu_bytes_copied(), 64 * 48 * 4);
            assert_eq!(f.bytesused(), &[64 * 48 * 4]);
            assert_eq!(f.dmabuf().fourcc, DECODED);
            // The first bar is white, decoded.
            let px = f.read(|m| m[0][..4].to_vec()).unwrap();
            assert!(px[..3].iter().all(|&c| c >= 240), "{px:?}");
        }
        let st = s.decode_stats().unwrap();
        assert_eq!((st.decoded, st.corrupt), (3, 0));
        assert_eq!(st.cpu_bytes_written, 3 * 64 * 48 * 4);
    }

    #[test]
    fn truncated_frames_are_skipped_and_the_next_good_one_is_returned() {
        let mut s = mjpeg_pattern(Some(2));
        s.start().unwrap();
        for _ in 0..4 {
            s.next_frame(Duration::from_secs(5)).unwrap();
        }
        // Every second frame delivered is cut short: the four whole ones were the 1st, 3rd, 5th and 7th,
        // the 2nd, 4th and 6th were skipped.
        let st = s.decode_stats().unwrap();
        assert_eq!((st.decoded, st.corrupt), (4, 3), "{st:?}");
    }

    #[test]
    fn a_held_ring_starves_instead_of_overwriting() {
        let mut s = mjpeg_pattern(None);
        s.start().unwrap();
        let held: Vec<Frame> = (0..s.buffer_count())
            .map(|_| s.next_frame(Duration::from_secs(5)).unwrap())
            .collect();
        let err = s.next_frame(Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, StreamError::Starved { .. }), "{err}");
        drop(held);
        s.next_frame(Duration::from_secs(5)).unwrap();
    }
}
