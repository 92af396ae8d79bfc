use super::*;
use crate::dmabuf::Fourcc;

#[test]
fn aliases_and_layouts() {
    assert_eq!(parse_fourcc("nv12m").unwrap(), Fourcc::new(b"NM12"));
    assert_eq!(parse_fourcc("YUYV").unwrap(), Fourcc::new(b"YUYV"));
    assert_eq!(parse_fourcc("rgb24").unwrap(), Fourcc::new(b"RGB3"));
    assert_eq!(fourcc_name(Fourcc::new(b"NM12")), "NV12M");
    assert_eq!(fourcc_name(Fourcc::new(b"YU12")), "YU12");
    assert_eq!(fourcc_name(Fourcc::new(b"H264")), "H264");
    let nv12 = PixelFormat::lookup(Fourcc::new(b"NV12")).unwrap();
    assert_eq!(nv12.plane_size(1, 641, 361), (321, 181));
    let f = Format {
        fourcc: nv12.fourcc,
        width: 640,
        height: 360,
        mplane: false,
        planes: vec![PlaneFormat {
            bytesperline: 640,
            sizeimage: 640 * 540,
        }],
        colorspace: 0,
        ycbcr_enc: 0,
        quantization: 0,
    };
    assert_eq!(f.color_plane_location(nv12, 1), (0, 640 * 360, 640));
    let yu12 = PixelFormat::lookup(Fourcc::new(b"YU12")).unwrap();
    assert_eq!(
        f.color_plane_location(yu12, 2),
        (0, 640 * 360 + 320 * 180, 320)
    );
}

#[test]
fn plane_sizes() {
    let find = |c: &[u8; 4]| PixelFormat::find(Fourcc::new(c)).unwrap();
    assert_eq!(find(b"YUYV").frame_bytes(640, 360), 640 * 360 * 2);
    let nm12 = find(b"NM12");
    assert_eq!(nm12.frame_bytes(640, 360), 640 * 360 * 3 / 2);
    assert_eq!((nm12.min_stride(1, 640), nm12.rows(1, 360)), (640, 180));
    assert_eq!(find(b"NV16").rows(1, 360), 360);
    assert_eq!(find(b"YU12").frame_bytes(4, 2), 8 + 2 + 2);
    assert_eq!(find(b"XR24").frame_bytes(2, 2), 16);
    assert_eq!(find(b"RGB3").min_stride(0, 5), 15);
    // Known, but not streamed.
    assert!(PixelFormat::lookup(Fourcc::new(b"BGR4")).is_none());
    assert!(PixelFormat::find(Fourcc::new(b"BGR4")).is_some());
}

#[test]
fn every_fourcc_and_alias_is_unique() {
    for (i, p) in CATALOGUE.iter().enumerate() {
        for q in &CATALOGUE[i + 1..] {
            assert_ne!(p.fourcc, q.fourcc, "{} twice in the catalogue", p.fourcc);
            if p.alias.is_some() {
                assert_ne!(p.alias, q.alias, "alias of {} and {}", p.fourcc, q.fourcc);
            }
        }
        // An alias must not shadow another entry's fourcc.
        if let Some(alias) = p.alias {
            assert!(
                alias.len() != 4 || PixelFormat::find(alias.parse().unwrap()).is_none(),
                "{alias}"
            );
            assert_eq!(parse_fourcc(alias), Ok(p.fourcc));
        }
        assert_eq!(parse_fourcc(&p.fourcc.to_string()), Ok(p.fourcc));
    }
}

#[test]
fn every_drm_mapping_round_trips() {
    for p in CATALOGUE {
        let Some(drm) = p.drm else {
            continue;
        };
        let back = PixelFormat::from_drm(drm)
            .unwrap_or_else(|| panic!("DRM {drm} of {} maps back to nothing", p.fourcc));
        assert_eq!(back.drm, Some(drm));
        assert_eq!(
            back.layout, p.layout,
            "{} and {} share DRM {drm} but not their bytes",
            p.fourcc, back.fourcc
        );
        // Where a V4L2 code is also the DRM code of a layout, it is the same layout.
        if let Some(same) = PixelFormat::from_drm(p.fourcc) {
            assert_eq!(
                same.layout, p.layout,
                "{} means other bytes in DRM",
                p.fourcc
            );
        }
    }
}

/// The byte positions of R, G, B in memory of DRM's packed RGB formats, read off `drm_fourcc.h` (a
/// little-endian word named from the high bits down), to check the catalogue against.
fn drm_rgb_bytes(drm: &[u8; 4]) -> Option<(usize, usize, usize, usize)> {
    Some(match drm {
        b"XR24" | b"AR24" => (4, 2, 1, 0), // [31:0] x:R:G:B
        b"XB24" | b"AB24" => (4, 0, 1, 2), // [31:0] x:B:G:R
        b"RX24" | b"RA24" => (4, 3, 2, 1), // [31:0] R:G:B:x
        b"BX24" | b"BA24" => (4, 1, 2, 3), // [31:0] B:G:R:x
        b"RG24" => (3, 2, 1, 0),           // [23:0] R:G:B
        b"BG24" => (3, 0, 1, 2),           // [23:0] B:G:R
        _ => return None,
    })
}

#[test]
fn drm_twins_have_the_same_bytes() {
    for p in CATALOGUE {
        let Some(drm) = p.drm else {
            assert!(
                matches!(p.layout, Layout::Grey | Layout::Jpeg),
                "{} has no DRM twin",
                p.fourcc
            );
            continue;
        };
        match p.layout {
            Layout::Rgb { bpp, r, g, b } => assert_eq!(
                drm_rgb_bytes(&drm.bytes()),
                Some((bpp, r, g, b)),
                "V4L2 {} vs DRM {drm}",
                p.fourcc
            ),
            // DRM's YUV codes name their bytes in memory order, as V4L2 does.
            Layout::Packed422 { y0, u, y1, v } => {
                let mut bytes = [0u8; 4];
                (bytes[y0], bytes[u], bytes[y1], bytes[v]) = (b'Y', b'U', b'Y', b'V');
                assert_eq!(drm.to_string(), String::from_utf8_lossy(&bytes));
            }
            Layout::SemiPlanar { vsub, cr_first } => {
                let name = match (vsub, cr_first) {
                    (2, false) => "NV12",
                    (2, true) => "NV21",
                    (1, false) => "NV16",
                    _ => "NV61",
                };
                assert_eq!(drm.to_string(), name, "{}", p.fourcc);
            }
            Layout::Planar420 { cr_first } => {
                assert_eq!(drm.to_string(), if cr_first { "YV12" } else { "YU12" });
            }
            Layout::Grey | Layout::Jpeg => panic!("{} cannot have a DRM twin", p.fourcc),
        }
    }
}

#[test]
fn y4m_tags_fit_the_planes() {
    for p in CATALOGUE {
        // Y4M holds planar Y'CbCr: luma only, or chroma subsampled 2x horizontally and 1x or 2x vertically.
        let expected = match p.layout {
            Layout::Grey => Some("Cmono"),
            Layout::Packed422 { .. } | Layout::SemiPlanar { vsub: 1, .. } => Some("C422"),
            Layout::SemiPlanar { vsub: 2, .. } | Layout::Planar420 { .. } => Some("C420mpeg2"),
            _ => None,
        };
        assert_eq!(p.y4m, expected, "{}", p.fourcc);
        if p.y4m.is_some() {
            assert!(p.is_yuv() && !p.is_compressed());
        }
    }
}

#[test]
fn multi_buffer_formats_have_a_single_buffer_twin() {
    for p in CATALOGUE.iter().filter(|p| p.multi_buffer) {
        assert!(p.color_planes() > 1, "{}", p.fourcc);
        assert!(p.alias.is_some_and(|a| a.ends_with('M')), "{}", p.fourcc);
        let twin = CATALOGUE
            .iter()
            .find(|q| !q.multi_buffer && q.layout == p.layout && q.drm == p.drm);
        assert!(twin.is_some(), "{} has no single-buffer form", p.fourcc);
    }
}
