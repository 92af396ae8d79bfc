//! vivid's own frames, captured from /dev/video0 in every format it offers, converted by the render stage
//! and compared with the CPU reference.

use super::*;

/// Builds the reference's view of a captured frame: each colour plane's bytes with its stride, read through
/// the capture stage's mappings (DMA_BUF_IOCTL_SYNC-bracketed).
pub(super) fn encoded_from_capture(frame: &dmacam_capture::Frame, fourcc: &'static str) -> Encoded {
    let d = frame.dmabuf().clone();
    let memory = frame.memory().to_vec();
    let planes = frame
        .read(|mem| {
            d.planes
                .iter()
                .map(|p| {
                    let m = memory
                        .iter()
                        .position(|fd| Arc::ptr_eq(fd, &p.fd))
                        .expect("plane fd is one of the buffer's memory planes");
                    (mem[m][p.offset as usize..].to_vec(), p.stride)
                })
                .collect::<Vec<_>>()
        })
        .expect("read the captured frame");
    let mut planes = planes;
    if fourcc == "NV12" && planes.len() == 1 {
        // Single-planar NV12: CbCr follows Y in the same buffer.
        let (y, stride) = planes.remove(0);
        let split = (stride * d.height) as usize;
        planes = vec![(y[..split].to_vec(), stride), (y[split..].to_vec(), stride)];
    }
    Encoded {
        fourcc,
        width: d.width,
        height: d.height,
        planes,
    }
}

/// Real vivid frames (its noise test pattern plus OSD text: detail everywhere) in every format dmacam reads,
/// single- and multi-planar, for BT.601/BT.709 × limited/full as vivid reports them in the V4L2 format.
#[test]
fn render_vivid_frames_in_every_format_match_the_cpu_reference() {
    require_vm();
    vivid_frames_match_the_cpu_reference(&[
        ("/dev/video0", "YUYV"),
        ("/dev/video0", "UYVY"),
        ("/dev/video0", "NV12"),
        ("/dev/video1", "NM12"),
        ("/dev/video0", "GREY"),
        ("/dev/video0", "XR24"),
        ("/dev/video0", "AR24"),
        ("/dev/video0", "RGB3"),
        ("/dev/video0", "BGR3"),
    ]);
}

/// The same for the byte orders, chroma orders and plane layouts added later: the other packed 4:2:2
/// orders, NV21 and 4:2:2 semi-planar, three-plane 4:2:0, the other 32-bit RGB orders (single-planar node).
#[test]
fn render_vivid_frames_in_the_other_orders_match_the_cpu_reference() {
    require_vm();
    vivid_frames_match_the_cpu_reference(&[
        ("/dev/video0", "YVYU"),
        ("/dev/video0", "VYUY"),
        ("/dev/video0", "NV21"),
        ("/dev/video0", "NV16"),
        ("/dev/video0", "NV61"),
        ("/dev/video0", "YU12"),
        ("/dev/video0", "YV12"),
        ("/dev/video0", "BX24"),
        ("/dev/video0", "BA24"),
        ("/dev/video0", "XB24"),
        ("/dev/video0", "AB24"),
    ]);
}

/// The same for the multi-planar node's one-buffer-per-plane forms (vivid `multiplanar=2`).
#[test]
fn render_vivid_multi_buffer_frames_match_the_cpu_reference() {
    require_vm();
    vivid_frames_match_the_cpu_reference(&[
        ("/dev/video1", "NM21"),
        ("/dev/video1", "NM16"),
        ("/dev/video1", "NM61"),
        ("/dev/video1", "YM12"),
        ("/dev/video1", "YM21"),
    ]);
}

fn vivid_frames_match_the_cpu_reference(cases: &[(&str, &'static str)]) {
    use dmacam_capture::{Device, FormatRequest, Stream, StreamOptions};
    use std::time::Duration;
    // vivid's pattern and colorimetry controls persist: put back at the end (pass or fail) for later tests.
    let _restore = dmacam_tests::SetOnDrop::new(
        &["/dev/video0", "/dev/video1"],
        "test_pattern=0,y_cbcr_encoding=0,quantization=0",
    );
    let mut r = renderer(ImportPreference::Auto);
    let spec = ProcessSpec::default();
    // (V4L2_YCBCR_ENC_*, V4L2_QUANTIZATION_*) as set through vivid's controls.
    let colours = [(1, 2), (1, 1), (2, 2), (2, 1)];
    let mut frames_done = 0u64;
    for &(node, fmt) in cases {
        for (enc, quant) in colours {
            let what = format!("vivid {node} {fmt} ycbcr_enc {enc} quantization {quant}");
            let dev = Device::open(node).unwrap_or_else(|e| panic!("{what}: {e}"));
            let set = |name: &str, value: i32| {
                let c = dev
                    .control(name)
                    .unwrap_or_else(|e| panic!("{what}: control {name}: {e}"));
                dev.set_control(&c, value)
                    .unwrap_or_else(|e| panic!("{what}: set {name}={value}: {e}"));
            };
            let pattern = dev
                .control("test_pattern")
                .expect("vivid test_pattern control");
            dev.set_menu(&pattern, "Noise")
                .expect("vivid noise pattern");
            set("y_cbcr_encoding", enc);
            set("quantization", quant);
            let format = dev
                .negotiate(&FormatRequest {
                    fourcc: Some(fmt.parse().unwrap()),
                    size: Some((320, 180)),
                    fps: Some(30),
                })
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let colour = Colorimetry::from_v4l2(
                format.fourcc,
                format.colorspace,
                format.ycbcr_enc,
                format.quantization,
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            report(&format!(
                "{what}: V4L2 colorimetry {}/{}/{} -> {colour:?}",
                format.colorspace, format.ycbcr_enc, format.quantization
            ));
            if !matches!(
                fmt,
                "XR24" | "AR24" | "BX24" | "BA24" | "XB24" | "AB24" | "RGB3" | "BGR3"
            ) {
                let want_enc = if enc == 1 {
                    dmacam_render::YcbcrEnc::Bt601
                } else {
                    dmacam_render::YcbcrEnc::Bt709
                };
                assert_eq!(colour.ycbcr_enc, want_enc, "{what}");
            }
            let want_q = if quant == 1 {
                dmacam_render::Quantization::Full
            } else {
                dmacam_render::Quantization::Limited
            };
            assert_eq!(colour.quantization, want_q, "{what}");
            let mut stream = Stream::new(dev, format, &StreamOptions::default())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            stream.start().unwrap_or_else(|e| panic!("{what}: {e}"));
            for _ in 0..2 {
                let frame = stream
                    .next_frame(Duration::from_secs(20))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let out = r
                    .process(frame.dmabuf(), frame.index() as u32, colour, &spec)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let e = encoded_from_capture(&frame, fmt);
                let decoded = Image {
                    width: e.width as usize,
                    height: e.height as usize,
                    px: reference::decode(&e, colour),
                };
                reference::assert_detailed(&decoded, 100);
                let err = check_output(&what, &out, &e, colour, &spec);
                report(&format!(
                    "{what}: frame {} buffer {}: max error {err}",
                    frame.sequence(),
                    frame.index()
                ));
                frames_done += 1;
            }
            // The stream (and its buffers) go before the next format; their imports go with forget_imports.
            drop(stream);
            r.forget_imports();
        }
    }
    assert_eq!(r.stats().frames, frames_done);
    assert_eq!(r.stats().cpu_bytes_copied, 0);
}
