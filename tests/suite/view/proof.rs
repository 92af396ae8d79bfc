//! What `view` claims about itself, checked: `list --pipeline`'s choices and reasons, latency figures of the
//! frame shown, the null output, and `check --zero-copy`.

use super::*;

/// Runs `dmacam list --pipeline --json` against `weston` and returns the JSON.
fn list_pipeline(weston: &Weston) -> serde_json::Value {
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    let out = dmacam_tests::run_ok(cmd.args(["list", "--pipeline", "-d", VIVID, "--json"]));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("list --pipeline --json: {e}: {out}"))
}

fn format_row<'a>(v: &'a serde_json::Value, fourcc: &str) -> &'a serde_json::Value {
    v["formats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["format"] == fourcc)
        .unwrap_or_else(|| panic!("no {fourcc} row: {v}"))
}

/// `list --pipeline` tells, per vivid format, the path `view` would take and why: under the GL Weston
/// (linux-dmabuf v3) YUYV passes through, RGB3 (no DRM format Weston takes) goes through the GPU; under
/// the pixman Weston (no linux-dmabuf) everything falls back to shm, and the reasons say so.
#[test]
fn view_list_pipeline_explains_each_format() {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    let v = list_pipeline(&weston);
    assert_eq!(v["wayland"]["linux_dmabuf_version"], 3, "{v}");
    assert!(v["vulkan"]["device"].as_str().is_some(), "{v}");
    let yuyv = format_row(&v, "YUYV");
    assert_eq!(yuyv["auto"]["path"], "passthrough", "{yuyv}");
    assert_eq!(yuyv["paths"]["gpu"]["possible"], true, "{yuyv}");
    let rgb3 = format_row(&v, "RGB3");
    assert_eq!(rgb3["auto"]["path"], "gpu", "{rgb3}");
    assert_eq!(rgb3["paths"]["passthrough"]["possible"], false, "{rgb3}");
    assert!(
        rgb3["auto"]["reason"]
            .as_str()
            .unwrap()
            .contains("render stage converts RGB3"),
        "{rgb3}"
    );

    // The first link: buffers dmacam allocated and the driver wrote into (V4L2 DMABUF memory) pass as the
    // camera's; the pattern, drawn by the CPU into real dma-bufs, is not passed off as a camera export.
    let (code, out, _) = zero_copy_of(
        &weston,
        &["-d", VIVID, "--io", "udmabuf"],
        "YUYV",
        "passthrough",
        "import",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("camera writes into an imported dma-buf (udmabuf)"),
        "{out}"
    );
    let (code, out, trace) = zero_copy_of(
        &weston,
        &["-d", "pattern"],
        "YUYV",
        "passthrough",
        "pattern",
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("zero-copy: FAIL") && out.contains("1 CPU write per frame (the pattern)"),
        "{out}"
    );
    assert!(trace.iter().all(|r| r["origin"] == "pattern"), "{trace:?}");
    drop(weston);

    let pixman = Weston::start("wayland-9", &["--renderer=pixman"]);
    let v = list_pipeline(&pixman);
    assert!(v["wayland"]["linux_dmabuf_version"].is_null(), "{v}");
    let yuyv = format_row(&v, "YUYV");
    assert_eq!(yuyv["auto"]["path"], "shm", "{yuyv}");
    assert!(
        yuyv["paths"]["passthrough"]["why_not"]
            .as_str()
            .unwrap()
            .contains("no zwp_linux_dmabuf_v1"),
        "{yuyv}"
    );
    drop(pixman);

    // Text output, and a bad node: one line, exit status 1.
    let out = dmacam_tests::run(dmacam().args(["list", "--pipeline", "-d", "/dev/video9"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("/dev/video9") && err.contains("dmacam list"),
        "{err}"
    );
}

/// Runs `view --path gpu` on vivid's YUYV 640x360 at `fps` under `weston` (with `DMACAM_DISPLAY_SYNC` set
/// to `sync`, if given) until Weston has presented 4 of its frames, with `--stats-json` and `--trace` named
/// after `name`; checks it succeeded and showed them, and returns the summary and the trace's lines.
fn gpu_view_traced(
    weston: &Weston,
    fps: &str,
    name: &str,
    sync: Option<&str>,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    let trace = results_dir().join(format!("{name}.jsonl"));
    let json = results_dir().join(format!("{name}.json"));
    let _ = std::fs::remove_file(&trace);
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    if let Some(a) = sync {
        cmd.env("DMACAM_DISPLAY_SYNC", a);
    }
    let out = dmacam_tests::run(
        cmd.args(["view", "-d", VIVID, "--format", "YUYV", "--size", "640x360"])
            .args(["--fps", fps, "--path", "gpu", "--stats-json"])
            .arg(&json)
            .arg("--trace")
            .arg(&trace)
            .args(dmacam_tests::until_shown(4)),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {err}");
    let s = read_summary(&json);
    weston.assert_shown(&s, 4, &format!("view --path gpu ({name})"));
    let records = std::fs::read_to_string(&trace)
        .expect("trace")
        .lines()
        .map(|l| serde_json::from_str(l).expect("trace line is JSON"))
        .collect();
    (s, records)
}

/// The gpu path shows the newest frame waiting, not the one it took first (a conversion under TCG is slower
/// than the camera): the latency it counts for a shown frame must be that frame's own, presentation minus its
/// own capture time. Frames passed over are in the trace too, without a display part.
#[test]
fn view_gpu_latency_is_the_shown_frames_own() {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    let (s, records) = gpu_view_traced(&weston, "30", "view-gpu-latency", None);
    let passed_over = records.iter().filter(|r| r["display"].is_null()).count();
    assert!(
        passed_over > 0,
        "no frame was passed over at 30 fps under TCG: this run proves nothing ({} records)",
        records.len()
    );
    let mut checked = 0;
    for r in records.iter().filter(|r| r["display"]["presented"] == true) {
        let Some(latency) = r["display"]["latency_ns"].as_u64() else {
            continue;
        };
        let own = r["display"]["t_present_ns"].as_u64().unwrap() as i128
            - r["t_capture_ns"]
                .as_u64()
                .expect("vivid stamps CLOCK_MONOTONIC") as i128;
        assert!(
            (latency as i128 - own).abs() < 5_000_000,
            "frame {}: the latency counted, {latency} ns, is not its own presentation minus its own capture \
             time, {own} ns: {r}",
            r["sequence"]
        );
        checked += 1;
    }
    assert!(checked >= 1, "no shown frame had a latency: {s}");
}

/// How the gpu path tells the display that a picture is written. By default the test-bed's lavapipe, whose
/// SYNC_FD export waits for the GPU, is seen to do so and the loop moves to its waiter thread (no frame but
/// the first waits in the export; finished pictures go over: `cpu-wait`, or `signalled` for that first one).
/// Asked with `DMACAM_DISPLAY_SYNC`, the picture goes at submission with the GPU's sync_file as the acquire
/// fence of an explicit-sync commit (Weston offers zwp_linux_explicit_synchronization_v1) or attached to the
/// output dma-buf (`implicit`), or only once the loop has seen the GPU done (`cpu-wait`). Each way the
/// pictures reach the screen and the trace says which way, per frame.
#[test]
fn view_gpu_hands_its_fence_to_the_display() {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    for (asked, words) in [
        (None, &["cpu-wait", "signalled"][..]),
        (Some("explicit"), &["explicit"][..]),
        (Some("implicit"), &["implicit-attached"][..]),
        (Some("cpu-wait"), &["cpu-wait"][..]),
    ] {
        let tag = asked.unwrap_or("default");
        let (_, records) = gpu_view_traced(&weston, "15", &format!("view-gpu-sync-{tag}"), asked);
        let shown: Vec<serde_json::Value> = records
            .into_iter()
            .filter(|r| r["display"]["presented"] == true)
            .collect();
        assert!(shown.len() >= 4, "{tag}: {shown:?}");
        for r in &shown {
            let g = &r["gpu"];
            let word = g["display_sync"].as_str().unwrap_or_default();
            assert!(words.contains(&word), "{tag}: {r}");
            // Handed over at submission (with the fence's state then), or once the GPU was done.
            let handed = ["explicit", "implicit-attached", "signalled"].contains(&word);
            assert_eq!(g["gpu_busy_at_handover"].is_boolean(), handed, "{tag}: {r}");
            assert!(
                r["t_gpu_submit_ns"].as_u64().unwrap()
                    <= r["display"]["t_submit_ns"].as_u64().unwrap(),
                "{tag}: {r}"
            );
            if asked.is_some_and(|a| a != "cpu-wait") {
                assert_eq!(g["completion"], "sync-file", "{tag}: {r}");
            }
        }
        if asked.is_none() {
            let waited = shown
                .iter()
                .filter(|r| r["gpu"]["completion"] == "sync-file")
                .count();
            assert!(
                waited <= 1,
                "the loop went on waiting in the fence export: {shown:?}"
            );
        }
    }
}

/// `view --output null`: the pipeline without a display (no compositor). On the gpu path every frame the
/// render stage converts is handed to the null sink and let go at once: frames shown = frames converted, the
/// rest were passed over, nothing is copied, and the trace follows each converted frame to the sink (kind null).
#[test]
fn view_null_output_shows_every_converted_frame() {
    require_vm();
    let trace = results_dir().join("view-null-gpu.jsonl");
    let json = results_dir().join("view-null-gpu.json");
    let _ = std::fs::remove_file(&trace);
    let out = dmacam_tests::run(
        dmacam()
            .args(["view", "-d", VIVID, "--format", "YUYV", "--size", "640x360"])
            .args([
                "--fps",
                "15",
                "--output",
                "null",
                "--process",
                "scale=320x180,mirror",
            ])
            .args(["--frames", "20", "--stats", "--stats-json"])
            .arg(&json)
            .arg("--trace")
            .arg(&trace),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("path gpu"), "{err}");
    let s = read_summary(&json);
    assert_eq!(s["path"], "null (gpu)", "{s}");
    assert_eq!(s["cpu_bytes_copied_total"], 0, "{s}");
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{s}"));
    let (taken, passed, shown) = (
        n(&s["intake"]["frames_taken"]),
        n(&s["intake"]["passed_over_by_dmacam"]),
        n(&s["frames_shown"]),
    );
    assert!(taken >= 20 && shown >= 1, "{s}");
    assert_eq!(shown + passed, taken, "{s}");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
        .expect("trace")
        .lines()
        .map(|l| serde_json::from_str(l).expect("trace line is JSON"))
        .collect();
    let converted: Vec<&serde_json::Value> =
        records.iter().filter(|r| !r["gpu"].is_null()).collect();
    assert_eq!(converted.len() as u64, shown, "{s}");
    for r in &converted {
        assert_eq!(r["display"]["kind"], "null", "{r}");
        assert_eq!(r["display"]["presented"], true, "{r}");
    }
    assert_eq!(records.len() as u64, taken, "{s}");
}

/// Runs `dmacam check --zero-copy` under `weston`; returns (exit code, stdout, the trace's lines).
fn zero_copy(
    weston: &Weston,
    fourcc: &str,
    path: &str,
    tag: &str,
) -> (Option<i32>, String, Vec<serde_json::Value>) {
    zero_copy_of(weston, &["-d", VIVID], fourcc, path, tag)
}

/// [`zero_copy`] of the source that `source` (capture options) names.
fn zero_copy_of(
    weston: &Weston,
    source: &[&str],
    fourcc: &str,
    path: &str,
    tag: &str,
) -> (Option<i32>, String, Vec<serde_json::Value>) {
    let trace = results_dir().join(format!("zero-copy-{tag}.jsonl"));
    let _ = std::fs::remove_file(&trace);
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    let out = dmacam_tests::run(
        cmd.args(["check", "--zero-copy"])
            .args(source)
            .args(["--formats", fourcc])
            .args([
                "--size", "640x360", "--fps", "15", "--frames", "8", "--path", path,
            ])
            .arg("--trace")
            .arg(&trace),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
        .unwrap_or_else(|e| panic!("{tag}: no trace ({e}): {stdout}{stderr}"))
        .lines()
        .map(|l| serde_json::from_str(l).expect("trace line is JSON"))
        .collect();
    (out.status.code(), stdout, lines)
}

/// `check --zero-copy` proves the chain of dma-buf identities frame by frame from the trace: it passes on
/// the passthrough and gpu paths (and the trace shows the same inodes at each link), and fails on shm.
#[test]
fn view_check_zero_copy_passes_on_dmabuf_paths_and_fails_on_shm() {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    let (code, out, trace) = zero_copy(&weston, "YUYV", "passthrough", "passthrough");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("zero-copy: PASS") && out.contains("camera export (videobuf2_vmalloc)"),
        "{out}"
    );
    let shown: Vec<_> = trace
        .iter()
        .filter(|r| r["display"]["presented"] == true)
        .collect();
    assert!(!shown.is_empty(), "{trace:?}");
    // The last link in the compositor's own words: how many of the shown frames it flagged zero_copy
    // (wp_presentation_feedback), as the trace recorded them.
    let flagged = shown
        .iter()
        .filter(|r| {
            r["display"]["presentation_flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == "zero_copy"))
        })
        .count();
    assert!(
        out.contains(&format!(
            "the compositor flagged {flagged} of {} zero_copy",
            shown.len()
        )),
        "{out}"
    );
    for r in &shown {
        assert_eq!(r["origin"], "camera-export", "{r}");
        assert_eq!(r["display"]["inodes"][0], r["camera"][0]["inode"], "{r}");
        assert_eq!(r["cpu_bytes_copied"], 0, "{r}");
        assert!(
            r["t_dequeue_ns"].as_u64().unwrap() <= r["display"]["t_present_ns"].as_u64().unwrap()
        );
    }

    let (code, out, trace) = zero_copy(&weston, "NV12", "gpu", "gpu");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Vulkan import") && out.contains("Vulkan export"),
        "{out}"
    );
    let shown: Vec<_> = trace
        .iter()
        .filter(|r| r["display"]["presented"] == true)
        .collect();
    assert!(!shown.is_empty(), "{trace:?}");
    let exported = shown
        .iter()
        .filter(|r| r["gpu"]["completion"] == "sync-file")
        .count();
    assert!(
        exported <= 1,
        "the loop went on waiting in the fence export: {trace:?}"
    );
    for r in &shown {
        let g = &r["gpu"];
        // The loop learnt of the conversion's end without waiting on the GPU itself: the test-bed's lavapipe
        // exports SYNC_FD fences only once they have signalled, waiting for the GPU in the export
        // (ARCHITECTURE.md), so after the first export shows that, a waiter thread waits instead and the
        // finished picture goes to the compositor.
        assert!(
            g["completion"] == "waiter-thread"
                || (g["completion"] == "sync-file" && g["display_sync"] == "signalled"),
            "{r}"
        );
        assert!(
            r["t_gpu_submit_ns"].as_u64().unwrap() <= g["t_done_ns"].as_u64().unwrap(),
            "{r}"
        );
        assert_eq!(g["import_inodes"][0], r["camera"][0]["inode"], "{r}");
        assert_eq!(r["display"]["inodes"][0], g["output"]["inode"], "{r}");
        assert_ne!(g["output"]["inode"], r["camera"][0]["inode"], "{r}");
    }
    // Each line carries the process's CPU time at dequeue (what tests/vm/bench's steady state is computed
    // from): it is set, and it only grows from one frame to the next, the GPU's work included.
    let mut by_dequeue: Vec<(u64, u64)> = trace
        .iter()
        .map(|r| {
            (
                r["t_dequeue_ns"].as_u64().unwrap(),
                r["cpu_dequeue_ns"].as_u64().unwrap(),
            )
        })
        .collect();
    by_dequeue.sort();
    assert!(
        by_dequeue.len() >= 2 && by_dequeue[0].1 > 0,
        "{by_dequeue:?}"
    );
    assert!(
        by_dequeue.windows(2).all(|w| w[0].1 <= w[1].1),
        "{by_dequeue:?}"
    );
    assert!(
        by_dequeue.last().unwrap().1 > by_dequeue[0].1,
        "{by_dequeue:?}"
    );
    drop(weston);

    let pixman = Weston::start("wayland-9", &["--renderer=pixman"]);
    let (code, out, trace) = zero_copy(&pixman, "YUYV", "auto", "shm");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("zero-copy: FAIL") && out.contains("CPU copied"),
        "{out}"
    );
    assert!(trace
        .iter()
        .any(|r| r["cpu_bytes_copied"].as_u64().unwrap() > 0));
}
