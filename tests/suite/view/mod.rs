//! The display stage under the test-bed's headless Weston: dma-buf wl_buffers (passthrough of XR24, YUYV and
//! NV12 colour bars written into udmabufs), the wl_shm fallback under the pixman renderer, presentation-time
//! statistics, and `dmacam view` on vivid. Every picture test takes a compositor screenshot and checks the
//! bar colours at known positions.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dmacam_capture::alloc::{Allocator, UDMABUF};
use dmacam_capture::monotonic_now;
use dmacam_capture::{Dmabuf, Fourcc};
use dmacam_display::pattern::{bar_rgb, bars_dmabuf};
use dmacam_display::{BufferMode, Picture, Stats, Viewer, ViewerOptions};
use dmacam_tests::{dmacam, fd_count, require_vm, results_dir, Weston};

/// The test-bed Weston's output size (kiosk shell: our toplevel is fullscreen on it).
const OUT_W: u32 = 1280;
const OUT_H: u32 = 720;

/// An RGB screenshot.
pub(crate) struct Shot {
    pub(crate) w: u32,
    pub(crate) h: u32,
    rgb: Vec<u8>,
}

impl Shot {
    pub(crate) fn at(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.w + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

pub(crate) fn decode_png(path: &Path) -> Shot {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut reader = png::Decoder::new(file).read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let n = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        c => panic!("unexpected screenshot colour type {c:?}"),
    };
    let mut rgb = Vec::with_capacity((info.width * info.height * 3) as usize);
    for y in 0..info.height as usize {
        let row = &buf[y * info.line_size..];
        for x in 0..info.width as usize {
            rgb.extend_from_slice(&row[x * n..x * n + 3]);
        }
    }
    Shot {
        w: info.width,
        h: info.height,
        rgb,
    }
}

/// Runs weston-screenshooter against `weston` in a fresh directory while `pump` keeps the client alive, and
/// decodes the PNG it writes.
pub(crate) fn screenshot(weston: &Weston, tag: &str, mut pump: impl FnMut()) -> Shot {
    let dir = results_dir().join(format!("view-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new("weston-screenshooter");
    weston.env(&mut cmd);
    let mut child = cmd
        .current_dir(&dir)
        .stdin(Stdio::null())
        .spawn()
        .expect("run weston-screenshooter");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "weston-screenshooter hangs");
        pump();
    };
    assert!(status.success(), "weston-screenshooter failed: {status}");
    let png: PathBuf = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .unwrap_or_else(|| panic!("weston-screenshooter wrote no PNG in {}", dir.display()));
    decode_png(&png)
}

/// The bar centres (at three heights) that differ from `expect(bar)` by more than `tol` in a channel.
pub(crate) fn bar_mismatches(
    shot: &Shot,
    tol: i32,
    expect: impl Fn(usize) -> [u8; 3],
) -> Vec<String> {
    let mut bad = Vec::new();
    if (shot.w, shot.h) != (OUT_W, OUT_H) {
        bad.push(format!(
            "screenshot is {}x{}, not {OUT_W}x{OUT_H}",
            shot.w, shot.h
        ));
        return bad;
    }
    for y in [OUT_H / 4, OUT_H / 2, OUT_H * 3 / 4] {
        for bar in 0..8 {
            let x = (2 * bar as u32 + 1) * OUT_W / 16;
            let got = shot.at(x, y);
            let want = expect(bar);
            if (0..3).any(|c| (i32::from(got[c]) - i32::from(want[c])).abs() > tol) {
                bad.push(format!(
                    "bar {bar} at ({x},{y}): got {got:?}, want {want:?}"
                ));
            }
        }
    }
    bad
}

/// Compares the screenshot's bar centres (at three heights) with `expect(bar)`, within `tol` per channel.
fn check_bars(shot: &Shot, tol: i32, expect: impl Fn(usize) -> [u8; 3], what: &str) {
    let bad = bar_mismatches(shot, tol, expect);
    assert!(
        bad.is_empty(),
        "{what}: the screen does not show the frame:\n{}",
        bad.join("\n")
    );
}

/// Shows two colour-bar dma-bufs of `fourcc` alternately until `frames` were presented, then takes a
/// screenshot. Returns the screenshot, the stats, and how many producer holders were still alive at the end.
fn show_bars(
    weston: &Weston,
    fourcc: &[u8; 4],
    mode: BufferMode,
    frames: u64,
    tag: &str,
) -> (Shot, Stats, usize) {
    let (w, h) = (640u32, 360u32);
    let alloc = Allocator::udmabuf(UDMABUF).expect("open /dev/udmabuf");
    let bufs: Vec<Dmabuf> = (0..2)
        .map(|_| bars_dmabuf(&alloc, Fourcc::new(fourcc), w, h).expect("colour-bar dma-buf"))
        .collect();
    let fds_before = fd_count(std::process::id());
    let alive = Arc::new(AtomicUsize::new(0));
    struct Holder(Arc<AtomicUsize>);
    impl Drop for Holder {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let opts = ViewerOptions {
        display: Some(
            weston
                .runtime_dir
                .join(&weston.display)
                .display()
                .to_string(),
        ),
        title: format!("dmacam test {tag}"),
        initial_size: (w, h),
        mode,
        allow_shm_fallback: false,
        ..Default::default()
    };
    let mut viewer = Viewer::connect(&opts).expect("connect to weston");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seq = 0u32;
    while viewer.stats().presented < frames {
        assert!(
            Instant::now() < deadline,
            "{tag}: only {} of {frames} frames presented in 60 s: {:?}",
            viewer.stats().presented,
            viewer.stats()
        );
        if !viewer.in_flight() {
            alive.fetch_add(1, Ordering::SeqCst);
            viewer
                .submit(Picture::new(
                    bufs[seq as usize % 2].clone(),
                    seq,
                    Some(monotonic_now()),
                    Box::new(Holder(alive.clone())),
                ))
                .expect("submit");
            seq += 1;
        }
        viewer
            .poll(&[], Some(Duration::from_millis(50)))
            .expect("poll");
    }
    // Both buffers have been shown; let the compositor release what it no longer needs.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        viewer
            .poll(&[], Some(Duration::from_millis(50)))
            .expect("poll");
    }
    let shot = screenshot(weston, tag, || {
        viewer
            .poll(&[], Some(Duration::from_millis(20)))
            .expect("poll during screenshot");
    });
    let stats = viewer.stats().clone();
    let still_alive = alive.load(Ordering::SeqCst);
    drop(viewer);
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "{tag}: dropping the viewer must release every frame"
    );
    assert_eq!(
        fd_count(std::process::id()),
        fds_before,
        "{tag}: the viewer leaked fds"
    );
    (shot, stats, still_alive)
}

fn passthrough(fourcc: &[u8; 4], tol: i32) {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    let tag = format!("dmabuf-{}", String::from_utf8_lossy(fourcc));
    let (shot, stats, alive) = show_bars(&weston, fourcc, BufferMode::Dmabuf, 6, &tag);
    check_bars(&shot, tol, |bar| bar_rgb(bar as u32 * 80 + 40, 640), &tag);
    assert_eq!(
        stats.cpu_bytes_copied, 0,
        "{tag}: the dma-buf path copied on the CPU: {stats:?}"
    );
    assert_eq!(
        stats.dmabuf_wl_buffers, 2,
        "{tag}: one wl_buffer per dma-buf, created once: {stats:?}"
    );
    assert_eq!(stats.shm_wl_buffers, 0, "{tag}: {stats:?}");
    assert!(
        alive <= 2,
        "{tag}: {alive} frames still held: release does not return buffers"
    );
    let s = stats.summary("passthrough");
    assert!(
        s.latency_samples >= 6 && s.latency_ms_p50.unwrap() > 0.0,
        "{tag}: no latency from presentation feedback: {s:?}"
    );
}

#[test]
fn view_dmabuf_xr24_colour_bars() {
    passthrough(b"XR24", 8);
}

#[test]
fn view_dmabuf_yuyv_colour_bars() {
    passthrough(b"YUYV", 12);
}

#[test]
fn view_dmabuf_nv12_colour_bars() {
    passthrough(b"NV12", 12);
}

#[test]
fn view_shm_fallback_under_pixman_copies_once() {
    require_vm();
    let weston = Weston::start("wayland-9", &["--renderer=pixman"]);
    let (shot, stats, alive) = show_bars(&weston, b"YUYV", BufferMode::Shm, 6, "shm-YUYV");
    check_bars(
        &shot,
        12,
        |bar| bar_rgb(bar as u32 * 80 + 40, 640),
        "shm-YUYV",
    );
    assert_eq!(
        stats.cpu_bytes_copied,
        stats.committed * 640 * 360 * 2,
        "shm: exactly one frame's bytes per committed frame: {stats:?}"
    );
    assert_eq!(stats.dmabuf_wl_buffers, 0);
    assert!(
        stats.shm_wl_buffers >= 1 && stats.shm_wl_buffers <= 4,
        "{stats:?}"
    );
    assert_eq!(
        alive, 0,
        "shm: frames go back to the producer right after the copy"
    );
}

#[test]
fn view_pixman_has_no_linux_dmabuf() {
    require_vm();
    let weston = Weston::start("wayland-9", &["--renderer=pixman"]);
    let opts = ViewerOptions {
        display: Some(
            weston
                .runtime_dir
                .join(&weston.display)
                .display()
                .to_string(),
        ),
        ..Default::default()
    };
    let viewer = Viewer::connect(&opts).expect("connect");
    let caps = viewer.capabilities();
    assert_eq!(caps.linux_dmabuf_version, None, "{caps:?}");
    let d = dmacam_display::select_path(
        dmacam_display::PathRequest::Auto,
        caps,
        &dmacam_display::PathInputs {
            camera: Fourcc::new(b"YUYV"),
            modifier: 0,
            gpu: Err("not wired".into()),
            colour: None,
        },
    )
    .unwrap();
    assert_eq!(d.path, dmacam_display::BufferPath::Shm, "{d:?}");
    let gl = Weston::start("wayland-5", &[]);
    let opts = ViewerOptions {
        display: Some(gl.runtime_dir.join(&gl.display).display().to_string()),
        ..Default::default()
    };
    let viewer = Viewer::connect(&opts).expect("connect");
    let caps = viewer.capabilities();
    assert!(caps.linux_dmabuf_version.unwrap() >= 3, "{caps:?}");
    for f in [b"YUYV", b"NV12", b"XR24"] {
        assert!(
            caps.dmabuf_accepts(Fourcc::new(f), 0),
            "weston GL takes {:?} LINEAR: {caps:?}",
            f
        );
    }
    // The test-bed's Weston presents on CLOCK_MONOTONIC_RAW (4): latency then needs the clock conversion.
    assert!(
        caps.presentation_clock.is_some(),
        "wp_presentation clock: {caps:?}"
    );
}

#[test]
fn view_without_display_says_so() {
    require_vm();
    let out = dmacam_tests::run(
        dmacam()
            .args(["view", "-d", "/dev/video0", "--frames", "5"])
            .env_remove("WAYLAND_DISPLAY")
            .env("XDG_RUNTIME_DIR", "/tmp/no-such-runtime-dir"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        err.contains("no Wayland display")
            && err.contains("dmacam dump")
            && err.contains("--output kms"),
        "{err}"
    );
}

// ---- `dmacam view` on vivid ----

pub(crate) const VIVID: &str = "/dev/video0";

/// One frame of vivid's colour bars (OSD text off) captured with v4l2-ctl, the CPU reference.
pub(crate) fn vivid_reference(fourcc: &str) -> Vec<u8> {
    let file = results_dir().join(format!("view-ref-{fourcc}.raw"));
    let _ = std::fs::remove_file(&file);
    dmacam_tests::run_ok(Command::new("v4l2-ctl").args([
        "-d",
        VIVID,
        &format!("--set-fmt-video=width=640,height=360,pixelformat={fourcc}"),
        // The 75 % bars (a test before may have left another pattern).
        "--set-ctrl=osd_text_mode=2,test_pattern=0",
        "--stream-mmap",
        "--stream-count=1",
        &format!("--stream-to={}", file.display()),
    ]));
    std::fs::read(&file).expect("reference frame")
}

/// The RGB of each of the 8 bars of a 640x360 reference frame, at the frame row the check samples.
pub(crate) fn reference_bars(fourcc: &str, raw: &[u8]) -> Vec<[u8; 3]> {
    use dmacam_display::convert::{to_xrgb8888, PlaneRef};
    let info = dmacam_display::formats::lookup(Fourcc::new(fourcc.as_bytes().try_into().unwrap()))
        .unwrap();
    let (w, h) = (640u32, 360u32);
    let planes: Vec<PlaneRef<'_>> = match fourcc {
        "YUYV" => vec![PlaneRef {
            data: raw,
            stride: 1280,
        }],
        "NV12" => vec![
            PlaneRef {
                data: &raw[..640 * 360],
                stride: 640,
            },
            PlaneRef {
                data: &raw[640 * 360..],
                stride: 640,
            },
        ],
        f => panic!("no reference for {f}"),
    };
    let mut rgb = vec![0u8; (w * h * 4) as usize];
    to_xrgb8888(&info, w, h, &planes, &mut rgb, (w * 4) as usize).unwrap();
    (0..8)
        .map(|bar| {
            let i = ((180 * w + bar * 80 + 40) * 4) as usize;
            [rgb[i + 2], rgb[i + 1], rgb[i]]
        })
        .collect()
}

pub(crate) fn read_summary(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("stats JSON")
}

/// Runs `dmacam view` on vivid, takes screenshots until the bars match the CPU reference (or 40 s pass),
/// stops dmacam with SIGINT, and returns the stats JSON and stderr.
fn view_vivid(weston: &Weston, fourcc: &str, path: &str, tag: &str) -> (serde_json::Value, String) {
    view_vivid_with(weston, fourcc, path, tag, &[], false)
}

/// [`view_vivid`] with extra `dmacam view` arguments; `mirrored`: the bars are expected right to left.
fn view_vivid_with(
    weston: &Weston,
    fourcc: &str,
    path: &str,
    tag: &str,
    extra: &[&str],
    mirrored: bool,
) -> (serde_json::Value, String) {
    let reference = reference_bars(fourcc, &vivid_reference(fourcc));
    let expect = |bar: usize| reference[if mirrored { 7 - bar } else { bar }];
    view_vivid_expecting(weston, fourcc, path, tag, extra, 12, &expect)
}

/// Waits up to `secs` seconds for `child` to exit (failing with `what` if it does not), and collects its output.
pub(crate) fn await_exit(
    mut child: std::process::Child,
    secs: u64,
    what: &str,
) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// [`view_vivid_with`] against the bar colours `expect(bar)`, within `tol` per channel.
pub(crate) fn view_vivid_expecting(
    weston: &Weston,
    fourcc: &str,
    path: &str,
    tag: &str,
    extra: &[&str],
    tol: i32,
    expect: &dyn Fn(usize) -> [u8; 3],
) -> (serde_json::Value, String) {
    let json = results_dir().join(format!("view-{tag}.json"));
    let _ = std::fs::remove_file(&json);
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    let mut child = cmd
        // 5 fps: the test-bed's llvmpipe Weston takes screenshots only when it is not saturated.
        .args([
            "view", "-d", VIVID, "--format", fourcc, "--size", "640x360", "--fps", "5",
        ])
        .args([
            "--ctrl",
            "osd_text_mode=2",
            "--path",
            path,
            "--duration",
            "120",
            "--stats",
            "--stats-json",
        ])
        .arg(&json)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dmacam view");
    // Under TCG the first frames take seconds to reach the screen (the software GPU compiles its shaders):
    // look until the picture is right, then stop dmacam the way a user does, with Ctrl-C.
    let start = Instant::now();
    let mut shots = 0;
    let shot = loop {
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            child.try_wait().unwrap().is_none(),
            "{tag}: dmacam view exited early: {}",
            String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr)
        );
        let shot = screenshot(weston, &format!("{tag}-{shots}"), || {
            std::thread::sleep(Duration::from_millis(50))
        });
        shots += 1;
        if bar_mismatches(&shot, tol, expect).is_empty()
            || start.elapsed() > Duration::from_secs(dmacam_tests::SHOW_WITHIN_S)
        {
            break shot;
        }
    };
    // A few more frames after the picture is right, so the statistics cover a running stream.
    std::thread::sleep(Duration::from_secs(2));
    dmacam_tests::signal(child.id(), libc::SIGINT);
    let out = await_exit(
        child,
        30,
        &format!("{tag}: dmacam view does not stop on SIGINT"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{tag}: dmacam view failed: {stderr}");
    check_bars(
        &shot,
        tol,
        expect,
        &format!("{tag} (after {shots} screenshots; {})", weston.state()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("latency") && stdout.contains("CPU bytes copied per frame"),
        "{tag}: --stats: {stdout}"
    );
    (read_summary(&json), stderr)
}

#[test]
fn view_vivid_passthrough_yuyv() {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    let (s, err) = view_vivid(&weston, "YUYV", "passthrough", "vivid-passthrough-YUYV");
    assert!(err.contains("path passthrough"), "{err}");
    assert_eq!(s["path"], "passthrough", "{s}");
    assert_eq!(s["cpu_bytes_copied_total"], 0, "{s}");
    assert_eq!(s["cpu_bytes_copied_per_frame"], 0.0, "{s}");
    assert!(s["frames_shown"].as_u64().unwrap() >= 5, "{s}");
    // vivid stamps a frame with its ideal time, which can run up to a frame period ahead of its delivery:
    // where Weston presents sooner than that (it now keeps up, on no-AVX llvmpipe), presentation comes
    // "before" capture and no latency can be measured; each such frame is counted as stamped before capture,
    // and the latency must then be missing rather than made up. Otherwise it is positive.
    let stamped_early = s["stamped_before_capture"].as_u64().unwrap();
    match s["latency_ms_p50"].as_f64() {
        Some(l) => assert!(l > 0.0, "{s}"),
        None => assert!(
            stamped_early > 0 && s["latency_samples"] == 0,
            "no latency and no frame stamped before capture: {s}"
        ),
    }
    // One wl_buffer per V4L2 buffer at most (6 requested), created once.
    let n = s["dmabuf_wl_buffers"].as_u64().unwrap();
    assert!((1..=8).contains(&n), "{s}");
}

#[test]
fn view_vivid_passthrough_nv12() {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    let (s, _) = view_vivid(&weston, "NV12", "passthrough", "vivid-passthrough-NV12");
    assert_eq!(s["path"], "passthrough", "{s}");
    assert_eq!(s["cpu_bytes_copied_total"], 0, "{s}");
    assert!(s["frames_shown"].as_u64().unwrap() >= 5, "{s}");
}

/// The gpu path: vivid's dma-bufs imported by the render stage (lavapipe), scaled and mirrored in a compute
/// shader into XR24 dma-bufs that Weston shows; the bars on screen must be vivid's, right to left.
fn vivid_gpu(fourcc: &str) {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    let tag = format!("vivid-gpu-{fourcc}");
    let (s, err) = view_vivid_with(
        &weston,
        fourcc,
        "gpu",
        &tag,
        &["--process", "scale=320x180,mirror"],
        true,
    );
    assert!(
        err.contains("path gpu") && err.contains(&format!("converts {fourcc} into XR24")),
        "{err}"
    );
    assert_eq!(s["path"], "gpu", "{s}");
    assert_eq!(s["cpu_bytes_copied_total"], 0, "{s}");
    assert_eq!(s["shm_wl_buffers"], 0, "{s}");
    assert!(s["frames_shown"].as_u64().unwrap() >= 2, "{s}");
    // The render stage's output ring (4 dma-bufs), each wrapped in a wl_buffer once.
    let n = s["dmabuf_wl_buffers"].as_u64().unwrap();
    assert!((2..=4).contains(&n), "{s}");
}

#[test]
fn view_vivid_gpu_yuyv() {
    vivid_gpu("YUYV");
}

#[test]
fn view_vivid_gpu_nv12() {
    vivid_gpu("NV12");
}

#[test]
fn view_process_needs_the_gpu_path() {
    require_vm();
    let out = dmacam_tests::run(dmacam().args([
        "view",
        "-d",
        VIVID,
        "--path",
        "passthrough",
        "--process",
        "mirror",
    ]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--process") && err.contains("--path gpu"),
        "{err}"
    );
    let out = dmacam_tests::run(dmacam().args(["view", "-d", VIVID, "--process", "scale=0x3"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("scale=0x3"), "{err}");
}

#[test]
fn view_vivid_auto_picks_shm_under_pixman() {
    require_vm();
    let weston = Weston::start("wayland-9", &["--renderer=pixman"]);
    let (s, err) = view_vivid(&weston, "YUYV", "auto", "vivid-shm-YUYV");
    assert!(
        err.contains("path shm") && err.contains("no zwp_linux_dmabuf_v1"),
        "{err}"
    );
    assert_eq!(s["path"], "shm", "{s}");
    assert_eq!(
        s["cpu_bytes_copied_per_frame"],
        640.0 * 360.0 * 2.0,
        "one frame's bytes per frame: {s}"
    );
    assert!(s["frames_shown"].as_u64().unwrap() >= 5, "{s}");
}

#[test]
fn view_forced_passthrough_without_dmabuf_is_refused() {
    require_vm();
    let weston = Weston::start("wayland-9", &["--renderer=pixman"]);
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    let out = dmacam_tests::run(cmd.args([
        "view",
        "-d",
        VIVID,
        "--path",
        "passthrough",
        "--frames",
        "3",
    ]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--path passthrough is impossible") && err.contains("--path shm"),
        "{err}"
    );
}

pub(crate) mod colour;
mod decorations;
mod endurance;
mod proof;
