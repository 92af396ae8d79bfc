//! `dmacam view`: the camera in a Wayland window (or, `--output kms`, on a bare display; `--output null`,
//! nowhere). This file turns the options into a plan (`crate::show`, where they are checked) and runs it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::capture_opts::CaptureOpts;
use crate::show::{ask_of, KmsOpts, ViewAsk};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub capture: CaptureOpts,
    /// Pixel format (fourcc such as YUYV or NV12; NV12M for the multi-planar NM12).
    #[arg(long, value_name = "FOURCC")]
    pub format: Option<String>,
    /// Buffer path: auto, passthrough (the camera's dma-bufs to the compositor), gpu (converted by the
    /// render stage) or shm (one CPU copy per frame).
    #[arg(long, default_value = "auto", value_name = "PATH")]
    pub path: String,
    /// Process on the GPU before display, e.g. `scale=640x360,mirror` (crop=WxH+X+Y, scale=WxH,
    /// rotate=90|180|270, mirror, flip, filter=nearest|linear). Implies --path gpu.
    #[arg(long, value_name = "SPEC")]
    pub process: Option<String>,
    /// Stop after this many frames from the camera.
    #[arg(long, conflicts_with = "duration")]
    pub frames: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop once the compositor has presented this many frames (its presentation feedback); with
    /// --duration, whichever comes first.
    #[arg(long, conflicts_with = "frames")]
    pub until_shown: Option<u64>,
    /// Start fullscreen (f or F11 toggles; q or Esc quits).
    #[arg(long)]
    pub fullscreen: bool,
    /// Print statistics at exit: frames shown, drops, fps, latency percentiles, CPU bytes copied per frame.
    #[arg(long)]
    pub stats: bool,
    /// Also write the statistics as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// The Wayland display (default: $WAYLAND_DISPLAY).
    #[arg(long)]
    pub display: Option<String>,
    /// Write one JSON line per frame to FILE: its dma-buf identities at each stage (camera export, Vulkan
    /// import, GPU export, wl_buffer), timestamps and CPU bytes copied (see `dmacam check --zero-copy`).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Where to show frames: wayland (a window), kms (a bare DRM/KMS display, no compositor; same as
    /// `dmacam kms-view`) or null (nowhere: each picture is let go at once; measures the pipeline).
    #[arg(long, default_value = "wayland", value_name = "OUTPUT")]
    pub output: String,
    #[command(flatten, next_help_heading = "KMS output (--output kms)")]
    pub kms: KmsOpts,
    /// When the camera is disconnected mid-stream (unplugged; vivid's Disconnect control), wait for it to
    /// come back and resume, with the same format and --set settings; the last frame stays shown meanwhile
    /// (both outputs). `--reconnect false` exits with an error instead.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub reconnect: bool,
    /// Soak runs: every --health-every frames, write a JSON line with the open fds, resident memory and
    /// render-stage import counts to FILE.
    #[arg(long, hide = true, value_name = "FILE")]
    pub health: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 1000, value_name = "N")]
    pub health_every: u64,
    /// Act on these keys as if pressed once the first frame is shown (for scripted runs and tests).
    #[arg(long, hide = true, value_name = "KEYS")]
    pub keys: Option<String>,
    /// Test aid: FOURCC:MODIFIER (hex) announces that DRM format modifier for every dma-buf of that format
    /// instead of the buffer's own, so the compositor's import fails (zwp_linux_buffer_params_v1.failed)
    /// and the fallback can be seen.
    #[arg(long, hide = true, value_name = "FOURCC:MODIFIER", value_parser = parse_modifier)]
    pub test_dmabuf_modifier: Option<(dmacam_capture::Fourcc, u64)>,
    /// Test aid: act on the window's frame as if the user had, once the first frame is shown: a comma-separated
    /// list of wait:SECONDS, until:PATH (a file appears), resize:WxH (the whole window's new size), maximize, unmaximize, minimize,
    /// double-click (on the title bar) and close.
    #[arg(long, hide = true, value_name = "ACTIONS")]
    pub frame_actions: Option<dmacam_display::FrameScript>,
}

fn parse_modifier(s: &str) -> Result<(dmacam_capture::Fourcc, u64), String> {
    let (fourcc, m) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not FOURCC:MODIFIER"))?;
    let m = u64::from_str_radix(m.trim_start_matches("0x"), 16)
        .map_err(|e| format!("'{m}' is not a hex modifier: {e}"))?;
    Ok((fourcc.parse()?, m))
}

/// What the key help of `view --help` says.
pub const KEY_HELP: &str = "Keys in the window: q or Esc quit; f or F11 toggle fullscreen; b / B step the \
camera's brightness down / up, c / C its contrast (one sixteenth of the control's range per press; the new \
value is printed on stderr).";

pub fn run(args: Args) -> Result<ExitCode> {
    let plan = ask_of!(args).view(ViewAsk {
        output: args.output,
        frames: args.frames,
        until_shown: args.until_shown,
        display: args.display,
        fullscreen: args.fullscreen,
        kms: args.kms,
        health: args.health,
        health_every: args.health_every,
        keys: args.keys,
        test_dmabuf_modifier: args.test_dmabuf_modifier,
        frame_actions: args.frame_actions,
    })?;
    crate::show::run(plan)
}
