//! The pixel-format catalogue (`dmacam_capture::format::CATALOGUE`) against every stage that reads it: what
//! capture streams, the render stage must read or a display must take as it is.

use dmacam_capture::decode::frames_fourcc;
use dmacam_capture::format::{supported, PixelFormat, CATALOGUE};
use dmacam_display::formats::{drm_format_for, lookup};
use dmacam_render::{SourceFormat, OUTPUT_FOURCC};

#[test]
fn every_captured_format_can_be_shown() {
    for p in supported() {
        // Compressed formats reach the stages decoded.
        let shown = frames_fourcc(p.fourcc);
        let readable = SourceFormat::from_fourcc(shown).is_some();
        let as_is = drm_format_for(shown).is_some();
        assert!(
            readable || as_is,
            "{} is captured but neither the render stage reads nor a display takes {shown}",
            p.name()
        );
        let entry = PixelFormat::lookup(shown).expect("what a frame carries is captured");
        assert!(!entry.is_compressed(), "{} decodes to {shown}", p.name());
    }
}

#[test]
fn the_render_output_is_a_catalogue_format_shown_as_is() {
    let out = lookup(OUTPUT_FOURCC).expect("the render stage's output has a DRM twin");
    assert_eq!(
        out.drm, OUTPUT_FOURCC,
        "V4L2 XR24 is DRM XRGB8888, same code"
    );
    assert!(SourceFormat::from_fourcc(OUTPUT_FOURCC).is_some());
}

#[test]
fn every_stage_answers_from_the_catalogue() {
    for p in CATALOGUE {
        // The display stage knows exactly the formats with a DRM twin, under that twin.
        assert_eq!(drm_format_for(p.fourcc), p.drm, "{}", p.fourcc);
        // The render stage reads layouts, so formats with equal layouts read alike.
        let kind = SourceFormat::from_pixel(*p);
        for q in CATALOGUE.iter().filter(|q| q.layout == p.layout) {
            assert_eq!(
                SourceFormat::from_pixel(*q),
                kind,
                "{} vs {}",
                p.fourcc,
                q.fourcc
            );
        }
    }
}
