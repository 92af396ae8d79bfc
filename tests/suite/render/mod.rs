//! The render stage against the VM's real kernel and lavapipe: camera-like frames in real dma-bufs (udmabuf and
//! the DMA-BUF system heap, filled through their mmap with a detailed picture) are imported into Vulkan,
//! converted/processed on the GPU, exported as dma-bufs and read back through the exported dma-buf's mmap
//! with DMA_BUF_IOCTL_SYNC; every pixel is compared with the CPU reference (render/tests/common/reference.rs).

#[path = "../../../render/tests/common/reference.rs"]
pub(crate) mod reference;

use std::os::fd::OwnedFd;
use std::sync::Arc;

use dmacam_capture::alloc::{Allocator, SYSTEM_HEAP, UDMABUF};
use dmacam_capture::{Dmabuf, DmabufPlane, Fourcc, Mapping, DRM_FORMAT_MOD_LINEAR};
use dmacam_render::{
    Colorimetry, ImportPath, ImportPreference, Mode, Options, OutputFrame, ProcessSpec,
    RenderError, Renderer, OUTPUT_FOURCC,
};
use dmacam_tests::{fd_count, require_vm};
use reference::{Encoded, Image};

mod sizes;
mod vivid;

/// Appends a line to `render-report.txt` in the results directory (visible on the host after the run).
fn report(line: &str) {
    use std::io::Write;
    eprintln!("{line}");
    let path = dmacam_tests::results_dir().join("render-report.txt");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open report");
    writeln!(f, "{line}").expect("write report");
}

fn renderer(import: ImportPreference) -> Renderer {
    let r = Renderer::new(Options {
        mode: Mode::Dmabuf,
        import,
        ring: 3,
    })
    .unwrap_or_else(|e| panic!("render stage did not come up in the VM: {e}"));
    report(&format!(
        "renderer on {} ({}): path {} ({})",
        r.device_name(),
        r.driver_name(),
        r.import_path().name(),
        r.import_path_reason()
    ));
    r
}

/// Copies an encoded frame into freshly allocated dma-bufs (one per plane for NM12 and the other multi-buffer
/// forms, else one buffer holding
/// every plane at the offsets a single-planar V4L2 buffer would use), through the dma-buf's own mmap.
fn to_dmabuf(alloc: &Allocator, e: &Encoded, split_nv12_planes: bool) -> Dmabuf {
    let fill = |parts: &[(&[u8], usize)], size: usize| -> Arc<OwnedFd> {
        let fd = Arc::new(alloc.alloc(size as u64).expect("allocate a dma-buf"));
        let mut map = Mapping::new(fd.clone(), true).expect("mmap the dma-buf");
        let mut w = map.write().expect("DMA_BUF_IOCTL_SYNC start");
        w.fill(0xee);
        for (data, off) in parts {
            w[*off..*off + data.len()].copy_from_slice(data);
        }
        drop(w);
        fd
    };
    let planes = if reference::multi_buffer(e.fourcc) {
        e.planes
            .iter()
            .map(|(d, s)| DmabufPlane {
                fd: fill(&[(d, 0)], d.len()),
                offset: 0,
                stride: *s,
            })
            .collect()
    } else {
        // One buffer. When the planes are spelt out, each starts 64 bytes further than needed so the offset
        // is carried explicitly, not guessed; as one plane, the chroma follows Y directly (V4L2 NV12...).
        let gap = if split_nv12_planes { 64 } else { 0 };
        let mut parts = vec![];
        let mut off = 0;
        for (d, _) in &e.planes {
            parts.push((d.as_slice(), off));
            off += d.len() + gap;
        }
        let fd = fill(&parts, off);
        let all: Vec<DmabufPlane> = e
            .planes
            .iter()
            .zip(&parts)
            .map(|((_, s), (_, o))| DmabufPlane {
                fd: fd.clone(),
                offset: *o as u32,
                stride: *s,
            })
            .collect();
        if split_nv12_planes {
            all
        } else {
            all.into_iter().take(1).collect()
        }
    };
    Dmabuf {
        width: e.width,
        height: e.height,
        fourcc: e.fourcc.parse::<Fourcc>().unwrap(),
        modifier: DRM_FORMAT_MOD_LINEAR,
        planes,
    }
}

/// Reads the output through its exported dma-buf and compares it with the reference.
fn check_output(
    what: &str,
    out: &OutputFrame,
    e: &Encoded,
    c: Colorimetry,
    spec: &ProcessSpec,
) -> u8 {
    let d = out.dmabuf().expect("outputs are exported as dma-bufs");
    assert_eq!(d.fourcc, OUTPUT_FOURCC);
    assert_eq!(d.modifier, DRM_FORMAT_MOD_LINEAR);
    assert_eq!(d.planes.len(), 1);
    assert_eq!(d.planes[0].offset, 0);
    assert!(d.planes[0].stride >= d.width * 4);
    let id = dmacam_capture::dmabuf::identity(std::os::fd::AsFd::as_fd(&*d.planes[0].fd))
        .expect("the output fd is a dma-buf");
    assert!(!id.exp_name.is_empty());
    let map = Mapping::new(d.planes[0].fd.clone(), false).expect("mmap the output dma-buf");
    let pixels = map.read().expect("DMA_BUF_IOCTL_SYNC start (read)");
    let want = reference::process(
        Image {
            width: e.width as usize,
            height: e.height as usize,
            px: reference::decode(e, c),
        },
        spec,
    );
    assert_eq!(
        (d.width as usize, d.height as usize),
        (want.width, want.height),
        "{what}: output size"
    );
    reference::compare(what, &pixels, d.planes[0].stride as usize, &want)
}

fn convert_all_formats(import: ImportPreference, expect: ImportPath) {
    let mut r = renderer(import);
    assert_eq!(r.import_path(), expect, "{}", r.import_path_reason());
    let udmabuf = Allocator::udmabuf(UDMABUF).expect("open /dev/udmabuf");
    let heap = Allocator::dma_heap(SYSTEM_HEAP).expect("open /dev/dma_heap/system");
    let (w, h) = (162, 92);
    let rgb = reference::pattern(w, h, 7);
    reference::assert_detailed(
        &Image {
            width: w as usize,
            height: h as usize,
            px: rgb.clone(),
        },
        200,
    );
    let spec = ProcessSpec::default();
    let mut index = 0;
    for (fi, fmt) in reference::FORMATS.iter().enumerate() {
        for (ci, c) in reference::colorimetries().into_iter().enumerate() {
            let e = reference::encode(fmt, w, h, &rgb, c, 20);
            let alloc = if (fi + ci) % 2 == 0 { &udmabuf } else { &heap };
            // Single-buffer semi-planar formats both with their two planes spelt out and as one plane
            // (chroma after Y).
            let one_plane = matches!(*fmt, "NV12" | "NV21" | "NV16" | "NV61") && ci % 2 == 1;
            let frame = to_dmabuf(alloc, &e, !one_plane);
            let what = format!(
                "{} {fmt} {c:?} from {}",
                expect.name(),
                alloc.path().display()
            );
            let out = r
                .process(&frame, index % 8, c, &spec)
                .unwrap_or_else(|err| panic!("{what}: {err}"));
            let err = check_output(&what, &out, &e, c, &spec);
            report(&format!("{what}: max error {err}"));
            index += 1;
        }
    }
    let stats = r.stats();
    assert_eq!(
        stats.cpu_bytes_copied, 0,
        "the dma-buf path must not copy on the CPU"
    );
    assert_eq!(stats.frames, index as u64);
}

#[test]
fn render_image_path_converts_every_format_from_real_dmabufs() {
    require_vm();
    convert_all_formats(ImportPreference::Image, ImportPath::ImageDrmModifier);
}

#[test]
fn render_buffer_path_converts_every_format_from_real_dmabufs() {
    require_vm();
    convert_all_formats(ImportPreference::Buffer, ImportPath::StorageBuffer);
}

#[test]
fn render_auto_chooses_the_drm_modifier_image_path_in_the_vm() {
    require_vm();
    let r = renderer(ImportPreference::Auto);
    assert_eq!(
        r.import_path(),
        ImportPath::ImageDrmModifier,
        "{}",
        r.import_path_reason()
    );
    assert!(
        r.caps().dmabuf && r.caps().drm_modifier && r.caps().queue_family_foreign,
        "{:?}",
        r.caps()
    );
}

#[test]
fn render_crop_mirror_rotate_scale_on_dmabufs() {
    require_vm();
    let udmabuf = Allocator::udmabuf(UDMABUF).expect("open /dev/udmabuf");
    let (w, h) = (128, 72);
    let rgb = reference::pattern(w, h, 11);
    let specs = [
        "crop=64x40+30+9",
        "mirror",
        "flip",
        "rotate=90",
        "rotate=180",
        "rotate=270",
        "crop=96x60+16+6,mirror,rotate=90",
        "crop=96x60+16+6,flip,rotate=270",
        "scale=200x110",
        "mirror=hv,scale=200x110",
        "scale=50x30",
        "crop=96x60+16+6,mirror,rotate=90,scale=80x120",
        "crop=100x50+3+20,mirror=v,rotate=270,scale=64x64,filter=nearest",
    ];
    for import in [ImportPreference::Image, ImportPreference::Buffer] {
        let mut r = renderer(import);
        let formats = ["YUYV", "NM12", "XR24", "VYUY", "NV61", "YV12", "BA24"];
        for fmt in formats {
            let c = reference::colorimetries()[0];
            let e = reference::encode(fmt, w, h, &rgb, c, 16);
            let frame = to_dmabuf(&udmabuf, &e, true);
            for s in specs {
                let spec: ProcessSpec = s.parse().unwrap();
                let what = format!("{} {fmt} {s}", r.import_path().name());
                let out = r
                    .process(&frame, 0, c, &spec)
                    .unwrap_or_else(|err| panic!("{what}: {err}"));
                let err = check_output(&what, &out, &e, c, &spec);
                report(&format!("{what}: max error {err}"));
            }
        }
        // One frame per format on buffer index 0: one import per format, not one per processed frame.
        assert_eq!(r.stats().imports, formats.len() as u64);
        assert_eq!(r.stats().cpu_bytes_copied, 0);
    }
}

#[test]
fn render_300_frames_keep_imports_fds_and_rss_constant() {
    require_vm();
    // Resident memory must count only pages this process touched; see `run_300_frames`.
    dmacam_tests::disable_transparent_huge_pages();
    run_300_frames(ImportPreference::Image);
    run_300_frames(ImportPreference::Buffer);
}

/// Frames per run: 300 as the issue asks, plus 300 more once the software GPU has warmed up, over which
/// resident memory and malloc's bytes in use must stay flat.
const FRAMES: u32 = 600;

fn run_300_frames(import: ImportPreference) {
    let udmabuf = Allocator::udmabuf(UDMABUF).expect("open /dev/udmabuf");
    let (w, h) = (320, 240);
    let c = Colorimetry::BT601_LIMITED;
    let spec: ProcessSpec = "scale=160x120,mirror".parse().unwrap();
    // Four camera buffers, as a V4L2 queue would have, each with its own picture.
    let encoded: Vec<Encoded> = (0..4)
        .map(|i| reference::encode("YUYV", w, h, &reference::pattern(w, h, 100 + i), c, 0))
        .collect();
    let frames: Vec<Dmabuf> = encoded
        .iter()
        .map(|e| to_dmabuf(&udmabuf, e, true))
        .collect();
    let mut r = renderer(import);
    let pid = std::process::id();
    let mut fds_at = vec![];
    let mut rss_at = vec![];
    let mut malloc_at = vec![];
    let mut out_inodes = std::collections::HashMap::new();
    // Like a display, hold the two previous outputs (on screen + pending) while the next one is made.
    let mut held = std::collections::VecDeque::new();
    for n in 0..FRAMES {
        let i = (n % 4) as usize;
        let out = r
            .process(&frames[i], i as u32, c, &spec)
            .unwrap_or_else(|e| panic!("frame {n}: {e}"));
        let d = out.dmabuf().unwrap();
        let id =
            dmacam_capture::dmabuf::identity(std::os::fd::AsFd::as_fd(&*d.planes[0].fd)).unwrap();
        let prev = out_inodes.insert(out.buffer_index(), id.inode);
        assert!(
            prev.is_none() || prev == Some(id.inode),
            "output buffer {} changed its dma-buf",
            out.buffer_index()
        );
        if n == 3 || n == 150 || n == 299 {
            check_output(&format!("frame {n}"), &out, &encoded[i], c, &spec);
        }
        if n % 50 == 49 {
            fds_at.push(fd_count(pid));
            rss_at.push(dmacam_tests::smaps_rollup_kib("Rss:"));
            malloc_at.push(dmacam_tests::malloc_in_use() / 1024);
        }
        assert_eq!(
            r.stats().imports,
            (n as u64 + 1).min(4),
            "imports after frame {n}"
        );
        held.push_back(out);
        if held.len() > 2 {
            held.pop_front();
        }
    }
    drop(held);
    let s = r.stats();
    report(&format!(
        "{FRAMES} frames: {s:?}, fds {fds_at:?}, RSS KiB {rss_at:?}, malloc in use KiB {malloc_at:?}, \
         AnonHugePages {} KiB, output buffers {}",
        dmacam_tests::smaps_rollup_kib("AnonHugePages:"),
        out_inodes.len()
    ));
    assert_eq!(s.frames, u64::from(FRAMES));
    assert_eq!(s.imports, 4, "one import per camera buffer");
    assert_eq!(s.live_imports, 4);
    assert_eq!(
        s.memory_imports, 4,
        "YUYV is one plane: one vkAllocateMemory import per camera buffer"
    );
    assert_eq!(s.cpu_bytes_copied, 0);
    assert_eq!(
        out_inodes.len(),
        3,
        "a ring of three exported output buffers"
    );
    // Samples every 50 frames (after frame 49, 99, ...; the pixel checks at frames 150 and 299 come before
    // the samples at 199 and 299). RSS used to grow in 2–3 steps of up to 11 MiB at any frame, up to 600,
    // ending on a ~127 MB plateau; no code of ours or lavapipe's was behind them. Measured in the VM with
    // /proc/self/smaps, /proc/vmstat and mallinfo2 every 50 frames over 1,200 frames a run: with THP on,
    // malloc's bytes in use stayed at 33,580 KiB (±1) while RSS stepped +5.3 MiB (frames 100–150) and
    // +1.4 MiB (300–350), each step one more `thp_collapse_alloc` batch (16→22, 44→45) and the same growth
    // in AnonHugePages of one glibc arena: khugepaged filling partly used 2 MiB ranges (malloc's free but
    // mapped memory) into huge pages, on its 10-second clock. With THP off for the process (above), the same
    // runs stayed flat to the KiB from frame 300 to 1,200 (77,860 KiB image import, 87,512 buffer import);
    // the only step after frame 100 was the pixel check at frame 299 (+2 MiB, malloc's free pool +1.8 MiB:
    // its buffers, freed). So: after frame 299 nothing may grow. A leak of 10 KiB a frame (injected into
    // Renderer::process for a check, filled with data) added 3,005 KiB to malloc's bytes in use over the last
    // 300 frames but only 760 KiB to RSS, flat for 200 of them: most leaked blocks landed in memory malloc had
    // freed earlier and kept mapped. So malloc's bytes in use catch heap leaks; RSS catches the rest (mapped
    // memory of ours, of lavapipe or of the kernel's dma-buf exports).
    assert!(
        fds_at.iter().all(|&n| n == fds_at[0]),
        "fd count changed during the run: {fds_at:?}"
    );
    let (first, last) = (rss_at[0], rss_at[rss_at.len() - 1]);
    assert!(
        last <= first + 8 * 1024,
        "RSS grew by more than the software GPU's warm-up and the pixel checks: {rss_at:?} KiB"
    );
    let (malloc_300, malloc_last) = (malloc_at[300 / 50 - 1], malloc_at[malloc_at.len() - 1]);
    assert!(
        malloc_last <= malloc_300 + 64,
        "malloc's bytes in use grew after frame 300 (a per-frame leak): {malloc_at:?} KiB"
    );
    let at_300 = rss_at[300 / 50 - 1];
    assert!(
        last <= at_300 + 256,
        "RSS grew after frame 300 (a per-frame leak): {rss_at:?} KiB"
    );
    let before_renderer = fds_at[0];
    drop(r);
    assert!(
        fd_count(pid) < before_renderer,
        "dropping the renderer released no fds"
    );
}

#[test]
fn render_output_ring_waits_for_its_consumers() {
    require_vm();
    let udmabuf = Allocator::udmabuf(UDMABUF).expect("open /dev/udmabuf");
    let c = Colorimetry::BT601_LIMITED;
    let e = reference::encode("UYVY", 64, 48, &reference::pattern(64, 48, 5), c, 0);
    let frame = to_dmabuf(&udmabuf, &e, true);
    let mut r = renderer(ImportPreference::Auto);
    let spec = ProcessSpec::default();
    let held: Vec<OutputFrame> = (0..3)
        .map(|_| r.process(&frame, 0, c, &spec).unwrap())
        .collect();
    let err = r.process(&frame, 0, c, &spec).unwrap_err();
    assert!(
        matches!(err, RenderError::RingExhausted { ring: 3 }),
        "{err}"
    );
    drop(held);
    let out = r.process(&frame, 0, c, &spec).unwrap();
    check_output("after release", &out, &e, c, &spec);
}

#[test]
fn render_rejects_bad_frames_clearly_without_leaking_fds() {
    require_vm();
    let udmabuf = Allocator::udmabuf(UDMABUF).expect("open /dev/udmabuf");
    let mut r = renderer(ImportPreference::Auto);
    let pid = std::process::id();
    let c = Colorimetry::BT601_LIMITED;
    let spec = ProcessSpec::default();
    let small = Arc::new(udmabuf.alloc(4096).unwrap());
    let before = fd_count(pid);
    // A 640x480 YUYV frame cannot live in one page.
    let frame = Dmabuf {
        width: 640,
        height: 480,
        fourcc: Fourcc::new(b"YUYV"),
        modifier: DRM_FORMAT_MOD_LINEAR,
        planes: vec![DmabufPlane {
            fd: small.clone(),
            offset: 0,
            stride: 1280,
        }],
    };
    let msg = r.process(&frame, 0, c, &spec).unwrap_err().to_string();
    assert!(
        msg.contains("plane 0") && msg.contains("the dma-buf has only 4096"),
        "{msg}"
    );
    let mut mj = frame.clone();
    mj.fourcc = Fourcc::new(b"MJPG");
    let msg = r.process(&mj, 0, c, &spec).unwrap_err().to_string();
    assert!(
        msg.contains("cannot read MJPG frames") && msg.contains("YUYV"),
        "{msg}"
    );
    let mut tiled = frame.clone();
    tiled.modifier = 0x0100_0000_0000_0001; // I915_FORMAT_MOD_X_TILED
    let msg = r.process(&tiled, 0, c, &spec).unwrap_err().to_string();
    assert!(msg.contains("not LINEAR"), "{msg}");
    // A plain file is not a dma-buf.
    let file = Arc::new(OwnedFd::from(
        std::fs::File::open("/proc/self/status").unwrap(),
    ));
    let mut notbuf = frame.clone();
    notbuf.width = 16;
    notbuf.height = 2;
    notbuf.planes[0].fd = file;
    notbuf.planes[0].stride = 32;
    let err = r.process(&notbuf, 1, c, &spec).unwrap_err();
    report(&format!("plain file as a plane: {err}"));
    drop(notbuf);
    assert_eq!(fd_count(pid), before, "a failed import leaked an fd");
    assert_eq!(r.stats().imports, 0);
    assert_eq!(r.stats().live_imports, 0);
}

/// `dmacam dump --process`: vivid's frames go through the render stage (scaled and mirrored on the GPU) and
/// the file holds the exported dma-buf's pixels, compared in full with the CPU reference of a frame captured
/// by v4l2-ctl with the same settings.
#[test]
fn render_dump_process_writes_the_gpu_output() {
    use dmacam_tests::{dmacam, results_dir, run, run_ok};
    use std::process::Command;
    require_vm();
    // vivid's "100% Color Squares" without the OSD text: colour edges in both directions, the same picture
    // in every frame.
    let ctrls = ["--ctrl", "test_pattern=4", "--ctrl", "osd_text_mode=2"];
    let reference_raw = results_dir().join("dump-process-reference.raw");
    let _ = std::fs::remove_file(&reference_raw);
    run_ok(Command::new("v4l2-ctl").args([
        "-d",
        "/dev/video0",
        "--set-fmt-video=width=640,height=360,pixelformat=YUYV",
        "--set-ctrl=test_pattern=4,osd_text_mode=2",
        "--stream-mmap",
        "--stream-count=1",
        &format!("--stream-to={}", reference_raw.display()),
    ]));
    let frame = std::fs::read(&reference_raw).expect("reference frame");
    assert_eq!(frame.len(), 640 * 360 * 2);
    let spec: ProcessSpec = "scale=320x180,mirror".parse().unwrap();
    let e = Encoded {
        fourcc: "YUYV",
        width: 640,
        height: 360,
        planes: vec![(frame, 1280)],
    };
    let want = reference::process(
        Image {
            width: 640,
            height: 360,
            px: reference::decode(&e, Colorimetry::BT601_LIMITED),
        },
        &spec,
    );
    let colours: std::collections::HashSet<_> = want
        .px
        .iter()
        .map(|p| p.map(|v| (v * 255.0).round() as u8))
        .collect();
    let (top, bottom) = (want.px[..320].to_vec(), want.px[320 * 179..].to_vec());
    assert!(
        colours.len() >= 7 && top != bottom,
        "vivid's colour squares: {} colours",
        colours.len()
    );

    let out = results_dir().join("dump-process.raw");
    let _ = std::fs::remove_file(&out);
    let dump = |output: &std::path::Path, process: &str| {
        let mut cmd = dmacam();
        cmd.args([
            "dump",
            "-d",
            "/dev/video0",
            "--format",
            "YUYV",
            "--size",
            "640x360",
        ])
        .args(ctrls)
        .args(["--process", process, "--frames", "3", "-o"])
        .arg(output);
        cmd
    };
    run_ok(&mut dump(&out, "scale=320x180,mirror"));
    let data = std::fs::read(&out).expect("dump output");
    let stride = dmacam_render::output_stride(320) as usize;
    assert_eq!(data.len(), 3 * stride * 180, "three XRGB8888 frames");
    for (i, f) in data.chunks(stride * 180).enumerate() {
        let worst = reference::compare(&format!("dump --process frame {i}"), f, stride, &want);
        report(&format!("dump --process frame {i}: max error {worst}/255"));
    }

    // Bad input: one line naming the problem, no output file.
    let y4m = results_dir().join("dump-process.y4m");
    let _ = std::fs::remove_file(&y4m);
    let res = run(&mut dump(&y4m, "mirror"));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("y4m") && err.contains("XRGB8888"), "{err}");
    assert!(!y4m.exists(), "a failed dump left {}", y4m.display());
    let res = run(&mut dump(&out, "rotate=45"));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--process") && err.contains("rotate"), "{err}");
}
