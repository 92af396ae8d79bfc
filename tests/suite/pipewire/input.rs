//! dmacam's PipeWire input on vivid's v4l2 node (`-d pipewire:NODE`): `dump` writes vivid's own pixels,
//! byte for byte, over the dma-bufs vivid exported (named by device path, node id and node name); `check
//! --zero-copy` under Weston proves the chain vivid's buffer → PipeWire → dmacam → compositor has no copy;
//! `check` passes on the node.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dmacam_tests::{
    require_vm, results_dir, run_ok, run_with_deadline, PipeWire, SetOnDrop, Weston,
};

use super::{dmacam_in, strip_ansi, vivid_node, SP};

const W: u32 = 640;
const H: u32 = 360;
const FRAME: usize = (W * H * 2) as usize;

/// vivid's controls as the other modules expect them when a test here is done (pass or fail).
fn restore_vivid() -> SetOnDrop {
    SetOnDrop::new(
        &[SP],
        "test_pattern=0,osd_text_mode=0,horizontal_movement=3,vertical_movement=3",
    )
}

/// A still picture on vivid (100% colour bars, no on-screen text, no movement) and one frame of it, 640x360
/// YUYV, read with v4l2-ctl: the CPU reference every frame through PipeWire must equal. Taken before
/// PipeWire starts, so nothing else holds the device.
fn still_reference(dir: &Path) -> Vec<u8> {
    run_ok(Command::new("v4l2-ctl").args([
        "-d",
        SP,
        "-c",
        "test_pattern=1,osd_text_mode=2,horizontal_movement=3,vertical_movement=3",
    ]));
    let file = dir.join("v4l2-ctl.raw");
    run_ok(Command::new("v4l2-ctl").args([
        "-d",
        SP,
        "-v",
        &format!("width={W},height={H},pixelformat=YUYV"),
        "--stream-mmap",
        "--stream-count=1",
        &format!("--stream-to={}", file.display()),
    ]));
    let want = std::fs::read(&file).expect("v4l2-ctl's frame");
    assert_eq!(want.len(), FRAME, "v4l2-ctl wrote {} bytes", want.len());
    let mut seen = [false; 256];
    want.iter().for_each(|&b| seen[b as usize] = true);
    assert!(
        seen.iter().filter(|&&s| s).count() > 8,
        "the reference frame is nearly uniform"
    );
    want
}

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let d = results_dir().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn trace_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a trace line is JSON"))
        .collect()
}

/// `dump -d pipewire:NODE` of vivid's node, by device path, node id and node name: every frame equals
/// vivid's own (v4l2-ctl's) byte for byte, the log says PipeWire agreed YUYV 640x360 at 30 fps over
/// dma-bufs, and the trace says each frame came from PipeWire in a dma-buf vivid's videobuf2 exported.
#[test]
fn pipewire_dump_of_vivids_node_is_vivids_own_pixels_over_dmabuf() {
    require_vm();
    let _restore = restore_vivid();
    let dir = fresh_dir("pipewire-dump");
    let want = still_reference(&dir);
    let pw = PipeWire::start();
    let (id, name) = vivid_node(&pw);
    const FRAMES: usize = 10;
    let mut expected_files = vec!["v4l2-ctl.raw".to_owned()];
    for (tag, node) in [
        ("path", SP.to_owned()),
        ("id", id.to_string()),
        ("name", name),
    ] {
        let out = dir.join(format!("dmacam-{tag}.raw"));
        let trace = dir.join(format!("dmacam-{tag}.jsonl"));
        expected_files.extend([format!("dmacam-{tag}.raw"), format!("dmacam-{tag}.jsonl")]);
        let source = format!("pipewire:{node}");
        let ran = run_with_deadline(
            dmacam_in(&pw)
                .args(["dump", "-d", &source, "--fps", "30", "--format", "YUYV"])
                .args([
                    "--size",
                    &format!("{W}x{H}"),
                    "--frames",
                    &FRAMES.to_string(),
                ])
                .arg("-o")
                .arg(&out)
                .arg("--trace")
                .arg(&trace)
                .env("RUST_LOG", "dmacam_capture=info"),
            Duration::from_secs(120),
        )
        .unwrap_or_else(|hang| panic!("{hang}\n{}", pw.logs()));
        let stderr = String::from_utf8_lossy(&ran.stderr);
        assert!(
            ran.status.success(),
            "dump -d {source} failed ({}):\n{stderr}\n{}",
            ran.status,
            pw.logs()
        );
        let agreed = stderr
            .lines()
            .map(strip_ansi)
            .find(|l| l.contains("PipeWire agreed"))
            .unwrap_or_else(|| panic!("{source}: no 'PipeWire agreed' line:\n{stderr}"));
        eprintln!("{source}: {agreed}");
        assert!(
            agreed.contains("PipeWire agreed YUYV 640x360 at 30/1 fps")
                && agreed.contains("buffers of dma-buf"),
            "{source}: vivid's node should agree YUYV 640x360 at 30 fps over dma-bufs: {agreed}"
        );
        let got = std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        assert_eq!(
            got.len(),
            FRAMES * FRAME,
            "{source}: {} bytes, not {FRAMES} frames",
            got.len()
        );
        for (i, frame) in got.chunks(FRAME).enumerate() {
            if let Some(at) = frame.iter().zip(&want).position(|(a, b)| a != b) {
                panic!(
                    "{source}: frame {i} of {} differs from vivid's own (v4l2-ctl) at byte {at} (row {}, \
                     x {}): {} vs {}",
                    out.display(),
                    at / (W as usize * 2),
                    at % (W as usize * 2) / 2,
                    frame[at],
                    want[at]
                );
            }
        }
        let records = trace_lines(&trace);
        assert_eq!(records.len(), FRAMES, "{source}: trace {}", trace.display());
        for r in &records {
            assert_eq!(r["origin"], "pipewire", "{source}: {r}");
            let exporter = r["camera"][0]["exp_name"].as_str().unwrap_or("");
            assert!(
                exporter.starts_with("videobuf2"),
                "{source}: the frame's buffer was not exported by vivid (videobuf2): {r}"
            );
        }
    }
    drop(pw);
    expected_files.sort();
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left, expected_files,
        "only the finished files, no leftovers"
    );
}

/// `check --zero-copy -d pipewire:/dev/video0` under Weston: the frames reach the screen, each one in the
/// very dma-buf vivid exported (the compositor got the inode the frame arrived in; origin `pipewire`,
/// exported by videobuf2), and the CPU copied nothing. `view --path gpu` on the same node ends cleanly.
#[test]
fn pipewire_view_shows_vivids_dmabufs_without_a_copy() {
    require_vm();
    let _restore = restore_vivid();
    let weston = Weston::start("wayland-5", &[]);
    let pw = PipeWire::start();
    let trace = results_dir().join("pipewire-zero-copy.jsonl");
    let _ = std::fs::remove_file(&trace);
    let mut cmd = dmacam_in(&pw);
    weston.env(&mut cmd);
    let ran = run_with_deadline(
        cmd.args(["check", "--zero-copy", "-d", &format!("pipewire:{SP}")])
            .args(["--formats", "YUYV", "--size", "640x360", "--fps", "15"])
            .args(["--frames", "8", "--path", "passthrough", "--trace"])
            .arg(&trace),
        Duration::from_secs(240),
    )
    .unwrap_or_else(|hang| panic!("{hang}\n{}", weston.state()));
    let out = String::from_utf8_lossy(&ran.stdout);
    let err = String::from_utf8_lossy(&ran.stderr);
    assert!(
        ran.status.success() && out.contains("zero-copy: PASS"),
        "check --zero-copy on PipeWire failed ({}):\n{out}{err}\n{}\n{}",
        ran.status,
        weston.state(),
        pw.logs()
    );
    assert!(
        out.contains("PipeWire producer's dma-buf (videobuf2_") && out.contains("compositor"),
        "{out}"
    );
    let records = trace_lines(&trace);
    let shown: Vec<_> = records
        .iter()
        .filter(|r| r["display"]["presented"] == true)
        .collect();
    assert!(
        shown.len() >= 8,
        "{} frames shown: {records:?}",
        shown.len()
    );
    for r in &shown {
        assert_eq!(r["origin"], "pipewire", "{r}");
        assert!(
            r["camera"][0]["exp_name"]
                .as_str()
                .is_some_and(|e| e.starts_with("videobuf2")),
            "{r}"
        );
        assert_eq!(r["display"]["inodes"][0], r["camera"][0]["inode"], "{r}");
        assert_eq!(r["display"]["kind"], "dmabuf", "{r}");
        assert_eq!(r["cpu_bytes_copied"], 0, "{r}");
    }
    assert!(weston.is_alive(), "Weston died:\n{}", weston.state());

    // The gpu path on the same buffers: PipeWire's v4l2 source exports them read-only, which lavapipe
    // cannot import (and it closed the fd of the failed import, which dmacam then closed again: an abort).
    // Whatever the driver does, dmacam ends with a status, never a signal, and says why in one line.
    let mut cmd = dmacam_in(&pw);
    weston.env(&mut cmd);
    let ran = run_with_deadline(
        cmd.args(["view", "-d", &format!("pipewire:{SP}"), "--format", "YUYV"])
            .args(["--size", "640x360", "--fps", "15", "--path", "gpu"])
            .args(dmacam_tests::until_shown(4)),
        Duration::from_secs(180),
    )
    .unwrap_or_else(|hang| panic!("{hang}\n{}", weston.state()));
    let err = String::from_utf8_lossy(&ran.stderr);
    eprintln!("view --path gpu: {}\n{err}", ran.status);
    assert!(
        ran.status.code().is_some() && !err.contains("panicked") && !err.contains("fatal runtime"),
        "view --path gpu on PipeWire's buffers died ({}):\n{err}",
        ran.status
    );
    if !ran.status.success() {
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("dmacam: ")).collect();
        assert_eq!(lines.len(), 1, "{err}");
    }
}

/// `check -d pipewire:/dev/video0 --fps 30` passes: on the format asked for, and on the node's own default.
#[test]
fn pipewire_check_of_vivids_node_passes() {
    require_vm();
    let _restore = restore_vivid();
    let pw = PipeWire::start();
    let source = format!("pipewire:{SP}");
    for formats in [&["--formats", "YUYV", "--size", "640x360"][..], &[]] {
        let ran = run_with_deadline(
            dmacam_in(&pw)
                .args(["check", "-d", &source, "--fps", "30", "--frames", "10"])
                .args(formats),
            Duration::from_secs(180),
        )
        .unwrap_or_else(|hang| panic!("{hang}\n{}", pw.logs()));
        let out = String::from_utf8_lossy(&ran.stdout);
        let err = String::from_utf8_lossy(&ran.stderr);
        eprintln!("check {formats:?}:\n{out}");
        assert!(
            ran.status.success() && out.contains(" passed, 0 failed") && !out.contains("0 passed"),
            "check -d {source} {formats:?} failed ({}):\n{out}{err}\n{}",
            ran.status,
            pw.logs()
        );
    }
}
