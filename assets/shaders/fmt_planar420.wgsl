// Three-plane 4:2:0 Y'CbCr (YU12/YUV420, YV12/YVU420 and their multi-buffer forms): a luma plane (plane 0),
// then two chroma planes at half width and half height. The parameters, set by the generated lines of a
// variant: CB_PLANE and CR_PLANE, which plane holds Cb and which Cr (1 and 2 for YU12, 2 and 1 for YV12).
// Chroma is taken at the co-sited sample (x/2, y/2).

// Rows share their chroma in pairs (see op_block.wgsl).
const C_VSHIFT: u32 = 1u;

// Source pixel (x, y) as RGB in 0..1 (not yet clamped); no alignment needed.
fn fetch_bytes(x: u32, y: u32) -> vec3<f32> {
    let cx = x >> 1u;
    let cy = y >> 1u;
    return to_rgb_yuv(src_byte(0u, x, y), src_byte(CB_PLANE, cx, cy), src_byte(CR_PLANE, cx, cy));
}

// For op_block.wgsl: what the chroma of the pixels (x, y) and (x + 1, y), x even, adds to their RGB.
fn block_chroma(x: u32, y: u32) -> vec3<f32> {
    let cx = x >> 1u;
    let cy = y >> 1u;
    return chroma(src_byte(CB_PLANE, cx, cy), src_byte(CR_PLANE, cx, cy));
}
