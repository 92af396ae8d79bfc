//! The references here are written from the pattern's specification (module docs, BT.601) and the
//! formats' byte layouts as V4L2 documents them, not from the generator's code.
use super::*;
use crate::alloc::{SYSTEM_HEAP, UDMABUF};
use crate::dmabuf::Fourcc;

/// BT.601 limited range, exact (floating point), rounded.
fn bt601(rgb: [u8; 3]) -> [f64; 3] {
    let [r, g, b] = rgb.map(|c| f64::from(c) / 255.0);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cb = (b - y) / 1.772;
    let cr = (r - y) / 1.402;
    [16.0 + 219.0 * y, 128.0 + 224.0 * cb, 128.0 + 224.0 * cr]
}

const BAR_TABLE: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];

/// The spec of the picture: bars (or gradient) above a black band of h/8 (even) rows with a white square
/// of band height at x = (seq mod positions) * step, step = max(2, even(w/64)).
fn spec_rgb(kind: PatternKind, w: u32, h: u32, x: u32, y: u32, seq: u32) -> [u8; 3] {
    let band = ((h / 8) / 2 * 2).max(2);
    let top = h - band;
    if y >= top {
        let step = ((w / 64) / 2 * 2).max(2);
        let positions = (w - band) / step + 1;
        let x0 = (seq % positions) * step;
        return if x >= x0 && x < x0 + band {
            [255; 3]
        } else {
            [0; 3]
        };
    }
    match kind {
        PatternKind::Bars => BAR_TABLE[(x * 8 / w) as usize],
        PatternKind::Gradient => {
            let r = (x * 255 / (w - 1)) as u8;
            [r, (y * 255 / (top - 1)) as u8, 255 - r]
        }
        PatternKind::Noise => unreachable!("noise has no closed form here"),
    }
}

fn render(kind: PatternKind, code: &[u8; 4], w: u32, h: u32, seq: u32) -> (Format, Vec<u8>) {
    let f = format(Fourcc::new(code), w, h).expect("offered");
    let pixel = PixelFormat::lookup(f.fourcc).unwrap();
    let mut mem = vec![0xa5u8; f.planes[0].sizeimage as usize];
    let pic = Picture {
        kind,
        width: f.width,
        height: f.height,
    };
    paint(&pic, pixel, &f, seq, 0..f.height, &mut mem);
    (f, mem)
}

/// (Y', Cb, Cr) or (R', G', B') of pixel (x, y), read with the format's documented byte layout.
fn read_pixel(code: &[u8; 4], mem: &[u8], w: usize, h: usize, x: usize, y: usize) -> [u8; 3] {
    match code {
        b"YUYV" => {
            let p = &mem[y * w * 2 + (x / 2) * 4..][..4];
            [if x % 2 == 0 { p[0] } else { p[2] }, p[1], p[3]]
        }
        b"UYVY" => {
            let p = &mem[y * w * 2 + (x / 2) * 4..][..4];
            [if x % 2 == 0 { p[1] } else { p[3] }, p[0], p[2]]
        }
        b"NV12" => {
            let c = &mem[w * h + (y / 2) * w + (x / 2) * 2..];
            [mem[y * w + x], c[0], c[1]]
        }
        b"NV16" => {
            let c = &mem[w * h + y * w + (x / 2) * 2..];
            [mem[y * w + x], c[0], c[1]]
        }
        b"YU12" => {
            let cb = mem[w * h + (y / 2) * (w / 2) + x / 2];
            let cr = mem[w * h + (w / 2) * (h / 2) + (y / 2) * (w / 2) + x / 2];
            [mem[y * w + x], cb, cr]
        }
        b"XR24" => {
            let p = &mem[(y * w + x) * 4..][..4];
            assert_eq!(p[3], 0xff, "X byte");
            [p[2], p[1], p[0]]
        }
        b"RGB3" => {
            let p = &mem[(y * w + x) * 3..][..3];
            [p[0], p[1], p[2]]
        }
        _ => unreachable!(),
    }
}

fn check_against_spec(kind: PatternKind, code: &[u8; 4], w: u32, h: u32, seq: u32) {
    let (f, mem) = render(kind, code, w, h, seq);
    assert_eq!((f.width, f.height), (w, h));
    let yuv = code != b"XR24" && code != b"RGB3";
    let (wu, hu) = (w as usize, h as usize);
    for y in 0..hu {
        for x in 0..wu {
            let got = read_pixel(code, &mem, wu, hu, x, y);
            let rgb = spec_rgb(kind, w, h, x as u32, y as u32, seq);
            let want = if yuv {
                // Chroma is sited at the top-left pixel of its block.
                let cy = match code {
                    b"YUYV" | b"UYVY" | b"NV16" => y,
                    _ => y & !1,
                };
                let c = bt601(spec_rgb(kind, w, h, (x & !1) as u32, cy as u32, seq));
                let l = bt601(rgb);
                [l[0], c[1], c[2]]
            } else {
                rgb.map(f64::from)
            };
            for c in 0..3 {
                assert!(
                    (f64::from(got[c]) - want[c]).abs() <= 1.0,
                    "{kind:?} {} {w}x{h} seq {seq} at ({x},{y}) component {c}: got {got:?}, want {want:?}",
                    String::from_utf8_lossy(code)
                );
            }
        }
    }
}

#[test]
fn bars_and_gradient_match_the_spec_in_every_layout() {
    for code in [
        b"YUYV", b"UYVY", b"NV12", b"NV16", b"YU12", b"XR24", b"RGB3",
    ] {
        for kind in [PatternKind::Bars, PatternKind::Gradient] {
            check_against_spec(kind, code, 128, 48, 0);
            check_against_spec(kind, code, 128, 48, 7);
            check_against_spec(kind, code, 640, 360, 61);
        }
    }
}

#[test]
fn bars_are_the_textbook_bt601_values() {
    // ITU-R BT.601 75/100 bar tables (100 %): Y', Cb, Cr of white..black.
    let table = [
        [235, 128, 128],
        [210, 16, 146],
        [170, 166, 16],
        [145, 54, 34],
        [106, 202, 222],
        [81, 90, 240],
        [41, 240, 110],
        [16, 128, 128],
    ];
    let (_, mem) = render(PatternKind::Bars, b"YUYV", 640, 360, 0);
    for (i, want) in table.iter().enumerate() {
        let x = i * 80 + 40;
        let got = read_pixel(b"YUYV", &mem, 640, 360, x, 100);
        for c in 0..3 {
            assert!(
                (i32::from(got[c]) - want[c]).abs() <= 1,
                "bar {i}: {got:?} vs {want:?}"
            );
        }
    }
}

/// Where the white square is in the band of an XR24 frame: its first column and width.
fn find_marker(mem: &[u8], w: usize, y: usize) -> (usize, usize) {
    let white: Vec<usize> = (0..w).filter(|&x| mem[(y * w + x) * 4] == 255).collect();
    let first = white[0];
    assert!(
        white.windows(2).all(|p| p[1] == p[0] + 1),
        "one contiguous square"
    );
    (first, white.len())
}

#[test]
fn the_marker_moves_one_step_per_frame_and_wraps() {
    let (w, h) = (640u32, 360u32);
    let pic = Picture {
        kind: PatternKind::Bars,
        width: w,
        height: h,
    };
    // 360/8 = 45 -> 44 rows; step 640/64 = 10; (640 - 44) / 10 + 1 = 60 positions.
    assert_eq!(
        (pic.band_top(), pic.marker_step(), pic.marker_positions()),
        (316, 10, 60)
    );
    let mut last = None;
    for seq in [0u32, 1, 2, 3, 30, 59, 60, 61] {
        let (_, mem) = render(PatternKind::Noise, b"XR24", w, h, seq);
        let (x, side) = find_marker(&mem, w as usize, 340);
        assert_eq!(side, 44);
        assert_eq!(x as u32, (seq % 60) * 10, "seq {seq}");
        if let Some((ls, lx)) = last {
            if seq == ls + 1 && seq % 60 != 0 {
                assert_eq!(x, lx + 10);
            }
        }
        last = Some((seq, x));
    }
}

#[test]
fn noise_is_grey_deterministic_per_sequence_and_changes_between_frames() {
    let (w, h) = (320u32, 240u32);
    let (f, a) = render(PatternKind::Noise, b"NV12", w, h, 5);
    let (_, b) = render(PatternKind::Noise, b"NV12", w, h, 5);
    let (_, c) = render(PatternKind::Noise, b"NV12", w, h, 6);
    assert_eq!(a, b, "same sequence number, same frame");
    let top = Picture {
        kind: PatternKind::Noise,
        width: w,
        height: h,
    }
    .band_top() as usize;
    let luma = |m: &[u8]| m[..top * w as usize].to_vec();
    let (la, lc) = (luma(&a), luma(&c));
    let same = la.iter().zip(&lc).filter(|(x, y)| x == y).count();
    assert!(same < la.len() / 20, "{same} of {} pixels equal", la.len());
    // Grey: neutral chroma everywhere; luma spread over the limited range, mean near the middle.
    let chroma = &a[(w * h) as usize..f.planes[0].sizeimage as usize];
    assert!(chroma.iter().all(|&v| v == 128));
    assert!(la.iter().all(|&v| (16..=235).contains(&v)));
    let mean = la.iter().map(|&v| f64::from(v)).sum::<f64>() / la.len() as f64;
    assert!((mean - 125.5).abs() < 5.0, "mean {mean}");
    let mut seen = [false; 256];
    for &v in &la {
        seen[v as usize] = true;
    }
    assert!(seen.iter().filter(|&&s| s).count() > 200);
}

#[test]
fn source_names() {
    assert_eq!(
        parse_source_name("pattern").unwrap().unwrap(),
        PatternKind::Bars
    );
    assert_eq!(
        parse_source_name("pattern:gradient").unwrap().unwrap(),
        PatternKind::Gradient
    );
    assert_eq!(
        parse_source_name("pattern:noise").unwrap().unwrap(),
        PatternKind::Noise
    );
    let e = parse_source_name("pattern:nonsense").unwrap().unwrap_err();
    assert!(e.to_string().contains("pattern:gradient"), "{e}");
    assert!(parse_source_name("pattern:").unwrap().is_err());
    assert!(parse_source_name("/dev/video0").is_none());
    assert!(parse_source_name("patterns").is_none());
}

#[test]
fn formats_are_rounded_and_described() {
    let f = format(Fourcc::new(b"NV12"), 641, 361).unwrap();
    assert_eq!((f.width, f.height), (640, 360));
    assert_eq!(f.planes[0].bytesperline, 640);
    assert_eq!(f.planes[0].sizeimage, 640 * 360 * 3 / 2);
    assert_eq!((f.colorspace, f.ycbcr_enc, f.quantization), (1, 1, 2));
    let f = format(Fourcc::new(b"XR24"), 1, 100_000).unwrap();
    assert_eq!((f.width, f.height), (MIN_SIZE.0, MAX_SIZE.1));
    assert!(format(Fourcc::new(b"GREY"), 64, 64).is_none());
    assert!(format(Fourcc::new(b"NM12"), 64, 64).is_none());
}

fn source(io: IoMode, buffers: u32, fps: u32) -> PatternSource {
    let f = format(Fourcc::new(b"XR24"), 64, 32).unwrap();
    PatternSource::new(PatternKind::Bars, f, fps, &StreamOptions { buffers, io }).unwrap()
}

#[test]
fn memfd_fallback_streams_paced_frames_readable_on_the_cpu() {
    let mut s = source(IoMode::Memfd, 4, 200);
    assert_eq!(s.io(), IoMode::Memfd);
    assert!(s.not_dmabuf_reason().is_some());
    assert!(matches!(
        s.next_frame(Duration::from_millis(10)),
        Err(StreamError::NotStarted { .. })
    ));
    s.start().unwrap();
    let period = Duration::from_millis(5);
    let mut last: Option<(u32, Duration)> = None;
    for _ in 0..6 {
        let frame = s.next_frame(Duration::from_secs(2)).unwrap();
        let fd = frame.memory()[0].clone();
        assert!(crate::dmabuf::is_shmem(fd.as_fd()), "a memfd");
        assert_eq!(frame.flags(), BUF_FLAG_TIMESTAMP_MONOTONIC);
        let now = crate::clock::monotonic_now();
        assert!(frame.timestamp() <= now && now - frame.timestamp() < Duration::from_secs(2));
        if let Some((seq, ts)) = last {
            assert!(frame.sequence() > seq);
            assert_eq!(frame.timestamp() - ts, period * (frame.sequence() - seq));
        }
        last = Some((frame.sequence(), frame.timestamp()));
        let seq = frame.sequence();
        frame
            .read(|mem| {
                let m = &mem[0];
                // Bar 2 (cyan) at (20, 4), and the marker in the band (rows 28..32, step 2, side 4).
                assert_eq!(&m[(4 * 64 + 20) * 4..][..4], &[255, 255, 0, 255]);
                let x0 = (seq % 31) as usize * 2;
                assert_eq!(&m[(30 * 64 + x0 + 1) * 4..][..3], &[255, 255, 255]);
                if x0 >= 1 {
                    assert_eq!(&m[(30 * 64 + x0 - 1) * 4..][..3], &[0, 0, 0]);
                }
            })
            .unwrap();
    }
    s.stop().unwrap();
    assert!(matches!(
        s.next_frame(Duration::from_millis(10)),
        Err(StreamError::NotStarted { .. })
    ));
}

#[test]
fn a_held_frame_is_never_repainted() {
    let mut s = source(IoMode::Memfd, 2, 500);
    s.start().unwrap();
    let t = Duration::from_secs(2);
    let a = s.next_frame(t).unwrap();
    let b = s.next_frame(t).unwrap();
    assert_ne!(a.index(), b.index());
    assert!(matches!(
        s.next_frame(t),
        Err(StreamError::Starved { count: 2, .. })
    ));
    let snapshot = a.read(|m| m[0].to_vec()).unwrap();
    drop(b);
    for _ in 0..5 {
        let c = s.next_frame(t).unwrap();
        assert_ne!(c.index(), a.index(), "the held buffer is not reused");
    }
    assert_eq!(a.read(|m| m[0].to_vec()).unwrap(), snapshot);
    // Frames outlive the source.
    drop(s);
    assert_eq!(a.read(|m| m[0].to_vec()).unwrap(), snapshot);
}

#[test]
fn auto_takes_a_dma_buf_allocator_when_there_is_one() {
    let s = source(IoMode::Mmap, 2, 30);
    let usable = |p: &str| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .is_ok()
    };
    let want = if usable(UDMABUF) {
        IoMode::Udmabuf
    } else if usable(SYSTEM_HEAP) {
        IoMode::DmaHeap
    } else {
        IoMode::Memfd
    };
    assert_eq!(s.io(), want);
    assert_eq!(s.not_dmabuf_reason().is_some(), want == IoMode::Memfd);
}
