//! A plan: what a viewer command asks for, every option checked (`super::options` makes one from the
//! options as typed); [`super::run`] runs it. The output it names is a Wayland window, a KMS plane or
//! nothing (`null`).

use std::path::PathBuf;

use dmacam_capture::{Fourcc, IoMode, Source};
use dmacam_display::kms::ModeRequest;
use dmacam_display::{FrameScript, PathRequest};
use dmacam_render::ProcessSpec;

use crate::capture_opts::CaptureOpts;
use crate::gpu::GpuStage;
use crate::pipeline::Stop;

/// A viewer run, checked: the camera, the path its frames take, when to stop, what to write and where to
/// show them.
pub struct Plan {
    /// `-d`, `--set`, `--timeout`, `--from`: the camera is opened (and reopened) with these.
    pub capture: CaptureOpts,
    pub size: Option<(u32, u32)>,
    pub fps: Option<u32>,
    pub io: IoMode,
    /// `--format`.
    pub format: Option<Fourcc>,
    /// `--path`, made `gpu` by `--process`; the KMS output takes auto, passthrough or gpu.
    pub path: PathRequest,
    pub spec: Option<ProcessSpec>,
    pub stop: Stop,
    pub stats: bool,
    pub stats_json: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    pub reconnect: bool,
    /// `--health FILE`, every `--health-every` frames.
    pub health: Option<(PathBuf, u64)>,
    /// `--keys`: acted on as if pressed once the first frame is shown.
    pub keys: Option<String>,
    pub output: Output,
}

/// Where the frames are shown.
pub enum Output {
    Wayland(Window),
    Kms(Kms),
    /// An output that takes no options of its own and sets itself up around the camera (`null`: nowhere,
    /// each picture is let go at once), made by this function.
    Plain(fn() -> Box<dyn crate::pipeline::Output>),
}

/// The Wayland window.
pub struct Window {
    /// `--display` (default: $WAYLAND_DISPLAY).
    pub display: Option<String>,
    pub fullscreen: bool,
    /// Test aid: the DRM format modifier announced for every dma-buf of that format.
    pub test_dmabuf_modifier: Option<(Fourcc, u64)>,
    /// Test aid: frame actions run once the first frame is shown.
    pub frame_actions: FrameScript,
}

/// The bare DRM/KMS display.
pub struct Kms {
    pub opts: KmsOpts,
    /// `--mode`, checked.
    pub mode: Option<ModeRequest>,
}

/// The KMS output's own options (`kms-view`, `view --output kms`, `check --zero-copy --output kms`).
#[derive(clap::Args, Clone, Debug)]
pub struct KmsOpts {
    /// The DRM card to show on.
    #[arg(long, default_value = "/dev/dri/card0", value_name = "PATH")]
    pub card: PathBuf,
    /// The connector, as the kernel names it (e.g. HDMI-A-1, DP-2, Virtual-1); default: the first connected.
    #[arg(long, value_name = "NAME")]
    pub connector: Option<String>,
    /// The mode, WIDTHxHEIGHT or WIDTHxHEIGHT@HZ; default: the connector's preferred mode.
    #[arg(long, value_name = "WxH[@R]")]
    pub mode: Option<String>,
    /// After the last frame, capture what the CRTC composed through the card's writeback connector and
    /// write it as a PPM image (verification; needs an atomic driver with a writeback connector, e.g. vkms).
    #[arg(long, value_name = "FILE.ppm")]
    pub writeback: Option<PathBuf>,
    /// Use legacy modesetting (SETCRTC + PAGE_FLIP) even if the driver offers atomic.
    #[arg(long, hide = true)]
    pub legacy: bool,
}

impl Default for KmsOpts {
    fn default() -> Self {
        KmsOpts {
            card: PathBuf::from("/dev/dri/card0"),
            connector: None,
            mode: None,
            writeback: None,
            legacy: false,
        }
    }
}

/// An output's camera, opened and set up with it, ready to stream.
pub struct Ready {
    pub stream: Source,
    pub gpu: Option<GpuStage>,
    /// The camera's node.
    pub dev: PathBuf,
    /// Buffers of the camera.
    pub buffers: u32,
    /// The command's name in the lines said on stderr (`view`, `kms`).
    pub who: &'static str,
    /// How the decoding line names the command (`view`, `view --output kms`).
    pub announce: &'static str,
}
