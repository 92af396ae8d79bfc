//! The render stage at frame sizes that are no multiple of a driver's pitch alignment, on real dma-bufs:
//! every format through both import paths, and the pattern source's own buffers.

use dmacam_capture::alloc::{Allocator, SYSTEM_HEAP};
use dmacam_render::{Colorimetry, ImportPath, ImportPreference, ProcessSpec};
use dmacam_tests::require_vm;

use super::vivid::encoded_from_capture;
use super::{check_output, reference, renderer, report, to_dmabuf};

/// Frame sizes whose rows are packed tightly but are no multiple of the driver's image pitch alignment
/// (642x362, 641x361, 1366x768), in every format, through the image path (where the driver refuses a
/// buffer's layout, the renderer imports that buffer as a storage buffer instead and says so) and the buffer
/// path, unscaled and turned (`rotate=90` was the case that failed: "the image needs 467392 bytes, the
/// dma-buf has 466944").
fn odd_sizes_on_every_format(import: ImportPreference) {
    let heap = Allocator::dma_heap(SYSTEM_HEAP).expect("open /dev/dma_heap/system");
    let mut r = renderer(import);
    let c = reference::colorimetries()[3];
    let mut index = 0u32;
    let mut fell_back = vec![];
    for (w, h) in [(642, 362), (641, 361), (1366, 768)] {
        let rgb = reference::pattern(w, h, w + 3 * h);
        for fmt in reference::FORMATS {
            let e = reference::encode(fmt, w, h, &rgb, c, 0);
            let frame = to_dmabuf(&heap, &e, true);
            let spec: ProcessSpec = "rotate=90".parse().unwrap();
            let what = format!("{} {fmt} {w}x{h} rotate=90", r.import_path().name());
            let out = r
                .process(&frame, index % 16, c, &spec)
                .unwrap_or_else(|err| panic!("{what}: {err}"));
            let used = r
                .buffer_import_path(index % 16)
                .expect("the buffer is imported");
            let err = check_output(&what, &out, &e, c, &spec);
            report(&format!(
                "{what}: imported as {}: max error {err}",
                used.name()
            ));
            if used != r.import_path() {
                fell_back.push(format!("{fmt} {w}x{h}"));
            }
            index += 1;
        }
    }
    if r.import_path() == ImportPath::StorageBuffer {
        assert!(fell_back.is_empty(), "{fell_back:?}");
    }
    report(&format!(
        "{}: {} of {index} frames fell back to the storage-buffer import: {fell_back:?}",
        r.import_path().name(),
        fell_back.len()
    ));
}

#[test]
fn render_image_path_takes_odd_sizes_in_every_format() {
    require_vm();
    odd_sizes_on_every_format(ImportPreference::Image);
}

#[test]
fn render_buffer_path_takes_odd_sizes_in_every_format() {
    require_vm();
    odd_sizes_on_every_format(ImportPreference::Buffer);
}

/// The pattern source's real dma-bufs (udmabuf) at 642x362 and 1366x768, in every format it offers, turned
/// on the GPU through the renderer's automatic path, against the CPU reference of the very bytes captured.
#[test]
fn render_pattern_source_at_odd_sizes_in_every_format() {
    use dmacam_capture::{PatternKind, PatternSource, StreamOptions};
    use std::time::Duration;
    require_vm();
    let mut r = renderer(ImportPreference::Auto);
    let spec: ProcessSpec = "rotate=90".parse().unwrap();
    for (w, h) in [(642, 362), (1366, 768)] {
        for pixel in dmacam_capture::pattern::formats() {
            if pixel.is_compressed() {
                continue;
            }
            let name = pixel.fourcc.to_string();
            let fmt = *reference::FORMATS
                .iter()
                .find(|f| **f == name)
                .unwrap_or_else(|| panic!("the reference knows {name}"));
            let what = format!("pattern {fmt} {w}x{h}");
            let format = dmacam_capture::pattern::format(pixel.fourcc, w, h).expect("offered");
            assert_eq!((format.width, format.height), (w, h), "{what}");
            let mut src = PatternSource::new(
                PatternKind::Gradient,
                format.clone(),
                30,
                &StreamOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                src.not_dmabuf_reason().is_none(),
                "{what}: {:?}",
                src.not_dmabuf_reason()
            );
            src.start().unwrap_or_else(|e| panic!("{what}: {e}"));
            let frame = src
                .next_frame(Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let colour = Colorimetry::from_v4l2(
                format.fourcc,
                format.colorspace,
                format.ycbcr_enc,
                format.quantization,
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            let out = r
                .process(frame.dmabuf(), frame.index() as u32, colour, &spec)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let used = r
                .buffer_import_path(frame.index() as u32)
                .expect("imported");
            let e = encoded_from_capture(&frame, fmt);
            let err = check_output(&what, &out, &e, colour, &spec);
            report(&format!(
                "{what}: imported as {}: max error {err}",
                used.name()
            ));
            drop(frame);
            drop(src);
            r.forget_imports();
        }
    }
}
