//! The demo (`bash tests/vm/demo`, the README's main job) as a test: its guest script runs under a fresh
//! Weston exactly as the demo runs it, must end with exit 0 and no failure line, and must leave a screenshot
//! that shows vivid's bars (checked here again, against the CPU reference of vivid's own frame).

use std::process::Command;
use std::time::Duration;

use dmacam_tests::{require_vm, results_dir, run_with_deadline, src_dir, Weston};

use crate::view::{decode_png, reference_bars, vivid_reference};

#[test]
fn demo_runs_clean_and_shows_its_picture() {
    require_vm();
    let weston = Weston::start("wayland-7", &[]);
    let out_dir = results_dir().join("demo");
    let _ = std::fs::remove_dir_all(&out_dir);
    let mut cmd = Command::new("bash");
    cmd.arg(src_dir().join("tests/vm/guest/demo"))
        .env("DEMO_RESULTS", &out_dir);
    weston.env(&mut cmd);
    let out = run_with_deadline(&mut cmd, Duration::from_secs(900))
        .unwrap_or_else(|e| panic!("the demo did not finish: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the demo failed ({}):\n{stdout}\n{stderr}\n{}",
        out.status,
        weston.state()
    );
    let failures: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.starts_with("demo:"))
        .collect();
    assert!(
        failures.is_empty(),
        "the demo printed failure lines: {failures:?}"
    );
    assert!(
        stdout.contains("dmacam demo report") && stdout.contains(" 0 failed"),
        "the demo's report: {stdout}"
    );

    // The screenshot the demo kept: the 75 % bars of a 640x360 frame shown fullscreen on the 1280x720 output,
    // compared at half and three-quarter height (vivid's OSD text is at the top) with vivid's own frame.
    let shot = decode_png(&out_dir.join("screenshot.png"));
    assert_eq!((shot.w, shot.h), (1280, 720), "screenshot size");
    let expect = reference_bars("YUYV", &vivid_reference("YUYV"));
    let mut bad = Vec::new();
    for y in [360, 540] {
        for (bar, want) in expect.iter().enumerate() {
            let x = (2 * bar as u32 + 1) * 1280 / 16;
            let got = shot.at(x, y);
            if (0..3).any(|c| (i32::from(got[c]) - i32::from(want[c])).abs() > 12) {
                bad.push(format!(
                    "bar {bar} at ({x},{y}): got {got:?}, want {want:?}"
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "the demo's screenshot does not show the bars:\n{}",
        bad.join("\n")
    );
}
