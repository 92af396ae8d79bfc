//! PipeWire in the test-bed, proved with PipeWire peers alone (GStreamer's pipewiresrc and pipewiresink): the
//! daemon and WirePlumber come up, vivid's /dev/video0 is a v4l2 Video/Source node that streams real frames,
//! and a GStreamer producer publishes a Video/Source node a consumer reads. These are the two shapes dmacam's
//! own PipeWire producer and consumer will be tested against. dmacam's own PipeWire input (`-d pipewire:NODE`)
//! is tested on vivid's node in `input.rs` (dump, view, check) and `failures.rs` (bad input, a node or
//! daemon that goes away mid-stream).
//!
//! One fact bites (PipeWire 1.4.2 and WirePlumber 0.5.8 of Debian trixie, upstream pipewire#5431): vivid has
//! an integer array control ("S32 2 Element Array") that the SPA v4l2 plugin registers as a scalar property;
//! reading it with VIDIOC_G_CTRL fails with EINVAL, so enumerating the node's `Props` fails as a whole,
//! WirePlumber's activation of the node is aborted (silently, at its default log level) and the node never
//! gets a session item. The node is there (`pw-dump`, `pw-cli`), but WirePlumber links nothing to it: a
//! stream that targets it (`target-object=NAME`, `=SERIAL` or `path=ID`) fails with "target not found". So a
//! consumer of vivid's node connects with autoconnect off and the test links it with `pw-link`, which needs
//! no session manager. Nodes of ordinary clients (pipewiresink) are linked by WirePlumber as usual.

mod failures;
mod input;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dmacam_tests::{
    kill_and_reap, require_vm, results_dir, run_with_deadline, wait_with_deadline, PipeWire,
};

/// A child process killed (and reaped, bounded) when dropped, so a failing test leaves no pipeline behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill_and_reap(&mut self.0);
    }
}

/// `gst-launch-1.0 -q PIPELINE...` in PipeWire's environment, its output (and GStreamer's debug log, with
/// the pipewire buffer pool at level 5, which names each buffer's memory type) in `log`.
fn gst_launch(pw: &PipeWire, pipeline: &[&str], log: &Path) -> KillOnDrop {
    let out = std::fs::File::create(log).expect("create the GStreamer log");
    let err = out.try_clone().expect("clone the log's fd");
    let child = pw
        .apply_env(Command::new("gst-launch-1.0").arg("-q").args(pipeline))
        .env("GST_DEBUG", "pipewirepool:5")
        .env("GST_DEBUG_NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("run gst-launch-1.0");
    KillOnDrop(child)
}

/// Waits until PipeWire has a node named `name` of media class `class`; returns its id. Fails with the
/// pipeline's log if `child` exits first or nothing appears within 60 s.
fn wait_for_node(
    pw: &PipeWire,
    child: &mut KillOnDrop,
    name: &str,
    class: &str,
    log: &Path,
) -> u32 {
    let start = Instant::now();
    loop {
        let found = pw
            .nodes()
            .into_iter()
            .find(|(_, props)| props["node.name"] == name && props["media.class"] == class);
        if let Some((id, _)) = found {
            return id;
        }
        let exited = child.0.try_wait().expect("try_wait");
        assert!(
            exited.is_none() && start.elapsed() < Duration::from_secs(60),
            "no {class} node '{name}' appeared ({}); the pipeline's log:\n{}\n{}",
            exited.map_or("60 s passed".to_owned(), |s| format!(
                "the pipeline exited: {s}"
            )),
            std::fs::read_to_string(log).unwrap_or_default(),
            pw.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The memory types the pipewire buffer pool wrapped (`wrap data (DmaBuf 3) ...` lines of its debug log),
/// e.g. `["DmaBuf"]`.
fn memory_types(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut types: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once("wrap data (")?.1.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    types.sort();
    types.dedup();
    types
}

/// Checks that `file` holds exactly `frames` frames of `frame_size` bytes, each with real picture content
/// (many distinct byte values, not one constant fill); returns how many frames differ from the one before.
fn assert_real_frames(file: &Path, frames: usize, frame_size: usize, what: &str) -> usize {
    let data = std::fs::read(file).unwrap_or_else(|e| panic!("{what}: {}: {e}", file.display()));
    assert_eq!(
        data.len(),
        frames * frame_size,
        "{what}: {} holds {} bytes, not {frames} frames of {frame_size}",
        file.display(),
        data.len()
    );
    let mut changed = 0;
    for (i, frame) in data.chunks(frame_size).enumerate() {
        let mut seen = [false; 256];
        frame.iter().for_each(|&b| seen[b as usize] = true);
        let distinct = seen.iter().filter(|&&s| s).count();
        assert!(
            distinct >= 16,
            "{what}: frame {i} has only {distinct} distinct byte values (a constant fill, not a picture)"
        );
        if i > 0 && frame != &data[(i - 1) * frame_size..i * frame_size] {
            changed += 1;
        }
    }
    changed
}

fn result_path(name: &str) -> PathBuf {
    results_dir().join(name)
}

#[test]
fn pipewire_v4l2_node_for_vivid_streams_to_gstreamer() {
    require_vm();
    let pw = PipeWire::start();
    let (id, name) = pw.node_for("/dev/video0").unwrap_or_else(|| {
        panic!(
            "no v4l2 node of /dev/video0: {:?}\n{}",
            pw.nodes(),
            pw.logs()
        )
    });
    let props = pw
        .nodes()
        .into_iter()
        .find_map(|(i, p)| (i == id).then_some(p))
        .expect("the node is listed");
    eprintln!("vivid's /dev/video0 is PipeWire node {id} '{name}': {props}");
    assert_eq!(props["object.path"], "v4l2:/dev/video0", "{props}");
    assert_eq!(props["media.class"], "Video/Source", "{props}");

    // The consumer: autoconnect off (WirePlumber cannot link vivid's node, see the module's comment), linked by
    // hand. 640x360 YUYV at 30 fps: without a rate the format fixates on the node's first, 1 fps.
    const FRAMES: usize = 10;
    const FRAME_SIZE: usize = 640 * 360 * 2;
    let file = result_path("pipewire-vivid.yuv");
    let log = result_path("pipewire-vivid-gst.log");
    let sink = "dmacam-test-vivid-sink";
    let stream_props = format!("props,node.name={sink}");
    let location = format!("location={}", file.display());
    let frames = format!("num-buffers={FRAMES}");
    let mut gst = gst_launch(
        &pw,
        &[
            "pipewiresrc",
            "autoconnect=false",
            "client-name=dmacam-test",
            &format!("stream-properties={stream_props}"),
            &frames,
            "!",
            "video/x-raw,format=YUY2,width=640,height=360,framerate=30/1",
            "!",
            "filesink",
            &location,
        ],
        &log,
    );
    wait_for_node(&pw, &mut gst, sink, "Stream/Input/Video", &log);
    let link = run_with_deadline(
        pw.apply_env(Command::new("pw-link").args([name.as_str(), sink])),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|hang| panic!("{hang}"));
    assert!(
        link.status.success(),
        "pw-link {name} {sink}: {}\n{}",
        String::from_utf8_lossy(&link.stderr),
        pw.logs()
    );
    let status = wait_with_deadline(&mut gst.0, Duration::from_secs(120));
    assert!(
        status.success(),
        "the pipewiresrc pipeline failed ({status}):\n{}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        pw.logs()
    );
    let changed = assert_real_frames(&file, FRAMES, FRAME_SIZE, "vivid through PipeWire");
    let types = memory_types(&log);
    eprintln!(
        "{FRAMES} frames of 640x360 YUYV from node {id}, {changed} differing from the one before; memory \
         negotiated: {types:?}"
    );
    assert!(
        !types.is_empty(),
        "the buffer pool named no memory type:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn gstreamer_pipewiresink_publishes_a_node() {
    require_vm();
    let pw = PipeWire::start();
    let source = "dmacam-test-gst-src";
    let producer_log = result_path("pipewire-producer-gst.log");
    let stream_props =
        format!("stream-properties=props,node.name={source},media.class=Video/Source");
    let mut producer = gst_launch(
        &pw,
        &[
            "videotestsrc",
            "is-live=true",
            "!",
            "video/x-raw,format=YUY2,width=320,height=240,framerate=30/1",
            "!",
            "pipewiresink",
            "client-name=dmacam-test-producer",
            &stream_props,
        ],
        &producer_log,
    );
    let id = wait_for_node(&pw, &mut producer, source, "Video/Source", &producer_log);
    eprintln!("GStreamer's pipewiresink is PipeWire node {id} '{source}' (Video/Source)");

    // A consumer finds it by name and WirePlumber links the two (as it will dmacam's consumer to a producer).
    const FRAMES: usize = 10;
    const FRAME_SIZE: usize = 320 * 240 * 2;
    let file = result_path("pipewire-producer.yuv");
    let log = result_path("pipewire-consumer-gst.log");
    let location = format!("location={}", file.display());
    let frames = format!("num-buffers={FRAMES}");
    let target = format!("target-object={source}");
    let mut consumer = gst_launch(
        &pw,
        &[
            "pipewiresrc",
            &target,
            &frames,
            "!",
            "video/x-raw,format=YUY2,width=320,height=240",
            "!",
            "filesink",
            &location,
        ],
        &log,
    );
    let status = wait_with_deadline(&mut consumer.0, Duration::from_secs(120));
    assert!(
        status.success(),
        "the consumer of '{source}' failed ({status}):\n{}\nthe producer:\n{}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(&producer_log).unwrap_or_default(),
        pw.logs()
    );
    let changed = assert_real_frames(&file, FRAMES, FRAME_SIZE, "videotestsrc through PipeWire");
    eprintln!(
        "{FRAMES} frames of 320x240 YUYV from node {id}, {changed} differing from the one before; memory \
         negotiated: {:?} (producer's pool: {:?})",
        memory_types(&log),
        memory_types(&producer_log)
    );
}

/// vivid's single-planar capture node, which the test-bed's PipeWire makes a v4l2 Video/Source node of.
const SP: &str = "/dev/video0";

/// The id and `node.name` of vivid's PipeWire node; panics with the daemons' logs if there is none.
fn vivid_node(pw: &PipeWire) -> (u32, String) {
    pw.node_for(SP)
        .unwrap_or_else(|| panic!("no v4l2 node of {SP}: {:?}\n{}", pw.nodes(), pw.logs()))
}

/// `dmacam ARGS...` in PipeWire's environment.
fn dmacam_in(pw: &PipeWire) -> Command {
    let mut cmd = dmacam_tests::dmacam();
    pw.apply_env(&mut cmd);
    cmd
}

/// The lines of `stderr` that are not log records (`RUST_LOG=...=info` adds those, coloured): what a user
/// sees.
fn message_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(strip_ansi)
        .filter(|l| !l.trim().is_empty() && !l.contains(" INFO ") && !l.contains(" DEBUG "))
        .collect()
}

/// `line` without its ANSI escape sequences (ESC [ ... letter).
fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
