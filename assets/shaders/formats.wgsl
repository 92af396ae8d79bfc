// One reader per input format: `fetch_<format>(x, y)` is source pixel (x, y) converted to RGB in 0..1 (not
// yet clamped). Chroma is taken at the co-sited sample (x/2 for 4:2:2, (x/2, y/2) for 4:2:0). The generated
// lines of a variant alias exactly one of them as `fetch`; the others are dead code the driver drops.

fn fetch_yuyv(x: u32, y: u32) -> vec3<f32> { // Y0 U Y1 V
    let pair = (x >> 1u) * 4u;
    return to_rgb_yuv(src_byte(0u, x * 2u, y), src_byte(0u, pair + 1u, y), src_byte(0u, pair + 3u, y));
}

fn fetch_uyvy(x: u32, y: u32) -> vec3<f32> { // U Y0 V Y1
    let pair = (x >> 1u) * 4u;
    return to_rgb_yuv(src_byte(0u, x * 2u + 1u, y), src_byte(0u, pair, y), src_byte(0u, pair + 2u, y));
}

fn fetch_nv12(x: u32, y: u32) -> vec3<f32> { // Y plane, then interleaved CbCr at half resolution
    let cx = (x >> 1u) * 2u;
    let cy = y >> 1u;
    return to_rgb_yuv(src_byte(0u, x, y), src_byte(1u, cx, cy), src_byte(1u, cx + 1u, cy));
}

fn fetch_grey(x: u32, y: u32) -> vec3<f32> {
    return vec3<f32>(luma(src_byte(0u, x, y)));
}

fn fetch_bgrx(x: u32, y: u32) -> vec3<f32> { // XR24 / AR24: B G R X|A
    let b = x * 4u;
    return to_rgb_rgb(src_byte(0u, b + 2u, y), src_byte(0u, b + 1u, y), src_byte(0u, b, y));
}

fn fetch_rgb3(x: u32, y: u32) -> vec3<f32> {
    let b = x * 3u;
    return to_rgb_rgb(src_byte(0u, b, y), src_byte(0u, b + 1u, y), src_byte(0u, b + 2u, y));
}

fn fetch_bgr3(x: u32, y: u32) -> vec3<f32> {
    let b = x * 3u;
    return to_rgb_rgb(src_byte(0u, b + 2u, y), src_byte(0u, b + 1u, y), src_byte(0u, b, y));
}

// A packed 4:2:2 word (two pixels) as (Y0, Cb, Y1, Cr).
fn unpack_yuyv(w: u32) -> vec4<u32> {
    return vec4<u32>(w & 0xffu, (w >> 8u) & 0xffu, (w >> 16u) & 0xffu, w >> 24u);
}

fn unpack_uyvy(w: u32) -> vec4<u32> {
    return vec4<u32>((w >> 8u) & 0xffu, w & 0xffu, w >> 24u, (w >> 16u) & 0xffu);
}

// The same pixels read as whole words, for rows whose plane offsets and strides are aligned (to 4 bytes for
// YUYV, UYVY and XR24, to 2 for NV12): one load where the byte readers above make three.
fn fetchw_yuyv(x: u32, y: u32) -> vec3<f32> {
    let s = unpack_yuyv(src_word(0u, (x >> 1u) * 4u, y));
    return to_rgb_yuv(select(s.x, s.z, (x & 1u) == 1u), s.y, s.w);
}

fn fetchw_uyvy(x: u32, y: u32) -> vec3<f32> {
    let s = unpack_uyvy(src_word(0u, (x >> 1u) * 4u, y));
    return to_rgb_yuv(select(s.x, s.z, (x & 1u) == 1u), s.y, s.w);
}

fn fetchw_nv12(x: u32, y: u32) -> vec3<f32> {
    let c = src_pair(1u, x & ~1u, y >> 1u);
    return to_rgb_yuv(src_byte(0u, x, y), c & 0xffu, c >> 8u);
}

fn fetchw_bgrx(x: u32, y: u32) -> vec3<f32> {
    let w = src_word(0u, x * 4u, y);
    return to_rgb_rgb((w >> 16u) & 0xffu, (w >> 8u) & 0xffu, w & 0xffu);
}
