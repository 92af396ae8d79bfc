//! `dmacam check`: a driver test run. Streams each format and checks sequence numbers, CLOCK_MONOTONIC
//! timestamps, bytesused against sizeimage, buffer flags, and, on vivid, the pixel content of a known colour
//! bar pattern in the format's own encoding. On the built-in pattern source (`-d pattern[:KIND]`) the pixels
//! of every frame are checked against the pattern's picture for that sequence number, moving marker
//! included, decoded by dmacam's own reader (not the generator's encoder). Reports as text, JSON and JUnit
//! XML.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dmacam_capture::format::{fourcc_name, parse_fourcc, supported_names};
use dmacam_capture::{Fourcc, Input, PatternKind, PixelFormat};

mod driver;
mod report;

use crate::capture_opts::{open, CaptureOpts};
use report::{write_json, write_junit};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub capture: CaptureOpts,
    /// Frames to stream per format.
    #[arg(long, default_value_t = 10)]
    pub frames: u32,
    /// Comma-separated formats to test (default: every format the device offers).
    #[arg(long, value_delimiter = ',')]
    pub formats: Vec<String>,
    /// Write a JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Instead of the driver checks: show --frames frames (presented) in a Wayland window (or, --output kms,
    /// on a KMS plane) with a trace, and pass only if every frame that reached the screen kept an unbroken
    /// chain of dma-buf identities (camera export → display, or camera export → Vulkan import → Vulkan
    /// export → display) with 0 CPU bytes copied; the report adds what the display said it did.
    #[arg(long)]
    pub zero_copy: bool,
    /// With --zero-copy: the buffer path to prove (auto, passthrough, gpu; shm always fails).
    #[arg(
        long,
        default_value = "auto",
        value_name = "PATH",
        requires = "zero_copy"
    )]
    pub path: String,
    /// With --zero-copy: the Wayland display (default: $WAYLAND_DISPLAY).
    #[arg(long, requires = "zero_copy")]
    pub display: Option<String>,
    /// With --zero-copy: keep the per-frame trace in FILE (JSON lines, as `dmacam view --trace`).
    #[arg(long, value_name = "FILE", requires = "zero_copy")]
    pub trace: Option<PathBuf>,
    /// With --zero-copy: where to show the frames, wayland (a window) or kms (a bare DRM/KMS display; the
    /// last link is the plane's page flip of the frame's own framebuffer).
    #[arg(
        long,
        default_value = "wayland",
        value_name = "OUTPUT",
        requires = "zero_copy"
    )]
    pub output: String,
    #[command(flatten, next_help_heading = "KMS output (--zero-copy --output kms)")]
    pub kms: crate::show::KmsOpts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

#[derive(Debug)]
struct CaseResult {
    name: String,
    status: Status,
    /// Why it failed or was skipped, or notes.
    messages: Vec<String>,
    frames: u32,
    drops: u32,
    /// Frames the driver flagged V4L2_BUF_FLAG_ERROR: skipped (not checked), counted.
    errored: u32,
    pixels_checked: bool,
    seconds: f64,
}

/// Which known picture the frames must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Not a known picture: pixels are not checked.
    Nothing,
    /// vivid's 100 % colour bars, still.
    VividBars,
    /// The built-in pattern.
    Pattern(PatternKind),
}

/// The eight bars of vivid's "100% Colorbar" pattern, left to right, as full-range R'G'B'.
const BARS: [(&str, [u8; 3]); 8] = [
    ("white", [255, 255, 255]),
    ("yellow", [255, 255, 0]),
    ("cyan", [0, 255, 255]),
    ("green", [0, 255, 0]),
    ("magenta", [255, 0, 255]),
    ("red", [255, 0, 0]),
    ("blue", [0, 0, 255]),
    ("black", [0, 0, 0]),
];
/// How far ahead of CLOCK_MONOTONIC a buffer timestamp may be when dequeued.
const TIMESTAMP_LEAD: Duration = Duration::from_millis(250);
/// How old a buffer timestamp may be when dequeued.
const TIMESTAMP_AGE: Duration = Duration::from_secs(10);
/// How far a component may be from the expected value (rounding in the driver's fixed-point maths).
const TOLERANCE: i32 = 3;
/// The same for frames decoded from JPEG (the pattern's MJPG form, quality 85, 4:2:0): lossy, with DCT
/// ringing near the marker's sharp edges two pixels from the samples. A wrong bar or a misplaced marker is
/// still off by far more (over 200 levels).
const JPEG_TOLERANCE: i32 = 40;

pub fn run(args: Args) -> Result<ExitCode> {
    if args.zero_copy {
        if args.formats.len() > 1 {
            bail!("--zero-copy proves one format at a time; give at most one in --formats");
        }
        if !["wayland", "kms"].contains(&args.output.as_str()) {
            bail!(
                "--zero-copy --output {}: the proof ends at a display; use wayland or kms",
                args.output
            );
        }
        return super::zerocopy::prove(super::zerocopy::Request {
            capture: args.capture.clone(),
            format: args.formats.first().cloned(),
            path: args.path.clone(),
            frames: u64::from(args.frames),
            display: args.display.clone(),
            trace: args.trace.clone(),
            output: args.output.clone(),
            kms: args.kms.clone(),
        });
    }
    let started = Instant::now();
    let mut results = Vec::new();
    let mut stopped = None;
    let mut vanished = None;
    let mut device_name = args.capture.device.display().to_string();
    let mut driver = String::new();
    match prepare(&args) {
        Ok((dev, formats, expect)) => {
            driver = match dev.device() {
                Some(d) => d.info().driver.clone(),
                None => "dmacam pattern".to_owned(),
            };
            device_name = dev.path().display().to_string();
            drop(dev);
            crate::signals::install()?;
            let total = formats.len();
            for f in formats {
                let r = check_format(&args, f, expect);
                if crate::signals::stop_requested() {
                    // The case cut short is not a result; the report says what was not tested.
                    stopped = Some(total - results.len());
                    break;
                }
                println!(
                    "{:<6} {:<4} {}",
                    r.name,
                    r.status.as_str(),
                    r.messages.join("; ")
                );
                let failed = r.status == Status::Fail;
                results.push(r);
                if failed && !matches!(expect, Expect::Pattern(_)) && !args.capture.device.exists()
                {
                    // The camera vanished: every format left would fail the same way.
                    vanished = Some(total - results.len());
                    break;
                }
            }
        }
        Err(e) => {
            let msg = crate::error_line::one_line(&e);
            eprintln!("dmacam: {msg}");
            results.push(CaseResult {
                name: "open".to_owned(),
                status: Status::Fail,
                messages: vec![msg],
                frames: 0,
                drops: 0,
                errored: 0,
                pixels_checked: false,
                seconds: 0.0,
            });
        }
    }
    let passed = results.iter().filter(|r| r.status == Status::Pass).count();
    let failed = results.iter().filter(|r| r.status == Status::Fail).count();
    let skipped = results.iter().filter(|r| r.status == Status::Skip).count();
    println!("{passed} passed, {failed} failed, {skipped} skipped (not supported by dmacam)");
    if let Some(n) = vanished.filter(|&n| n > 0) {
        eprintln!("dmacam: {device_name} is gone; {n} more formats were not tested");
    }
    if let Some(path) = &args.json {
        write_json(path, &device_name, &driver, &results, started.elapsed())?;
    }
    if let Some(path) = &args.junit {
        write_junit(path, &device_name, &results, started.elapsed())?;
    }
    if let (Some(n), Some(sig)) = (stopped, crate::signals::stop_signal()) {
        eprintln!(
            "dmacam check: stopped by {}; {n} formats were not tested",
            crate::signals::name(sig)
        );
        return Ok(ExitCode::from((128 + sig) as u8));
    }
    if failed > 0 || passed == 0 {
        if failed == 0 {
            eprintln!("dmacam: no format passed on {device_name}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the device, selects vivid's test pattern, and resolves the formats to test.
fn prepare(args: &Args) -> Result<(Input, Vec<Fourcc>, Expect)> {
    if let Some(socket) = &args.capture.from {
        bail!(
            "check --from {}: a driver test negotiates each format itself, which a served stream cannot; \
             run `dmacam check` on the device, or `dmacam dump --from` to test the stream",
            socket.display()
        );
    }
    let input = open(&args.capture)?;
    let dev = match (&input, input.pattern_kind()) {
        (_, Some(kind)) => {
            let formats = formats_to_test(args, &input)?;
            return Ok((input, formats, Expect::Pattern(kind)));
        }
        (Input::Device(d), None) => d,
        // A PipeWire node offers what its producer agrees to: without --formats, the format it gives by
        // default is the one tested. Its pixels are whatever the producer shows (no pattern is set).
        (Input::PipeWire(_), None) => {
            let formats = if args.formats.is_empty() {
                vec![input.negotiate(&Default::default())?.fourcc]
            } else {
                formats_to_test(args, &input)?
            };
            return Ok((input, formats, Expect::Nothing));
        }
        (Input::Pattern(_) | Input::Remote(_), None) => {
            unreachable!("a pattern input has a kind; --from was refused above")
        }
    };
    let vivid = dev.info().driver == "vivid";
    if vivid {
        // A still, known picture: 100% colour bars, no on-screen text, no movement.
        let set = |name: &str, entry: &str| -> Result<()> {
            let c = dev.control(name)?;
            dev.set_menu(&c, entry)?;
            Ok(())
        };
        set("test_pattern", "100% Colorbar")?;
        set("osd_text_mode", "None")?;
        for m in ["horizontal_movement", "vertical_movement"] {
            if dev.control(m).is_ok() {
                set(m, "No Movement")?;
            }
        }
    }
    let formats = formats_to_test(args, &input)?;
    let expect = if vivid {
        Expect::VividBars
    } else {
        Expect::Nothing
    };
    Ok((input, formats, expect))
}

/// The formats `--formats` names (each checked against what the input offers), or every offered format.
fn formats_to_test(args: &Args, dev: &Input) -> Result<Vec<Fourcc>> {
    let offered = dev.formats()?;
    let formats = if args.formats.is_empty() {
        offered.iter().map(|d| d.fourcc).collect()
    } else {
        let mut v = Vec::new();
        for name in &args.formats {
            let f = parse_fourcc(name.trim()).map_err(anyhow::Error::msg)?;
            if !offered.iter().any(|d| d.fourcc == f) {
                let names: Vec<String> = offered.iter().map(|d| fourcc_name(d.fourcc)).collect();
                anyhow::bail!(
                    "{} does not offer format {}; it offers {}",
                    dev.path().display(),
                    fourcc_name(f),
                    names.join(" ")
                );
            }
            v.push(f);
        }
        v
    };
    Ok(formats)
}

fn check_format(args: &Args, fourcc: Fourcc, expect: Expect) -> CaseResult {
    let start = Instant::now();
    let mut r = CaseResult {
        name: fourcc_name(fourcc),
        status: Status::Pass,
        messages: Vec::new(),
        frames: 0,
        drops: 0,
        errored: 0,
        pixels_checked: false,
        seconds: 0.0,
    };
    if PixelFormat::lookup(fourcc).is_none() {
        r.status = Status::Skip;
        r.messages.push(format!(
            "dmacam does not support {} (supported: {})",
            fourcc_name(fourcc),
            supported_names()
        ));
        return r;
    }
    if let Err(e) = driver::stream_and_check(args, fourcc, expect, &mut r) {
        r.status = Status::Fail;
        r.messages.push(crate::error_line::one_line(&e));
    }
    if r.status == Status::Pass && !r.messages.iter().any(|m| m.starts_with("pixels")) {
        r.messages.insert(
            0,
            if r.pixels_checked {
                let what = match expect {
                    Expect::Pattern(k) => format!("pattern:{} and its moving marker", k.as_str()),
                    _ => "the colour bars".to_owned(),
                };
                format!("{} frames, pixels match {what}", r.frames)
            } else {
                format!("{} frames (pixels not checked: not vivid)", r.frames)
            },
        );
    }
    r.seconds = start.elapsed().as_secs_f64();
    r
}

fn fail(r: &mut CaseResult, msg: String) {
    r.status = Status::Fail;
    if r.messages.len() < 8 {
        r.messages.push(msg);
    }
}
