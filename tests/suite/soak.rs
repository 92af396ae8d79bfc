//! Soak: long runs of `dump` and of `view` on the gpu path at vivid's highest rate, sampled every
//! `frames / 10` frames with dmacam's hidden `--health` log (open fds, resident memory, render-stage
//! imports). Asserted: the fds other than the render stage's imports never change, the imports only go up to
//! one per camera buffer (a buffer is imported the first time a frame from it is converted; the gpu path
//! converts the newest frame waiting, so the last buffer may come some frames in), resident memory grows by
//! at most a small bound after the first sample, `dump` writes every frame it took, and `view` submitted or
//! passed over every frame it took (frames the device dropped, its sequence gaps, are a separate figure). dmacam runs with transparent huge pages off
//! (`disable_transparent_huge_pages`, inherited from the test): with them on, khugepaged fills malloc's
//! partly used 2 MiB ranges at times of its own and the view's anonymous memory stepped up by ~18 MiB
//! (`anon_huge_kib` rising with it), which no leak was behind.
//!
//! CI runs a short count (1,000 frames of `dump`, 500 of `view`, whose software-GPU conversion takes tens
//! of milliseconds a frame under TCG); the full count is
//! `DMACAM_SOAK_FRAMES=20000 tests/vm/suite --timeout 14400 soak` (about 25 minutes under TCG, measured). At 20,000 frames the samples
//! are every 2,000 frames; set `DMACAM_SOAK_EVERY=1000` for every 1,000.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use dmacam_tests::{
    disable_transparent_huge_pages, dmacam, require_vm, results_dir, run_ok, wait_with_deadline,
    Weston,
};

/// Resident memory may grow this much after the first sample (KiB). Measured with THP off: the gpu-path
/// view's RSS and anonymous memory stayed the same to the KiB from frame 50 to 500. A leak of 10 KiB a frame
/// adds 4.5 MB over the 450 frames after the first sample of the CI count.
const RSS_SLACK_KIB: u64 = 2048;

/// `DMACAM_SOAK_FRAMES`, else the CI count `ci`.
fn frames(ci: u64) -> u64 {
    std::env::var("DMACAM_SOAK_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci)
}

fn every(frames: u64) -> u64 {
    std::env::var("DMACAM_SOAK_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or((frames / 10).max(50))
}

/// The health samples; asserts that the open fds other than the render stage's imports stay constant (within
/// one open in passing), that imports only ever go up to one per camera buffer (`max_imports`; the gpu path
/// imports a buffer the first time it converts a frame from it, and converting only the newest frame waiting
/// may reach the last buffer some frames in), and that RSS and anonymous memory stay bounded after the first
/// sample.
fn check_health(path: &Path, frames: u64, every: u64, max_imports: u64) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let samples: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("health line"))
        .collect();
    assert_eq!(samples.len() as u64, frames / every, "{text}");
    let first = &samples[0];
    let imports = |s: &serde_json::Value| s["imports"].as_u64().unwrap_or(0);
    let other_fds = |s: &serde_json::Value| s["fds"].as_u64().unwrap() - imports(s);
    // One fd open in passing at a sample is not a leak (a CI run had 42 at frame 50, then 41 at every sample
    // to frame 500); a leak of one fd every sample or more shows as growth past it.
    let base = samples.iter().map(other_fds).min().unwrap();
    for (s, prev) in samples.iter().zip(std::iter::once(first).chain(&samples)) {
        assert!(other_fds(s) <= base + 1, "the fd count grew:\n{text}");
        assert!(
            imports(s) >= imports(prev) && imports(s) <= max_imports,
            "Vulkan imports went beyond one per camera buffer ({max_imports}):\n{text}"
        );
        assert_eq!(s["memory_imports"], s["imports"], "{text}");
        for field in ["rss_kib", "anon_kib"] {
            let grew = s[field]
                .as_u64()
                .unwrap()
                .saturating_sub(first[field].as_u64().unwrap());
            assert!(grew <= RSS_SLACK_KIB, "{field} grew {grew} KiB:\n{text}");
        }
    }
    eprintln!(
        "{}: {} samples, bounded: {text}",
        path.display(),
        samples.len()
    );
    samples
}

/// Where `dmacam SUBCOMMAND`'s stderr goes: a file, not the VM's console (a terminal, where a long dump
/// would draw its progress bar).
fn stderr_log(sub: &str) -> PathBuf {
    results_dir().join(format!("soak-{sub}.log"))
}

/// What `dmacam SUBCOMMAND` printed on stderr, for failure messages.
fn printed(sub: &str) -> String {
    std::fs::read_to_string(stderr_log(sub)).unwrap_or_default()
}

/// `dmacam SUBCOMMAND` on vivid's 320x180 YUYV at 60 fps for `n` frames, sampled every `e` into `health`.
fn soak_command(sub: &str, n: u64, e: u64, health: &Path) -> Command {
    let log = File::create(stderr_log(sub)).expect("soak stderr log");
    let mut cmd = dmacam();
    cmd.args([
        sub,
        "-d",
        "/dev/video0",
        "--format",
        "YUYV",
        "--size",
        "320x180",
    ])
    .args(["--fps", "60", "--frames", &n.to_string(), "--health"])
    .arg(health)
    .args(["--health-every", &e.to_string()])
    .stdin(Stdio::null())
    .stderr(log);
    cmd
}

fn highest_rate() {
    run_ok(Command::new("v4l2-ctl").args(["-d", "/dev/video0", "-p", "60"]));
}

#[test]
fn soak_dump_keeps_fds_and_memory_constant() {
    require_vm();
    disable_transparent_huge_pages();
    highest_rate();
    let n = frames(1000);
    let e = every(n);
    let health = results_dir().join("soak-dump-health.jsonl");
    // The VM's own disk holds the CI count's 115 MB; the full count's 2.3 GB go to the host's disk (results).
    let bytes = n * 320 * 180 * 2;
    let out = if bytes > 512 << 20 {
        results_dir().join("soak.raw")
    } else {
        PathBuf::from("/tmp/soak.raw")
    };
    let mut child = soak_command("dump", n, e, &health)
        .arg("-o")
        .arg(&out)
        .spawn()
        .expect("spawn dmacam dump");
    let status = wait_with_deadline(&mut child, Duration::from_secs(120 + n / 10));
    assert!(
        status.success(),
        "dmacam dump: {status}\n{}",
        printed("dump")
    );
    let samples = check_health(&health, n, e, 0);
    assert!(
        samples[0]["imports"].is_null(),
        "dump without --process has no render stage"
    );
    // Every frame taken was written.
    assert_eq!(std::fs::metadata(&out).unwrap().len(), bytes);
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn soak_view_gpu_keeps_fds_imports_and_memory_constant() {
    require_vm();
    disable_transparent_huge_pages();
    highest_rate();
    let n = frames(500);
    let e = every(n);
    let weston = Weston::start("wayland-5", &[]);
    let health = results_dir().join("soak-view-health.jsonl");
    let stats = results_dir().join("soak-view.json");
    let mut cmd = soak_command("view", n, e, &health);
    weston.env(&mut cmd);
    let mut child = cmd
        .args(["--path", "gpu", "--stats-json"])
        .arg(&stats)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn dmacam view");
    let status = wait_with_deadline(&mut child, Duration::from_secs(180 + n / 5));
    assert!(
        status.success(),
        "dmacam view: {status}\n{}",
        printed("view")
    );
    // Issue 10's open note (anonymous memory flat ~250 frames, then +18 MiB by frame 500 while the
    // software-GPU Weston fell behind) was khugepaged, not the view: measured in the VM with THP on, anon
    // went 38,412 -> 50,364 -> 56,264 KiB at frames 50, 100, 150 while AnonHugePages went 2,048 -> 18,432 ->
    // 43,008 KiB, then both stayed flat to frame 500; with THP off anon stayed at 20,400 KiB from 50 to 500.
    // At most one import per camera buffer (6 requested; a driver may give a few more), each made once.
    let samples = check_health(&health, n, e, 8);
    let imports = samples.last().unwrap()["imports"]
        .as_u64()
        .expect("the gpu path imports");
    assert!(imports >= 1, "{imports} imports");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(s["path"], "gpu", "{s}");
    // Every frame taken is accounted for: submitted to the compositor, or passed over by dmacam (the render
    // stage converts the newest frame waiting; lavapipe under TCG is far slower than 60 fps). The device's own
    // drops are counted apart.
    let intake = &s["intake"];
    let taken = intake["frames_taken"].as_u64().unwrap();
    assert!(taken >= n, "{s}");
    assert_eq!(
        taken,
        s["frames_submitted"].as_u64().unwrap() + intake["passed_over_by_dmacam"].as_u64().unwrap(),
        "{s}"
    );
    assert!(intake["dropped_by_device"].is_u64(), "{s}");
    assert_eq!(s["cpu_bytes_copied_total"], 0, "{s}");
    assert!(s["frames_shown"].as_u64().unwrap() > 0, "{s}");
    eprintln!("soak view: {s}");
}
