//! `dmacam kms-view` (also `dmacam view --output kms`): the camera on a bare DRM/KMS display, no compositor.
//! This file turns the options into a plan (`crate::show`, where they are checked and where the KMS output
//! is set up) and runs it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::capture_opts::CaptureOpts;
use crate::show::{ask_of, KmsOpts};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub capture: CaptureOpts,
    /// Pixel format; default: the first format the camera offers that the display plane scans out (XR24...),
    /// else (gpu path) the first the render stage reads.
    #[arg(long, value_name = "FOURCC")]
    pub format: Option<String>,
    /// Buffer path: auto (passthrough when a plane scans out the camera's format, else gpu), passthrough
    /// (the camera's dma-bufs to the plane) or gpu (converted by the render stage into XRGB8888).
    #[arg(long, default_value = "auto", value_name = "PATH")]
    pub path: String,
    /// Process on the GPU first, e.g. `scale=640x360,mirror` (see `dmacam view --help`). Implies --path gpu.
    /// Without it the gpu path scales frames larger than the mode down to fit, keeping the aspect ratio.
    #[arg(long, value_name = "SPEC")]
    pub process: Option<String>,
    /// Stop after this many frames have reached the screen (page flips completed).
    #[arg(long, conflicts_with = "duration")]
    pub frames: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Print statistics at exit: frames shown, drops, fps, latency percentiles (capture to page flip), CPU
    /// bytes copied per frame.
    #[arg(long)]
    pub stats: bool,
    /// Also write the statistics as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Write one JSON line per frame to FILE: its dma-buf identities (camera export, and on the gpu path the
    /// Vulkan import and GPU export), the framebuffer it went to, timestamps, CPU bytes copied.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// When the camera is disconnected mid-stream (unplugged; vivid's Disconnect control), keep its last
    /// frame on the display, wait for it to come back and resume with the same format and --set settings.
    /// `--reconnect false` exits with an error instead.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub reconnect: bool,
    #[command(flatten)]
    pub kms: KmsOpts,
}

pub fn run(args: Args) -> Result<ExitCode> {
    crate::show::run(ask_of!(args).kms(args.frames, args.kms)?)
}
