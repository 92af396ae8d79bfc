//! `dmacam serve --pipewire` on vivid: the camera as a PipeWire Video/Source node, consumed at once by
//! GStreamer's `pipewiresrc` and by a second dmacam (`dump -d pipewire:NODE`). Both get vivid's real colour
//! bars, byte for byte; dmacam's consumer traces the very dma-bufs the server holds (same inodes, vivid's
//! exporter: no copy anywhere); and a consumer killed mid-stream costs the other nothing.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dmacam_tests::{dmacam, kill_and_reap, require_vm, results_dir, wait_with_deadline, PipeWire};

use super::view::{vivid_reference, VIVID};

const NODE: &str = "dmacam-serve-test";
const FRAME: usize = 640 * 360 * 2;

/// Children killed (and reaped, bounded) when dropped: a failing test leaves nothing running.
struct Reap(Vec<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        for c in &mut self.0 {
            kill_and_reap(c);
        }
    }
}

fn log_file(name: &str) -> (std::fs::File, std::fs::File) {
    let f = std::fs::File::create(results_dir().join(name)).expect("log file");
    let g = f.try_clone().expect("clone log fd");
    (f, g)
}

/// `dmacam serve --pipewire` on vivid at 640x360 YUYV, 30 fps; waits for its node.
fn serve(pw: &PipeWire, log: &str) -> Child {
    let (out, err) = log_file(log);
    let mut child = pw
        .apply_env(dmacam().args([
            "serve",
            "-d",
            VIVID,
            "--format",
            "YUYV",
            "--size",
            "640x360",
            "--fps",
            "30",
            "--pipewire",
            "--pipewire-name",
            NODE,
        ]))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn dmacam serve --pipewire");
    let start = Instant::now();
    while !pw
        .nodes()
        .iter()
        .any(|(_, p)| p["node.name"] == NODE && p["media.class"] == "Video/Source")
    {
        if let Some(s) = child.try_wait().expect("try_wait") {
            panic!(
                "serve exited before its node appeared: {s}\n{}",
                read_log(log)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no node '{NODE}' within 30 s\n{}\n{}",
            read_log(log),
            pw.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // WirePlumber links pipewiresrc's `target-object` only once it has taken the node in.
    std::thread::sleep(Duration::from_secs(1));
    child
}

fn read_log(name: &str) -> String {
    std::fs::read_to_string(results_dir().join(name)).unwrap_or_default()
}

fn gst_consumer(pw: &PipeWire, out: &Path, buffers: Option<u32>, log: &str) -> Child {
    let (o, e) = log_file(log);
    let mut src = vec!["pipewiresrc".to_owned(), format!("target-object={NODE}")];
    if let Some(n) = buffers {
        src.push(format!("num-buffers={n}"));
    }
    pw.apply_env(Command::new("gst-launch-1.0").arg("-q").args(&src).args([
        "!",
        "video/x-raw,format=YUY2,width=640,height=360",
        "!",
        "filesink",
        &format!("location={}", out.display()),
    ]))
    .env("GST_DEBUG", "pipewiresrc:4,pipewirepool:5")
    .env("GST_DEBUG_NO_COLOR", "1")
    .stdin(Stdio::null())
    .stdout(o)
    .stderr(e)
    .spawn()
    .expect("spawn gst-launch-1.0 pipewiresrc")
}

/// [`gst_consumer`] once it receives frames: WirePlumber sometimes answers a fresh node's `target-object`
/// with "target not found" (it has not taken the node in yet); then the consumer is started again, up to 3
/// times.
fn gst_consumer_streaming(pw: &PipeWire, out: &Path, buffers: Option<u32>, log: &str) -> Child {
    for attempt in 1..=3 {
        let _ = std::fs::remove_file(out);
        let mut child = gst_consumer(pw, out, buffers, log);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if std::fs::metadata(out).map(|m| m.len()).unwrap_or(0) > 0 {
                return child;
            }
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        kill_and_reap(&mut child);
        eprintln!(
            "pipewiresrc attempt {attempt} got no frame:\n{}",
            read_log(log)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("pipewiresrc got no frame in 3 attempts");
}

fn dmacam_consumer(pw: &PipeWire, tag: &str, frames: u32) -> Child {
    let dir = results_dir();
    let (o, e) = log_file(&format!("pw-serve-{tag}.log"));
    pw.apply_env(dmacam().args([
        "dump",
        // -v: the line that says which memory PipeWire agreed.
        "-v",
        "-d",
        &format!("pipewire:{NODE}"),
        "--frames",
        &frames.to_string(),
        "-o",
    ]))
    .arg(dir.join(format!("pw-serve-{tag}.raw")))
    .arg("--trace")
    .arg(dir.join(format!("pw-serve-{tag}.jsonl")))
    .stdin(Stdio::null())
    .stdout(o)
    .stderr(e)
    .spawn()
    .expect("spawn dmacam dump -d pipewire:")
}

/// Every whole frame of `raw` equals `reference`; returns how many there are.
fn frames_equal(raw: &[u8], reference: &[u8], what: &str) -> usize {
    assert_eq!(reference.len(), FRAME, "reference size");
    assert!(
        !raw.is_empty() && raw.len() % FRAME == 0,
        "{what}: {} bytes",
        raw.len()
    );
    for (i, f) in raw.chunks(FRAME).enumerate() {
        let diff = f.iter().zip(reference).filter(|(a, b)| a != b).count();
        assert_eq!(
            diff, 0,
            "{what}: frame {i} differs from vivid's reference in {diff} bytes"
        );
    }
    raw.len() / FRAME
}

/// The dma-buf inodes (and exporters) a process holds open.
fn dmabufs_of(pid: u32) -> BTreeSet<(u64, String)> {
    let mut set = BTreeSet::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
    {
        let fd = e.file_name().to_string_lossy().into_owned();
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
        let Some(exp) = info.lines().find_map(|l| l.strip_prefix("exp_name:")) else {
            continue;
        };
        if let Ok(m) = std::fs::metadata(e.path()) {
            set.insert((m.ino(), exp.trim().to_owned()));
        }
    }
    set
}

/// The (inode, exporter) of each camera plane of each frame of a trace.
fn traced_buffers(trace: &Path) -> Vec<(u64, String)> {
    let text =
        std::fs::read_to_string(trace).unwrap_or_else(|e| panic!("{}: {e}", trace.display()));
    text.lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("trace line");
            v["camera"]
                .as_array()
                .expect("camera planes")
                .iter()
                .map(|p| {
                    (
                        p["inode"].as_u64().unwrap(),
                        p["exp_name"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Ctrl-C to the server, which must end cleanly within 20 s.
fn stop(server: &mut Child) {
    dmacam_tests::signal(server.id(), libc::SIGINT);
    let status = wait_with_deadline(server, Duration::from_secs(20));
    assert!(status.success(), "serve after SIGINT: {status}");
}

fn finish(child: &mut Child, what: &str, log: &str, limit: Duration) {
    let status = wait_with_deadline(child, limit);
    assert!(status.success(), "{what}: {status}\n{}", read_log(log));
}

#[test]
fn serve_pipewire_feeds_gstreamer_and_dmacam_the_cameras_own_buffers() {
    require_vm();
    let reference = vivid_reference("YUYV");
    let pw = PipeWire::start();
    let dir = results_dir();
    let mut kids = Reap(vec![serve(&pw, "pw-serve.log")]);
    let server_pid = kids.0[0].id();
    let gst_out = dir.join("pw-serve-gst.raw");
    let _ = std::fs::remove_file(&gst_out);
    kids.0.push(gst_consumer_streaming(
        &pw,
        &gst_out,
        Some(30),
        "pw-serve-gst.log",
    ));
    kids.0.push(dmacam_consumer(&pw, "dump", 30));
    // Both consumers at once; the server's dma-bufs while they run.
    std::thread::sleep(Duration::from_secs(2));
    let held = dmabufs_of(server_pid);
    finish(
        &mut kids.0[2],
        "dmacam dump -d pipewire:",
        "pw-serve-dump.log",
        Duration::from_secs(120),
    );
    finish(
        &mut kids.0[1],
        "gst-launch pipewiresrc",
        "pw-serve-gst.log",
        Duration::from_secs(120),
    );
    stop(&mut kids.0[0]);
    let serve_log = read_log("pw-serve.log");

    let n = frames_equal(
        &std::fs::read(dir.join("pw-serve-dump.raw")).expect("dump output"),
        &reference,
        "dmacam's dump",
    );
    assert_eq!(n, 30);
    let g = frames_equal(
        &std::fs::read(&gst_out).expect("gst output"),
        &reference,
        "pipewiresrc",
    );
    assert_eq!(g, 30);

    // dmacam's consumer traced the server's very buffers: vivid's exports, the same inodes.
    let traced = traced_buffers(&dir.join("pw-serve-dump.jsonl"));
    assert_eq!(traced.len(), 30, "one camera plane per frame");
    assert!(!held.is_empty(), "the server holds no dma-buf\n{serve_log}");
    for t in &traced {
        assert!(
            held.contains(t),
            "the consumer's buffer {t:?} is not one the server holds: {held:?}"
        );
        assert!(!t.1.contains("udmabuf"), "{t:?}: not vivid's export");
    }
    let dump_log = read_log("pw-serve-dump.log");
    assert!(
        dump_log.contains("of dma-buf"),
        "memory type said: {dump_log}"
    );
    // The server's report: every published frame was the camera's own buffer; no copy.
    let report = serve_log
        .lines()
        .find(|l| l.contains("frames published on PipeWire"))
        .unwrap_or_else(|| panic!("no final report:\n{serve_log}"));
    assert!(
        report.contains(" 0 copied by the CPU"),
        "a consumer was given copies: {report}\n{}",
        read_log("pw-serve-gst.log")
    );
    eprintln!("{report}");
}

#[test]
fn a_pipewire_consumer_killed_mid_stream_costs_the_other_nothing() {
    require_vm();
    let reference = vivid_reference("YUYV");
    let pw = PipeWire::start();
    let dir = results_dir();
    let mut kids = Reap(vec![serve(&pw, "pw-kill-serve.log")]);
    let gst_out = dir.join("pw-kill-gst.raw");
    kids.0.push(gst_consumer_streaming(
        &pw,
        &gst_out,
        None,
        "pw-kill-gst.log",
    ));
    kids.0.push(dmacam_consumer(&pw, "survivor", 90));
    std::thread::sleep(Duration::from_secs(2));
    // SIGKILL: no goodbye, its buffers are taken back by PipeWire.
    kill_and_reap(&mut kids.0[1]);
    finish(
        &mut kids.0[2],
        "the surviving dump",
        "pw-serve-survivor.log",
        Duration::from_secs(120),
    );
    stop(&mut kids.0[0]);
    let n = frames_equal(
        &std::fs::read(dir.join("pw-serve-survivor.raw")).expect("dump output"),
        &reference,
        "the surviving dump",
    );
    assert_eq!(n, 90);
    // Its frames kept coming after the kill: no stall, no error (checked by the exit), and the sequence
    // numbers are increasing.
    let text = std::fs::read_to_string(dir.join("pw-serve-survivor.jsonl")).unwrap();
    let seqs: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["sequence"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        std::fs::metadata(&gst_out).map(|m| m.len()).unwrap_or(0) > 0,
        "the killed consumer had frames"
    );
}
