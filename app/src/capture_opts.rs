//! The capture options every command shares ([`CaptureOpts`]: `-d`, `--size`, `--fps`, `--io`, `--set`,
//! `--timeout`, `--from`) and opening what they name ([`open`]): `-d` names a V4L2 node or the pattern source
//! (`pattern`, `pattern:bars`, `pattern:gradient`, `pattern:noise`) or a PipeWire video source (`pipewire`,
//! `pipewire:NODE`); `--from` names a `dmacam serve` socket
//! instead. Also the checks of a source's buffers for outputs that need dma-bufs.

use std::path::PathBuf;

use anyhow::{bail, Result};
use dmacam_capture::format::{fourcc_name, Fraction};
use dmacam_capture::pattern::{parse_source_name, PatternKind};
use dmacam_capture::{Device, Format, FormatRequest, Fourcc, Input, IoMode, Source};
use dmacam_display::PathRequest;

/// The largest width or height `--size` takes (V4L2 drivers and Vulkan images stop well before).
const MAX_SIDE: u32 = 16384;

/// `--size WxH`.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let err =
        || format!("'{s}' is not a frame size; give WIDTHxHEIGHT with both above 0, e.g. 640x360");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(err)?;
    let w: u32 = w.trim().parse().map_err(|_| err())?;
    let h: u32 = h.trim().parse().map_err(|_| err())?;
    if w == 0 || h == 0 {
        return Err(err());
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(format!(
            "'{s}' is too large a frame size; give at most {MAX_SIDE}x{MAX_SIDE}"
        ));
    }
    Ok((w, h))
}

fn parse_io(s: &str) -> Result<IoMode, String> {
    match s {
        "mmap" => Ok(IoMode::Mmap),
        "dma-heap" => Ok(IoMode::DmaHeap),
        "udmabuf" => Ok(IoMode::Udmabuf),
        "memfd" => Ok(IoMode::Memfd),
        _ => Err(format!(
            "'{s}' is not an I/O mode; use mmap, dma-heap, udmabuf (or memfd for the pattern source)"
        )),
    }
}

fn parse_fps(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a frame rate; give a whole number of frames per second, 1 to 1000"
        )),
    }
}

/// Device and streaming options every command shares.
#[derive(clap::Args, Clone, Debug)]
pub struct CaptureOpts {
    /// The V4L2 capture node, or the built-in test pattern: `pattern` (colour bars), `pattern:bars`,
    /// `pattern:gradient` or `pattern:noise` (no camera needed), or a PipeWire video source: `pipewire`
    /// (the default camera) or `pipewire:NODE` (an id, a node name or the camera's device path).
    #[arg(short, long, default_value = "/dev/video0")]
    pub device: PathBuf,
    /// Size, WIDTHxHEIGHT (the closest size the device offers is used).
    #[arg(long = "size", value_name = "WxH")]
    pub size_arg: Option<String>,
    /// Frame rate in frames per second.
    #[arg(long = "fps", value_name = "N")]
    pub fps_arg: Option<String>,
    /// Buffer memory: mmap (driver buffers exported with EXPBUF), dma-heap or udmabuf (imported). For the
    /// pattern: mmap picks udmabuf, else dma-heap, else memfd (not a dma-buf: CPU consumers only).
    #[arg(long = "io", default_value = "mmap", value_name = "MODE")]
    pub io_arg: String,
    /// Set a device control after opening it, before streaming: NAME=VALUE with `v4l2-ctl -L` names
    /// (menu entries by name or index; see `dmacam controls`). Repeatable; all are checked before any is set.
    #[arg(long = "set", visible_alias = "ctrl", value_name = "NAME=VALUE")]
    pub ctrls: Vec<String>,
    /// Seconds to wait for each frame before giving up.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Take frames from a `dmacam serve` socket instead of a device: the server's very buffers, by fd.
    #[arg(long, value_name = "SOCKET")]
    pub from: Option<PathBuf>,
    /// Test aid: with `-d pattern --format MJPG`, cut every N-th frame short (a truncated JPEG, as webcams
    /// deliver under load), so the decoder's skipping of corrupt frames can be seen.
    #[arg(long, value_name = "N", hide = true)]
    pub pattern_truncate_every: Option<u32>,
}

impl CaptureOpts {
    /// `--size`, checked. (Parsed here rather than by clap so a bad value is one line, like every error.)
    pub fn size(&self) -> Result<Option<(u32, u32)>> {
        self.size_arg
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--size: {e}"))
    }

    /// `--fps`, checked.
    pub fn fps(&self) -> Result<Option<u32>> {
        self.fps_arg
            .as_deref()
            .map(parse_fps)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--fps: {e}"))
    }

    /// `--io`, checked.
    pub fn io(&self) -> Result<IoMode> {
        parse_io(&self.io_arg).map_err(|e| anyhow::anyhow!("--io: {e}"))
    }
}

/// The pattern source of `kind`, with the test options of `opts` (`--pattern-truncate-every`).
pub fn pattern_input(kind: PatternKind, opts: &CaptureOpts) -> Input {
    let mut pattern = dmacam_capture::source::PatternInput::new(kind);
    pattern.set_truncate_every(opts.pattern_truncate_every);
    Input::Pattern(pattern)
}

/// Opens what `-d` names, a V4L2 node or the pattern source, and applies `--set` settings (after checking
/// every option).
pub fn open(opts: &CaptureOpts) -> Result<Input> {
    opts.size()?;
    opts.fps()?;
    let io = opts.io()?;
    if let Some(socket) = &opts.from {
        if !opts.ctrls.is_empty() {
            bail!(
                "--set: {} is a served stream; set controls on the server (`dmacam serve --set`)",
                socket.display()
            );
        }
        if io != IoMode::Mmap {
            bail!(
                "--io: {} is a served stream whose buffers the server allocated; give --io to `dmacam serve`",
                socket.display()
            );
        }
        return Ok(Input::Remote(dmacam_capture::RemoteInput::connect(socket)?));
    }
    if let Some(target) = opts
        .device
        .to_str()
        .and_then(dmacam_capture::pipewire::Target::parse)
    {
        let target = target?;
        if !opts.ctrls.is_empty() {
            bail!(
                "--set: {} is a PipeWire node; set camera controls where the camera is (v4l2-ctl on its device)",
                target.display_name()
            );
        }
        if io != IoMode::Mmap {
            bail!(
                "--io: {} is a PipeWire node whose buffers its producer allocates; drop --io",
                target.display_name()
            );
        }
        return Ok(Input::PipeWire(Box::new(
            dmacam_capture::pipewire::PwInput::open(&target)?,
        )));
    }
    if let Some(kind) = opts.device.to_str().and_then(parse_source_name) {
        let kind = kind?;
        if !opts.ctrls.is_empty() {
            bail!(
                "--set: {} has no controls (--set sets V4L2 device controls); drop --set",
                kind.source_name()
            );
        }
        return Ok(pattern_input(kind, opts));
    }
    if opts.pattern_truncate_every.is_some() {
        bail!(
            "--pattern-truncate-every: {} is not the pattern source; it applies to -d pattern --format MJPG",
            opts.device.display()
        );
    }
    open_device(opts).map(Input::Device)
}

/// Sets on `input` the format `fourcc` and `--size`/`--fps` ask for; returns it with the frame interval
/// (1/30 s when the input does not say).
pub fn negotiate(
    input: &Input,
    fourcc: Option<Fourcc>,
    opts: &CaptureOpts,
) -> Result<(Format, Fraction)> {
    let size = opts.size()?;
    let format = input.negotiate(&FormatRequest {
        fourcc,
        size,
        fps: opts.fps()?,
    })?;
    if let Some((w, h)) = size.filter(|&s| s != (format.width, format.height)) {
        // As VIDIOC_S_FMT adjusts a size it cannot give: said, never silent.
        tracing::warn!(
            "{}: {w}x{h} adjusted to {}x{} (the nearest size the source gives for {})",
            input.path().display(),
            format.width,
            format.height,
            fourcc_name(format.fourcc)
        );
    }
    let interval = input.frame_interval().unwrap_or(Fraction {
        numerator: 1,
        denominator: 30,
    });
    Ok((format, interval))
}

/// Opens the V4L2 capture node at `path`: a missing node points to `dmacam list`, a node of another kind
/// is refused, each in one line.
pub fn open_capture_node(path: &std::path::Path) -> Result<Device> {
    let dev = Device::open(path).map_err(|e| {
        let hint = match &e {
            dmacam_capture::OpenError::Open { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                " (see `dmacam list` for the nodes on this machine)"
            }
            _ => "",
        };
        anyhow::anyhow!("{e}{hint}")
    })?;
    if !dev.info().kind.is_capture() {
        bail!(
            "{} is a {} node, not a video capture node; give a capture node (see `dmacam list`)",
            path.display(),
            dev.info().kind.as_str()
        );
    }
    Ok(dev)
}

/// Opens the V4L2 node `-d` names and applies `--set` settings (all checked before any is applied).
fn open_device(opts: &CaptureOpts) -> Result<Device> {
    let dev = open_capture_node(&opts.device)?;
    dev.apply_settings(&opts.ctrls)?;
    Ok(dev)
}

/// For outputs that hand the frames' buffers to a compositor, the GPU or KMS: one clear line if they are not
/// dma-bufs (the pattern source's memfd fallback on a kernel without udmabuf or a DMA-BUF heap).
pub fn require_dmabuf(source: &Source, what: &str) -> Result<()> {
    if let Some(why) = source.not_dmabuf_reason() {
        bail!(
            "{}: {what} needs dma-bufs, but the pattern's buffers are memfds ({why}); run as a user who may \
             open /dev/udmabuf or /dev/dma_heap/system, on a kernel with either",
            source.path().display()
        );
    }
    Ok(())
}

/// The `view` path request for this source: memfd buffers (not dma-bufs) can only be shown through wl_shm,
/// so `auto` becomes `shm` (said on stderr) and a forced dma-buf path is refused in one line.
pub fn path_for_source(source: &Source, req: PathRequest) -> Result<PathRequest> {
    match (source.not_dmabuf_reason(), req) {
        (None, req) | (Some(_), req @ PathRequest::Shm) => Ok(req),
        (Some(why), PathRequest::Auto) => {
            eprintln!(
                "dmacam view: {} buffers are memfds, not dma-bufs ({why}): using the shm path",
                source.path().display()
            );
            Ok(PathRequest::Shm)
        }
        (Some(_), _) => {
            require_dmabuf(source, "the passthrough and gpu paths")?;
            Ok(req)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("640x360"), Ok((640, 360)));
        assert!(parse_size("0x0").is_err());
        assert!(parse_size("garbage").is_err());
        assert!(parse_size("640x").is_err());
        assert!(parse_size("-1x5").is_err());
    }
}
