// Packed 4:2:2 (YUYV, YVYU, UYVY, VYUY): two pixels in one 32-bit word. The byte order is this family's
// parameter: the generated lines of a variant set P_Y0, P_U, P_Y1, P_V, the byte positions of Y0, Cb, Y1 and
// Cr in each 4-byte pair. Chroma is taken at the co-sited sample (x/2).

// A packed 4:2:2 word (two pixels) as (Y0, Cb, Y1, Cr).
fn unpack422(w: u32) -> vec4<u32> {
    return vec4<u32>(
        (w >> (P_Y0 * 8u)) & 0xffu,
        (w >> (P_U * 8u)) & 0xffu,
        (w >> (P_Y1 * 8u)) & 0xffu,
        (w >> (P_V * 8u)) & 0xffu
    );
}

// Source pixel (x, y) as RGB in 0..1 (not yet clamped), read byte by byte (any row alignment).
fn fetch_bytes(x: u32, y: u32) -> vec3<f32> {
    let pair = (x >> 1u) * 4u;
    let yb = select(P_Y0, P_Y1, (x & 1u) == 1u);
    return to_rgb_yuv(src_byte(0u, pair + yb, y), src_byte(0u, pair + P_U, y), src_byte(0u, pair + P_V, y));
}

// The same from one word load, for plane offsets and strides aligned to 4.
fn fetch_words(x: u32, y: u32) -> vec3<f32> {
    let s = unpack422(src_word(0u, (x >> 1u) * 4u, y));
    return to_rgb_yuv(select(s.x, s.z, (x & 1u) == 1u), s.y, s.w);
}
