//! Frame sinks for `dmacam dump`: raw, Y4M, PNG and PPM files.
//!
//! Nothing is left half-written: `.raw` and `.y4m` go to a hidden temporary file in the same directory that
//! is renamed into place by [`FileSink::finish`]; PNG/PPM frames are each written to a temporary file and
//! renamed, and if the dump fails every frame file of this run is removed again (see `Drop`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dmacam_capture::colour::{Colorimetry, Range};
use dmacam_capture::format::{fourcc_name, Fraction};
use dmacam_capture::{Format, Frame, Mapping, PixelFormat};

use crate::pixels::{Csc, View};

/// Largest piece written at once from a mapped dma-buf (well below the writer's buffer).
const CHUNK: usize = 64 * 1024;
/// `FRAME\n`, before each frame of a Y4M file.
const FRAME_HEADER: u64 = 6;

/// What kind of file a name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Raw,
    Y4m,
    Png,
    Ppm,
}

impl Kind {
    /// The kind an output name asks for, or an error saying which names are understood.
    pub fn from_path(path: &Path) -> Result<Kind> {
        let name = path.to_string_lossy();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let kind = match ext.as_str() {
            "raw" => Kind::Raw,
            "y4m" => Kind::Y4m,
            "png" => Kind::Png,
            "ppm" => Kind::Ppm,
            _ => bail!(
                "output '{name}' has no known extension; use .raw, .y4m, or a .png/.ppm name containing '#' (replaced by the frame number)"
            ),
        };
        if matches!(kind, Kind::Png | Kind::Ppm) && !name.contains('#') {
            bail!("output '{name}' needs a '#' in its name (replaced by each frame's sequence number), e.g. frame-#.{ext}");
        }
        Ok(kind)
    }
}

/// A frame a sink can write: a camera frame, or the render stage's output read through its exported dma-buf.
pub trait SinkFrame {
    fn sequence(&self) -> u32;
    /// Bytes of payload in each memory plane.
    fn bytesused(&self) -> Vec<u32>;
    /// Offset of the payload in each memory plane.
    fn data_offset(&self) -> Vec<u32>;
    /// Calls `f` with each memory plane's bytes, between `DMA_BUF_IOCTL_SYNC` start and end.
    fn read<R>(&self, f: impl FnOnce(&[&[u8]]) -> R) -> Result<R>;
}

impl SinkFrame for Frame {
    fn sequence(&self) -> u32 {
        Frame::sequence(self)
    }
    fn bytesused(&self) -> Vec<u32> {
        Frame::bytesused(self).to_vec()
    }
    fn data_offset(&self) -> Vec<u32> {
        Frame::data_offset(self).to_vec()
    }
    fn read<R>(&self, f: impl FnOnce(&[&[u8]]) -> R) -> Result<R> {
        Ok(Frame::read(self, f)?)
    }
}

/// One frame in a single-plane dma-buf read through `map` (e.g. the render stage's XRGB8888 output).
pub struct MappedFrame<'a> {
    pub map: &'a Mapping,
    pub sequence: u32,
    /// Payload bytes (stride × height).
    pub len: u32,
}

impl SinkFrame for MappedFrame<'_> {
    fn sequence(&self) -> u32 {
        self.sequence
    }
    fn bytesused(&self) -> Vec<u32> {
        vec![self.len]
    }
    fn data_offset(&self) -> Vec<u32> {
        vec![0]
    }
    fn read<R>(&self, f: impl FnOnce(&[&[u8]]) -> R) -> Result<R> {
        let guard = self.map.read()?;
        Ok(f(&[&guard[..]]))
    }
}

/// What the CPU did with a frame's bytes in the file writer, counted where it happens: a file is a CPU
/// consumer, so dump is zero-copy up to the file writer and no further.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTouch {
    /// Bytes read out of the frame's dma-buf through its mapping.
    pub read: u64,
    /// Bytes written into dmacam's own memory: the Y4M repack, the RGB picture of an image, the file
    /// buffer's staging.
    pub written: u64,
    /// Bytes the file received.
    pub file: u64,
}

impl std::ops::AddAssign for CpuTouch {
    fn add_assign(&mut self, o: CpuTouch) {
        self.read += o.read;
        self.written += o.written;
        self.file += o.file;
    }
}

/// A file sink; see the module docs for the no-partial-file guarantee.
pub struct FileSink {
    kind: Kind,
    path: PathBuf,
    format: Format,
    pixel: PixelFormat,
    csc: Csc,
    /// For raw/y4m: the open temporary file and its path.
    stream: Option<(BufWriter<File>, PathBuf)>,
    /// For png/ppm: frame files already in place (removed if the sink is dropped unfinished).
    written: Vec<PathBuf>,
    finished: bool,
    /// Raw frames go from the mapping straight to the file until a write of a mapping fails with EFAULT.
    direct: bool,
    /// Frames written, and what the CPU did with their bytes.
    frames: u64,
    touched: CpuTouch,
}

fn temp_name(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}-{}.partial", std::process::id()))
}

/// Creates `tmp`, the hidden temporary of `dest`; errors name `dest`, the file the user asked for.
fn create(tmp: &Path, dest: &Path) -> Result<BufWriter<File>> {
    let f = File::create(tmp).with_context(|| format!("cannot create {}", dest.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}

impl FileSink {
    /// Prepares output to `path` for frames of `format`. `interval` is the frame interval (for Y4M).
    pub fn create(
        path: &Path,
        format: &Format,
        pixel: PixelFormat,
        interval: Fraction,
    ) -> Result<FileSink> {
        let kind = Kind::from_path(path)?;
        let mut stream = None;
        match kind {
            Kind::Raw => {
                let tmp = temp_name(path, "raw");
                stream = Some((create(&tmp, path)?, tmp));
            }
            Kind::Y4m => {
                let chroma = pixel.y4m.ok_or_else(|| {
                    anyhow::anyhow!(
                        "{} is not a YUV format, so it cannot go into a .y4m file; use .raw, .png or .ppm, or a YUV --format (YUYV, NV12, ...)",
                        fourcc_name(format.fourcc)
                    )
                })?;
                let tmp = temp_name(path, "y4m");
                let mut w = create(&tmp, path)?;
                let (num, den) = if interval.numerator == 0 {
                    (1, 30)
                } else {
                    (interval.numerator, interval.denominator)
                };
                // The range as ffmpeg reads it from a Y4M header; the format has no tag for the matrix.
                let range = match Colorimetry::of(format).range {
                    Range::Full => "FULL",
                    Range::Limited => "LIMITED",
                };
                writeln!(
                    w,
                    "YUV4MPEG2 W{} H{} F{den}:{num} Ip A1:1 {chroma} XCOLORRANGE={range}",
                    format.width, format.height
                )
                .with_context(|| format!("writing {}", path.display()))?;
                stream = Some((w, tmp));
            }
            Kind::Png | Kind::Ppm => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    if !dir.is_dir() {
                        bail!(
                            "cannot write {}: directory {} does not exist",
                            path.display(),
                            dir.display()
                        );
                    }
                }
            }
        }
        Ok(FileSink {
            kind,
            path: path.to_path_buf(),
            format: format.clone(),
            pixel,
            csc: Csc::for_format(format),
            stream,
            written: Vec::new(),
            finished: false,
            direct: true,
            frames: 0,
            touched: CpuTouch::default(),
        })
    }

    /// Writes one frame, reading it through the frame's mapped dma-bufs; returns what the CPU did with its
    /// bytes (also added to [`FileSink::touched`]).
    pub fn write(&mut self, frame: &impl SinkFrame) -> Result<CpuTouch> {
        let format = &self.format;
        let pixel = self.pixel;
        // The payload of every plane: what the writer reads out of the dma-buf.
        let payload: u64 = frame
            .bytesused()
            .iter()
            .zip(frame.data_offset())
            .map(|(&used, off)| u64::from(used.saturating_sub(off)))
            .sum();
        let touch = match self.kind {
            Kind::Raw => {
                let (w, _) = self.stream.as_mut().expect("raw sink has a file");
                let dest = &self.path;
                let used = frame.bytesused();
                let offs = frame.data_offset();
                let direct = &mut self.direct;
                let staged = frame.read(|mem| -> Result<u64> {
                    let mut staged = 0;
                    for (i, bytes) in mem.iter().enumerate() {
                        let end = (used[i] as usize).min(bytes.len());
                        let start = (offs[i] as usize).min(end);
                        staged += write_raw(w, &bytes[start..end], direct)
                            .with_context(|| format!("writing {}", dest.display()))?;
                    }
                    Ok(staged)
                })??;
                // Straight from the mapping to the file (the kernel reads it), or staged through the
                // file buffer where the file system refuses that.
                CpuTouch {
                    read: payload,
                    written: staged,
                    file: payload,
                }
            }
            Kind::Y4m => {
                let (w, _) = self.stream.as_mut().expect("y4m sink has a file");
                let dest = &self.path;
                let repacked = frame.read(|mem| -> Result<u64> {
                    let view = View::new(format, pixel, mem, &frame.data_offset())?;
                    let data = y4m_frame(&view);
                    w.write_all(b"FRAME\n")
                        .and_then(|_| w.write_all(&data))
                        .with_context(|| format!("writing {}", dest.display()))?;
                    Ok(data.len() as u64)
                })??;
                // Repacked into planar Y'CbCr, then staged through the file buffer.
                let file = FRAME_HEADER + repacked;
                CpuTouch {
                    read: payload,
                    written: repacked + file,
                    file,
                }
            }
            Kind::Png | Kind::Ppm => {
                let csc = self.csc;
                let rgb = frame.read(|mem| -> Result<Vec<u8>> {
                    let view = View::new(format, pixel, mem, &frame.data_offset())?;
                    let mut out = Vec::with_capacity(view.width * view.height * 3);
                    for y in 0..view.height {
                        for x in 0..view.width {
                            out.extend_from_slice(&view.rgb(x, y, csc));
                        }
                    }
                    Ok(out)
                })??;
                let name = self
                    .path
                    .to_string_lossy()
                    .replace('#', &format!("{:06}", frame.sequence()));
                let dest = PathBuf::from(name);
                let tmp = temp_name(&dest, "frame");
                let res = write_image(self.kind, &tmp, &dest, format.width, format.height, &rgb)
                    .and_then(|_| {
                        std::fs::rename(&tmp, &dest)
                            .with_context(|| format!("cannot complete {}", dest.display()))
                    });
                let file = match res {
                    Ok(()) => std::fs::metadata(&dest).map_or(0, |m| m.len()),
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e);
                    }
                };
                self.written.push(dest);
                // Converted to R'G'B', then encoded (PNG) or copied (PPM) through the file buffer.
                CpuTouch {
                    read: payload,
                    written: rgb.len() as u64 + file,
                    file,
                }
            }
        };
        self.frames += 1;
        self.touched += touch;
        Ok(touch)
    }

    /// The CPU work the writer does on each frame, in words.
    pub fn cpu_work(&self) -> &'static str {
        match self.kind {
            Kind::Raw if self.direct => "file write",
            Kind::Raw => "file buffer",
            Kind::Y4m => "Y4M repack, file buffer",
            Kind::Png => "R'G'B' conversion, PNG encoding",
            Kind::Ppm => "R'G'B' conversion, file buffer",
        }
    }

    /// Frames written so far, and what the CPU did with their bytes.
    pub fn touched(&self) -> (u64, CpuTouch) {
        (self.frames, self.touched)
    }

    /// Completes the output: flushes and renames the file into place. Returns the files written.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        if let Some((mut w, tmp)) = self.stream.take() {
            let res = w
                .flush()
                .map_err(anyhow::Error::from)
                .and_then(|_| w.get_ref().sync_all().map_err(anyhow::Error::from))
                .and_then(|_| std::fs::rename(&tmp, &self.path).map_err(anyhow::Error::from))
                .with_context(|| format!("cannot complete {}", self.path.display()));
            if let Err(e) = res {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            self.written.push(self.path.clone());
        }
        self.finished = true;
        Ok(std::mem::take(&mut self.written))
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some((_, tmp)) = self.stream.take() {
            if let Err(e) = std::fs::remove_file(&tmp) {
                tracing::warn!("removing {}: {e}", tmp.display());
            }
        }
        for f in self.written.drain(..) {
            if let Err(e) = std::fs::remove_file(&f) {
                tracing::warn!("removing {}: {e}", f.display());
            }
        }
    }
}

/// Writes `bytes` (a frame's plane, mapped) to the file. While `direct`, the writer's buffer is flushed
/// and the mapping is handed to write(2) as it is, as `v4l2-ctl --stream-to` does. A write straight from a
/// dma-buf mapping (a PFN map for some exporters) fails with EFAULT on file systems that pin the source
/// pages (9p, FUSE); from then on (`direct` turns false) the bytes are staged through the writer's buffer
/// in pieces smaller than it. Returns the bytes staged.
fn write_raw(w: &mut BufWriter<File>, bytes: &[u8], direct: &mut bool) -> std::io::Result<u64> {
    let mut done = 0;
    if *direct {
        w.flush()?;
        let file = w.get_mut();
        while done < bytes.len() {
            match file.write(&bytes[done..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {
                    tracing::debug!(
                        "writing from the mapping failed (EFAULT); staging from now on"
                    );
                    *direct = false;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    let rest = &bytes[done..];
    for chunk in rest.chunks(CHUNK) {
        w.write_all(chunk)?;
    }
    Ok(rest.len() as u64)
}

/// One frame as planar Y, Cb, Cr in the format's own subsampling (no resampling).
fn y4m_frame(view: &View<'_>) -> Vec<u8> {
    use crate::pixels::Sample;
    let (w, h) = (view.width, view.height);
    let mut out = Vec::with_capacity(w * h * 2);
    for y in 0..h {
        for x in 0..w {
            out.push(match view.sample(x, y) {
                Sample::Yuv(l, _, _) | Sample::Grey(l) => l,
                Sample::Rgb(..) => 0,
            });
        }
    }
    // Luma-only formats have no chroma planes; the catalogue gives no other format a Y4M tag.
    let (hsub, vsub) = view.pixel.chroma_sub();
    if hsub == 1 {
        return out;
    }
    let vsub = vsub as usize;
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(vsub));
    for plane in 0..2 {
        for cy in 0..ch {
            for cx in 0..cw {
                if let Sample::Yuv(_, u, v) = view.sample(cx * 2, cy * vsub) {
                    out.push(if plane == 0 { u } else { v });
                }
            }
        }
    }
    out
}

/// Writes one image to `tmp`, the temporary of `path` (which errors name).
fn write_image(kind: Kind, tmp: &Path, path: &Path, w: u32, h: u32, rgb: &[u8]) -> Result<()> {
    let mut out = create(tmp, path)?;
    match kind {
        Kind::Ppm => {
            write!(out, "P6\n{w} {h}\n255\n")
                .and_then(|_| out.write_all(rgb))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        _ => {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut wr = enc
                .write_header()
                .with_context(|| format!("writing {}", path.display()))?;
            wr.write_image_data(rgb)
                .with_context(|| format!("writing {}", path.display()))?;
            wr.finish()
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
