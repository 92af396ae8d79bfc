//! KMS under bad input and failures: one-line errors, SIGINT and camera failure restore the previous display
//! configuration, the legacy (non-atomic) fallback; and the gpu path to the plane.

use super::*;

/// Runs a dmacam command that must fail: exit != 0, one line on stderr containing `needle`.
fn fails_with_one_line(cmd: &mut Command, needle: &str) -> String {
    let out = run(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{cmd:?} succeeded");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{cmd:?} printed more than one line:\n{stderr}"
    );
    assert!(lines[0].starts_with("dmacam: "), "{stderr}");
    assert!(
        lines[0].contains(needle),
        "expected '{needle}' in: {stderr}"
    );
    stderr
}

fn kms_view() -> Command {
    let mut c = dmacam();
    c.args([
        "kms-view", "--format", "XR24", "--size", "640x480", "--frames", "5",
    ]);
    c
}

#[test]
fn kms_bad_input_is_one_line_and_leaves_the_display() {
    require_vm();
    mount_debugfs();
    let before = display_state();
    let fbs = framebuffers();

    fails_with_one_line(
        kms_view().args(["--card", "/dev/dri/card9"]),
        "no such DRM card",
    );
    fails_with_one_line(
        kms_view().args(["--mode", "123x456"]),
        "has no mode 123x456",
    );
    fails_with_one_line(kms_view().args(["--mode", "12x"]), "--mode");
    fails_with_one_line(
        kms_view().args(["--connector", "HDMI-A-7"]),
        "no connector named HDMI-A-7",
    );
    // YUYV goes through the render stage by default (see kms_gpu_path_converts_yuyv_for_the_plane); forced
    // passthrough is refused with the plane's reason.
    let err = fails_with_one_line(
        dmacam().args([
            "kms-view",
            "--format",
            "YUYV",
            "--path",
            "passthrough",
            "--frames",
            "5",
        ]),
        "scans out YUYV",
    );
    assert!(err.contains("try --path gpu"), "{err}");
    fails_with_one_line(
        kms_view().args(["--path", "shm"]),
        "unknown path 'shm' for the KMS output",
    );
    assert_eq!(display_state(), before);

    // No connected connector: force vkms's only one off for the duration.
    let status = PathBuf::from("/sys/class/drm/card0-Virtual-1/status");
    std::fs::write(&status, "off").expect("force the connector off");
    let r = std::panic::catch_unwind(|| {
        fails_with_one_line(&mut kms_view(), "has no connected connector")
    });
    std::fs::write(&status, "detect").expect("let the connector be detected again");
    r.unwrap();

    // Not master: this process opens the card first, so it is DRM master.
    {
        let _holder = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/dri/card0")
            .expect("open card0");
        let line = fails_with_one_line(&mut kms_view(), "cannot become DRM master");
        assert!(
            line.contains(&std::process::id().to_string()),
            "the holder's pid is named: {line}"
        );
    }
    assert_eq!(
        display_state(),
        before,
        "a failed start changed the display"
    );
    assert_eq!(framebuffers(), fbs);
}

#[test]
fn kms_sigint_restores_the_previous_configuration() {
    require_vm();
    mount_debugfs();
    let before = display_state();
    let fbs = framebuffers();
    let mut child = dmacam()
        .args([
            "kms-view", "--format", "XR24", "--size", "640x480", "--fps", "30", "--mode", "640x480",
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn dmacam");
    // Wait until it is on screen: its framebuffers exist (AddFB2) a little before the atomic commit that
    // shows one, so wait for the display state itself to change too.
    let start = Instant::now();
    while (dmacam_framebuffers() == 0 || display_state() == before)
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(dmacam_framebuffers() > 0, "dmacam never showed a frame");
    assert_ne!(
        display_state(),
        before,
        "the display did not change while dmacam ran"
    );
    // Keep the card open here so that dmacam's exit is not the last close (which would make the kernel
    // restore fbcon by itself): what follows is dmacam's own restore.
    let _watcher = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/dri/card0")
        .expect("open card0");
    std::thread::sleep(Duration::from_secs(1));
    dmacam_tests::signal(child.id(), libc::SIGINT);
    let status = wait_with_deadline(&mut child, Duration::from_secs(20));
    assert!(
        status.success(),
        "dmacam did not exit cleanly on SIGINT: {status}"
    );
    assert_eq!(
        display_state(),
        before,
        "the previous configuration was not restored"
    );
    assert_eq!(framebuffers(), fbs);
}

#[test]
fn kms_legacy_fallback_flips_and_restores() {
    require_vm();
    mount_debugfs();
    let before = display_state();
    let fbs = framebuffers();
    let stats = results_dir().join("kms-legacy.json");
    run_ok(
        dmacam()
            .args([
                "kms-view", "--format", "XR24", "--size", "640x480", "--fps", "30", "--frames",
                "30", "--mode", "640x480", "--legacy",
            ])
            .arg("--stats-json")
            .arg(&stats),
    );
    let s = stats_json(&stats);
    assert_eq!(s["atomic"], false, "{s}");
    assert!(s["frames_shown"].as_u64().unwrap() >= 30, "{s}");
    assert!(s["prime_imports"].as_u64().unwrap() <= 6, "{s}");
    assert_eq!(display_state(), before);
    assert_eq!(framebuffers(), fbs);
    // Legacy SETCRTC cannot put a smaller frame on a larger mode: refused before anything changes.
    fails_with_one_line(
        dmacam().args([
            "kms-view", "--format", "XR24", "--size", "640x480", "--frames", "5", "--legacy",
        ]),
        "legacy modesetting",
    );
    assert_eq!(display_state(), before);
}

#[test]
fn kms_camera_failure_mid_run_restores_the_display() {
    require_vm();
    mount_debugfs();
    let before = display_state();
    let fbs = framebuffers();
    let mut child = dmacam()
        .args([
            "kms-view", "--format", "XR24", "--size", "640x480", "--fps", "30", "--mode", "640x480",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dmacam");
    let start = Instant::now();
    while dmacam_framebuffers() == 0 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(dmacam_framebuffers() > 0, "dmacam never showed a frame");
    // vivid's error injection: the capture queue fails as a broken camera would.
    run_ok(Command::new("v4l2-ctl").args([
        "-d",
        "/dev/video0",
        "-c",
        "inject_fatal_streaming_error=1",
    ]));
    let status = wait_with_deadline(&mut child, Duration::from_secs(30));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        !status.success(),
        "dmacam ignored the camera failure:\n{stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("dmacam: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("/dev/video0"), "{stderr}");
    assert_eq!(
        display_state(),
        before,
        "the display was not restored after the failure"
    );
    assert_eq!(framebuffers(), fbs);
}

/// `view --output kms` on the gpu path: vivid's YUYV (no vkms plane scans YUV out) converted and mirrored by
/// the render stage into XR24 dma-bufs, PRIME-imported and scanned out; the writeback image is compared, every
/// pixel, with the CPU reference conversion of a frame v4l2-ctl captured with the same settings.
#[test]
fn kms_gpu_path_converts_yuyv_for_the_plane() {
    use crate::render::reference::{self, Encoded, Image};
    require_vm();
    mount_debugfs();
    let before = display_state();
    let raw = results_dir().join("kms-gpu-ref.raw");
    let _ = std::fs::remove_file(&raw);
    run_ok(Command::new("v4l2-ctl").args([
        "-d",
        "/dev/video0",
        "--set-fmt-video=width=640,height=480,pixelformat=YUYV",
        "--set-ctrl=test_pattern=0,osd_text_mode=2",
        "--stream-mmap",
        "--stream-count=1",
        &format!("--stream-to={}", raw.display()),
    ]));
    let frame = std::fs::read(&raw).expect("reference frame");
    assert_eq!(frame.len(), 640 * 480 * 2);
    let spec: dmacam_render::ProcessSpec = "mirror".parse().unwrap();
    let want = reference::process(
        Image {
            width: 640,
            height: 480,
            px: reference::decode(
                &Encoded {
                    fourcc: "YUYV",
                    width: 640,
                    height: 480,
                    planes: vec![(frame, 1280)],
                },
                dmacam_render::Colorimetry::BT601_LIMITED,
            ),
        },
        &spec,
    );

    let wb = results_dir().join("kms-gpu.ppm");
    let stats = results_dir().join("kms-gpu.json");
    let trace = results_dir().join("kms-gpu.jsonl");
    let _ = std::fs::remove_file(&wb);
    // The GPU's sync_file goes to vkms as the plane's IN_FENCE_FD (asked for: the test-bed's lavapipe
    // exports only fences that have signalled, which dmacam otherwise hands over as finished pictures).
    let out = run(dmacam()
        .env("DMACAM_DISPLAY_SYNC", "explicit")
        .args([
            "view", "--output", "kms", "--format", "YUYV", "--size", "640x480",
        ])
        .args(["--ctrl", "test_pattern=0", "--ctrl", "osd_text_mode=2"])
        .args(["--process", "mirror", "--frames", "20", "--mode", "640x480"])
        .arg("--writeback")
        .arg(&wb)
        .arg("--stats-json")
        .arg(&stats)
        .arg("--trace")
        .arg(&trace));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("path gpu"), "{err}");
    check_kms_trace(&trace, true, 20);
    for line in std::fs::read_to_string(&trace).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["display"]["presented"] == true {
            assert_eq!(v["gpu"]["display_sync"], "explicit", "IN_FENCE_FD: {line}");
        }
    }
    let s = stats_json(&stats);
    assert!(s["path"].as_str().unwrap().starts_with("gpu"), "{s}");
    assert_eq!(s["cpu_bytes_copied_total"], 0, "{s}");
    assert_eq!(display_state(), before, "the display was not restored");
    let img = Ppm::read(&wb);
    assert_eq!((img.width, img.height), (640, 480));
    // The writeback image as XRGB rows, for the reference comparison.
    let xrgb: Vec<u8> = img
        .rgb
        .chunks(3)
        .flat_map(|p| [p[2], p[1], p[0], 0xff])
        .collect();
    let worst = reference::compare("kms gpu writeback", &xrgb, 640 * 4, &want);
    eprintln!("kms gpu path: max error {worst}/255 against the CPU reference");
    // Mirrored bars: black on the left, white on the right.
    assert!(
        img.px(40, 240).iter().all(|&c| c <= 40),
        "{:?}",
        img.px(40, 240)
    );
    assert!(
        img.px(600, 240).iter().all(|&c| c >= 150),
        "{:?}",
        img.px(600, 240)
    );

    // --path passthrough of YUYV is impossible on vkms: one line, display untouched.
    let out = run(dmacam().args([
        "view",
        "--output",
        "kms",
        "--format",
        "YUYV",
        "--path",
        "passthrough",
        "--frames",
        "3",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--path gpu"), "{err}");
    assert_eq!(
        display_state(),
        before,
        "the display was not left as it was"
    );
}
