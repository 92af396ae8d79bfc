//! Capture stage against real vivid: `dmacam dump` (raw byte-identical to v4l2-ctl, y4m, png), `dmacam check`
//! (pass, and fail on error injection, a pattern changed behind its back, an output-only node), bad input,
//! and the streaming API itself (EXPBUF fds are what the CPU reads, frames requeue on the last drop, no fd
//! leaks).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dmacam_capture::dmabuf::identity;
use dmacam_capture::{Device, FormatRequest, Fourcc, IoMode, Stream, StreamError, StreamOptions};
use dmacam_tests::picture::BARS;
use dmacam_tests::{dmacam, require_vm, results_dir, run, run_ok, wait_with_deadline};

const SP: &str = "/dev/video0";
const MP: &str = "/dev/video1";
const IO_MODES: [&str; 3] = ["mmap", "dma-heap", "udmabuf"];

/// A still picture on `dev`: 100% colour bars, no on-screen text, no movement; 30 fps.
pub(crate) fn vivid_still(dev: &str) {
    run_ok(Command::new("v4l2-ctl").args([
        "-d",
        dev,
        "-c",
        "test_pattern=1,osd_text_mode=2,horizontal_movement=3,vertical_movement=3",
    ]));
}

/// A fresh, empty directory under the results.
pub(crate) fn fresh_dir(name: &str) -> PathBuf {
    let d = results_dir().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub(crate) fn dir_entries(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// v4l2-ctl's own dump. (The frame rate is left as dmacam set it: `v4l2-ctl -p` fails on vivid's
/// multi-planar node.)
fn v4l2_ctl_raw(dev: &str, fourcc: &str, w: u32, h: u32, frames: u32, out: &Path) {
    run_ok(Command::new("v4l2-ctl").args([
        "-d",
        dev,
        "-v",
        &format!("width={w},height={h},pixelformat={fourcc}"),
        "--stream-mmap",
        &format!("--stream-count={frames}"),
        &format!("--stream-to={}", out.display()),
    ]));
}

/// Dumps with dmacam in every I/O mode and compares each file byte for byte with v4l2-ctl's.
fn raw_matches_v4l2_ctl(
    dev: &str,
    format: &str,
    v4l2_fourcc: &str,
    w: u32,
    h: u32,
    frame_size: usize,
) {
    require_vm();
    vivid_still(dev);
    let dir = fresh_dir(&format!("raw-{format}-{w}x{h}"));
    for io in IO_MODES {
        let out = dir.join(format!("dmacam-{io}.raw"));
        run_ok(dmacam().args([
            "dump",
            "-d",
            dev,
            "--format",
            format,
            "--size",
            &format!("{w}x{h}"),
            "--fps",
            "30",
            "--io",
            io,
            "--frames",
            "60",
            "-o",
            out.to_str().unwrap(),
        ]));
    }
    let reference = dir.join("v4l2-ctl.raw");
    v4l2_ctl_raw(dev, v4l2_fourcc, w, h, 60, &reference);
    let want = std::fs::read(&reference).unwrap();
    assert_eq!(
        want.len(),
        60 * frame_size,
        "v4l2-ctl wrote an unexpected size"
    );
    let distinct = {
        let mut seen = [false; 256];
        want[..frame_size]
            .iter()
            .for_each(|&b| seen[b as usize] = true);
        seen.iter().filter(|&&s| s).count()
    };
    assert!(
        distinct > 8,
        "the reference frame is nearly uniform ({distinct} byte values)"
    );
    for io in IO_MODES {
        let out = dir.join(format!("dmacam-{io}.raw"));
        let got = std::fs::read(&out).unwrap();
        assert_eq!(got.len(), want.len(), "{io}: size differs from v4l2-ctl's");
        if let Some(at) = got.iter().zip(&want).position(|(a, b)| a != b) {
            panic!(
                "{io}: {} differs from v4l2-ctl's output at byte {at}",
                out.display()
            );
        }
    }
    // Only the finished files, no leftovers.
    let mut expected: Vec<String> = IO_MODES
        .iter()
        .map(|io| format!("dmacam-{io}.raw"))
        .collect();
    expected.push("v4l2-ctl.raw".into());
    expected.sort();
    assert_eq!(dir_entries(&dir), expected);
}

#[test]
fn capture_raw_yuyv_640x360_matches_v4l2_ctl() {
    raw_matches_v4l2_ctl(SP, "YUYV", "YUYV", 640, 360, 640 * 360 * 2);
}

#[test]
fn capture_raw_nv12_1280x720_matches_v4l2_ctl() {
    raw_matches_v4l2_ctl(SP, "NV12", "NV12", 1280, 720, 1280 * 720 * 3 / 2);
}

#[test]
fn capture_raw_nv12m_multiplanar_matches_v4l2_ctl() {
    raw_matches_v4l2_ctl(MP, "NV12M", "NM12", 640, 360, 640 * 360 * 3 / 2);
}

/// A raw dump goes straight from the dma-buf's mapping to the file with write(2), as v4l2-ctl writes from
/// its mmap: on the guest's own disk nothing is staged ("wrote 0 (file write)"), and the file is byte for byte
/// v4l2-ctl's, vivid's bars rather than a flat buffer. (Where a file system refuses such a write with EFAULT,
/// the dump stages through its file buffer and says "file buffer".)
#[test]
fn capture_raw_is_written_from_the_mapping_where_the_file_system_takes_it() {
    require_vm();
    vivid_still(SP);
    let local = std::env::temp_dir().join(format!("dmacam-direct-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&local);
    std::fs::create_dir_all(&local).unwrap();
    let frame = 640 * 360 * 2;
    let out = local.join("x.raw");
    let res = run(dmacam()
        .args([
            "dump", "-d", SP, "--format", "YUYV", "--size", "640x360", "--fps", "30", "--frames",
            "20", "-o",
        ])
        .arg(&out));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{}: {err}", out.display());
    let want = format!(
        "20 frames written to {}; the CPU read {frame} bytes per frame out of the dma-bufs and wrote 0 \
         (file write)",
        out.display()
    );
    assert!(err.contains(&want), "wanted '{want}' in:\n{err}");
    let reference = local.join("v4l2-ctl.raw");
    v4l2_ctl_raw(SP, "YUYV", 640, 360, 20, &reference);
    let (got, want) = (
        std::fs::read(&out).unwrap(),
        std::fs::read(&reference).unwrap(),
    );
    let _ = std::fs::remove_dir_all(&local);
    assert_eq!(got.len(), 20 * frame);
    assert!(got == want, "the direct dump differs from v4l2-ctl's");
    let first = &got[..frame];
    assert!(
        first.iter().any(|&b| b != first[0]),
        "the first frame is flat"
    );
}

/// Parses a Y4M file: (width, height, colour tag, frames).
pub(crate) fn parse_y4m(data: &[u8]) -> (u32, u32, String, Vec<&[u8]>) {
    let nl = data
        .iter()
        .position(|&b| b == b'\n')
        .expect("y4m header line");
    let header = std::str::from_utf8(&data[..nl]).unwrap();
    assert!(
        header.starts_with("YUV4MPEG2 "),
        "not a y4m header: {header}"
    );
    let field = |p: char| {
        header
            .split(' ')
            .find_map(|t| t.strip_prefix(p))
            .unwrap_or_else(|| panic!("no {p} in {header}"))
            .to_owned()
    };
    let w: u32 = field('W').parse().unwrap();
    let h: u32 = field('H').parse().unwrap();
    let c = field('C');
    let frame_len = match c.as_str() {
        "422" => (w * h * 2) as usize,
        "420mpeg2" => (w * h + 2 * w.div_ceil(2) * h.div_ceil(2)) as usize,
        other => panic!("unexpected chroma {other}"),
    };
    let mut frames = Vec::new();
    let mut rest = &data[nl + 1..];
    while !rest.is_empty() {
        assert!(
            rest.starts_with(b"FRAME\n"),
            "frame {} has no FRAME marker",
            frames.len()
        );
        rest = &rest[6..];
        assert!(rest.len() >= frame_len, "truncated frame {}", frames.len());
        frames.push(&rest[..frame_len]);
        rest = &rest[frame_len..];
    }
    (w, h, c, frames)
}

/// Dumps .y4m and .raw of the same still picture and checks the y4m planes against the raw bytes.
fn y4m_matches_raw(dev: &str, format: &str, w: u32, h: u32, io: &str) {
    require_vm();
    vivid_still(dev);
    let dir = fresh_dir(&format!("y4m-{format}-{w}x{h}-{io}"));
    let y4m = dir.join(format!("{format}.y4m"));
    let raw = dir.join(format!("{format}.raw"));
    for (out, frames) in [(&y4m, "60"), (&raw, "1")] {
        run_ok(dmacam().args([
            "dump",
            "-d",
            dev,
            "--format",
            format,
            "--size",
            &format!("{w}x{h}"),
            "--fps",
            "30",
            "--io",
            io,
            "--frames",
            frames,
            "-o",
            out.to_str().unwrap(),
        ]));
    }
    let data = std::fs::read(&y4m).unwrap();
    let (yw, yh, c, frames) = parse_y4m(&data);
    assert_eq!((yw, yh), (w, h));
    assert_eq!(frames.len(), 60);
    let raw = std::fs::read(&raw).unwrap();
    let (w, h) = (w as usize, h as usize);
    let f = frames[59];
    match format {
        "YUYV" => {
            assert_eq!(c, "422");
            for y in (0..h).step_by(37) {
                for x in (0..w).step_by(13) {
                    let px = y * w * 2 + x * 2;
                    assert_eq!(f[y * w + x], raw[px], "Y at ({x},{y})");
                    let c = y * (w / 2) + x / 2;
                    assert_eq!(
                        f[w * h + c],
                        raw[y * w * 2 + (x / 2) * 4 + 1],
                        "Cb at ({x},{y})"
                    );
                    assert_eq!(
                        f[w * h + w * h / 2 + c],
                        raw[y * w * 2 + (x / 2) * 4 + 3],
                        "Cr at ({x},{y})"
                    );
                }
            }
        }
        _ => {
            // NV12 / NV12M: raw is Y plane then interleaved CbCr.
            assert_eq!(c, "420mpeg2");
            assert_eq!(&f[..w * h], &raw[..w * h], "Y plane");
            let cw = w / 2;
            for i in 0..(cw * h / 2) {
                assert_eq!(f[w * h + i], raw[w * h + 2 * i], "Cb sample {i}");
                assert_eq!(
                    f[w * h + cw * h / 2 + i],
                    raw[w * h + 2 * i + 1],
                    "Cr sample {i}"
                );
            }
        }
    }
    // Every frame of a still picture is the same.
    assert!(
        frames.iter().all(|fr| *fr == frames[0]),
        "frames of a still pattern differ"
    );
}

#[test]
fn capture_y4m_yuyv_640x360_each_io_mode() {
    for io in IO_MODES {
        y4m_matches_raw(SP, "YUYV", 640, 360, io);
    }
}

#[test]
fn capture_y4m_nv12_1280x720_each_io_mode() {
    for io in IO_MODES {
        y4m_matches_raw(SP, "NV12", 1280, 720, io);
    }
}

#[test]
fn capture_y4m_nv12m_multiplanar_each_io_mode() {
    for io in IO_MODES {
        y4m_matches_raw(MP, "NV12M", 640, 360, io);
    }
}

/// Ctrl-C (SIGINT) and SIGTERM mid-dump on vivid: every written frame in a complete Y4M/raw file that agrees
/// with the trace, exit 128 + signal, no temporary left; the frames are vivid's bars (not zeros).
#[test]
fn capture_dump_stopped_by_a_signal_keeps_complete_files() {
    require_vm();
    vivid_still(SP);
    for (out, sig) in [("stop.y4m", libc::SIGINT), ("stop.raw", libc::SIGTERM)] {
        let dir = fresh_dir(&format!("capture-signal-{sig}"));
        let frames = dmacam_tests::stop::dump_stopped_by(
            dmacam(),
            &["-d", SP, "--format", "YUYV", "--size", "640x360"],
            &dir,
            out,
            640 * 360 * 2,
            sig,
            5,
        );
        let data = std::fs::read(dir.join(out)).unwrap();
        let last = &data[data.len() - 640 * 360 * 2..];
        assert!(
            last.iter().any(|&b| b != last[0]),
            "{out}: the last frame is flat"
        );
        assert!(frames >= 5);
    }
}

fn check_png_bars(path: &Path) {
    let dec = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let (w, h) = (info.width as usize, info.height as usize);
    for row in [h / 4, h / 2, 3 * h / 4] {
        for (i, want) in BARS.iter().enumerate() {
            let x = (2 * i + 1) * w / 16;
            let p = &buf[(row * w + x) * 3..][..3];
            for c in 0..3 {
                assert!(
                    (i32::from(p[c]) - i32::from(want[c])).abs() <= 6,
                    "{}: bar {i} at ({x},{row}) is {p:?}, expected {want:?}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn capture_png_and_ppm_show_the_colour_bars() {
    require_vm();
    vivid_still(SP);
    let dir = fresh_dir("png");
    for format in ["YUYV", "NV12", "RGB3", "XR24"] {
        let pattern = dir.join(format!("{format}-#.png"));
        run_ok(dmacam().args([
            "dump",
            "-d",
            SP,
            "--format",
            format,
            "--size",
            "640x360",
            "--frames",
            "2",
            "-o",
            pattern.to_str().unwrap(),
        ]));
        let files: Vec<String> = dir_entries(&dir)
            .into_iter()
            .filter(|n| n.starts_with(&format!("{format}-")))
            .collect();
        assert_eq!(
            files.len(),
            2,
            "{format}: expected two frame files, got {files:?}"
        );
        for f in &files {
            assert!(f.ends_with(".png") && !f.contains('#'), "{f}");
            check_png_bars(&dir.join(f));
        }
    }
    let ppm = dir.join("frame-#.ppm");
    run_ok(dmacam().args([
        "dump",
        "-d",
        SP,
        "--frames",
        "1",
        "-o",
        ppm.to_str().unwrap(),
    ]));
    let name = dir_entries(&dir)
        .into_iter()
        .find(|n| n.ends_with(".ppm"))
        .unwrap();
    let data = std::fs::read(dir.join(&name)).unwrap();
    assert!(data.starts_with(b"P6\n640 360\n255\n"), "{name}");
    assert_eq!(data.len(), 15 + 640 * 360 * 3);
}

fn fd_count_self() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn fdinfo_flags(fd: std::os::fd::BorrowedFd<'_>) -> u32 {
    use std::os::fd::AsRawFd;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .unwrap()
        .trim();
    u32::from_str_radix(flags, 8).unwrap()
}

fn open_stream(dev: &str, fourcc: &[u8; 4], io: IoMode, buffers: u32) -> Stream {
    let d = Device::open(dev).unwrap();
    let f = d
        .negotiate(&FormatRequest {
            fourcc: Some(Fourcc::new(fourcc)),
            size: Some((640, 360)),
            fps: Some(30),
        })
        .unwrap();
    let mut s = Stream::new(d, f, &StreamOptions { buffers, io }).unwrap();
    s.start().unwrap();
    s
}

/// The fd the CPU reader maps is the dma-buf VIDIOC_EXPBUF returned (exporter videobuf2), opened
/// O_RDWR | O_CLOEXEC; in import modes it is the heap's / udmabuf's own buffer. Nothing reads V4L2's mmap.
#[test]
fn capture_cpu_reads_through_the_expbuf_fd() {
    require_vm();
    vivid_still(SP);
    vivid_still(MP);
    for (dev, fourcc, io, exporter) in [
        (SP, b"YUYV", IoMode::Mmap, "videobuf2"),
        (MP, b"NM12", IoMode::Mmap, "videobuf2"),
        (SP, b"NV12", IoMode::DmaHeap, "system"),
        (SP, b"YUYV", IoMode::Udmabuf, "udmabuf"),
    ] {
        let mut s = open_stream(dev, fourcc, io, 3);
        let frame = s.next_frame(Duration::from_secs(10)).unwrap();
        let maps = frame.mappings().unwrap();
        assert_eq!(maps.len(), frame.memory().len());
        for (m, mem) in maps.iter().zip(frame.memory()) {
            // The very fd object, not a copy or a re-open.
            assert!(
                std::sync::Arc::ptr_eq(m.fd(), mem),
                "{dev} {io:?}: mapping uses another fd"
            );
            let id = identity(m.fd().as_fd()).unwrap();
            assert!(
                id.exp_name.contains(exporter),
                "{dev} {io:?}: reader fd exporter is '{}', expected {exporter}",
                id.exp_name
            );
            let flags = fdinfo_flags(m.fd().as_fd());
            assert_eq!(
                flags & libc_o_accmode(),
                2,
                "{dev} {io:?}: not O_RDWR (flags {flags:o})"
            );
            if io == IoMode::Mmap {
                assert_ne!(
                    flags & 0o2000000,
                    0,
                    "{dev}: EXPBUF fd lacks O_CLOEXEC (flags {flags:o})"
                );
            }
        }
        // The frame's Dmabuf planes share those fds.
        for p in &frame.dmabuf().planes {
            assert!(frame
                .memory()
                .iter()
                .any(|m| std::sync::Arc::ptr_eq(m, &p.fd)));
        }
        let nonzero = frame
            .read(|mem| mem[0].iter().filter(|&&b| b != 0).count())
            .unwrap();
        assert!(nonzero > 1000, "{dev} {io:?}: frame read back nearly empty");
    }
}

fn libc_o_accmode() -> u32 {
    0o3
}

/// A dequeued frame goes back to the driver only when its last clone is dropped.
#[test]
fn capture_frame_requeues_after_last_clone_drops() {
    require_vm();
    let mut s = open_stream(SP, b"YUYV", IoMode::Mmap, 2);
    let n = s.buffer_count();
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(s.next_frame(Duration::from_secs(10)).unwrap());
    }
    assert!(matches!(
        s.next_frame(Duration::from_secs(1)),
        Err(StreamError::Starved { .. })
    ));
    let extra = held[0].clone();
    let first_seq = held[0].sequence();
    held.remove(0);
    // One clone still alive: still nothing queued.
    assert!(matches!(
        s.next_frame(Duration::from_secs(1)),
        Err(StreamError::Starved { .. })
    ));
    drop(extra);
    let next = s.next_frame(Duration::from_secs(10)).unwrap();
    assert!(next.sequence() > first_seq);
}

/// Streaming in every mode, and failing to, leaves no fd behind.
#[test]
fn capture_no_fd_leaks() {
    require_vm();
    let before = fd_count_self();
    for (fourcc, io) in [
        (b"YUYV", IoMode::Mmap),
        (b"NV12", IoMode::DmaHeap),
        (b"YUYV", IoMode::Udmabuf),
    ] {
        let mut s = open_stream(SP, fourcc, io, 4);
        for _ in 0..5 {
            let f = s.next_frame(Duration::from_secs(10)).unwrap();
            f.read(|m| m[0][0]).unwrap();
        }
        drop(s);
    }
    assert!(Device::open("/dev/null").is_err());
    assert!(Device::open("/dev/nonexistent-video").is_err());
    let d = Device::open(SP).unwrap();
    assert!(d
        .negotiate(&FormatRequest {
            fourcc: Some(Fourcc::new(b"ABCD")),
            ..Default::default()
        })
        .is_err());
    drop(d);
    assert_eq!(fd_count_self(), before, "fds leaked");
}

mod failures;
pub(crate) use failures::{
    busy_streamer, check_json, expect_clean_failure, interfere, run_with_interference,
};
