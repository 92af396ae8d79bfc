//! A camera that goes away: disconnects and unplugs mid-dump, mid-check and mid-view (Wayland and KMS), and
//! what each mode keeps and how it reconnects.

use super::*;

/// Checks what a `dump -o x.y4m` stopped by a disconnect left in `dir`: one line saying so and how many
/// frames it kept, and `y4m` holding exactly those frames, nothing else in `dir`. Returns that count (> 0).
fn kept_after_disconnect(stderr: &str, dir: &std::path::Path, y4m: &std::path::Path) -> usize {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("dmacam: /dev/video0 was disconnected mid-stream"),
        "{stderr}"
    );
    let kept: usize = lines[0]
        .split("; the ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in: {stderr}"));
    assert!(kept > 0, "{stderr}");
    assert!(lines[0].contains("x.y4m"), "{stderr}");
    assert_eq!(dir_entries(dir), ["x.y4m"], "temporary files left");
    assert_eq!(y4m_frames(y4m), kept);
    kept
}

/// Expected: vivid's Disconnect mid-`dump` is detected (ENODEV), reported in one line on stderr naming the
/// device and how many frames were kept, exit != 0; the .y4m written so far is in place and valid, with
/// exactly that many whole frames; vivid re-registers the node once dmacam has closed it.
#[test]
fn faults_disconnect_mid_dump_keeps_a_valid_y4m() {
    require_vm();
    let dir = fresh_dir("faults-disconnect-dump");
    let (status, stderr, y4m) = dump_under(&dir, 600, "disconnect=1");
    assert!(!status.success(), "dump survived a disconnect");
    let kept = kept_after_disconnect(&stderr, &dir, &y4m);
    assert!(kept < 600, "{stderr}");
    let gst = within(
        Command::new("gst-launch-1.0").args([
            "-q",
            "filesrc",
            &format!("location={}", y4m.display()),
            "!",
            "y4mdec",
            "!",
            "fakesink",
        ]),
        60,
    );
    assert!(
        gst.status.success(),
        "GStreamer cannot play the kept y4m: {}",
        String::from_utf8_lossy(&gst.stderr)
    );
    wait_reconnected(SP);
}

/// Expected: vivid's Disconnect mid-`check` fails the format with "was disconnected mid-stream" once in
/// its result line, exit != 0, no panic and nothing else on stderr; the node comes back afterwards.
#[test]
fn faults_disconnect_mid_check_fails_once() {
    require_vm();
    let (status, stdout, stderr) = check_under(600, &[], "disconnect=1");
    assert!(!status.success(), "check passed despite a disconnect");
    assert_eq!(
        stdout.matches("was disconnected mid-stream").count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("YUYV   fail"), "{stdout}");
    assert!(stderr.trim().is_empty(), "{stderr}");
    wait_reconnected(SP);
    let _ = run(Command::new("v4l2-ctl").args(["-d", SP, "--all"]));
}

/// Expected: `view` (reconnect on by default) survives vivid's Disconnect mid-stream: it says once that
/// the device was disconnected and once that it is back, resumes with the same format and shows frames
/// again, and ends normally (exit 0) after --frames frames counted across both streams, more than the
/// first stream delivered before the disconnect; Weston stays up. With `--reconnect false` the disconnect
/// ends the run: exit != 0, the error as the last stderr line.
#[test]
fn faults_view_reconnects_after_disconnect() {
    require_vm();
    let weston = Weston::start("faults-reconnect", &[]);
    let stats = fresh_dir("faults-reconnect").join("stats.json");
    let (status, _, stderr) = interfere(
        weston.env(view_at_30_fps(150).arg("--stats-json").arg(&stats)),
        "disconnect=1",
    );
    assert!(status.success(), "{stderr}");
    assert_eq!(
        stderr
            .matches("was disconnected; waiting for it to come back")
            .count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("is back; resuming").count(), 1, "{stderr}");
    let v = check_json(&stats);
    // Two seconds of 30 fps came before the disconnect: reaching 150 frames (exit 0 after "is back")
    // needed the second stream.
    assert!(v["frames_shown"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(weston.is_alive(), "{}", weston.log());
    wait_reconnected(SP);

    let (status, _, stderr) = interfere(
        weston.env(view_at_30_fps(600).args(["--reconnect", "false"])),
        "disconnect=1",
    );
    assert!(
        !status.success(),
        "view survived a disconnect with --reconnect false"
    );
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("dmacam: /dev/video0 was disconnected mid-stream"),
        "{stderr}"
    );
    assert!(!stderr.contains("waiting for it"), "{stderr}");
    wait_reconnected(SP);
}

/// A dma-buf the compositor refuses (zwp_linux_buffer_params_v1.failed, forced by announcing Intel's
/// X-tiled modifier for the camera's YUYV, which llvmpipe cannot import): `auto` had chosen passthrough and
/// goes on with the next path for that format, gpu (the render stage's XR24 dma-bufs, which import fine),
/// and says why; with `--path passthrough` there is no next path and it fails in one line.
#[test]
fn faults_refused_dmabuf_falls_back_to_the_next_path() {
    require_vm();
    let weston = Weston::start("wayland-12", &[]);
    let json = dmacam_tests::results_dir().join("faults-refused-dmabuf.json");
    let refuse = ["--test-dmabuf-modifier", "YUYV:0100000000000001"];
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    // Until the gpu path's first frame is shown (shader compilation on llvmpipe under TCG takes a while).
    let out = within(
        cmd.args(["view", "-d", "pattern", "--size", "320x240", "--fps", "5"])
            .args(until_shown(1))
            .arg("--stats-json")
            .arg(&json)
            .args(refuse),
        180,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}\n{}", weston.log());
    assert!(err.contains("path passthrough"), "{err}");
    assert!(
        err.contains("zwp_linux_buffer_params_v1.failed")
            && err.contains("next path: gpu (the render stage's XR24 dma-bufs)"),
        "{err}"
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(s["path"], "gpu (fallback)", "{s}");
    weston.assert_shown(&s, 1, "the fallback");
    // The frame in hand when the refusal arrives may go out through wl_shm (one copy, counted) before the
    // gpu path takes over; nothing after it. The pattern's own painting is counted apart (source_write).
    let painted = &s["source_write"];
    assert_eq!(painted["what"], "the pattern", "{s}");
    let copied = s["cpu_copied_frames"].as_u64().unwrap() - painted["frames"].as_u64().unwrap();
    assert!(copied <= 1, "{s}");
    assert_eq!(
        s["cpu_bytes_copied_total"].as_u64().unwrap()
            - painted["cpu_bytes_written"].as_u64().unwrap(),
        copied * 320 * 240 * 2,
        "{s}"
    );
    assert!(s["shm_wl_buffers"].as_u64().unwrap() <= 1, "{s}");
    assert!(s["dmabuf_wl_buffers"].as_u64().unwrap() >= 1, "{s}");
    assert!(weston.is_alive(), "weston died");

    let mut cmd = dmacam();
    weston.env(&mut cmd);
    let out = within(
        cmd.args(["view", "-d", "pattern", "--size", "320x240", "--fps", "5"])
            .args(["--duration", "20", "--path", "passthrough"])
            .args(refuse),
        120,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("dmacam: ") && last.contains("could not import a YUYV 320x240 dma-buf"),
        "{err}"
    );
}

/// Binds or unbinds (`action`) vivid's platform driver: unbound, the device is gone as on a USB unplug
/// (its nodes are removed); bound again, the camera comes back.
fn vivid_driver(action: &str) {
    std::fs::write(
        format!("/sys/bus/platform/drivers/vivid/{action}"),
        "vivid.0",
    )
    .unwrap_or_else(|e| panic!("{action} vivid: {e}"));
}

/// Expected: removing the device for real (vivid's driver unbound: ENODEV, the nodes disappear) mid-`dump`
/// is reported once, exit 1, and the frames already written stay a valid Y4M; the same unplug under `view`
/// (with the driver bound again 3 s later) is survived: the viewer waits, says the camera is back, resumes
/// and exits 0 with frames shown after the reconnection.
#[test]
fn faults_unplug_by_node_removal() {
    require_vm();
    let dir = fresh_dir("faults-unplug");
    let y4m = dir.join("x.y4m");
    let mut dump = dmacam()
        .args(["dump", "-d", SP, "--format", "YUYV", "--size", "640x360"])
        .args(["--frames", "100000", "-o"])
        .arg(&y4m)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dmacam dump");
    std::thread::sleep(Duration::from_secs(4));
    vivid_driver("unbind");
    assert!(
        !std::path::Path::new(SP).exists(),
        "{SP} is still there after the unbind"
    );
    let status = dmacam_tests::wait_with_deadline(&mut dump, Duration::from_secs(30));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut dump.stderr.take().unwrap(), &mut stderr).unwrap();
    vivid_driver("bind");
    assert_eq!(status.code(), Some(1), "{stderr}");
    kept_after_disconnect(&stderr, &dir, &y4m);
    wait_reconnected(SP);

    let weston = Weston::start("wayland-13", &[]);
    let trace = dir.join("view.jsonl");
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    let mut view = cmd
        .args([
            "view", "-d", SP, "--format", "YUYV", "--size", "320x180", "--fps", "10",
        ])
        .args(["--duration", "30", "--trace"])
        .arg(&trace)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dmacam view");
    std::thread::sleep(Duration::from_secs(8));
    vivid_driver("unbind");
    std::thread::sleep(Duration::from_secs(3));
    vivid_driver("bind");
    let status = dmacam_tests::wait_with_deadline(&mut view, Duration::from_secs(90));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut view.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}\n{}", weston.log());
    assert_eq!(
        stderr.matches("was disconnected; waiting").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("is back; resuming"), "{stderr}");
    let shown_after = shown_after_the_gap(&trace, |d| d["presented"] == true);
    assert!(shown_after >= 1, "no frame shown after the reconnection");
    wait_reconnected(SP);
}

/// How many frames of a `--trace` reached the screen (`presented(display record)`) after the gap an unplug
/// left in the dequeue times (more than 2 s without a frame); panics if there is no such gap.
fn shown_after_the_gap(
    trace: &std::path::Path,
    presented: impl Fn(&serde_json::Value) -> bool,
) -> usize {
    let records: Vec<serde_json::Value> = std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut t: Vec<u64> = records
        .iter()
        .map(|r| r["t_dequeue_ns"].as_u64().unwrap())
        .collect();
    t.sort_unstable();
    let gap_end = t
        .windows(2)
        .find(|w| w[1] - w[0] > 2_000_000_000)
        .map(|w| w[1])
        .unwrap_or_else(|| panic!("no gap of the unplug in the dequeue times: {t:?}"));
    records
        .iter()
        .filter(|r| r["t_dequeue_ns"].as_u64().unwrap() >= gap_end)
        .filter(|r| presented(&r["display"]))
        .count()
}

/// `kms-view ARGS` on vivid under an unplug (vivid's driver unbound once frames flip, bound again 4 s later),
/// with no compositor, for `secs` seconds. Asserted: it exits 0, having said once that the camera went away
/// and once that it is back; while the camera was away, of dmacam's framebuffers only the one on screen was
/// left (every camera buffer handed back, the last frame still shown); frames were flipped onto the display
/// after the gap; the `--trace` chains hold (`gpu`: through the render stage); the display is restored with
/// no framebuffer left behind. Returns the directory with `kms.jsonl` (and what ARGS wrote there).
fn kms_view_through_an_unplug(name: &str, args: &[&str], gpu: bool) -> std::path::PathBuf {
    use crate::kms::{check_kms_trace, display_state, dmacam_framebuffers, framebuffers};
    let dir = fresh_dir(name);
    let trace = dir.join("kms.jsonl");
    let before = display_state();
    let fbs = framebuffers();
    let mut view = dmacam()
        .args(["kms-view", "-d", SP])
        .args(args)
        .arg("--trace")
        .arg(&trace)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dmacam kms-view");
    let start = Instant::now();
    while dmacam_framebuffers() < 2 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(dmacam_framebuffers() >= 2, "dmacam never flipped frames");
    std::thread::sleep(Duration::from_secs(2));
    vivid_driver("unbind");
    let unplugged = Instant::now();
    while dmacam_framebuffers() != 1 && unplugged.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let during_gap = dmacam_framebuffers();
    let state_during_gap = display_state();
    std::thread::sleep(Duration::from_secs(4).saturating_sub(unplugged.elapsed()));
    vivid_driver("bind");
    let status = dmacam_tests::wait_with_deadline(&mut view, Duration::from_secs(120));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut view.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        during_gap,
        1,
        "while the camera was away: {:?}\n{state_during_gap}",
        framebuffers()
    );
    assert!(
        state_during_gap.contains("allocated by = dmacam"),
        "the last frame left the display:\n{state_during_gap}"
    );
    assert_eq!(
        stderr.matches("was disconnected; waiting").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("is back; resuming"), "{stderr}");
    check_kms_trace(&trace, gpu, 4);
    let shown_after = shown_after_the_gap(&trace, |d| d["t_present_ns"].is_u64());
    assert!(shown_after >= 1, "no frame flipped after the reconnection");
    assert_eq!(display_state(), before, "the display was not restored");
    assert_eq!(framebuffers(), fbs, "framebuffers left behind");
    wait_reconnected(SP);
    dir
}

/// vivid as the next tests expect it (its default format and controls): a fresh instance.
fn fresh_vivid() {
    vivid_driver("unbind");
    vivid_driver("bind");
    wait_reconnected(SP);
}

/// The KMS output through an unplug on passthrough (see [`kms_view_through_an_unplug`]): it resumes with its
/// `--set` settings applied again (the new vivid instance starts from its defaults), and at the end the
/// display shows vivid's frame, equal pixel for pixel to v4l2-ctl's.
#[test]
fn faults_kms_view_reconnects_after_unplug() {
    use crate::kms::{mount_debugfs, reference_frame, reference_px, Ppm};
    require_vm();
    mount_debugfs();
    let dir = kms_view_through_an_unplug(
        "faults-kms-unplug",
        &[
            "--format",
            "XR24",
            "--size",
            "640x480",
            "--fps",
            "10",
            "--mode",
            "640x480",
            "--set",
            "osd_text_mode=2",
            "--duration",
            "30",
            "--writeback",
            "kms.ppm",
        ],
        false,
    );
    assert_eq!(
        read_back(SP, &["osd_text_mode"]),
        [2],
        "--set was not applied again"
    );
    let img = Ppm::read(&dir.join("kms.ppm"));
    let reference = reference_frame(640, 480);
    let differing = (0..480u32)
        .flat_map(|y| (0..640u32).map(move |x| (x, y)))
        .filter(|&(x, y)| img.px(x, y) != reference_px(&reference, 640, x, y))
        .count();
    assert_eq!(differing, 0, "{differing} pixels differ from vivid's frame");
    fresh_vivid();
}

/// The same on the gpu path (YUYV, which no vkms plane scans out, converted by the render stage): the render
/// stage's imports were of the old camera buffers, so it is built afresh for the new stream.
#[test]
fn faults_kms_view_gpu_path_reconnects_after_unplug() {
    require_vm();
    crate::kms::mount_debugfs();
    kms_view_through_an_unplug(
        "faults-kms-gpu-unplug",
        &[
            "--format",
            "YUYV",
            "--size",
            "320x180",
            "--fps",
            "10",
            "--path",
            "gpu",
            "--duration",
            "40",
        ],
        true,
    );
    fresh_vivid();
}
