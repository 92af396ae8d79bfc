//! The built-in pattern source on the host itself (no VM, no V4L2, no udmabuf: memfd buffers): the built
//! `dmacam` binary dumps and checks the pattern, and the Y4M it writes is parsed and its pixels compared with
//! BT.601 values computed here from the pattern's specification; ffprobe reads the range its header gives.

use std::path::Path;
use std::process::{Command, Output};

use dmacam_tests::picture::{check_decoded_bars, corrupt_skipped, read_ppm, BARS};

/// The `dmacam` binary, built (or found up to date) in this target directory.
fn dmacam() -> Command {
    dmacam_tests::built_dmacam()
}

fn scratch(name: &str) -> dmacam_tests::host::Scratch {
    dmacam_tests::host::scratch("pattern", name)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run dmacam")
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A parsed Y4M file: width, height, chroma tag, frames as planar bytes.
struct Y4m {
    w: usize,
    h: usize,
    chroma: String,
    frames: Vec<Vec<u8>>,
}

fn parse_y4m(path: &Path) -> Y4m {
    let data = std::fs::read(path).unwrap();
    let nl = data.iter().position(|&b| b == b'\n').expect("header line");
    let header = std::str::from_utf8(&data[..nl]).unwrap();
    let mut words = header.split(' ');
    assert_eq!(words.next(), Some("YUV4MPEG2"), "{header}");
    let (mut w, mut h, mut chroma, mut range) = (0, 0, String::from("420jpeg"), false);
    for word in words {
        match word.split_at(1) {
            ("W", v) => w = v.parse().unwrap(),
            ("H", v) => h = v.parse().unwrap(),
            ("C", v) => chroma = v.to_owned(),
            ("F", v) => assert_eq!(v, "30:1", "frame rate in {header}"),
            // The pattern is drawn in BT.601 limited range, and the header must say so.
            ("X", v) if v.starts_with("COLORRANGE=") => {
                assert_eq!(v, "COLORRANGE=LIMITED", "range in {header}");
                range = true;
            }
            _ => {}
        }
    }
    assert!(range, "no XCOLORRANGE in {header}");
    let (cw, ch) = match chroma.as_str() {
        "422" => (w / 2, h),
        "420mpeg2" | "420jpeg" | "420" => (w / 2, h / 2),
        c => panic!("unexpected chroma {c}"),
    };
    let size = w * h + 2 * cw * ch;
    let mut frames = Vec::new();
    let mut at = nl + 1;
    while at < data.len() {
        assert_eq!(&data[at..at + 6], b"FRAME\n", "FRAME record at byte {at}");
        at += 6;
        assert!(at + size <= data.len(), "truncated frame");
        frames.push(data[at..at + size].to_vec());
        at += size;
    }
    Y4m {
        w,
        h,
        chroma,
        frames,
    }
}

/// BT.601 limited range, exact.
fn bt601(rgb: [u8; 3]) -> [f64; 3] {
    let [r, g, b] = rgb.map(|c| f64::from(c) / 255.0);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    [
        16.0 + 219.0 * y,
        128.0 + 224.0 * (b - y) / 1.772,
        128.0 + 224.0 * (r - y) / 1.402,
    ]
}

impl Y4m {
    fn yuv(&self, f: usize, x: usize, y: usize) -> [u8; 3] {
        let d = &self.frames[f];
        let (cw, ch, cy) = if self.chroma == "422" {
            (self.w / 2, self.h, y)
        } else {
            (self.w / 2, self.h / 2, y / 2)
        };
        let c = self.w * self.h;
        [
            d[y * self.w + x],
            d[c + cy * cw + x / 2],
            d[c + cw * ch + cy * cw + x / 2],
        ]
    }
}

fn close(got: [u8; 3], want: [f64; 3], what: &str) {
    for c in 0..3 {
        assert!(
            (f64::from(got[c]) - want[c]).abs() <= 1.0,
            "{what}: got {got:?}, want {want:?}"
        );
    }
}

/// Ctrl-C (SIGINT) and SIGTERM in the middle of a dump: complete files, the trace agrees, nothing left over.
#[test]
fn a_signal_mid_dump_leaves_every_written_frame_in_a_complete_file() {
    for (out, sig) in [("stop.y4m", libc::SIGINT), ("stop.raw", libc::SIGTERM)] {
        let dir = scratch(&format!("signal-{sig}"));
        let frames = dmacam_tests::stop::dump_stopped_by(
            dmacam(),
            &["-d", "pattern"],
            &dir,
            out,
            640 * 360 * 2,
            sig,
            3,
        );
        assert!(frames < 100_000);
    }
}

#[test]
fn dump_of_the_pattern_is_a_valid_y4m_with_the_bars_and_a_moving_marker() {
    let dir = scratch("dump");
    let (out_file, trace) = (dir.join("out.y4m"), dir.join("t.jsonl"));
    let out = run(dmacam()
        .args(["dump", "-d", "pattern", "--frames", "30", "-o"])
        .arg(&out_file)
        .arg("--trace")
        .arg(&trace));
    assert_ok(&out);
    // The file writer's CPU work is counted and said: 640x360 YUYV is 460800 bytes read per frame, repacked
    // to planar (460800) and staged through the file buffer with its FRAME header (460806).
    let err = String::from_utf8_lossy(&out.stderr);
    // The pattern's buffers are memfds where the kernel offers neither udmabuf nor a heap (as on CI's host),
    // and the line says so.
    let buffers = if std::path::Path::new("/dev/udmabuf").exists()
        || std::path::Path::new("/dev/dma_heap/system").exists()
    {
        "the dma-bufs"
    } else {
        "the pattern's memfds"
    };
    assert!(
        err.contains(&format!(
            "dmacam dump: 30 frames written to {}; the CPU read 460800 bytes per frame out of {buffers} \
             and wrote 921606 (Y4M repack, file buffer)",
            out_file.display()
        )),
        "{err}"
    );
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 30);
    for r in &records {
        assert_eq!(r["origin"], "pattern", "{r}");
        assert_eq!(r["cpu_bytes_read"], 460_800, "{r}");
        assert_eq!(r["file_bytes"], 460_806, "{r}");
        // The pattern's own CPU write into the frame (460800), then the writer's (921606).
        assert_eq!(r["cpu_bytes_copied"], 460_800 + 921_606, "{r}");
    }
    let y4m = parse_y4m(&out_file);
    assert_eq!((y4m.w, y4m.h, y4m.chroma.as_str()), (640, 360, "422"));
    assert_eq!(y4m.frames.len(), 30);
    // The bars fill the top seven eighths: 80 columns each.
    let band_top = 360 - 44;
    let mut positions = Vec::new();
    for f in 0..30 {
        for (i, rgb) in BARS.iter().enumerate() {
            for y in [0, 100, band_top - 1] {
                for x in [i * 80, i * 80 + 40, i * 80 + 78] {
                    close(
                        y4m.yuv(f, x, y),
                        bt601(*rgb),
                        &format!("frame {f} bar {i} at ({x},{y})"),
                    );
                }
            }
        }
        // The band: black but for a 44x44 white square at a multiple of 10 pixels.
        let white: Vec<usize> = (0..640)
            .filter(|&x| y4m.yuv(f, x, band_top + 20)[0] > 200)
            .collect();
        assert_eq!(white.len(), 44, "frame {f}: marker width");
        let x0 = white[0];
        assert_eq!(white[43], x0 + 43, "frame {f}: one square");
        assert_eq!(x0 % 10, 0, "frame {f}: marker at {x0}");
        for y in band_top..360 {
            close(y4m.yuv(f, x0 + 2, y), bt601([255; 3]), "marker");
            if x0 >= 2 {
                close(
                    y4m.yuv(f, x0 - 2, y),
                    bt601([0; 3]),
                    "band left of the marker",
                );
            }
        }
        positions.push(x0 / 10);
    }
    // It moves every frame (by one step, or more if a frame period was dropped), wrapping after 60.
    for p in positions.windows(2) {
        let advance = (p[1] + 60 - p[0]) % 60;
        assert!((1..30).contains(&advance), "marker positions {positions:?}");
    }
}

#[test]
fn gradient_as_nv12_at_a_chosen_size() {
    let dir = scratch("gradient");
    let out_file = dir.join("g.y4m");
    let out = run(dmacam()
        .args([
            "dump",
            "-d",
            "pattern:gradient",
            "--format",
            "NV12",
            "--size",
            "320x240",
            "--frames",
            "3",
            "-o",
        ])
        .arg(&out_file));
    assert_ok(&out);
    let y4m = parse_y4m(&out_file);
    assert_eq!((y4m.w, y4m.h, y4m.chroma.as_str()), (320, 240, "420mpeg2"));
    assert_eq!(y4m.frames.len(), 3);
    // R' = x ramp, G' = y ramp over the 210 pattern rows, B' = 255 - R'; chroma from the block's top left.
    let top = 240 - 30;
    for (x, y) in [(0, 0), (100, 50), (318, 208), (160, 120), (2, 200)] {
        let r = (x * 255 / 319) as u8;
        let g = (y * 255 / (top - 1)) as u8;
        close(
            y4m.yuv(1, x, y),
            bt601([r, g, 255 - r]),
            &format!("gradient at ({x},{y})"),
        );
    }
}

/// Ctrl-C in the middle of `check`: the case cut short is not reported as a result, the report says how many
/// formats were not tested, the JSON report is still written, and the exit status is 130.
#[test]
fn check_stopped_by_sigint_says_what_was_not_tested() {
    let dir = scratch("check-sigint");
    let json = dir.join("r.json");
    let mut child = dmacam()
        .args([
            "check",
            "-d",
            "pattern",
            "--frames",
            "100000",
            "--formats",
            "YUYV,NV12,XR24",
            "--json",
        ])
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    dmacam_tests::signal(child.id(), libc::SIGINT);
    let status = dmacam_tests::wait_with_deadline(&mut child, std::time::Duration::from_secs(30));
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains("stopped by SIGINT; 3 formats were not tested"),
        "{err}"
    );
    let report = std::fs::read_to_string(&json).unwrap();
    assert!(report.contains("\"passed\": 0"), "{report}");
}

#[test]
fn check_of_the_pattern_passes_and_a_bad_name_is_one_clear_line() {
    let dir = scratch("check");
    let json = dir.join("r.json");
    let out = run(dmacam()
        .args([
            "check",
            "-d",
            "pattern:noise",
            "--frames",
            "5",
            "--formats",
            "YUYV,NV12,XR24",
            "--json",
        ])
        .arg(&json));
    assert_ok(&out);
    let report = std::fs::read_to_string(&json).unwrap();
    assert!(report.contains("\"passed\": 3"), "{report}");
    assert!(report.contains("\"pixels_checked\": true"), "{report}");

    for args in [
        &["dump", "-d", "pattern:nonsense", "-o"][..],
        &["dump", "-d", "pattern", "--format", "GREY", "-o"][..],
    ] {
        let bad = dir.join("bad.y4m");
        let out = run(dmacam().args(args).arg(&bad));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains("pattern"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "r.json")
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
}

#[test]
fn mjpeg_pattern_is_decoded_within_tolerance_and_truncated_frames_are_skipped() {
    let dir = scratch("mjpeg");
    let out = run(dmacam()
        .args([
            "dump", "-d", "pattern", "--format", "MJPG", "--size", "320x240",
        ])
        .args(["--frames", "4", "-o"])
        .arg(dir.join("f-#.ppm")));
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    // The decode is the one CPU copy on this path: said at start, counted at the end.
    assert!(
        err.contains("MJPG 320x240: each frame is decoded on the CPU")
            && err.contains("307200 bytes written per frame, counted as copied"),
        "{err}"
    );
    assert!(
        err.contains("4 frames decoded, 0 corrupt frames skipped"),
        "{err}"
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    let mut xs = Vec::new();
    for f in &files {
        let (w, h, rgb) = read_ppm(f);
        assert_eq!((w, h), (320, 240));
        xs.push(check_decoded_bars(&f.display().to_string(), w, h, &rgb));
    }
    // The marker moves (4 px a frame period at this width): no two frames show it in the same place.
    xs.dedup();
    assert_eq!(xs.len(), 4, "the marker did not move: {xs:?}");

    // Every third frame cut short: skipped and counted, and the dump still has every frame asked for.
    let raw = dir.join("t.raw");
    let out = run(dmacam()
        .args([
            "dump", "-d", "pattern", "--format", "MJPG", "--size", "64x48",
        ])
        .args(["--pattern-truncate-every", "3", "--frames", "9", "-o"])
        .arg(&raw));
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("9 frames decoded"), "{err}");
    let skipped = corrupt_skipped(&err);
    // Nine whole frames take thirteen delivered: the 3rd, 6th, 9th and 12th were cut short.
    assert_eq!(skipped, 4, "{err}");
    assert!(err.contains("no end-of-image marker (truncated)"), "{err}");
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), 9 * 64 * 48 * 4);
}

/// `view --output null`: the pipeline without a display. Every frame taken is handed to the sink and let go
/// at once (shown), nothing is copied, and the trace says where each frame went (kind null).
#[test]
fn view_to_the_null_output_shows_every_frame_without_a_copy() {
    let dir = scratch("view-null");
    let (stats, trace) = (dir.join("f.json"), dir.join("t.jsonl"));
    let out = run(dmacam()
        .args([
            "view", "-d", "pattern", "--output", "null", "--frames", "30",
        ])
        .arg("--stats-json")
        .arg(&stats)
        .arg("--trace")
        .arg(&trace));
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dmacam view: path passthrough"), "{err}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(s["path"], "null", "{s}");
    assert_eq!(s["intake"]["frames_taken"], 30, "{s}");
    assert_eq!(s["frames_shown"], 30, "{s}");
    assert_eq!(s["intake"]["passed_over_by_dmacam"], 0, "{s}");
    dmacam_tests::assert_only_the_pattern_wrote(&s);
    assert_eq!(s["source_write"]["frames"], 30, "{s}");
    let lines = std::fs::read_to_string(&trace).unwrap();
    let kinds: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["display"]["kind"].clone())
        .collect();
    assert_eq!(kinds.len(), 30);
    assert!(kinds.iter().all(|k| k == "null"), "{kinds:?}");

    // No display to copy into: the shm path is refused in one line.
    let out = run(dmacam().args([
        "view", "-d", "pattern", "--output", "null", "--path", "shm", "--frames", "1",
    ]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--path shm: the null output copies nothing"),
        "{err}"
    );
}

/// The stream ffprobe reads from `file` (`-show_streams`), as `key=value` lines.
fn ffprobe_stream(file: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams"])
        .arg(file)
        .output()
        .expect("run ffprobe (tests/setup installs ffmpeg)");
    assert_ok(&out);
    String::from_utf8(out.stdout).expect("UTF-8 ffprobe output")
}

#[test]
fn ffprobe_reads_the_range_of_a_y4m_dump() {
    let dir = scratch("ffprobe");
    // The pattern is drawn in BT.601 limited range: ffmpeg must read the header's range as "tv", for a
    // 4:2:2 and a 4:2:0 file.
    for (format, pix_fmt) in [("YUYV", "yuv422p"), ("NV12", "yuv420p")] {
        let file = dir.join(format!("{format}.y4m"));
        assert_ok(&run(dmacam()
            .args([
                "dump", "-d", "pattern", "--format", format, "--frames", "2", "-o",
            ])
            .arg(&file)));
        let stream = ffprobe_stream(&file);
        for want in [
            "codec_name=rawvideo",
            "width=640",
            "height=360",
            &format!("pix_fmt={pix_fmt}"),
            "color_range=tv",
        ] {
            assert!(
                stream.lines().any(|l| l == want),
                "{format}: ffprobe does not say {want}:\n{stream}"
            );
        }
        // A full-range camera's dump says XCOLORRANGE=FULL (no source here draws full-range YUV): the same
        // file with that word must read as "pc", so both words dmacam writes are ones ffmpeg knows.
        let data = std::fs::read(&file).unwrap();
        let nl = data.iter().position(|&b| b == b'\n').unwrap();
        let header = std::str::from_utf8(&data[..nl]).unwrap();
        assert!(header.ends_with(" XCOLORRANGE=LIMITED"), "{header}");
        let full = dir.join(format!("{format}-full.y4m"));
        let mut bytes = header.replace("=LIMITED", "=FULL").into_bytes();
        bytes.extend_from_slice(&data[nl..]);
        std::fs::write(&full, bytes).unwrap();
        let stream = ffprobe_stream(&full);
        assert!(
            stream.lines().any(|l| l == "color_range=pc"),
            "{format}: ffprobe does not read XCOLORRANGE=FULL as pc:\n{stream}"
        );
    }
}
