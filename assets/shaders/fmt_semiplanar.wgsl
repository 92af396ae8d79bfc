// Semi-planar Y'CbCr (NV12, NV21: 4:2:0; NV16, NV61: 4:2:2): a luma plane (plane 0), then one plane of
// interleaved chroma pairs at half width (plane 1). The parameters, set by the generated lines of a variant:
// C_VSHIFT, the vertical chroma subsampling as a shift (1 for 4:2:0, 0 for 4:2:2), and CR_FIRST (NV21, NV61).
// Chroma is taken at the co-sited sample ((x/2, y/2) for 4:2:0, x/2 for 4:2:2).

// (Cb, Cr) from the two chroma bytes of a pair as a little-endian 16-bit value.
fn cbcr_codes(pair: u32) -> vec2<u32> {
    let lo = pair & 0xffu;
    let hi = pair >> 8u;
    return select(vec2<u32>(lo, hi), vec2<u32>(hi, lo), CR_FIRST);
}

// Source pixel (x, y) as RGB in 0..1 (not yet clamped), read byte by byte (any row alignment).
fn fetch_bytes(x: u32, y: u32) -> vec3<f32> {
    let cx = x & ~1u;
    let cy = y >> C_VSHIFT;
    let c = cbcr_codes(src_byte(1u, cx, cy) | (src_byte(1u, cx + 1u, cy) << 8u));
    return to_rgb_yuv(src_byte(0u, x, y), c.x, c.y);
}

// The same with the chroma pair as one load, for plane offsets and strides aligned to 2.
fn fetch_words(x: u32, y: u32) -> vec3<f32> {
    let c = cbcr_codes(src_pair(1u, x & ~1u, y >> C_VSHIFT));
    return to_rgb_yuv(src_byte(0u, x, y), c.x, c.y);
}

// For op_block.wgsl: what the chroma of the pixels (x, y) and (x + 1, y), x even, adds to their RGB.
// Needs plane 1's offset and stride aligned to 2.
fn block_chroma(x: u32, y: u32) -> vec3<f32> {
    let c = cbcr_codes(src_pair(1u, x, y >> C_VSHIFT));
    return chroma(c.x, c.y);
}
