//! `dmacam serve` on vivid with consumers in other processes: a viewer under Weston and two dumps at once get
//! the camera's very buffers (the same dma-buf inodes, exported by vivid, in every process), the dumps are
//! byte-identical and hold vivid's real colour bars, and a consumer killed with SIGKILL costs the others
//! nothing. The protocol's abuse cases (garbage, oversized messages, fds out of place, other uids, stalls,
//! 100 connect cycles) run on the host: `tests/host/share.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use dmacam_tests::{dmacam, require_vm, results_dir, wait_for_line, wait_with_deadline, Weston};

use super::view::{
    bar_mismatches, read_summary, reference_bars, screenshot, vivid_reference, VIVID,
};

const SOCKET: &str = "/tmp/dmacam-share-test.sock";
const FRAME: usize = 640 * 360 * 2;

fn sigint(child: &Child) {
    dmacam_tests::signal(child.id(), libc::SIGINT);
}

/// Per frame of a trace: sequence → the camera planes' (inode, exporter).
fn camera_buffers(trace: &Path) -> BTreeMap<u64, Vec<(u64, String)>> {
    let text =
        std::fs::read_to_string(trace).unwrap_or_else(|e| panic!("{}: {e}", trace.display()));
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("trace line");
            let planes = v["camera"]
                .as_array()
                .expect("camera planes")
                .iter()
                .map(|p| {
                    (
                        p["inode"].as_u64().unwrap(),
                        p["exp_name"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            (v["sequence"].as_u64().unwrap(), planes)
        })
        .collect()
}

fn dump(tag: &str, frames: u32) -> Child {
    let dir = results_dir();
    dmacam()
        .args([
            "dump",
            "--from",
            SOCKET,
            "--frames",
            &frames.to_string(),
            "-o",
        ])
        .arg(dir.join(format!("share-{tag}.raw")))
        .arg("--trace")
        .arg(dir.join(format!("share-{tag}.jsonl")))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dmacam dump --from")
}

/// The camera drops `serve` reported in its final line.
fn served_camera_drops(log: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("frames dropped by the camera"))
        .unwrap_or_else(|| panic!("no final report in serve's log:\n{log}"));
    let before = line.split("frames dropped by the camera").next().unwrap();
    before
        .rsplit(';')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn finished_ok(mut child: Child, what: &str, limit: Duration) {
    let status = wait_with_deadline(&mut child, limit);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{what}: {status}\n{err}");
}

#[test]
fn share_vivid_with_a_viewer_and_two_dumps() {
    require_vm();
    let reference = vivid_reference("YUYV");
    let bars = reference_bars("YUYV", &reference);
    let weston = Weston::start("wayland-5", &[]);
    let dir = results_dir();
    let log = dir.join("share-serve.log");
    let _ = std::fs::remove_file(SOCKET);
    let mut serve = dmacam()
        .args([
            "serve",
            "-d",
            VIVID,
            "--format",
            "YUYV",
            "--size",
            "640x360",
            "--fps",
            "5",
            "--ctrl",
            "osd_text_mode=2",
            "--socket",
            SOCKET,
            "--wait-clients",
            "3",
            "--max-hold",
            "30",
            "--buffers",
            "16",
            "--timeout",
            "120",
        ])
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn dmacam serve");
    wait_for_line(&mut serve, &log, "dmacam serve: ", Duration::from_secs(30));

    let json = dir.join("share-view.json");
    let view_trace = dir.join("share-view.jsonl");
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    let mut view = cmd
        .args([
            "view",
            "--from",
            SOCKET,
            "--duration",
            "240",
            "--stats",
            "--stats-json",
        ])
        .arg(&json)
        .arg("--trace")
        .arg(&view_trace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dmacam view --from");
    let a = dump("a", 20);
    let b = dump("b", 20);
    finished_ok(a, "dump a", Duration::from_secs(180));
    finished_ok(b, "dump b", Duration::from_secs(60));

    // The viewer shows vivid's bars.
    let start = Instant::now();
    let mut n = 0;
    loop {
        assert!(
            view.try_wait().unwrap().is_none(),
            "dmacam view --from exited early"
        );
        let shot = screenshot(&weston, &format!("share-{n}"), || {
            std::thread::sleep(Duration::from_millis(50))
        });
        n += 1;
        let bad = bar_mismatches(&shot, 12, |bar| bars[bar]);
        if bad.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the viewer's bars: {bad:?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }

    // A consumer killed mid-stream: the server, the viewer and a later consumer carry on.
    let mut victim = dump("victim", 100_000);
    std::thread::sleep(Duration::from_secs(3));
    victim.kill().unwrap();
    victim.wait().unwrap();
    finished_ok(
        dump("after", 3),
        "dump after the kill",
        Duration::from_secs(60),
    );
    assert!(
        view.try_wait().unwrap().is_none(),
        "the viewer died with the killed consumer"
    );

    sigint(&view);
    let status = wait_with_deadline(&mut view, Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut view.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "view: {status}\n{err}");
    sigint(&serve);
    let status = wait_with_deadline(&mut serve, Duration::from_secs(30));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "serve: {status}\n{log}");
    assert!(log.contains("5 consumers, 0 refused"), "{log}");

    // The dumps: the same 20 consecutive frames, byte for byte, and they are vivid's bars (the frame
    // v4l2-ctl captured with the same settings).
    let da = std::fs::read(dir.join("share-a.raw")).unwrap();
    let db = std::fs::read(dir.join("share-b.raw")).unwrap();
    assert_eq!(da.len(), 20 * FRAME);
    assert!(da == db, "the two dumps differ");
    assert!(
        da[..FRAME] == reference[..FRAME],
        "the served frame is not vivid's bars"
    );
    let ta = camera_buffers(&dir.join("share-a.jsonl"));
    let tb = camera_buffers(&dir.join("share-b.jsonl"));
    assert_eq!(ta, tb, "the dumps saw different buffers");
    let seqs: Vec<u64> = ta.keys().copied().collect();
    assert_eq!(seqs.len(), 20);
    // Consecutive, unless the camera itself dropped frames (consumers held all 16 buffers, e.g. on a loaded
    // host): the server counts those, so a gap the server did not report is a frame it lost.
    let gaps: u64 = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
    let camera_dropped = served_camera_drops(&log);
    assert!(
        gaps <= camera_dropped,
        "frames missed that the camera did not drop ({camera_dropped} dropped): {seqs:?}\n{log}"
    );
    // Every plane is vivid's own export (no copy in between), and the viewer got the same dma-bufs.
    let inodes: std::collections::BTreeSet<u64> = ta.values().flatten().map(|(i, _)| *i).collect();
    assert!(
        ta.values().flatten().all(|(_, e)| e == "videobuf2_vmalloc"),
        "{ta:?}"
    );
    let tv = camera_buffers(&view_trace);
    assert!(!tv.is_empty(), "the viewer traced no frame");
    for (seq, planes) in &tv {
        for (inode, exp) in planes {
            assert_eq!(exp, "videobuf2_vmalloc", "view frame {seq}");
            assert!(
                inodes.contains(inode),
                "view frame {seq}: inode {inode} is not one of the dumps' {inodes:?}"
            );
        }
    }
    let s = read_summary(&json);
    assert_eq!(s["cpu_bytes_copied_total"], 0, "{s}");
    assert!(s["frames_shown"].as_u64().unwrap() >= 3, "{s}");
}
