// Unscaled, for the luma + chroma-plane formats (semi-planar NV12/NV21/NV16/NV61, three-plane YU12/YV12): one
// invocation converts a 2x2 block, two luma pairs and their chroma: one chroma sample shared by both rows for
// 4:2:0 (C_VSHIFT 1), one per row for 4:2:2. It runs over the crop's pixels (dx, dy); crop, mirrors and
// quarter turns are folded into where the pixels are written (`out_index`). The crop's x is even (and its y
// for 4:2:0), and the planes read in pairs have even offsets and strides (the renderer picks the general
// variant otherwise).

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dx = gid.x * 2u;
    let dy = gid.y * 2u;
    if (dx >= p.crop_w || dy >= p.crop_h) {
        return;
    }
    let sx = p.crop_x + dx;
    let sy = p.crop_y + dy;
    let sy1 = min(sy + 1u, p.src_h - 1u);
    let c = block_chroma(sx, sy);
    var c1 = c;
    if (C_VSHIFT == 0u) {
        c1 = block_chroma(sx, sy1);
    }
    let top = src_pair(0u, sx, sy);
    let bottom = src_pair(0u, sx, sy1);
    let right = dx + 1u < p.crop_w;
    dst[out_index(dx, dy)] = pack(vec3<f32>(luma(top & 0xffu)) + c);
    if (right) {
        dst[out_index(dx + 1u, dy)] = pack(vec3<f32>(luma(top >> 8u)) + c);
    }
    if (dy + 1u < p.crop_h) {
        dst[out_index(dx, dy + 1u)] = pack(vec3<f32>(luma(bottom & 0xffu)) + c1);
        if (right) {
            dst[out_index(dx + 1u, dy + 1u)] = pack(vec3<f32>(luma(bottom >> 8u)) + c1);
        }
    }
}
