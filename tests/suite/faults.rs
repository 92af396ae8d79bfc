//! Device faults and camera controls against real vivid: `dmacam controls`, `--set NAME=VALUE` on every
//! command that opens a device (checked before any is set, read back with v4l2-ctl), the viewer's
//! brightness/contrast keys, and vivid's error injection — buffers flagged V4L2_BUF_FLAG_ERROR, a refused
//! QBUF, a refused REQBUFS, S_FMT on a busy device (vivid has no S_FMT injection control: `v4l2-ctl -l`
//! lists disconnect, inject_v4l2_buf_flag_error, inject_vidioc_reqbufs_error, inject_vidioc_qbuf_error,
//! inject_vidioc_streamon_error, inject_fatal_streaming_error, inject_req_validate_error), and a disconnect
//! mid-stream. The STREAMON and fatal streaming error tests live in `capture.rs`. Each test's doc comment
//! states the expected outcome; every command runs under a deadline.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dmacam_tests::{
    bad_input, dmacam, require_vm, run, run_ok, run_with_deadline, src_dir, until_shown, Weston,
};

use crate::capture::{
    busy_streamer, check_json, dir_entries, expect_clean_failure, fresh_dir, interfere, parse_y4m,
    run_with_interference,
};

const SP: &str = "/dev/video0";

/// The current values of `ctrls` on `dev`, as v4l2-ctl reads them (`v4l2-ctl -C a,b`).
fn read_back(dev: &str, ctrls: &[&str]) -> Vec<i64> {
    let out = run_ok(Command::new("v4l2-ctl").args(["-d", dev, "-C", &ctrls.join(",")]));
    ctrls
        .iter()
        .map(|c| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{c}: ")))
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or_else(|| panic!("v4l2-ctl did not report {c}: {out}"))
                .parse()
                .unwrap_or_else(|_| panic!("{c}: not a number in {out}"))
        })
        .collect()
}

/// Puts the user controls the tests change back to vivid's defaults.
fn reset_controls() {
    run_ok(Command::new("v4l2-ctl").args([
        "-d",
        SP,
        "-c",
        "brightness=128,contrast=128,volume=200,test_pattern=0",
    ]));
}

/// Runs `cmd` within `secs` seconds; a hang fails the test with where it was stuck.
fn within(cmd: &mut Command, secs: u64) -> std::process::Output {
    run_with_deadline(cmd, Duration::from_secs(secs)).unwrap_or_else(|hang| panic!("{hang}"))
}

/// Waits until vivid has re-registered `dev` after a disconnect (it does when its last user closes it).
fn wait_reconnected(dev: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = within(
            Command::new("v4l2-ctl").args(["-d", dev, "--get-fmt-video"]),
            30,
        )
        .status
        .success();
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{dev} did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Expected: `dmacam controls -d /dev/video0 --json` lists vivid's controls with v4l2-ctl's names, their
/// type, range, step, default, menu entries and current value (equal to what v4l2-ctl reads); the text form
/// shows the same; `--set` changes values (number, hex, menu entry by name and by index, boolean word), read
/// back with v4l2-ctl.
#[test]
fn faults_controls_lists_and_sets_like_v4l2_ctl() {
    require_vm();
    run_ok(Command::new("v4l2-ctl").args(["-d", SP, "-c", "brightness=77"]));
    let out = run_ok(dmacam().args(["controls", "-d", SP, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["device"], SP);
    assert_eq!(v["driver"], "vivid");
    let ctrls = v["controls"].as_array().unwrap();
    let find = |n: &str| {
        ctrls
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("no {n} in {v}"))
    };
    let b = find("brightness");
    assert_eq!(b["type"], "int", "{b}");
    assert_eq!(b["min"], 0, "{b}");
    assert_eq!(b["max"], 255, "{b}");
    assert_eq!(b["step"], 1, "{b}");
    assert_eq!(b["default"], 128, "{b}");
    assert_eq!(b["value"], 77);
    let tp = find("test_pattern");
    assert_eq!(tp["type"], "menu");
    assert_eq!(tp["menu"][1]["name"], "100% Colorbar");
    assert!(
        find("disconnect")["value"].is_null(),
        "a button has no value"
    );
    assert!(find("read_only_integer_32_bits")["flags"]
        .as_array()
        .unwrap()
        .contains(&"read-only".into()));
    let text = run_ok(dmacam().args(["controls", "-d", SP]));
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("brightness "))
        .unwrap_or_else(|| panic!("no brightness line:\n{text}"));
    assert!(line.contains("0..255 step 1, default 128 = 77"), "{line}");
    assert!(text.contains("1: 100% Colorbar"), "{text}");

    run_ok(dmacam().args([
        "controls",
        "-d",
        SP,
        "--set",
        "brightness=200",
        "--set",
        "contrast=0x40",
        "--set",
        "test_pattern=100% Colorbar",
        "--set",
        "show_border=on",
    ]));
    assert_eq!(
        read_back(
            SP,
            &["brightness", "contrast", "test_pattern", "show_border"]
        ),
        [200, 64, 1, 1]
    );
    run_ok(dmacam().args([
        "controls",
        "-d",
        SP,
        "--set",
        "test_pattern=4",
        "--set",
        "show_border=false",
    ]));
    assert_eq!(read_back(SP, &["test_pattern", "show_border"]), [4, 0]);
    reset_controls();
}

/// Mean of every second byte of a YUYV frame (its luma).
fn mean_luma(yuyv: &[u8]) -> f64 {
    let y: Vec<u64> = yuyv.iter().step_by(2).map(|&b| u64::from(b)).collect();
    y.iter().sum::<u64>() as f64 / y.len() as f64
}

/// Expected: `--set` is applied after open and before streaming on dump, check and kms-view: the very first
/// frame dumped with brightness=0 is darker than with brightness=255, and each command leaves the value it
/// set (read back with v4l2-ctl). (`check` compares pixels with vivid's default picture, so a picture
/// control set there fails its pixel check, as it should.)
#[test]
fn faults_set_applies_before_streaming_on_every_command() {
    require_vm();
    let dir = fresh_dir("faults-set");
    let mut luma = Vec::new();
    for b in ["0", "255"] {
        let f = dir.join(format!("b{b}.raw"));
        run_ok(
            dmacam()
                .args(["dump", "-d", SP, "--format", "YUYV", "--size", "320x180"])
                .args([
                    "--set",
                    &format!("brightness={b}"),
                    "--set",
                    "test_pattern=100% Colorbar",
                    "-o",
                    f.to_str().unwrap(),
                ]),
        );
        assert_eq!(read_back(SP, &["brightness"]), [b.parse::<i64>().unwrap()]);
        luma.push(mean_luma(&std::fs::read(&f).unwrap()));
    }
    assert!(
        luma[1] > luma[0] + 40.0,
        "brightness did not reach the first frame: mean luma {luma:?}"
    );
    // check compares vivid's pixels with its default picture: set a control that leaves them alone.
    reset_controls();
    run_ok(dmacam().args([
        "check",
        "-d",
        SP,
        "--formats",
        "YUYV",
        "--frames",
        "2",
        "--set",
        "volume=90",
    ]));
    assert_eq!(read_back(SP, &["volume"]), [90]);
    let out = within(
        dmacam().args([
            "kms-view",
            "-d",
            SP,
            "--format",
            "XR24",
            "--size",
            "640x480",
            "--frames",
            "2",
            "--set",
            "contrast=70",
        ]),
        120,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_back(SP, &["contrast"]), [70]);
    reset_controls();
}

/// Expected: a bad `--set` (unknown name, value out of range, not a number, unknown menu entry, read-only
/// control, no `=`) fails with exit != 0 and one line naming the device, the control and its valid
/// range or menu; it is checked before anything is set (a good `--set` before it is not applied), on
/// dump, check, kms-view and controls alike, and no output file is left.
#[test]
fn faults_bad_set_is_one_line_and_sets_nothing() {
    require_vm();
    reset_controls();
    let dir = fresh_dir("faults-bad-set");
    let cases: [(&str, &[&str]); 6] = [
        (
            "brightness=300",
            &[
                "control 'brightness' of /dev/video0",
                "300 is out of range",
                "0..255 step 1",
            ],
        ),
        (
            "brightness=bright",
            &["'bright' is not a number", "0..255 step 1"],
        ),
        (
            "nosuch=1",
            &[
                "/dev/video0 has no control named 'nosuch'",
                "dmacam controls",
            ],
        ),
        (
            "test_pattern=Purple",
            &[
                "control 'test_pattern' of /dev/video0",
                "'Purple' is not one of its menu entries",
                "1: 100% Colorbar",
            ],
        ),
        (
            "read_only_integer_32_bits=1",
            &["read_only_integer_32_bits", "read-only"],
        ),
        ("brightness", &["NAME=VALUE", "/dev/video0"]),
    ];
    for (set, needles) in cases {
        for cmd in [
            &["dump", "-d", SP, "--frames", "1", "-o", "x.y4m"][..],
            &["check", "-d", SP, "--formats", "YUYV", "--frames", "1"],
            &["kms-view", "-d", SP, "--format", "XR24", "--frames", "1"],
            &["controls", "-d", SP],
        ] {
            let mut args = cmd.to_vec();
            args.extend(["--set", "contrast=10", "--set", set]);
            expect_clean_failure(&args, &dir, needles);
            assert_eq!(
                read_back(SP, &["contrast"]),
                [128],
                "{args:?} applied a setting before the bad one"
            );
        }
    }
}

/// Expected: `view --set` applies the setting, and the window's keys step the camera's controls: from
/// brightness 128 `B` twice gives 143 then 158 (a sixteenth of 0..255 per press), `c` from contrast 100
/// gives 85; each new value is printed once on stderr, the run exits 0, and `view --help` documents the
/// keys. The keys are fed with the hidden `--keys` option, which runs the same handler as a key press (the
/// headless compositor has no keyboard to press). A bad `--set` in view is one line.
#[test]
fn faults_view_set_and_control_keys() {
    require_vm();
    let help = run_ok(dmacam().args(["view", "--help"]));
    assert!(
        help.contains("b / B step the camera's brightness") && help.contains("c / C"),
        "{help}"
    );
    let weston = Weston::start("faults", &[]);
    let out = within(
        weston.env(view_at_30_fps(15).args([
            "--set",
            "brightness=128",
            "--set",
            "contrast=100",
            "--keys",
            "BBcx",
        ])),
        120,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let said: Vec<&str> = err
        .lines()
        .filter(|l| {
            l.starts_with("dmacam view: brightness") || l.starts_with("dmacam view: contrast")
        })
        .collect();
    assert_eq!(
        said,
        [
            "dmacam view: brightness 143",
            "dmacam view: brightness 158",
            "dmacam view: contrast 85"
        ],
        "{err}"
    );
    assert_eq!(read_back(SP, &["brightness", "contrast"]), [158, 85]);
    let out = within(
        weston.env(dmacam().args(["view", "-d", SP, "--frames", "2", "--set", "contrast=999"])),
        60,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("control 'contrast' of /dev/video0") && err.contains("0..255"),
        "{err}"
    );
    assert!(weston.is_alive(), "{}", weston.log());
    reset_controls();
}

/// `dmacam view -d /dev/video0 --fps 30 --frames N`.
fn view_at_30_fps(frames: u32) -> Command {
    let mut c = dmacam();
    c.args([
        "view",
        "-d",
        SP,
        "--fps",
        "30",
        "--frames",
        &frames.to_string(),
    ]);
    c
}

/// Frames of a Y4M file in the results.
fn y4m_frames(path: &std::path::Path) -> usize {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_y4m(&data).3.len()
}

/// Dumps `frames` frames of 320x180 YUYV at 30 fps from /dev/video0 to `dir`/x.y4m, pressing vivid's
/// control `ctrl` two seconds into the stream: (exit status, stderr, the y4m's path).
fn dump_under(
    dir: &std::path::Path,
    frames: u32,
    ctrl: &str,
) -> (std::process::ExitStatus, String, std::path::PathBuf) {
    let y4m = dir.join("x.y4m");
    let frames = frames.to_string();
    let (status, _, stderr) = run_with_interference(
        &[
            "dump",
            "-d",
            SP,
            "--fps",
            "30",
            "--size",
            "320x180",
            "--frames",
            &frames,
            "-o",
            y4m.to_str().unwrap(),
        ],
        ctrl,
    );
    (status, stderr, y4m)
}

/// Checks `frames` YUYV frames at 30 fps on /dev/video0 (with `extra` arguments), pressing vivid's control
/// `ctrl` two seconds into the stream: (exit status, stdout, stderr).
fn check_under(
    frames: u32,
    extra: &[&str],
    ctrl: &str,
) -> (std::process::ExitStatus, String, String) {
    let frames = frames.to_string();
    let mut args = vec![
        "check",
        "-d",
        SP,
        "--fps",
        "30",
        "--formats",
        "YUYV",
        "--frames",
        &frames,
    ];
    args.extend(extra);
    run_with_interference(&args, ctrl)
}

/// Expected: a buffer vivid flags with V4L2_BUF_FLAG_ERROR (inject_v4l2_buf_flag_error mid-stream) is
/// skipped and counted: `dump` still writes the requested number of good frames, says on stderr how many
/// flagged frames it skipped and exits 0; `check` passes with the count in its result line and in the JSON
/// report (`errored`). (vivid gives the flagged buffer the next sequence number, so it leaves no gap;
/// driver drops under TCG load are counted apart, as `drops`.)
#[test]
fn faults_buf_flag_error_frames_are_skipped_and_counted() {
    require_vm();
    let dir = fresh_dir("faults-buf-error");
    let (status, stderr, y4m) = dump_under(&dir, 150, "inject_v4l2_buf_flag_error=1");
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("frames flagged V4L2_BUF_FLAG_ERROR by /dev/video0 were skipped"),
        "{stderr}"
    );
    assert_eq!(y4m_frames(&y4m), 150);
    let json = dir.join("check.json");
    let (status, stdout, stderr) = check_under(
        150,
        &["--json", json.to_str().unwrap()],
        "inject_v4l2_buf_flag_error=1",
    );
    assert!(status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("flagged V4L2_BUF_FLAG_ERROR by the driver skipped"),
        "{stdout}"
    );
    let v = check_json(&json);
    let case = &v["results"][0];
    assert!(case["errored"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(case["frames"], 150, "{v}");
}

/// Expected: a QBUF the driver refuses once (inject_vidioc_qbuf_error: vivid fails the next buffer
/// preparation) is retried and the buffer stays in the rotation: `dump` writes every requested frame, exits
/// 0, and says once on stderr that the re-queue failed and was retried.
#[test]
fn faults_qbuf_error_is_retried_and_the_stream_continues() {
    require_vm();
    let dir = fresh_dir("faults-qbuf");
    let (status, stderr, y4m) = dump_under(&dir, 150, "inject_vidioc_qbuf_error=1");
    assert!(status.success(), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("VIDIOC_QBUF"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("retried: queued"), "{stderr}");
    assert_eq!(y4m_frames(&y4m), 150);
}

/// Expected: a REQBUFS the driver refuses (inject_vidioc_reqbufs_error) is reported as that — one line
/// naming VIDIOC_REQBUFS and the device, not "does not support mmap streaming" — exit != 0, no file left;
/// the injection is one-shot, so the next run succeeds.
#[test]
fn faults_reqbufs_error_is_one_line() {
    require_vm();
    let dir = fresh_dir("faults-reqbufs");
    run_ok(Command::new("v4l2-ctl").args(["-d", SP, "-c", "inject_vidioc_reqbufs_error=1"]));
    expect_clean_failure(
        &["dump", "-d", SP, "--frames", "1", "-o", "x.raw"],
        &dir,
        &["VIDIOC_REQBUFS on /dev/video0 failed"],
    );
    run_ok(dmacam().args([
        "dump",
        "-d",
        SP,
        "--frames",
        "1",
        "-o",
        "/tmp/faults-ok.raw",
    ]));
}

/// Expected: S_FMT refused because another process streams from the device (EBUSY; vivid has no S_FMT
/// injection control) fails that format in `check`: its result line names the device and says "busy",
/// nothing on stderr, exit != 0, the JSON report written with the failure.
#[test]
fn faults_sfmt_on_a_busy_device_fails_check_cleanly() {
    require_vm();
    let dir = fresh_dir("faults-busy");
    let mut other = busy_streamer();
    let json = dir.join("r.json");
    let out = within(
        dmacam()
            .args([
                "check",
                "-d",
                SP,
                "--formats",
                "NV12",
                "--frames",
                "2",
                "--json",
            ])
            .arg(&json),
        120,
    );
    dmacam_tests::kill_and_reap(&mut other);
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "check passed on a busy device");
    assert!(err.trim().is_empty(), "{err}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("NV12 "))
        .unwrap_or_else(|| panic!("no NV12 result: {stdout}"));
    assert!(
        line.contains(" fail ") && line.contains("/dev/video0 is busy"),
        "{stdout}"
    );
    assert_eq!(check_json(&json)["failed"], 1);
}

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

/// Expected: every `vm` row of the bad-input table (tests/BAD-INPUT.md), run verbatim here in a fresh
/// directory, exits with its status and prints exactly its message, and leaves no file. (The host test
/// `bad_input` checks the `host` rows and that every test the table names exists.)
#[test]
fn faults_bad_input_table_vm_rows_hold() {
    require_vm();
    reset_controls();
    let dir = fresh_dir("faults-table");
    let mut failures = Vec::new();
    let rows: Vec<_> = bad_input::load(&src_dir())
        .into_iter()
        .filter(|r| r.runs == "vm")
        .collect();
    assert!(!rows.is_empty(), "no vm rows");
    for row in &rows {
        let out = bad_input::run_row(dmacam(), row, &dir);
        if let Err(e) = bad_input::verdict(row, &out) {
            failures.push(e);
        }
        if !dir_entries(&dir).is_empty() {
            failures.push(format!("row '{}' left {:?}", row.what, dir_entries(&dir)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
    // gpu path takes over; nothing after it.
    let copied = s["cpu_copied_frames"].as_u64().unwrap();
    assert!(copied <= 1, "{s}");
    assert_eq!(
        s["cpu_bytes_copied_total"].as_u64(),
        Some(copied * 320 * 240 * 2),
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
