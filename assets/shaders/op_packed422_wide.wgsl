// Unscaled, for packed 4:2:2 without a quarter turn, four pixels per store (wide.wgsl): one invocation
// converts eight pixels of a row, four 32-bit source words, and writes them as two 4-pixel stores. The crop's
// x is even and its width a multiple of 8; the plane offset and stride are multiples of 4 (the renderer picks
// op_packed422.wgsl otherwise; op_packed422_columns.wgsl for a quarter turn).

// The four pixels of two source words.
fn pixels4(w0: u32, w1: u32) -> vec4<u32> {
    let a = unpack422(w0);
    let b = unpack422(w1);
    let ca = chroma(a.y, a.w);
    let cb = chroma(b.y, b.w);
    return vec4<u32>(
        pack(vec3<f32>(luma(a.x)) + ca),
        pack(vec3<f32>(luma(a.z)) + ca),
        pack(vec3<f32>(luma(b.x)) + cb),
        pack(vec3<f32>(luma(b.z)) + cb)
    );
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dx = gid.x * 8u;
    let dy = gid.y;
    if (dx >= p.crop_w || dy >= p.crop_h) {
        return;
    }
    let xb = (p.crop_x + dx) * 2u;
    let sy = p.crop_y + dy;
    store8(
        dx,
        dy,
        pixels4(src_word(0u, xb, sy), src_word(0u, xb + 4u, sy)),
        pixels4(src_word(0u, xb + 8u, sy), src_word(0u, xb + 12u, sy))
    );
}
