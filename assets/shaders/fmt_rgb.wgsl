// Packed RGB (XR24/AR24, BX24/BA24, XB24/AB24, RX24/RA24; RGB3, BGR3): one pixel of RGB_BPP bytes. The byte
// order is this family's parameter: the generated lines of a variant set RGB_BPP and RGB_R, RGB_G, RGB_B, the
// byte positions of red, green and blue in a pixel (the swizzle).

// Source pixel (x, y) as RGB in 0..1 (not yet clamped), read byte by byte (any row alignment).
fn fetch_bytes(x: u32, y: u32) -> vec3<f32> {
    let b = x * RGB_BPP;
    return to_rgb_rgb(src_byte(0u, b + RGB_R, y), src_byte(0u, b + RGB_G, y), src_byte(0u, b + RGB_B, y));
}

// The same from one word load, for 32-bit pixels whose plane offset and stride are aligned to 4.
fn fetch_words(x: u32, y: u32) -> vec3<f32> {
    let w = src_word(0u, x * 4u, y);
    return to_rgb_rgb((w >> (RGB_R * 8u)) & 0xffu, (w >> (RGB_G * 8u)) & 0xffu, (w >> (RGB_B * 8u)) & 0xffu);
}
