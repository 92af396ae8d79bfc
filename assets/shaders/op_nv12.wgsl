// Unscaled, for 4:2:0 (NV12): one invocation converts a 2x2 block, two luma pairs and the one CbCr pair they
// share. It runs over the crop's pixels (dx, dy); crop, mirrors and quarter turns are folded into where the
// pixels are written (`out_index`). The crop's x and y are even, and plane offsets and strides are even (the
// renderer picks the general variant otherwise).

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dx = gid.x * 2u;
    let dy = gid.y * 2u;
    if (dx >= p.crop_w || dy >= p.crop_h) {
        return;
    }
    let sx = p.crop_x + dx;
    let sy = p.crop_y + dy;
    let cbcr = src_pair(1u, sx, sy >> 1u);
    let c = chroma(cbcr & 0xffu, cbcr >> 8u);
    let top = src_pair(0u, sx, sy);
    let bottom = src_pair(0u, sx, min(sy + 1u, p.src_h - 1u));
    let right = dx + 1u < p.crop_w;
    dst[out_index(dx, dy)] = pack(vec3<f32>(luma(top & 0xffu)) + c);
    if (right) {
        dst[out_index(dx + 1u, dy)] = pack(vec3<f32>(luma(top >> 8u)) + c);
    }
    if (dy + 1u < p.crop_h) {
        dst[out_index(dx, dy + 1u)] = pack(vec3<f32>(luma(bottom & 0xffu)) + c);
        if (right) {
            dst[out_index(dx + 1u, dy + 1u)] = pack(vec3<f32>(luma(bottom >> 8u)) + c);
        }
    }
}
