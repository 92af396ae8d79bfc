//! The bare DRM/KMS output on vkms (no compositor): vivid's XR24 buffers PRIME-imported and scanned out,
//! verified through vkms's writeback connector against an independent capture by v4l2-ctl; 600 frames with
//! constant fds and no leaked framebuffers; bad input refused with one line and the display left as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dmacam_tests::{
    dmacam, fd_count, require_vm, results_dir, run, run_ok, run_with_deadline, wait_with_deadline,
};

const DRI: &str = "/sys/kernel/debug/dri/0";

pub(crate) fn mount_debugfs() {
    if !Path::new(DRI).exists() {
        let _ = run(Command::new("mount").args(["-t", "debugfs", "none", "/sys/kernel/debug"]));
    }
    assert!(Path::new(DRI).exists(), "DRM debugfs is not available");
}

/// The scanout-relevant lines of the DRM atomic state (planes, CRTC, connectors, who allocated the fbs).
pub(crate) fn display_state() -> String {
    let state = std::fs::read_to_string(format!("{DRI}/state")).expect("DRM debugfs state");
    state
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            [
                "plane[",
                "crtc[",
                "connector[",
                "crtc=",
                "fb=",
                "crtc-pos",
                "src-pos",
                "mode:",
                "enable=",
                "active=",
                "allocated by",
            ]
            .iter()
            .any(|p| t.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The framebuffers that exist, as "id allocated-by" lines.
pub(crate) fn framebuffers() -> Vec<String> {
    let text =
        std::fs::read_to_string(format!("{DRI}/framebuffer")).expect("DRM debugfs framebuffer");
    let mut out = Vec::new();
    let mut id = String::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("framebuffer[") {
            id = rest.trim_end_matches("]:").to_owned();
        } else if let Some(by) = l.trim().strip_prefix("allocated by = ") {
            out.push(format!("{id} {by}"));
        }
    }
    out.sort();
    out
}

pub(crate) fn dmacam_framebuffers() -> usize {
    framebuffers()
        .iter()
        .filter(|f| f.ends_with(" dmacam"))
        .count()
}

/// One vivid frame in XR24 through v4l2-ctl (an independent path), OSD text off: (width, height, B G R X bytes).
pub(crate) fn reference_frame(w: u32, h: u32) -> Vec<u8> {
    let out = results_dir().join("kms-ref.raw");
    run_ok(Command::new("v4l2-ctl").args([
        "-d",
        "/dev/video0",
        &format!("--set-fmt-video=width={w},height={h},pixelformat=XR24"),
        "-c",
        "osd_text_mode=2",
        "--stream-mmap",
        "--stream-count=3",
        &format!("--stream-to={}", out.display()),
    ]));
    let data = std::fs::read(&out).expect("reference frames");
    let frame = (w * h * 4) as usize;
    assert_eq!(data.len(), 3 * frame, "v4l2-ctl wrote {} bytes", data.len());
    data[2 * frame..].to_vec()
}

pub(crate) struct Ppm {
    pub(crate) width: u32,
    pub(crate) height: u32,
    rgb: Vec<u8>,
}

impl Ppm {
    pub(crate) fn read(path: &Path) -> Ppm {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // "P6\n<w> <h>\n255\n" then RGB.
        let mut fields = Vec::new();
        let mut i = 0;
        while fields.len() < 4 {
            while data[i].is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            while !data[i].is_ascii_whitespace() {
                i += 1;
            }
            fields.push(String::from_utf8_lossy(&data[start..i]).into_owned());
        }
        assert_eq!(fields[0], "P6");
        assert_eq!(fields[3], "255");
        let width: u32 = fields[1].parse().unwrap();
        let height: u32 = fields[2].parse().unwrap();
        let rgb = data[i + 1..].to_vec();
        assert_eq!(rgb.len(), (width * height * 3) as usize, "PPM size");
        Ppm { width, height, rgb }
    }

    pub(crate) fn px(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

pub(crate) fn reference_px(frame: &[u8], w: u32, x: u32, y: u32) -> [u8; 3] {
    let i = ((y * w + x) * 4) as usize;
    [frame[i + 2], frame[i + 1], frame[i]]
}

/// vivid's colour bars, left to right: which of R, G, B are lit.
const BARS: [[bool; 3]; 8] = [
    [true, true, true],    // white
    [true, true, false],   // yellow
    [false, true, true],   // cyan
    [false, true, false],  // green
    [true, false, true],   // magenta
    [true, false, false],  // red
    [false, false, true],  // blue
    [false, false, false], // black
];

fn stats_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("stats json"))
        .expect("stats is JSON")
}

/// A rectangle as (width, height, x, y).
type Rect = (u32, u32, u32, u32);

/// Parses "WxH+X+Y -> WxH+X+Y" into (src, dst).
fn parse_placement(s: &str) -> (Rect, Rect) {
    let rect = |r: &str| {
        let (size, pos) = r.trim().split_once('+').unwrap();
        let (w, h) = size.split_once('x').unwrap();
        let (x, y) = pos.split_once('+').unwrap();
        (
            w.parse().unwrap(),
            h.parse().unwrap(),
            x.parse().unwrap(),
            y.parse().unwrap(),
        )
    };
    let (a, b) = s.split_once("->").expect("placement");
    (rect(a), rect(b))
}

/// Checks a `--trace` of a KMS run: every frame went to a KMS framebuffer imported from the very dma-buf
/// that was produced for it (the camera's own on passthrough, exported by vivid; the render stage's output on
/// the gpu path, whose import was the camera's), nothing was copied, and at least `shown` frames carry the
/// page flip that put them on screen, after their commit.
pub(crate) fn check_kms_trace(path: &Path, gpu: bool, shown: usize) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut presented = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("trace line");
        assert_eq!(v["cpu_bytes_copied"], 0, "{line}");
        let camera: Vec<u64> = v["camera"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                assert_eq!(c["exp_name"], "videobuf2_vmalloc", "{line}");
                c["inode"].as_u64().unwrap()
            })
            .collect();
        let d = &v["display"];
        if d.is_null() {
            // Skipped before the display (every output buffer held): no framebuffer, nothing else to check.
            assert!(gpu, "{line}");
            continue;
        }
        if d["replaced"] == true {
            // Replaced by a newer frame while waiting for a flip: never committed, so no framebuffer.
            assert!(d["t_commit_ns"].is_null(), "{line}");
            continue;
        }
        assert_eq!(d["kind"], "kms", "{line}");
        assert!(d["kms_fb"].as_u64().unwrap() > 0, "{line}");
        let shown_from: Vec<u64> = d["inodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap())
            .collect();
        if gpu {
            let g = &v["gpu"];
            let imported: Vec<u64> = g["import_inodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap())
                .collect();
            assert_eq!(imported, camera, "{line}");
            assert_eq!(
                shown_from,
                vec![g["output"]["inode"].as_u64().unwrap()],
                "{line}"
            );
        } else {
            assert_eq!(shown_from, camera, "{line}");
        }
        if let Some(p) = d["t_present_ns"].as_u64() {
            assert!(p >= d["t_commit_ns"].as_u64().unwrap(), "{line}");
            presented += 1;
        }
    }
    assert!(
        presented >= shown,
        "{presented} presented frames in {}",
        path.display()
    );
}

fn show_and_write_back(name: &str, mode: Option<&str>) -> (Ppm, serde_json::Value) {
    let wb = results_dir().join(format!("{name}.ppm"));
    let stats = results_dir().join(format!("{name}.json"));
    let trace = results_dir().join(format!("{name}.jsonl"));
    let _ = std::fs::remove_file(&wb);
    let mut cmd = dmacam();
    cmd.args([
        "kms-view",
        "--format",
        "XR24",
        "--size",
        "640x480",
        "--fps",
        "30",
        "--frames",
        "30",
        "--ctrl",
        "osd_text_mode=2",
    ])
    .arg("--writeback")
    .arg(&wb)
    .arg("--stats-json")
    .arg(&stats)
    .arg("--trace")
    .arg(&trace);
    if let Some(m) = mode {
        cmd.args(["--mode", m]);
    }
    // 30 frames take seconds; a run that is not done in 120 s is stuck. That was seen once in CI on a
    // heavily loaded machine (not reproduced in 12 runs since): the stuck run is reported with its kernel
    // stacks in the results, and tried once more.
    let out = match run_with_deadline(&mut cmd, Duration::from_secs(120)) {
        Ok(out) => out,
        Err(hang) => {
            let log = results_dir().join("kms-hangs.txt");
            let mut text = std::fs::read_to_string(&log).unwrap_or_default();
            text += &format!("{name}:\n{hang}\n");
            std::fs::write(&log, text).expect("write kms-hangs.txt");
            eprintln!("{name}: {hang}\ntrying once more");
            run_with_deadline(&mut cmd, Duration::from_secs(120)).unwrap_or_else(|h| panic!("{h}"))
        }
    };
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_kms_trace(&trace, false, 30);
    (Ppm::read(&wb), stats_json(&stats))
}

#[test]
fn kms_colour_bars_reach_the_crtc_exactly() {
    require_vm();
    mount_debugfs();
    let before = display_state();
    let (img, stats) = show_and_write_back("kms-wb-640x480", Some("640x480"));
    assert_eq!((img.width, img.height), (640, 480));
    assert_eq!(stats["cpu_bytes_copied_total"], 0, "{stats}");
    assert_eq!(display_state(), before, "the display was not restored");
    let reference = reference_frame(640, 480);
    // Every pixel the CRTC composed equals vivid's frame as v4l2-ctl captured it.
    let mut differing = 0;
    for y in 0..480 {
        for x in 0..640 {
            if img.px(x, y) != reference_px(&reference, 640, x, y) {
                differing += 1;
            }
        }
    }
    assert_eq!(
        differing, 0,
        "{differing} pixels differ from the reference frame"
    );
    // And they are vivid's colour bars: sample the middle of each bar.
    for (i, lit) in BARS.iter().enumerate() {
        let x = (2 * i as u32 + 1) * 640 / 16;
        let p = img.px(x, 240);
        for c in 0..3 {
            if lit[c] {
                assert!(
                    p[c] >= 150,
                    "bar {i} at x={x}: {p:?}, channel {c} should be lit"
                );
            } else {
                assert!(
                    p[c] <= 40,
                    "bar {i} at x={x}: {p:?}, channel {c} should be dark"
                );
            }
        }
    }
}

#[test]
fn kms_frame_smaller_than_mode_is_centred_on_black() {
    require_vm();
    mount_debugfs();
    let (img, stats) = show_and_write_back("kms-wb-1024x768", None);
    assert_eq!(
        (img.width, img.height),
        (1024, 768),
        "vkms's preferred mode"
    );
    let placement = stats["placement"].as_str().expect("placement").to_owned();
    let ((sw, sh, sx, sy), (dw, dh, dx, dy)) = parse_placement(&placement);
    let reference = reference_frame(640, 480);
    if (sw, sh) == (dw, dh) {
        // Unscaled: the frame sits 1:1 in its rectangle, black around it.
        assert_eq!((sx, sy), (0, 0), "{placement}");
        for y in 0..dh {
            for x in 0..dw {
                assert_eq!(
                    img.px(dx + x, dy + y),
                    reference_px(&reference, 640, x, y),
                    "pixel ({x},{y}) of the frame at ({},{}) with placement {placement}",
                    dx + x,
                    dy + y
                );
            }
        }
    } else {
        // Scaled: sample the bar centres.
        for (i, lit) in BARS.iter().enumerate() {
            let x = dx + (2 * i as u32 + 1) * dw / 16;
            let p = img.px(x, dy + dh / 2);
            for c in 0..3 {
                assert_eq!(p[c] >= 150, lit[c], "bar {i} at x={x}: {p:?} ({placement})");
            }
        }
    }
    // Outside the frame's rectangle the CRTC shows black.
    for (x, y) in [(0, 0), (1023, 767), (0, 767), (1023, 0)] {
        let inside = x >= dx && x < dx + dw && y >= dy && y < dy + dh;
        if !inside {
            assert_eq!(img.px(x, y), [0, 0, 0], "({x},{y}) outside {placement}");
        }
    }
}

#[test]
fn kms_600_frames_constant_fds_no_leaked_framebuffers() {
    require_vm();
    mount_debugfs();
    let state_before = display_state();
    let fbs_before = framebuffers();
    assert_eq!(
        dmacam_framebuffers(),
        0,
        "framebuffers left by an earlier run: {fbs_before:?}"
    );
    let stats = results_dir().join("kms-600.json");
    let mut child = dmacam()
        .args([
            "kms-view", "--format", "XR24", "--size", "640x480", "--fps", "60", "--frames", "600",
            "--mode", "640x480", "--stats",
        ])
        .arg("--stats-json")
        .arg(&stats)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn dmacam");
    let pid = child.id();
    let start = Instant::now();
    let mut samples = Vec::new();
    while child.try_wait().expect("try_wait").is_none()
        && start.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_millis(500));
        if start.elapsed() > Duration::from_secs(3) {
            let fds = fd_count(pid);
            let fbs = dmacam_framebuffers();
            if fds > 0 {
                samples.push((fds, fbs));
            }
        }
    }
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    assert!(status.success(), "dmacam kms-view failed: {status}");
    // Steady state: from the first sample with framebuffers (a loaded machine can take more than 3 s to
    // start streaming) to the last sample or two, which may catch the process while it exits.
    let steady: Vec<_> = samples
        .iter()
        .take(samples.len().saturating_sub(2))
        .skip_while(|(_, fbs)| *fbs == 0)
        .collect();
    assert!(
        steady.len() >= 5,
        "too few samples while running: {samples:?}"
    );
    let (fds0, fbs0) = *steady[0];
    assert!(
        steady.iter().all(|&&(f, b)| f == fds0 && b == fbs0),
        "fd count / framebuffer count changed while streaming: {samples:?}"
    );
    assert!(
        (2..=6).contains(&fbs0),
        "dmacam held {fbs0} framebuffers (one per camera buffer)"
    );
    let s = stats_json(&stats);
    assert!(s["frames_shown"].as_u64().unwrap() >= 600, "{s}");
    assert_eq!(s["prime_imports"], s["framebuffers_added"], "{s}");
    assert!(
        s["prime_imports"].as_u64().unwrap() <= 6,
        "one import per buffer, not per frame: {s}"
    );
    assert_eq!(s["cpu_bytes_copied_total"], 0, "{s}");
    assert!(s["latency_ms_p50"].as_f64().is_some(), "{s}");
    // Afterwards: exactly the framebuffers of before (fbcon's), and the display as it was.
    assert_eq!(framebuffers(), fbs_before);
    assert_eq!(display_state(), state_before);
}

/// `check --zero-copy --output kms` gives KMS traces a verdict: on the passthrough path (XR24 straight to
/// the plane) and the gpu path (YUYV converted by the render stage), every frame on the screen is the
/// plane's scan-out of a framebuffer made from the very dma-buf of the previous link, and the report names
/// the plane as the last link; the display is left as it was.
#[test]
fn kms_check_zero_copy_gives_the_plane_a_verdict() {
    require_vm();
    mount_debugfs();
    let before = display_state();
    for (fourcc, path) in [("XR24", "passthrough"), ("YUYV", "gpu")] {
        let trace = results_dir().join(format!("kms-zero-copy-{path}.jsonl"));
        let _ = std::fs::remove_file(&trace);
        let mut cmd = dmacam();
        cmd.args([
            "check",
            "--zero-copy",
            "--output",
            "kms",
            "--formats",
            fourcc,
        ])
        .args([
            "--size", "640x480", "--fps", "15", "--frames", "8", "--path", path,
        ])
        .arg("--trace")
        .arg(&trace);
        let out =
            run_with_deadline(&mut cmd, Duration::from_secs(240)).unwrap_or_else(|h| panic!("{h}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{path}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("zero-copy: PASS")
                && stdout.contains("→ KMS plane (framebuffer)")
                && stdout.contains("each was scanned out by the plane from its own framebuffer"),
            "{path}: {stdout}"
        );
        let shown: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["display"]["presented"] == true)
            .collect();
        assert!(shown.len() >= 8, "{path}: {shown:?}");
        for r in &shown {
            assert_eq!(r["display"]["kind"], "kms", "{r}");
            assert!(r["display"]["kms_fb"].as_u64().is_some(), "{r}");
            let last = if path == "gpu" {
                &r["gpu"]["output"]["inode"]
            } else {
                &r["camera"][0]["inode"]
            };
            assert_eq!(&r["display"]["inodes"][0], last, "{r}");
        }
    }
    assert_eq!(display_state(), before, "the display was not restored");
}

mod colour;
mod robustness;
