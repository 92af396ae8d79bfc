//! The library crates' examples (`capture/examples/`, `render/examples/`, `display/examples/`) on the
//! test-bed's real drivers: tests/vm/suite builds them and puts them on the guest's PATH. capture_frames
//! streams vivid's exported dma-bufs, convert_frame imports a udmabuf pattern frame into Vulkan, and
//! show_frames, the minimal viewer, gets vivid's frames presented by Weston.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use dmacam_tests::{require_vm, run, Weston};

use super::view::VIVID;

/// Runs an example to success; returns its stdout.
fn run_example(cmd: &mut Command) -> String {
    let out = run(cmd);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "{cmd:?}: exit {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout.into_owned()
}

/// The word after `key` in `line` (up to a space, `:`, `(` or `)`).
fn after<'a>(line: &'a str, key: &str) -> &'a str {
    let rest = line
        .split_once(key)
        .unwrap_or_else(|| panic!("no '{key}' in: {line}"))
        .1;
    rest.split([' ', ':', '(', ')']).next().unwrap()
}

/// Runs capture_frames on `device` in `format` for 20 frames and checks what it prints: consecutive
/// sequence numbers, and per buffer one vivid dma-buf per plane (`planes` of them), the same in every frame
/// from that buffer and shared with no other buffer.
fn capture_frames(device: &str, format: &str, planes: usize) {
    let frames = 20;
    let stdout =
        run_example(Command::new("capture_frames").args([device, &frames.to_string(), format]));
    assert!(
        stdout.starts_with(&format!("{device}: {format} ")),
        "{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("frame ")).collect();
    assert_eq!(lines.len(), frames, "one line per frame:\n{stdout}");
    let mut inodes_of_buffer = BTreeMap::new();
    let mut last: Option<u32> = None;
    for line in &lines {
        let sequence: u32 = after(line, "frame ").parse().unwrap();
        let buffer: u32 = after(line, " buffer ").parse().unwrap();
        assert!(after(line, " (").parse::<u64>().unwrap() > 0, "{line}");
        let inodes: Vec<u64> = line
            .split(" inode ")
            .skip(1)
            .map(|p| after(p, "").parse().unwrap())
            .collect();
        assert_eq!(inodes.len(), planes, "{line}");
        // vivid's buffers are vmalloc'ed by videobuf2 and exported with VIDIOC_EXPBUF.
        for exporter in line.split(" exporter ").skip(1) {
            assert_eq!(after(exporter, ""), "videobuf2_vmalloc", "{line}");
        }
        let first = inodes_of_buffer.entry(buffer).or_insert(inodes.clone());
        assert_eq!(
            *first, inodes,
            "buffer {buffer} changed dma-bufs:\n{stdout}"
        );
        // Each buffer goes back at once, so the driver drops (almost) nothing: consecutive sequences.
        if let Some(prev) = last {
            assert!(
                sequence > prev && sequence - prev <= 3,
                "sequence {prev} then {sequence}:\n{stdout}"
            );
        }
        last = Some(sequence);
    }
    let all: BTreeSet<u64> = inodes_of_buffer.values().flatten().copied().collect();
    assert_eq!(all.len(), inodes_of_buffer.len() * planes, "{stdout}");
    assert!(
        inodes_of_buffer.len() >= 2,
        "frames from one buffer only:\n{stdout}"
    );
}

#[test]
fn examples_capture_frames_streams_vivid_dmabufs() {
    require_vm();
    capture_frames(VIVID, "YUYV", 1);
    // vivid's multi-planar node: one dma-buf per plane.
    capture_frames("/dev/video1", "NV12M", 2);
}

#[test]
fn examples_convert_frame_imports_a_pattern_dmabuf() {
    require_vm();
    for fourcc in ["YUYV", "NV12"] {
        let stdout = run_example(Command::new("convert_frame").args(["pattern", fourcc]));
        // In the VM the pattern's buffers are udmabufs: imported in place, no copy.
        assert!(
            stdout.contains("(dma-buf import and export), 0 CPU bytes copied"),
            "{fourcc}:\n{stdout}"
        );
        assert!(!stdout.contains("host-memory mode"), "{fourcc}:\n{stdout}");
        dmacam_tests::assert_example_bars(&stdout, 640, fourcc);
    }
}

/// Runs show_frames on vivid in `format` until Weston has presented 10 frames; checks the path it took and
/// what it counted.
fn show_frames(weston: &Weston, format: &str, path: &str) {
    let mut cmd = Command::new("show_frames");
    weston.env(&mut cmd).args([VIVID, "10", format]);
    let stdout = run_example(&mut cmd);
    assert!(stdout.contains(&format!(": path {path}: ")), "{stdout}");
    let summary = stdout
        .lines()
        .find(|l| l.contains(" frames submitted, "))
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    let submitted: u64 = after(summary, ": ").parse().unwrap();
    let shown: u64 = after(summary, "submitted, ").parse().unwrap();
    assert!(shown >= 10, "{format}: {summary}\n{}", weston.state());
    assert!(submitted >= shown, "{format}: {summary}");
    assert!(
        summary.ends_with(" 0 CPU bytes copied"),
        "{format}: {summary}"
    );
    assert!(weston.is_alive(), "{}", weston.state());
}

#[test]
fn examples_show_frames_on_weston() {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    // Weston's GL renderer takes YUYV dma-bufs; 24-bit RGB it does not, so the render stage converts.
    show_frames(&weston, "YUYV", "passthrough");
    show_frames(&weston, "RGB3", "gpu");
}
