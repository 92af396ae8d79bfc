//! From the options a viewer command was given, as typed, to a [`Plan`]. Every option is checked before
//! anything is opened, and a bad one is one line. `view` (every output), `kms-view` and `check --zero-copy`
//! (which runs the viewer) make their plans here.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use dmacam_capture::format::parse_fourcc;
use dmacam_capture::{Fourcc, IoMode};
use dmacam_display::kms::ModeRequest;
use dmacam_display::{FrameScript, PathRequest};
use dmacam_render::ProcessSpec;

use super::plan::{Kms, KmsOpts, Output, Plan, Window};
use crate::capture_opts::CaptureOpts;
use crate::pipeline::null::NullSink;
use crate::pipeline::Stop;

/// The options every viewer takes, as typed.
pub struct Ask {
    pub capture: CaptureOpts,
    /// `--format`.
    pub format: Option<String>,
    /// `--path`.
    pub path: String,
    /// `--process`.
    pub process: Option<String>,
    pub duration: Option<f64>,
    pub stats: bool,
    pub stats_json: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    pub reconnect: bool,
}

/// The [`Ask`] of a viewer command's clap `Args` (`view`, `kms-view`): the options every viewer takes, under
/// the same names.
macro_rules! ask_of {
    ($args:ident) => {
        $crate::show::Ask {
            capture: $args.capture,
            format: $args.format,
            path: $args.path,
            process: $args.process,
            duration: $args.duration,
            stats: $args.stats,
            stats_json: $args.stats_json,
            trace: $args.trace,
            reconnect: $args.reconnect,
        }
    };
}
pub(crate) use ask_of;

/// What `view` adds, as typed.
pub struct ViewAsk {
    /// `--output`: wayland, kms or null.
    pub output: String,
    /// Frames taken from the camera.
    pub frames: Option<u64>,
    /// Frames presented.
    pub until_shown: Option<u64>,
    pub display: Option<String>,
    pub fullscreen: bool,
    pub kms: KmsOpts,
    pub health: Option<PathBuf>,
    pub health_every: u64,
    pub keys: Option<String>,
    pub test_dmabuf_modifier: Option<(Fourcc, u64)>,
    /// Test aid: frame actions run once the first frame is shown (Wayland only).
    pub frame_actions: Option<FrameScript>,
}

impl Ask {
    /// `view`'s plan. With `--output kms` it is `kms-view`'s, whose frames are those on the screen.
    pub fn view(self, v: ViewAsk) -> Result<Plan> {
        if v.frame_actions.is_some() && v.output != "wayland" {
            bail!("--frame-actions works the Wayland window's frame: it needs --output wayland");
        }
        let output = match v.output.as_str() {
            "wayland" => Output::Wayland(Window {
                display: v.display,
                fullscreen: v.fullscreen,
                test_dmabuf_modifier: v.test_dmabuf_modifier,
                frame_actions: v.frame_actions.unwrap_or_default(),
            }),
            "null" => Output::Plain(|| Box::<NullSink>::default()),
            "kms" => {
                if v.display.is_some() {
                    bail!("--display names a Wayland display; it does not go with --output kms (use --card)");
                }
                // KMS counts frames on the screen (page flips): --until-shown is just that.
                return self.kms(v.until_shown.or(v.frames), v.kms);
            }
            o => bail!("--output: unknown output '{o}' (use wayland, kms or null)"),
        };
        let camera = self.camera()?;
        let path: PathRequest = self
            .path
            .parse()
            .map_err(|e| anyhow::anyhow!("--path: {e}"))?;
        let spec = process(self.process.as_deref())?;
        let path = match (path, &spec) {
            (PathRequest::Auto | PathRequest::Gpu, Some(_)) => PathRequest::Gpu,
            (_, Some(_)) => bail!(
                "--process runs on the GPU: it needs --path gpu (or auto), not --path {}",
                self.path
            ),
            (p, None) => p,
        };
        self.check_run(v.frames)?;
        let stop = Stop {
            taken: v.frames,
            shown: v.until_shown,
            duration: self.duration,
            ..Stop::default()
        };
        Ok(Plan {
            health: v.health.map(|p| (p, v.health_every)),
            keys: v.keys,
            ..self.plan(camera, path, spec, stop, output)
        })
    }

    /// `kms-view`'s plan: `shown` frames on the screen (page flips completed).
    pub fn kms(self, shown: Option<u64>, kms: KmsOpts) -> Result<Plan> {
        let camera = self.camera()?;
        let mode: Option<ModeRequest> = kms
            .mode
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
        let spec = process(self.process.as_deref())?;
        let path = match (self.path.as_str(), &spec) {
            ("auto" | "gpu", Some(_)) | ("gpu", None) => PathRequest::Gpu,
            ("auto", None) => PathRequest::Auto,
            ("passthrough", None) => PathRequest::Passthrough,
            ("passthrough", Some(_)) => {
                bail!(
                    "--process runs on the GPU: it needs --path gpu (or auto), not --path passthrough"
                )
            }
            (p, _) => {
                bail!(
                    "--path: unknown path '{p}' for the KMS output (use auto, passthrough or gpu)"
                )
            }
        };
        self.check_run(shown)?;
        if let Some(p) = &kms.writeback {
            check_output_file("--writeback", p)?;
            if kms.legacy {
                bail!("--writeback needs atomic modesetting; drop --legacy");
            }
        }
        let stop = Stop {
            taken: None,
            shown,
            duration: self.duration,
            ..Stop::default()
        };
        let output = Output::Kms(Kms { opts: kms, mode });
        Ok(self.plan(camera, path, spec, stop, output))
    }

    /// `--size`, `--fps`, `--io` and `--format`, checked.
    fn camera(&self) -> Result<Camera> {
        Ok(Camera {
            size: self.capture.size()?,
            fps: self.capture.fps()?,
            io: self.capture.io()?,
            format: fourcc(self.format.as_deref())?,
        })
    }

    /// `--frames` (here `frames`), `--duration` and `--stats-json`, checked.
    fn check_run(&self, frames: Option<u64>) -> Result<()> {
        if frames == Some(0) {
            bail!("--frames must be at least 1");
        }
        if let Some(d) = self.duration {
            if !(d > 0.0 && d.is_finite()) {
                bail!("--duration must be a positive number of seconds, not {d}");
            }
        }
        if let Some(p) = &self.stats_json {
            check_output_file("--stats-json", p)?;
        }
        Ok(())
    }

    /// The plan of these options, checked, with no health log and no scripted keys.
    fn plan(
        self,
        camera: Camera,
        path: PathRequest,
        spec: Option<ProcessSpec>,
        stop: Stop,
        output: Output,
    ) -> Plan {
        Plan {
            capture: self.capture,
            size: camera.size,
            fps: camera.fps,
            io: camera.io,
            format: camera.format,
            path,
            spec,
            stop,
            stats: self.stats,
            stats_json: self.stats_json,
            trace: self.trace,
            reconnect: self.reconnect,
            health: None,
            keys: None,
            output,
        }
    }
}

/// The camera options, checked.
struct Camera {
    size: Option<(u32, u32)>,
    fps: Option<u32>,
    io: IoMode,
    format: Option<Fourcc>,
}

/// `--format`, checked.
fn fourcc(format: Option<&str>) -> Result<Option<Fourcc>> {
    format
        .map(parse_fourcc)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--format: {e}"))
}

/// `--process`, checked.
fn process(spec: Option<&str>) -> Result<Option<ProcessSpec>> {
    spec.map(str::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--process: {e}"))
}

/// The directory a file option writes into must exist.
fn check_output_file(opt: &str, p: &Path) -> Result<()> {
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!(
            "{opt} {}: directory {} does not exist",
            p.display(),
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(path: &str) -> Ask {
        Ask {
            capture: CaptureOpts {
                device: "pattern".into(),
                size_arg: None,
                fps_arg: None,
                io_arg: "mmap".into(),
                ctrls: Vec::new(),
                timeout: 10,
                from: None,
                pattern_truncate_every: None,
            },
            format: None,
            path: path.into(),
            process: None,
            duration: None,
            stats: false,
            stats_json: None,
            trace: None,
            reconnect: true,
        }
    }

    fn view(output: &str, frames: Option<u64>, until_shown: Option<u64>) -> ViewAsk {
        ViewAsk {
            output: output.into(),
            frames,
            until_shown,
            display: None,
            fullscreen: false,
            kms: KmsOpts::default(),
            health: Some("h.jsonl".into()),
            health_every: 5,
            keys: Some("b".into()),
            test_dmabuf_modifier: None,
            frame_actions: None,
        }
    }

    fn stop(plan: &Plan) -> (Option<u64>, Option<u64>) {
        (plan.stop.taken, plan.stop.shown)
    }

    #[test]
    fn frame_actions_need_the_wayland_window() {
        for output in ["null", "kms"] {
            let mut v = view(output, Some(7), None);
            v.frame_actions = Some("resize:800x600,close".parse().unwrap());
            let e = ask("auto")
                .view(v)
                .err()
                .expect("frame actions without a window");
            assert!(e.to_string().contains("needs --output wayland"), "{e}");
        }
    }

    #[test]
    fn view_counts_frames_taken_and_kms_frames_shown() {
        let p = ask("auto").view(view("null", Some(7), None)).unwrap();
        assert_eq!(stop(&p), (Some(7), None));
        assert!(matches!(p.output, Output::Plain(_)));
        assert_eq!((p.health.is_some(), p.keys.as_deref()), (true, Some("b")));
        let p = ask("auto").view(view("wayland", None, Some(9))).unwrap();
        assert_eq!(stop(&p), (None, Some(9)));
        // On KMS, --frames counts page flips, and --until-shown is just that.
        let p = ask("auto").view(view("kms", Some(7), None)).unwrap();
        assert_eq!(stop(&p), (None, Some(7)));
        assert!(matches!(p.output, Output::Kms(_)));
        assert_eq!((p.health.is_some(), p.keys.is_some()), (false, false));
        let p = ask("auto").kms(Some(4), KmsOpts::default()).unwrap();
        assert_eq!(stop(&p), (None, Some(4)));
    }

    #[test]
    fn each_output_checks_its_own_paths() {
        let err = |r: Result<Plan>| r.err().map(|e| e.to_string()).unwrap_or_default();
        let p = ask("shm").view(view("wayland", None, None)).unwrap();
        assert_eq!(p.path, PathRequest::Shm);
        assert_eq!(
            err(ask("shm").view(view("kms", None, None))),
            "--path: unknown path 'shm' for the KMS output (use auto, passthrough or gpu)"
        );
        let mut gpu = ask("auto");
        gpu.process = Some("mirror".into());
        assert_eq!(
            gpu.kms(None, KmsOpts::default()).unwrap().path,
            PathRequest::Gpu
        );
        assert_eq!(
            err(ask("auto").view(view("kms", None, Some(0)))),
            "--frames must be at least 1"
        );
        let mut kms = view("kms", None, None);
        kms.display = Some("wayland-1".into());
        assert!(err(ask("auto").view(kms)).starts_with("--display names a Wayland display"));
    }
}
