// Unscaled, for packed 4:2:2 (any byte order: `unpack422` in fmt_packed422.wgsl): one invocation converts
// the two pixels of one 32-bit source word, sharing its chroma. It runs over the crop's pixels (dx, dy); crop, mirrors and quarter turns are folded into where the
// pixels are written (`out_index`). The crop's x is even, and the plane offset and stride are multiples of 4
// (the renderer picks the general variant otherwise).

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dx = gid.x * 2u;
    let dy = gid.y;
    if (dx >= p.crop_w || dy >= p.crop_h) {
        return;
    }
    let s = unpack422(src_word(0u, (p.crop_x + dx) * 2u, p.crop_y + dy));
    let c = chroma(s.y, s.w);
    dst[out_index(dx, dy)] = pack(vec3<f32>(luma(s.x)) + c);
    if (dx + 1u < p.crop_w) {
        dst[out_index(dx + 1u, dy)] = pack(vec3<f32>(luma(s.z)) + c);
    }
}
