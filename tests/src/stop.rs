//! A signal in the middle of `dmacam dump`, checked the same way on the host (the pattern) and in the VM
//! (vivid): the exit status is 128 + the signal, the file holds every frame the trace says was written and
//! parses cleanly (raw: whole frames; Y4M: the header and whole `FRAME` records), and no temporary is left.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{signal, wait_with_deadline};

/// Runs `dump` (its arguments `args`, a `--frames` too many to finish) writing `out` in `dir` with a trace,
/// sends `sig` once `at_least` frames are on disk, and checks the stop. Returns the frames the file holds.
pub fn dump_stopped_by(
    mut dmacam: Command,
    args: &[&str],
    dir: &Path,
    out: &str,
    frame_len: usize,
    sig: i32,
    at_least: usize,
) -> usize {
    let file = dir.join(out);
    let trace = dir.join(format!("{out}.jsonl"));
    let mut child = dmacam
        .arg("dump")
        .args(args)
        .args(["--frames", "100000", "-o"])
        .arg(&file)
        .arg("--trace")
        .arg(&trace)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dmacam dump");
    // Frames are written to a hidden temporary beside the file: wait until it holds enough.
    let start = Instant::now();
    while bytes_in(dir) < at_least * frame_len {
        assert!(
            child.try_wait().unwrap().is_none(),
            "dump ended before the signal"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "dump wrote fewer than {at_least} frames in 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(child.id(), sig);
    let status = wait_with_deadline(&mut child, Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(128 + sig), "{out}: {status}\n{err}");
    assert!(err.contains("stopped by SIG"), "{out}: {err}");

    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want = vec![out.to_owned(), format!("{out}.jsonl")];
    want.sort();
    assert_eq!(names, want, "a temporary was left behind");

    let traced = std::fs::read_to_string(&trace).unwrap().lines().count();
    let data = std::fs::read(&file).unwrap();
    let frames = if out.ends_with(".y4m") {
        y4m_frames(&data, frame_len)
    } else {
        assert_eq!(data.len() % frame_len, 0, "{out}: a partial frame");
        data.len() / frame_len
    };
    assert!(frames >= at_least, "{out}: {frames} frames");
    assert_eq!(frames, traced, "{out}: the file and the trace disagree");
    assert!(
        err.contains(&format!("after {frames} of 100000 frames")),
        "{out}: {err}"
    );
    frames
}

fn bytes_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len() as usize)
                .sum()
        })
        .unwrap_or(0)
}

/// The number of whole frames in a Y4M file; panics on anything else (a cut record, garbage).
fn y4m_frames(data: &[u8], frame_len: usize) -> usize {
    let nl = data.iter().position(|&b| b == b'\n').expect("Y4M header");
    assert!(data.starts_with(b"YUV4MPEG2 "), "not a Y4M file");
    let mut at = nl + 1;
    let mut n = 0;
    while at < data.len() {
        assert_eq!(&data[at..at + 6], b"FRAME\n", "FRAME record at byte {at}");
        at += 6 + frame_len;
        assert!(at <= data.len(), "a cut frame at the end");
        n += 1;
    }
    n
}
