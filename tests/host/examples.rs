//! The library crates' examples on the host (no VM): the render example converts a frame of the pattern
//! source on this machine's Vulkan driver (lavapipe in CI; host-memory mode where the pattern's buffers are
//! not dma-bufs) and its pixels are checked here against the colour bars; the capture example refuses a
//! missing device in one line. The VM suite (`tests/suite/examples.rs`) runs them on real drivers.

use std::process::Output;

use dmacam_tests::host::example;

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn capture_frames_names_a_missing_device_in_one_line() {
    let out = example("capture_frames")
        .args(["/dev/video-nope", "3"])
        .output()
        .expect("run capture_frames");
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "exit {}: {stdout}{stderr}",
        out.status
    );
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr:?}");
    assert!(
        stderr.starts_with("capture_frames: cannot open /dev/video-nope: "),
        "{stderr:?}"
    );
    assert!(stdout.is_empty(), "nothing on stdout: {stdout:?}");
}

fn convert(args: &[&str]) {
    let out = example("convert_frame")
        .args(args)
        .output()
        .expect("run convert_frame");
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "{args:?}: exit {}\n{stdout}{stderr}",
        out.status
    );
    let what = format!("{args:?}");
    assert!(stdout.contains("→ 640x360 XRGB8888"), "{what}:\n{stdout}");
    dmacam_tests::assert_example_bars(&stdout, 640, &what);
}

#[test]
fn convert_frame_converts_the_pattern_to_its_colour_bars() {
    convert(&[]);
    convert(&["pattern", "NV12"]);
}

#[test]
fn convert_frame_refuses_an_unknown_pattern_in_one_line() {
    let out = example("convert_frame")
        .arg("pattern:plaid")
        .output()
        .expect("run convert_frame");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("unknown pattern 'plaid'"), "{stderr:?}");
}
