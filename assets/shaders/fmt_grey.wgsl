// 8-bit luma only (GREY).

// Source pixel (x, y) as RGB in 0..1 (not yet clamped).
fn fetch_bytes(x: u32, y: u32) -> vec3<f32> {
    return vec3<f32>(luma(src_byte(0u, x, y)));
}
