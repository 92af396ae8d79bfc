//! MJPEG input in the VM: the pattern source's MJPG form (real JPEG frames, as a webcam sends them) goes
//! through the CPU decode into udmabuf buffers, then the same paths as any camera: a dump, `check`, the
//! Wayland viewer (passthrough and gpu; a screenshot shows the decoded bars) and KMS (whose writeback shows
//! them on the display). The decode is counted as a CPU copy everywhere; truncated frames are skipped and
//! counted.

use std::process::Stdio;
use std::time::{Duration, Instant};

use dmacam_tests::picture::{check_decoded_bars, corrupt_skipped, read_ppm, BARS};
use dmacam_tests::{
    dmacam, require_vm, results_dir, run, run_ok, until_shown, wait_with_deadline, Weston,
};

use super::view::{bar_mismatches, screenshot};

/// Bytes the decode writes per 320x240 frame (XR24).
const FRAME_320: u64 = 320 * 240 * 4;

#[test]
fn mjpeg_dump_and_check_decode_into_dma_bufs() {
    require_vm();
    let dir = results_dir().join("mjpeg-dump");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = run(dmacam()
        .args([
            "dump", "-d", "pattern", "--format", "MJPG", "--size", "320x240",
        ])
        .args(["--frames", "3", "-o"])
        .arg(dir.join("f-#.ppm")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The decoded frames are real dma-bufs here (udmabuf), so the GPU, a compositor or KMS can take them.
    assert!(
        err.contains("decoded on the CPU into an XR24 udmabuf buffer"),
        "{err}"
    );
    assert!(err.contains("3 frames decoded, 0 corrupt"), "{err}");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    for f in &files {
        let (w, h, rgb) = read_ppm(f);
        check_decoded_bars(&f.display().to_string(), w, h, &rgb);
    }

    // check: the decoded pixels against the pattern, with every fourth frame cut short.
    let out = run_ok(dmacam().args([
        "check",
        "-d",
        "pattern",
        "--formats",
        "MJPG",
        "--frames",
        "12",
        "--pattern-truncate-every",
        "4",
    ]));
    assert!(out.contains("1 passed, 0 failed"), "{out}");
    assert!(out.contains("pixels match pattern:bars"), "{out}");
    // Twelve whole frames take fifteen delivered (whatever frame periods the reader missed: the cut counts
    // frames delivered): the 4th, 8th and 12th at least were cut short.
    let skipped = corrupt_skipped(&out);
    assert!(skipped >= 3, "{out}");
}

#[test]
fn mjpeg_on_kms_shows_the_decoded_bars() {
    require_vm();
    let wb = results_dir().join("mjpeg-kms.ppm");
    let _ = std::fs::remove_file(&wb);
    let stats = results_dir().join("mjpeg-kms.json");
    let out = run(dmacam()
        .args([
            "kms-view", "-d", "pattern", "--format", "MJPG", "--size", "640x480",
        ])
        .args([
            "--fps",
            "10",
            "--frames",
            "10",
            "--mode",
            "640x480",
            "--writeback",
        ])
        .arg(&wb)
        .arg("--stats-json")
        .arg(&stats));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let (w, h, rgb) = read_ppm(&wb);
    assert_eq!((w, h), (640, 480));
    check_decoded_bars("KMS writeback", w, h, &rgb);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    // Passthrough: the decoded XR24 udmabufs are scanned out as they are; the decode is the only copy.
    assert!(
        s["path"].as_str().unwrap_or("").contains("passthrough"),
        "{s}"
    );
    let d = &s["decode"];
    let decoded = d["frames_decoded"].as_u64().unwrap_or(0);
    assert!(decoded >= 10, "{s}");
    assert_eq!(
        d["cpu_bytes_written"].as_u64(),
        Some(decoded * 640 * 480 * 4),
        "{s}"
    );
    assert_eq!(s["cpu_bytes_copied_total"], d["cpu_bytes_written"], "{s}");
    assert_eq!(
        s["cpu_bytes_copied_per_frame"].as_f64(),
        Some((640 * 480 * 4) as f64),
        "{s}"
    );
}

#[test]
fn mjpeg_in_the_viewer_under_weston_counts_the_decode() {
    require_vm();
    let weston = Weston::start("wayland-11", &[]);
    // list --pipeline explains the MJPG path: decoded first, then as XR24 (which this Weston takes).
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    let list = run_ok(cmd.args(["list", "--pipeline", "-d", "pattern"]));
    let mjpg = list
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("MJPG"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        mjpg.contains("decoded on the CPU to XR24") && mjpg.contains("auto -> passthrough"),
        "{list}"
    );
    // On screen: the decoded frames (640x360, filling the 1280x720 output) show the bars, within the JPEG
    // tolerance plus Weston's scaling.
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    let mut view = cmd
        .args([
            "view", "-d", "pattern", "--format", "MJPG", "--size", "640x360",
        ])
        .args(["--fps", "5", "--duration", "120", "--path", "passthrough"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dmacam view");
    let start = Instant::now();
    for n in 0.. {
        assert!(
            view.try_wait().unwrap().is_none(),
            "the viewer exited early"
        );
        let shot = screenshot(&weston, &format!("mjpeg-{n}"), || {
            std::thread::sleep(Duration::from_millis(50))
        });
        let bad = bar_mismatches(&shot, 24, |bar| BARS[bar]);
        if bad.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the decoded bars are not on screen: {bad:?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    dmacam_tests::signal(view.id(), libc::SIGINT);
    assert!(wait_with_deadline(&mut view, Duration::from_secs(30)).success());

    for path in ["passthrough", "gpu"] {
        let json = results_dir().join(format!("mjpeg-view-{path}.json"));
        let trace = results_dir().join(format!("mjpeg-view-{path}.jsonl"));
        let mut cmd = dmacam();
        weston.env(&mut cmd);
        let out = run(cmd
            .args([
                "view", "-d", "pattern", "--format", "MJPG", "--size", "320x240",
            ])
            // As for the pattern's own viewer test: until llvmpipe Weston (and, on the gpu path, the render
            // stage's first frame) has presented a frame under TCG.
            .args(["--fps", "5", "--path", path])
            .args(until_shown(1))
            .arg("--stats-json")
            .arg(&json)
            .arg("--trace")
            .arg(&trace));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{path}: {err}\n{}", weston.log());
        assert!(err.contains(&format!("path {path}")), "{err}");
        assert!(err.contains("decoded on the CPU"), "{path}: {err}");
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        weston.assert_shown(&s, 1, path);
        let decoded = s["decode"]["frames_decoded"].as_u64().unwrap_or(0);
        assert!(
            decoded >= s["frames_submitted"].as_u64().unwrap(),
            "{path}: {s}"
        );
        assert_eq!(s["decode"]["corrupt_frames_skipped"], 0, "{path}: {s}");
        // One decode per frame and nothing else: no shm copy on either path.
        assert_eq!(
            s["cpu_bytes_copied_per_frame"].as_f64(),
            Some(FRAME_320 as f64),
            "{path}: {s}"
        );
        assert_eq!(s["shm_wl_buffers"], 0, "{path}: {s}");
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(!lines.is_empty(), "{path}: empty trace");
        for r in &lines {
            assert_eq!(
                r["cpu_bytes_copied"].as_u64(),
                Some(FRAME_320),
                "{path}: {r}"
            );
        }
        assert!(weston.is_alive(), "weston died");
    }
}
