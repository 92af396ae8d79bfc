//! V4L2 pixel formats as DRM formats (the memory layouts that are the same under another code).

use dmacam_capture::Fourcc;

/// The DRM fourcc whose memory layout equals the V4L2 (or DRM) pixel format `fourcc`, if any.
///
/// Most packed RGB codes mean the same bytes in both APIs (`XR24`: B, G, R, X in memory); a few differ by name
/// (V4L2 `RGB3` is DRM `BG24`, V4L2 `RGBP` is DRM `RG16`); the multi-buffer `...M` formats are the same
/// layout as their single-buffer form, only with one dma-buf per plane.
pub fn drm_format_for(fourcc: Fourcc) -> Option<Fourcc> {
    let code = &fourcc.bytes();
    let drm: &[u8; 4] = match code {
        // Packed RGB, same code in both APIs.
        b"XR24" | b"AR24" | b"BX24" | b"BA24" | b"XB24" | b"AB24" | b"RX24" | b"RA24" => code,
        // V4L2 name -> DRM name for the same bytes.
        b"RGB3" => b"BG24",
        b"BGR3" => b"RG24",
        b"RGBP" => b"RG16",
        // Packed and planar YUV.
        b"YUYV" | b"UYVY" | b"YVYU" | b"VYUY" | b"NV12" | b"NV21" | b"NV16" | b"NV61" | b"NV24"
        | b"NV42" | b"YU12" | b"YV12" | b"YU16" | b"YV16" => code,
        b"NM12" => b"NV12",
        b"NM21" => b"NV21",
        b"NM16" => b"NV16",
        b"NM61" => b"NV61",
        b"YM12" => b"YU12",
        b"YM21" => b"YV12",
        b"YM16" => b"YU16",
        b"YM61" => b"YV16",
        // DRM-only names (e.g. the render stage's output) pass through.
        b"RG16" | b"BG24" | b"RG24" => code,
        _ => return None,
    };
    Some(Fourcc::new(drm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_v4l2_names_to_drm() {
        let f = |s: &[u8; 4]| drm_format_for(Fourcc::new(s)).map(|f| f.to_string());
        assert_eq!(f(b"XR24").as_deref(), Some("XR24"));
        assert_eq!(f(b"RGB3").as_deref(), Some("BG24"));
        assert_eq!(f(b"NM12").as_deref(), Some("NV12"));
        assert_eq!(f(b"MJPG"), None);
    }
}
