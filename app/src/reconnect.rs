//! `--reconnect` (the viewers' default): when the camera goes away mid-stream (unplugged, its driver unbound,
//! vivid's Disconnect control), wait for its node to come back and stream again with the same format and
//! `--set` settings. Run by the streaming loop (`crate::pipeline::run`) for every display-like output.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use dmacam_capture::stream::StreamError;
use dmacam_capture::{FormatRequest, Input, IoMode, Source, StreamOptions};

use crate::capture_opts::CaptureOpts;
use crate::gpu::GpuStage;

/// How often the node is tried while the camera is away (the output is serviced in between).
const RETRY: Duration = Duration::from_millis(200);

/// Whether a stream loop ended because the camera was disconnected.
pub fn is_disconnect(r: &Result<()>) -> bool {
    matches!(
        r.as_ref()
            .err()
            .and_then(|e| e.downcast_ref::<StreamError>()),
        Some(StreamError::Disconnected { .. })
    )
}

/// The one line said when the camera goes away.
pub fn say_waiting(who: &str, path: &Path) {
    eprintln!(
        "dmacam {who}: {} was disconnected; waiting for it to come back (Ctrl-C stops)",
        path.display()
    );
}

/// The one line said when it is back.
pub fn say_back(who: &str, path: &Path) {
    eprintln!("dmacam {who}: {} is back; resuming", path.display());
}

/// After a disconnect: drops `old` and the render stage (whose imports were of the old buffers; the caller
/// has taken every frame back: a frame keeps the device open, and a driver may wait for the last close before
/// it registers the node again, as vivid does). Then until the node at `path` opens again calls
/// `service(RETRY)`, which keeps the output alive for that long and returns false when the user quits. Then
/// applies the `--set` settings, negotiates what the camera sent before (MJPG, if its frames were decoded),
/// starts streaming and, if there was one, builds the render stage afresh with the same processing. `None`
/// when the user quit.
pub fn reopen(
    capture: &CaptureOpts,
    path: &Path,
    io: IoMode,
    buffers: u32,
    old: Source,
    gpu: &mut Option<GpuStage>,
    mut service: impl FnMut(Duration) -> Result<bool>,
) -> Result<Option<Source>> {
    let format = old.compressed_format().unwrap_or(old.format()).clone();
    drop(old);
    let spec = gpu.take().map(|g| g.spec);
    let fps = capture.fps()?;
    loop {
        if crate::signals::stop_requested() || !service(RETRY)? {
            return Ok(None);
        }
        let Ok(dev) = dmacam_capture::Device::open(path) else {
            continue;
        };
        dev.apply_settings(&capture.ctrls)?;
        let input = Input::Device(dev);
        let format = input.negotiate(&FormatRequest {
            fourcc: Some(format.fourcc),
            size: Some((format.width, format.height)),
            fps,
        })?;
        let mut stream = Source::new(input, format, &StreamOptions { buffers, io })?;
        stream.start()?;
        if let Some(spec) = spec {
            *gpu = Some(
                GpuStage::new(stream.format(), spec)
                    .map_err(|e| anyhow::anyhow!("{}: render stage: {e}", path.display()))?,
            );
        }
        return Ok(Some(stream));
    }
}
