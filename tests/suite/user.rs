//! dmacam as an ordinary desktop user: uid 1000 (`camuser`, made here) in groups `video` and `render` only,
//! with the device nodes owned as Debian trixie's own udev rules leave them. The guest's init does not run
//! udev, so each test runs `systemd-udevd` for a moment and replays the `add` events of the nodes dmacam
//! opens: what applies are the rules in `/usr/lib/udev/rules.d/50-udev-default.rules` (systemd 257):
//!
//! - `SUBSYSTEM=="video4linux", GROUP="video"` → `/dev/video*` root:video 0660
//! - `SUBSYSTEM=="drm", KERNEL!="renderD*", GROUP="video"` → `/dev/dri/card0` root:video 0660
//! - `KERNEL=="udmabuf", GROUP="kvm"` → `/dev/udmabuf` root:kvm 0660 (the user is not in `kvm`)
//! - no rule for `/dev/dma_heap/*` → root:root 0600
//!
//! (`70-uaccess.rules` also tags video4linux, drm and udmabuf with `uaccess`: logind's ACL for the user at
//! the seat. The test-bed has no logind, and a user over ssh or in a container has no seat either: the
//! groups are what the user has here.)
//!
//! Every mode either works for that user or fails in one line that says what the user lacks and what to do,
//! and `doctor` run by the user lists it. The Vulkan driver (lavapipe) exports dma-bufs through
//! `/dev/udmabuf`, so here it cannot export: `view --path gpu` says so, `--path auto` falls back to shm
//! (counted), and `dump --process` reads the render stage's output from host memory. The pattern and the
//! MJPEG decoder have no dma-buf allocator the user may open (no udmabuf, no heap, and no render node in the
//! test-bed: vkms has only a card node), so their buffers are memfds, said and counted.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use dmacam_tests::picture::BARS;
use dmacam_tests::{require_vm, results_dir, run, run_ok, until_shown, Weston};

const USER: &str = "camuser";
const UID: u32 = 1000;
const RULES: &str = "/usr/lib/udev/rules.d/50-udev-default.rules";
const VIVID: &str = "/dev/video0";

/// Each node dmacam opens, the Debian rule that sets it (`None`: no rule) and the owner group and mode that
/// follow.
const NODES: [(&str, Option<&str>, &str, u32); 4] = [
    (
        "/dev/video0",
        Some(r#"SUBSYSTEM=="video4linux", GROUP="video""#),
        "video",
        0o660,
    ),
    (
        "/dev/dri/card0",
        Some(r#"SUBSYSTEM=="drm", KERNEL!="renderD*", GROUP="video""#),
        "video",
        0o660,
    ),
    (
        "/dev/udmabuf",
        Some(r#"KERNEL=="udmabuf", GROUP="kvm""#),
        "kvm",
        0o660,
    ),
    ("/dev/dma_heap/system", None, "root", 0o600),
];

/// The remedy every "cannot open /dev/udmabuf" line must give: the group, or a udev rule.
const UDMABUF_REMEDY: &str = r#"join group kvm (sudo usermod -aG kvm $USER, then log in again) or add a udev rule, e.g. /etc/udev/rules.d/70-dmacam.rules: KERNEL=="udmabuf", GROUP="video", MODE="0660""#;

fn gid_of(group: &str) -> u32 {
    let groups = std::fs::read_to_string("/etc/group").expect("/etc/group");
    groups
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == group).then(|| f[2].parse().expect("gid"))
        })
        .unwrap_or_else(|| panic!("no group {group} in the guest"))
}

/// Applies Debian's udev rules to the nodes dmacam opens (as udev would at boot) and checks the result.
fn apply_debian_rules() {
    let rules = std::fs::read_to_string(RULES).unwrap_or_else(|e| panic!("{RULES}: {e}"));
    for (node, rule, _, _) in NODES {
        if let Some(rule) = rule {
            assert!(
                rules.lines().any(|l| l.trim() == rule),
                "{RULES} no longer holds the rule for {node}: {rule}"
            );
        }
    }
    assert!(
        !rules.contains("dma_heap"),
        "{RULES} now has a dma_heap rule"
    );
    let mut udevd = Command::new("/usr/lib/systemd/systemd-udevd")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start systemd-udevd");
    std::thread::sleep(Duration::from_millis(500));
    run_ok(Command::new("udevadm").args([
        "trigger",
        "--action=add",
        "--subsystem-match=video4linux",
        "--subsystem-match=drm",
        "--subsystem-match=misc",
        "--subsystem-match=dma_heap",
    ]));
    run_ok(Command::new("udevadm").args(["settle", "--timeout=60"]));
    let _ = udevd.kill();
    let _ = udevd.wait();
    for (node, _, group, mode) in NODES {
        let m = std::fs::metadata(node).unwrap_or_else(|e| panic!("{node}: {e}"));
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (0, gid_of(group), mode),
            "{node} after Debian's udev rules: want root:{group} {mode:04o}"
        );
    }
}

/// The desktop user: made once per boot, in `video` and `render` only, with its runtime directory.
fn desktop_user() -> PathBuf {
    apply_debian_rules();
    let exists = run(Command::new("id").arg(USER)).status.success();
    if !exists {
        run_ok(Command::new("useradd").args([
            "-u",
            &UID.to_string(),
            "-U",
            "-m",
            "-G",
            "video,render",
            USER,
        ]));
    }
    let groups = run_ok(Command::new("id").args(["-Gn", USER]));
    let mut groups: Vec<&str> = groups.split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, [USER, "render", "video"], "the user's groups");
    let runtime = PathBuf::from(format!("/run/user/{UID}"));
    run_ok(
        Command::new("install")
            .args(["-d", "-o", USER, "-g", USER, "-m", "700"])
            .arg(&runtime),
    );
    let work = PathBuf::from(format!("/home/{USER}/out"));
    run_ok(
        Command::new("install")
            .args(["-d", "-o", USER, "-g", USER, "-m", "755"])
            .arg(&work),
    );
    work
}

/// `program` run as the desktop user (setpriv: its uid, gid and the groups /etc/group gives it), with its
/// own HOME and XDG_RUNTIME_DIR.
fn as_user(program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={UID}"),
        &format!("--regid={UID}"),
        "--init-groups",
        "--",
        program,
    ])
    .env("HOME", format!("/home/{USER}"))
    .env("USER", USER)
    .env("XDG_RUNTIME_DIR", format!("/run/user/{UID}"))
    .env_remove("WAYLAND_DISPLAY")
    .current_dir(format!("/home/{USER}"));
    cmd
}

fn dmacam_as_user() -> Command {
    as_user("dmacam")
}

/// The user's own Weston (the test-bed's kiosk configuration), in the user's runtime directory.
fn user_weston(name: &str) -> Weston {
    let mut wrapper = as_user("env");
    wrapper.env("WESTON_SHELL", "kiosk");
    Weston::start_as(wrapper, name, Path::new(&format!("/run/user/{UID}")))
}

/// The first of the per-frame files `dir/PREFIX<sequence>.ppm` a dump wrote.
fn first_written(dir: &Path, prefix: &str) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the user's output directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                && p.extension().is_some_and(|e| e == "ppm")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {prefix}*.ppm in {}", dir.display()))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts `out` failed with exactly one line on stderr, containing each of `needles`.
fn fails_in_one_line(out: &Output, what: &str, needles: &[&str]) -> String {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "{what} should fail for the user: {err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: one line, not:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "{what}: the line should say {n:?}:\n{err}");
    }
    err
}

/// `view` as the user under `weston`, until 3 frames are shown: its stderr and its statistics.
fn view_as_user(weston: &Weston, tag: &str, args: &[&str]) -> (String, serde_json::Value) {
    let json = results_dir().join(format!("user-{tag}.json"));
    let _ = std::fs::remove_file(&json);
    // The user writes the statistics into its own directory; the test reads them from there.
    let mine = PathBuf::from(format!("/home/{USER}/out/{tag}.json"));
    let _ = std::fs::remove_file(&mine);
    let mut cmd = dmacam_as_user();
    weston.env(&mut cmd);
    let out = run(cmd
        .arg("view")
        .args(args)
        .args(until_shown(3))
        .arg("--stats-json")
        .arg(&mine));
    let err = stderr(&out);
    assert!(
        out.status.success(),
        "view {args:?} as the user failed: {err}\n{}",
        weston.state()
    );
    let text = std::fs::read_to_string(&mine).unwrap_or_else(|e| panic!("{}: {e}", mine.display()));
    let _ = std::fs::write(&json, &text);
    let stats: serde_json::Value = serde_json::from_str(&text).expect("stats JSON");
    weston.assert_shown(&stats, 3, &format!("view {args:?} as the user"));
    (err, stats)
}

#[test]
fn user_doctor_lists_what_the_user_lacks() {
    require_vm();
    desktop_user();
    let text = run_ok(dmacam_as_user().arg("doctor"));
    let _ = std::fs::write(results_dir().join("user-doctor.txt"), &text);
    assert!(text.contains(&format!("Access (as uid {UID}):")), "{text}");
    assert!(
        text.contains("  opens: /dev/video0, /dev/video1, /dev/dri/card0"),
        "{text}"
    );
    assert!(
        text.contains(
            "udmabuf: /dev/udmabuf exists but is not yours (group kvm, mode 0660): add yourself to group kvm"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "DMA-BUF heap: /dev/dma_heap/system exists but only root can open it (owner root, group root, \
             mode 0600): give it to a group you are in with a udev rule"
        ),
        "{text}"
    );
    // The Vulkan consequence: lavapipe cannot export, with the cause, the remedy and what dmacam does.
    let export = text
        .lines()
        .find(|l| l.contains("output export as a dma-buf"))
        .unwrap_or_else(|| panic!("doctor says nothing of Vulkan export:\n{text}"));
    for needle in [
        "NO: ",
        "lavapipe exports dma-bufs through /dev/udmabuf, which this user cannot open (group kvm, mode 0660)",
        UDMABUF_REMEDY,
        "--path auto takes passthrough or shm, --path gpu fails",
        "dump --process reads the output from host memory",
    ] {
        assert!(export.contains(needle), "doctor's export line lacks {needle:?}:\n{export}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(dmacam_as_user().args(["doctor", "--json"])))
            .expect("doctor --json");
    assert_eq!(json["euid"], UID, "{json}");
    assert_eq!(json["allocators"]["udmabuf_usable"], false, "{json}");
    assert_eq!(
        json["allocators"]["dma_heap_system_usable"], false,
        "{json}"
    );
    assert_eq!(json["vulkan_export"]["ok"], false, "{json}");
    assert_eq!(json["vulkan_export"]["imports"], true, "{json}");
    // Root, on the same machine, can export: the line is about this user, not the driver.
    let root: serde_json::Value =
        serde_json::from_str(&run_ok(dmacam_tests::dmacam().args(["doctor", "--json"])))
            .expect("doctor --json as root");
    assert_eq!(root["vulkan_export"]["ok"], true, "{root}");
}

#[test]
fn user_capture_check_and_dumps_work() {
    require_vm();
    let work = desktop_user();
    let out = run(dmacam_as_user().args([
        "check",
        "-d",
        VIVID,
        "--formats",
        "YUYV,NV12",
        "--frames",
        "5",
    ]));
    assert!(
        out.status.success(),
        "check as the user: {}\n{}",
        stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    // A raw dump of the camera: vivid's buffers, exported by the driver (EXPBUF needs no allocator).
    let raw = work.join("cam.raw");
    let out = run(dmacam_as_user()
        .args([
            "dump", "-d", VIVID, "--format", "YUYV", "--size", "640x360", "--frames", "3", "-o",
        ])
        .arg(&raw));
    assert!(out.status.success(), "dump as the user: {}", stderr(&out));
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), 3 * 640 * 360 * 2);
    // The pattern and the MJPEG decoder: no udmabuf, no heap: memfd, said and counted.
    let pat = work.join("pattern-#.ppm");
    let out = run(dmacam_as_user()
        .args([
            "dump", "-d", "pattern", "--size", "320x240", "--frames", "2", "-o",
        ])
        .arg(&pat));
    assert!(
        out.status.success(),
        "pattern dump as the user: {}",
        stderr(&out)
    );
    let (w, h, rgb) = dmacam_tests::picture::read_ppm(&first_written(&work, "pattern-"));
    for (bar, want) in BARS.iter().enumerate() {
        let x = (2 * bar + 1) * w / 16;
        let got = &rgb[(h / 4 * w + x) * 3..][..3];
        // The pattern is YUYV: its conversion back to R'G'B' rounds by a level or two.
        assert!(
            (0..3).all(|c| got[c].abs_diff(want[c]) <= 2),
            "pattern bar {bar} dumped by the user: {got:?}, want {want:?}"
        );
    }
    let mjpg = work.join("mjpg-#.ppm");
    let out = run(dmacam_as_user()
        .args([
            "dump", "-d", "pattern", "--format", "MJPG", "--size", "320x240", "--frames", "2", "-o",
        ])
        .arg(&mjpg));
    let err = stderr(&out);
    assert!(out.status.success(), "MJPEG dump as the user: {err}");
    assert!(
        err.contains("decoded on the CPU into an XR24 memfd buffer"),
        "the MJPEG source should say it falls back to memfd:\n{err}"
    );
    let (w, h, rgb) = dmacam_tests::picture::read_ppm(&first_written(&work, "mjpg-"));
    dmacam_tests::picture::check_decoded_bars("MJPEG decoded as the user", w, h, &rgb);
    // Allocators the user cannot open: one line each, naming the node, its owner and the remedy.
    let heap_rule = r#"add a udev rule, e.g. /etc/udev/rules.d/70-dmacam.rules: SUBSYSTEM=="dma_heap", KERNEL=="system", GROUP="video", MODE="0660""#;
    for (io, node, owner, remedy) in [
        (
            "udmabuf",
            "/dev/udmabuf",
            "(group kvm, mode 0660)",
            UDMABUF_REMEDY,
        ),
        (
            "dma-heap",
            "/dev/dma_heap/system",
            "(owner root, group root, mode 0600)",
            heap_rule,
        ),
    ] {
        let out = run(dmacam_as_user()
            .args(["dump", "-d", VIVID, "--io", io, "--frames", "1", "-o"])
            .arg(work.join(format!("{io}.raw"))));
        let what = format!("--io {io} as the user");
        let open = format!("cannot open {node}");
        fails_in_one_line(&out, &what, &[&open, owner, remedy, "or use --io mmap"]);
    }
}

/// vivid's 100 % colour bars (no OSD) at 640x360, mirrored by `dump --process` as `cmd`; returns the three
/// XRGB8888 frames and stderr.
fn dump_process(mut cmd: Command, out: &Path) -> (Vec<u8>, String) {
    let res = run(cmd
        .args(["dump", "-d", VIVID, "--format", "YUYV", "--size", "640x360"])
        .args(["--ctrl", "test_pattern=1", "--ctrl", "osd_text_mode=2"])
        .args(["--process", "mirror", "--frames", "3", "-o"])
        .arg(out));
    let err = stderr(&res);
    assert!(res.status.success(), "dump --process {cmd:?}: {err}");
    (std::fs::read(out).expect("dump output"), err)
}

#[test]
fn user_dump_process_reads_the_output_from_host_memory() {
    require_vm();
    let work = desktop_user();
    let (mine, err) = dump_process(dmacam_as_user(), &work.join("process.raw"));
    assert!(
        err.contains(
            "the render stage's output stays in host memory, read through its Vulkan mapping"
        ) && err.contains("/dev/udmabuf, which this user cannot open"),
        "dump --process should say where its output is and why:\n{err}"
    );
    let stride = dmacam_render::output_stride(640) as usize;
    assert_eq!(mine.len(), 3 * stride * 360, "three XRGB8888 frames");
    // vivid's 100 % bars, right to left (mirror), against the bars' R'G'B' (BT.601 limited Y'CbCr
    // converted back: within 3 levels).
    for (i, f) in mine.chunks(stride * 360).enumerate() {
        for y in [90usize, 180, 270] {
            for bar in 0..8 {
                let x = (2 * bar + 1) * 640 / 16;
                let p = &f[y * stride + x * 4..][..4];
                let got = [p[2], p[1], p[0]];
                let want = BARS[7 - bar];
                assert!(
                    (0..3).all(|c| got[c].abs_diff(want[c]) <= 3),
                    "frame {i} ({x},{y}): got {got:?}, want bar {} {want:?}",
                    7 - bar
                );
            }
        }
    }
    // Root's run exports the output as a dma-buf; the pixels are the same.
    let (roots, err) = dump_process(
        dmacam_tests::dmacam(),
        &results_dir().join("user-process-root.raw"),
    );
    assert!(!err.contains("host memory"), "root can export: {err}");
    let worst = mine
        .iter()
        .zip(&roots)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap_or(0);
    assert_eq!(mine.len(), roots.len());
    assert!(
        worst <= 1,
        "the user's frames differ from root's by up to {worst}"
    );
}

#[test]
fn user_view_works_or_says_what_is_lacking() {
    require_vm();
    desktop_user();
    let weston = user_weston("wayland-7");
    let camera = ["-d", VIVID, "--size", "640x360", "--fps", "10"];
    // Passthrough: vivid's own dma-bufs, which need no allocator and no export.
    let args: Vec<&str> = camera
        .iter()
        .copied()
        .chain(["--format", "YUYV", "--path", "passthrough"])
        .collect();
    let (_, s) = view_as_user(&weston, "passthrough", &args);
    assert_eq!(s["path"], "passthrough", "{s}");
    assert_eq!(s["cpu_bytes_copied_total"], 0, "{s}");
    // --path gpu: one line, with the cause and the remedy.
    let mut cmd = dmacam_as_user();
    weston.env(&mut cmd);
    let out = run(cmd
        .arg("view")
        .args(camera)
        .args(["--format", "YUYV", "--path", "gpu", "--frames", "3"]));
    fails_in_one_line(
        &out,
        "view --path gpu as the user",
        &[
            "--path gpu is impossible",
            "cannot export its output as a dma-buf",
            "lavapipe exports dma-bufs through /dev/udmabuf, which this user cannot open (group kvm, mode 0660)",
            UDMABUF_REMEDY,
            "try --path passthrough or --path shm",
        ],
    );
    // --path auto where the compositor does not take the camera's format (RGB3 is DRM BG24, which this
    // Weston does not take): root's auto takes the gpu path; the user's takes shm, counted, and says why.
    let args: Vec<&str> = camera
        .iter()
        .copied()
        .chain(["--format", "RGB3", "--path", "auto"])
        .collect();
    let (err, s) = view_as_user(&weston, "auto-rgb3", &args);
    assert!(
        err.contains("path shm")
            && err.contains("the GPU stage is unavailable")
            && err.contains("/dev/udmabuf, which this user cannot open"),
        "{err}"
    );
    assert_eq!(s["path"], "shm", "{s}");
    assert_eq!(s["cpu_bytes_copied_per_frame"], 640.0 * 360.0 * 3.0, "{s}");
    // The pattern and the MJPEG source: memfd buffers, which only wl_shm takes.
    for (tag, format) in [("pattern", "YUYV"), ("mjpeg", "MJPG")] {
        let args = ["-d", "pattern", "--format", format, "--size", "640x360"];
        let (err, s) = view_as_user(&weston, tag, &args);
        assert_eq!(s["path"], "shm", "{tag}: {s}\n{err}");
        assert!(
            err.contains("memfd"),
            "{tag} should say its buffers are memfds:\n{err}"
        );
    }
    assert!(weston.is_alive(), "{}", weston.state());
}
