//! Capture that must fail, and fail well: bad input, a busy device, injected errors, a pattern changed
//! behind `check`'s back, a fatal streaming error, an output-only node; and `list`.

use super::*;

/// Runs dmacam expecting failure: one line on stderr containing each of `needles`, no panic, and nothing
/// left in `dir`.
pub(crate) fn expect_clean_failure(args: &[&str], dir: &Path, needles: &[&str]) {
    let out = run(dmacam().args(args).current_dir(dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    // clap adds its usual "For more information, try '--help'." after an invalid option value.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected one line, got:\n{stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: '{n}' not in: {stderr}");
    }
    assert!(
        dir_entries(dir).is_empty(),
        "{args:?} left files: {:?}",
        dir_entries(dir)
    );
}

#[test]
fn capture_bad_input_fails_cleanly() {
    require_vm();
    let dir = fresh_dir("bad-input");
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["dump", "-d", "/dev/video77", "-o", "x.raw"],
            &["/dev/video77", "dmacam list"],
        ),
        (
            &["dump", "-d", "/dev/null", "-o", "x.raw"],
            &["/dev/null", "not a V4L2 device"],
        ),
        (
            &["dump", "-d", SP, "--format", "ABCD", "-o", "x.raw"],
            &["ABCD", "offers", "YUYV"],
        ),
        (
            &["dump", "-d", SP, "--format", "422P", "-o", "x.raw"],
            &["422P", "cannot handle"],
        ),
        (
            &["dump", "-d", SP, "--size", "0x0", "-o", "x.raw"],
            &["0x0", "WIDTHxHEIGHT"],
        ),
        (
            &["dump", "-d", SP, "--size", "garbage", "-o", "x.raw"],
            &["garbage", "WIDTHxHEIGHT"],
        ),
        (
            &["dump", "-d", SP, "--size", "123x45", "-o", "x.raw"],
            &["123x45", "offers"],
        ),
        (&["dump", "-d", SP, "-o", "x.txt"], &["x.txt", ".raw"]),
        (&["dump", "-d", SP, "-o", "frame.png"], &["frame.png", "#"]),
        (
            &["dump", "-d", SP, "--format", "RGB3", "-o", "x.y4m"],
            &["RGB3", "y4m"],
        ),
        (
            &["dump", "-d", SP, "--io", "bogus", "-o", "x.raw"],
            &["bogus", "dma-heap"],
        ),
    ];
    for (args, needles) in cases {
        expect_clean_failure(args, &dir, needles);
    }
}

/// A v4l2-ctl streaming from /dev/video0 at 30 fps for 30 s (kill it when done), already streaming.
pub(crate) fn busy_streamer() -> std::process::Child {
    let mut other = Command::new("v4l2-ctl")
        .args([
            "-d",
            SP,
            "-p",
            "30",
            "--stream-mmap",
            "--stream-count=900",
            "--stream-to=/dev/null",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        other.try_wait().unwrap().is_none(),
        "v4l2-ctl stopped early"
    );
    other
}

#[test]
fn capture_busy_device_fails_cleanly() {
    require_vm();
    vivid_still(SP);
    let dir = fresh_dir("busy");
    let mut other = busy_streamer();
    expect_clean_failure(
        &["dump", "-d", SP, "--frames", "5", "-o", "x.raw"],
        &dir,
        &["/dev/video0", "busy"],
    );
    dmacam_tests::kill_and_reap(&mut other);
}

/// Whether a failed `dmacam check` result line reports nothing but a repeated sequence number
/// ("sequence went from N to N"), beside the note on driver drops.
fn is_sequence_repeat(line: &str) -> bool {
    let Some((_, reasons)) = line.split_once(" fail ") else {
        return false;
    };
    let mut repeats = 0;
    for reason in reasons.split("; ").map(str::trim) {
        if let Some(rest) = reason.strip_prefix("sequence went from ") {
            match rest.split_once(" to ") {
                Some((a, b)) if a == b => repeats += 1,
                _ => return false,
            }
        } else if !reason.ends_with("frames dropped by the driver") {
            return false;
        }
    }
    repeats > 0
}

pub(crate) fn check_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn capture_check_passes_on_vivid() {
    require_vm();
    let dir = fresh_dir("check-pass");
    for (dev, min_pass, must) in [(SP, 19, "YUYV"), (MP, 15, "NV12M")] {
        let json = dir.join(format!("{}.json", &dev[5..]));
        let junit = dir.join(format!("{}.xml", &dev[5..]));
        let out = run(dmacam().args([
            "check",
            "-d",
            dev,
            "--frames",
            "3",
            "--json",
            json.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ]));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut retried = 0;
        let mut retried_formats: Vec<String> = Vec::new();
        if !out.status.success() {
            // vivid under TCG emulation now and then hands out two buffers with the same sequence number
            // (seen in CI runs on an idle host); check rightly fails on that. Those formats, and only on
            // that failure, get one more run: a second failure of any kind fails the test.
            let failed: Vec<&str> = stdout
                .lines()
                .filter(|l| l.split_whitespace().nth(1) == Some("fail"))
                .collect();
            assert!(
                !failed.is_empty() && failed.iter().all(|l| is_sequence_repeat(l)),
                "check on {dev} failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let formats: Vec<&str> = failed
                .iter()
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            retried = formats.len();
            retried_formats = formats.iter().map(|f| f.to_string()).collect();
            let mut pending = formats.join(",");
            for attempt in 1..=2 {
                eprintln!(
                    "check on {dev}: retry {attempt} of {pending} after a repeated sequence number"
                );
                let again = run(dmacam().args([
                    "check",
                    "-d",
                    dev,
                    "--frames",
                    "3",
                    "--formats",
                    &pending,
                ]));
                let text = String::from_utf8_lossy(&again.stdout).into_owned();
                if again.status.success() {
                    pending.clear();
                    break;
                }
                let still: Vec<&str> = text
                    .lines()
                    .filter(|l| l.split_whitespace().nth(1) == Some("fail"))
                    .collect();
                assert!(
                    still.iter().all(|l| is_sequence_repeat(l)),
                    "check on {dev}, retry of {pending}, failed:\n{text}"
                );
                pending = still
                    .iter()
                    .filter_map(|l| l.split_whitespace().next())
                    .collect::<Vec<_>>()
                    .join(",");
            }
            assert!(
                pending.is_empty(),
                "{pending} on {dev} repeated a sequence number in three runs"
            );
        }
        let v = check_json(&json);
        assert_eq!(v["failed"].as_u64(), Some(retried as u64));
        // A format retried above passed on its second run.
        assert!(
            v["passed"].as_u64().unwrap() + retried as u64 >= min_pass,
            "{v}"
        );
        let results = v["results"].as_array().unwrap();
        let total = results.len();
        assert!(
            total >= 80,
            "vivid offers 83 formats, the report has {total}"
        );
        let case = results.iter().find(|r| r["format"] == must).unwrap();
        if !retried_formats.iter().any(|f| f == must) {
            assert_eq!(case["status"], "pass");
        }
        assert_eq!(case["pixels_checked"], true);
        let skip = results.iter().find(|r| r["format"] == "422P").unwrap();
        assert_eq!(skip["status"], "skip");
        assert!(skip["messages"][0]
            .as_str()
            .unwrap()
            .contains("does not support 422P"));
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(
            xml.contains("<testsuite ") && xml.contains(&format!("failures=\"{retried}\"")),
            "{xml}"
        );
        assert!(xml.contains(&format!("tests=\"{total}\"")));
    }
}

#[test]
fn capture_check_fails_on_streamon_error_injection() {
    require_vm();
    let dir = fresh_dir("check-inject");
    run_ok(Command::new("v4l2-ctl").args(["-d", SP, "-c", "inject_vidioc_streamon_error=1"]));
    let json = dir.join("r.json");
    let out = run(dmacam().args([
        "check",
        "-d",
        SP,
        "--formats",
        "YUYV",
        "--json",
        json.to_str().unwrap(),
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "check passed despite the injected error:\n{stdout}"
    );
    assert!(stdout.contains("VIDIOC_STREAMON"), "{stdout}");
    let v = check_json(&json);
    assert_eq!(v["failed"], 1);
    // The injection is one-shot: the next run passes again.
    run_ok(dmacam().args(["check", "-d", SP, "--formats", "YUYV", "--frames", "3"]));
}

/// Starts a long `dmacam` run, then changes the device behind its back with `v4l2-ctl -c CTRL`.
/// Whether process `pid` holds a dma-buf fd.
fn has_dmabuf_fd(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .any(|l| l.to_string_lossy().contains("dmabuf"))
        })
        .unwrap_or(false)
}

pub(crate) fn run_with_interference(
    args: &[&str],
    ctrl: &str,
) -> (std::process::ExitStatus, String, String) {
    interfere(dmacam().args(args), ctrl)
}

/// Starts `cmd` (a dmacam run), sets `ctrl` on /dev/video0 two seconds after it streams, and waits for it
/// (120 s deadline): its exit status, stdout and stderr.
pub(crate) fn interfere(
    cmd: &mut Command,
    ctrl: &str,
) -> (std::process::ExitStatus, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interfere only once dmacam streams: its buffers are exported as dma-bufs just before STREAMON (a
    // loaded TCG machine can take several seconds to get there; vivid ignores the injection controls while
    // not streaming), then give it two more seconds of frames.
    let deadline = Instant::now() + Duration::from_secs(90);
    while !has_dmabuf_fd(child.id()) {
        let exited = child.try_wait().unwrap().is_some();
        if exited || Instant::now() >= deadline {
            let stacks = dmacam_tests::kernel_stacks(child.id());
            let mut stderr = String::new();
            if dmacam_tests::kill_and_reap(&mut child).is_some() {
                let _ =
                    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
            }
            let what = if exited {
                "exited before it streamed"
            } else {
                "never streamed"
            };
            panic!("{cmd:?} {what}; it was in:\n{stacks}stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    run_ok(Command::new("v4l2-ctl").args(["-d", SP, "-c", ctrl]));
    let status = wait_with_deadline(&mut child, Duration::from_secs(120));
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stdout, stderr)
}

#[test]
fn capture_check_fails_when_the_pattern_changes_behind_its_back() {
    require_vm();
    let (status, stdout, _) = run_with_interference(
        &["check", "-d", SP, "--formats", "YUYV", "--frames", "300"],
        "test_pattern=5",
    );
    assert!(
        !status.success(),
        "check passed although the pattern changed:\n{stdout}"
    );
    assert!(
        stdout.contains("pixels") && stdout.contains("expected"),
        "{stdout}"
    );
}

#[test]
fn capture_fatal_streaming_error_fails_without_partial_output() {
    require_vm();
    vivid_still(SP);
    let dir = fresh_dir("fatal");
    let out = dir.join("x.raw");
    let (status, _, stderr) = run_with_interference(
        &[
            "dump",
            "-d",
            SP,
            "--fps",
            "30",
            "--frames",
            "600",
            "-o",
            out.to_str().unwrap(),
        ],
        "inject_fatal_streaming_error=1",
    );
    assert!(!status.success(), "dump survived a fatal streaming error");
    assert!(
        stderr.contains("/dev/video0") && stderr.contains("error"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        dir_entries(&dir).is_empty(),
        "left files: {:?}",
        dir_entries(&dir)
    );
    let (status, stdout, _) = run_with_interference(
        &["check", "-d", SP, "--formats", "YUYV", "--frames", "600"],
        "inject_fatal_streaming_error=1",
    );
    assert!(
        !status.success(),
        "check passed despite a fatal streaming error:\n{stdout}"
    );
    assert!(
        stdout.contains("stopped streaming with an error"),
        "{stdout}"
    );
}

/// Reloads vivid with `opts` and waits for /dev/video0.
fn reload_vivid(opts: &str) {
    let _ = run(Command::new("modprobe").args(["-r", "vivid"]));
    run_ok(
        Command::new("modprobe")
            .arg("vivid")
            .args(opts.split_whitespace()),
    );
    for _ in 0..100 {
        if Path::new(SP).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("vivid {opts} made no /dev/video0");
}

/// An output-only node (vivid `node_types=0x100`) is refused by dump and check with a clear message. vivid is
/// reloaded for this and restored to the test-bed's options afterwards.
#[test]
fn capture_output_only_node_is_refused() {
    require_vm();
    let default = std::fs::read_to_string("/ctl/vivid").expect("the test-bed's vivid options");
    reload_vivid("n_devs=1 node_types=0x100");
    let dir = fresh_dir("output-node");
    let result = std::panic::catch_unwind(|| {
        let list = run_ok(dmacam().arg("list"));
        assert!(list.contains("(output)"), "{list}");
        expect_clean_failure(
            &["dump", "-d", SP, "-o", "x.raw"],
            &dir,
            &["/dev/video0", "output", "not a video capture node"],
        );
        let out = run(dmacam()
            .args(["check", "-d", SP, "--junit", "r.xml"])
            .current_dir(&dir));
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a video capture node"), "{stderr}");
        let xml = std::fs::read_to_string(dir.join("r.xml")).unwrap();
        assert!(xml.contains("failures=\"1\""), "{xml}");
    });
    reload_vivid(default.trim());
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn capture_list_shows_formats_sizes_intervals_and_controls() {
    require_vm();
    let v: serde_json::Value =
        serde_json::from_str(&run_ok(dmacam().args(["list", "--json"]))).unwrap();
    let devices = v["devices"].as_array().unwrap();
    for (path, fmt) in [(SP, "YUYV"), (MP, "NM12")] {
        let d = devices
            .iter()
            .find(|d| d["path"] == path)
            .unwrap_or_else(|| panic!("{path} missing: {v}"));
        let cap = &d["capture"];
        let formats = cap["formats"].as_array().unwrap();
        assert!(formats.len() >= 80, "{path}: {} formats", formats.len());
        let f = formats.iter().find(|f| f["fourcc"] == fmt).unwrap();
        assert_eq!(f["supported"], true);
        let size = f["sizes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["width"] == 640 && s["height"] == 360)
            .unwrap_or_else(|| panic!("{path} {fmt}: no 640x360"));
        assert!(
            size["intervals"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i == "1/30"),
            "{size}"
        );
        let tp = cap["controls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "test_pattern")
            .unwrap();
        assert!(tp["menu"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "100% Colorbar"));
    }
    let text = run_ok(dmacam().arg("list"));
    assert!(
        text.contains("formats:") && text.contains("controls:") && text.contains("test_pattern")
    );
    assert!(text.contains("not supported by dmacam"));
}
