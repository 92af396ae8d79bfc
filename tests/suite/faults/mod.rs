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

mod disconnect;
