//! Host tests of the render stage's shader maths on the machine's Vulkan driver (lavapipe in CI): frames are
//! uploaded the ordinary way (host lavapipe cannot import dma-bufs) and go through the same storage-buffer
//! shader as the dma-buf path. Every output pixel is compared with the CPU reference in `common/reference.rs`.

#[path = "common/reference.rs"]
mod reference;

use dmacam_capture::Fourcc;
use dmacam_render::{
    Colorimetry, HostFrame, HostPlane, ImportPreference, Mode, Options, ProcessSpec, RenderError,
    Renderer,
};
use reference::{Encoded, Image};

fn host_renderer() -> Renderer {
    Renderer::new(Options {
        mode: Mode::HostMemory,
        import: ImportPreference::Buffer,
        ring: 2,
    })
    .unwrap_or_else(|e| {
        panic!("no usable Vulkan device on this host (install mesa-vulkan-drivers): {e}")
    })
}

fn host_frame(e: &Encoded) -> HostFrame<'_> {
    HostFrame {
        width: e.width,
        height: e.height,
        fourcc: e.fourcc.parse::<Fourcc>().unwrap(),
        planes: e
            .planes
            .iter()
            .map(|(d, s)| HostPlane {
                data: d,
                stride: *s,
            })
            .collect(),
    }
}

fn run(r: &mut Renderer, e: &Encoded, c: Colorimetry, spec: &ProcessSpec, what: &str) -> u8 {
    let out = r
        .process_host(&host_frame(e), c, spec)
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    let want = reference::process(
        Image {
            width: e.width as usize,
            height: e.height as usize,
            px: reference::decode(e, c),
        },
        spec,
    );
    assert_eq!(
        (out.width() as usize, out.height() as usize),
        (want.width, want.height),
        "{what}: output size"
    );
    reference::compare(
        what,
        out.host_pixels().expect("host-visible output"),
        out.stride() as usize,
        &want,
    )
}

#[test]
fn every_format_and_colorimetry_matches_the_cpu_reference() {
    let mut r = host_renderer();
    let (w, h) = (122, 70);
    let rgb = reference::pattern(w, h, 1);
    reference::assert_detailed(
        &Image {
            width: w as usize,
            height: h as usize,
            px: rgb.clone(),
        },
        200,
    );
    let spec = ProcessSpec::default();
    let mut report = vec![];
    for fmt in reference::FORMATS {
        for c in reference::colorimetries() {
            let e = reference::encode(fmt, w, h, &rgb, c, 12);
            let what = format!("{fmt} {c:?}");
            let err = run(&mut r, &e, c, &spec, &what);
            report.push(format!("{what}: max error {err}"));
        }
    }
    eprintln!("{}", report.join("\n"));
    // Odd-width rows and padding that is not a multiple of 4 exercise the byte addressing.
    for fmt in ["RGB3", "GREY", "NV12", "NV61", "YV12", "YVYU", "BA24"] {
        let rgb = reference::pattern(37, 23, 2);
        let c = Colorimetry::BT601_LIMITED;
        let e = reference::encode(fmt, 37, 23, &rgb, c, 3);
        run(&mut r, &e, c, &spec, &format!("{fmt} 37x23"));
    }
}

#[test]
fn crop_mirror_rotate_and_scale_match_the_cpu_reference() {
    let mut r = host_renderer();
    let (w, h) = (96, 64);
    let rgb = reference::pattern(w, h, 3);
    let specs = [
        "crop=50x30+7+5",
        "mirror",
        "flip",
        "mirror=hv",
        "rotate=90",
        "rotate=180",
        "rotate=270",
        "flip,rotate=90",
        "mirror,rotate=270",
        "crop=32x20+6+4,mirror,rotate=90",
        "crop=40x12+2+2,mirror=hv,rotate=270",
        "scale=160x100",
        "mirror,scale=160x100",
        "rotate=180,scale=120x72",
        "crop=40x30+3+5,flip,scale=64x60",
        "scale=45x31",
        "scale=45x31,filter=nearest",
        "scale=200x50",
        "crop=60x40+10+6,mirror,rotate=90,scale=75x51",
        "crop=33x47+40+3,flip,rotate=270,scale=64x30",
        "crop=64x48+31+15,mirror=hv,rotate=180",
    ];
    for fmt in ["YUYV", "VYUY", "NV12", "NV61", "YU12", "XR24", "AB24"] {
        let c = reference::colorimetries()[2];
        let e = reference::encode(fmt, w, h, &rgb, c, 8);
        for s in specs {
            let spec: ProcessSpec = s.parse().unwrap();
            let err = run(&mut r, &e, c, &spec, &format!("{fmt} {s}"));
            eprintln!("{fmt} {s}: max error {err}");
        }
    }
    assert!(
        r.stats().cpu_bytes_copied > 0,
        "host uploads are copies and must be counted"
    );
}

/// Each format has an unscaled variant for crops, mirrors and quarter turns (packed 4:2:2 two pixels per
/// invocation from one word, semi-planar and three-plane formats a 2x2 block, the others one pixel) and general ones
/// (nearest for crops on odd pixels, misaligned rows and `filter=nearest`; bilinear when scaling). Every format goes through each, on even and odd sizes.
#[test]
fn every_format_through_the_fast_and_general_variants() {
    let mut r = host_renderer();
    let c = reference::colorimetries()[1];
    // (size, row padding): 4-aligned rows take the fast variants; rows padded by 2 or 3 bytes make 4:2:2
    // (and, by 3, NV12) fall back to the general variant at 1:1.
    for ((w, h), pad) in [((64, 40), 8), ((37, 23), 2), ((41, 29), 3), ((642, 362), 0)] {
        let rgb = reference::pattern(w, h, w + h);
        for fmt in reference::FORMATS {
            let e = reference::encode(fmt, w, h, &rgb, c, pad);
            for s in [
                "convert",
                "crop=20x12+4+2",
                "crop=21x13+4+2",
                "crop=20x12+3+5",
                "mirror",
                "flip,crop=21x13+4+2",
                "rotate=180",
                "rotate=270",
                "scale=33x19",
                "scale=33x19,filter=nearest",
            ] {
                let spec: ProcessSpec = s.parse().unwrap();
                run(
                    &mut r,
                    &e,
                    c,
                    &spec,
                    &format!("{fmt} {w}x{h} pad {pad} {s}"),
                );
            }
        }
    }
}

/// Frame sizes cameras and users ask for that are not multiples of 4 or 8 (odd widths and heights, 1366
/// wide), on every format, unscaled (fast variant where rows allow it), turned and scaled.
#[test]
fn odd_frame_sizes_on_every_format() {
    let mut r = host_renderer();
    let c = reference::colorimetries()[0];
    for (w, h) in [(642, 362), (641, 361), (1366, 768)] {
        let rgb = reference::pattern(w, h, w ^ h);
        for fmt in reference::FORMATS {
            let e = reference::encode(fmt, w, h, &rgb, c, 0);
            for s in [
                "convert",
                "rotate=90",
                "crop=401x201+3+1,mirror",
                "scale=320x181",
            ] {
                let spec: ProcessSpec = s.parse().unwrap();
                run(&mut r, &e, c, &spec, &format!("{fmt} {w}x{h} {s}"));
            }
        }
    }
}

#[test]
fn unsupported_formats_and_bad_frames_give_clear_errors() {
    let mut r = host_renderer();
    let data = vec![0x80u8; 64 * 48 * 2];
    let mut frame = HostFrame {
        width: 64,
        height: 48,
        fourcc: Fourcc::new(b"MJPG"),
        planes: vec![HostPlane {
            data: &data,
            stride: 128,
        }],
    };
    let c = Colorimetry::BT601_LIMITED;
    let e = r
        .process_host(&frame, c, &ProcessSpec::default())
        .unwrap_err();
    assert!(matches!(e, RenderError::UnsupportedFormat { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("MJPG") && msg.contains("YUYV") && msg.contains("NV12"),
        "{msg}"
    );

    frame.fourcc = Fourcc::new(b"YUYV");
    frame.planes[0].stride = 100;
    let msg = r
        .process_host(&frame, c, &ProcessSpec::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("stride 100 is below its row size 128"),
        "{msg}"
    );

    frame.planes[0].stride = 128;
    frame.planes[0].data = &data[..1000];
    let msg = r
        .process_host(&frame, c, &ProcessSpec::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("has 1000 bytes, needs 6144"), "{msg}");

    frame.planes[0].data = &data;
    let spec: ProcessSpec = "crop=65x10+0+0".parse().unwrap();
    let msg = r.process_host(&frame, c, &spec).unwrap_err().to_string();
    assert!(msg.contains("does not fit in the 64x48 frame"), "{msg}");

    let e = dmacam_render::Colorimetry::from_v4l2(Fourcc::new(b"YUYV"), 10, 0, 0).unwrap_err();
    assert!(e.to_string().contains("BT.2020"), "{e}");
    assert_eq!(
        Colorimetry::from_v4l2(Fourcc::new(b"YUYV"), 3, 0, 0).unwrap(),
        Colorimetry {
            ycbcr_enc: dmacam_render::YcbcrEnc::Bt709,
            quantization: dmacam_render::Quantization::Limited
        }
    );
    // SMPTE 240M (colorspace 2) is refused like BT.2020; a JPEG-colorspace YUV camera is full range, and
    // the CPU reference reads it the same way (app's Csc::for_format shares capture's resolution).
    let e = Colorimetry::from_v4l2(Fourcc::new(b"YUYV"), 2, 0, 0).unwrap_err();
    assert!(e.to_string().contains("SMPTE 240M"), "{e}");
    assert_eq!(
        Colorimetry::from_v4l2(Fourcc::new(b"YUYV"), 7, 0, 0)
            .unwrap()
            .quantization,
        dmacam_render::Quantization::Full
    );
    assert_eq!(
        Colorimetry::from_v4l2(Fourcc::new(b"RGB3"), 8, 0, 0)
            .unwrap()
            .quantization,
        dmacam_render::Quantization::Full
    );
}

/// On a device without dma-buf import (the host's lavapipe), the dma-buf mode must refuse with the missing
/// extension's name; where the device has it, the mode must come up.
#[test]
fn dmabuf_mode_names_missing_extensions() {
    let devices = dmacam_render::probe().expect("Vulkan loader");
    let missing: Vec<String> = devices
        .iter()
        .flat_map(|d| d.missing_required.clone())
        .collect();
    let all_lack = !devices.is_empty() && devices.iter().all(|d| !d.missing_required.is_empty());
    match Renderer::new(Options::default()) {
        Ok(_) => assert!(
            !all_lack,
            "renderer came up although every device lacks {missing:?}"
        ),
        Err(e) => {
            assert!(
                all_lack,
                "dma-buf mode failed although a device offers it: {e}"
            );
            let msg = e.to_string();
            assert!(matches!(e, RenderError::MissingExtensions { .. }), "{msg}");
            assert!(msg.contains(&devices[0].missing_required[0]), "{msg}");
            assert!(msg.contains(&devices[0].name), "{msg}");
        }
    }
}
