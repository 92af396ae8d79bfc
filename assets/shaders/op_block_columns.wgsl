// Unscaled, for the luma + chroma-plane formats with a quarter turn, four pixels per store (wide.wgsl): one
// invocation converts a 2x4 block, four luma pairs and their chroma (4:2:0 rows share theirs in pairs), whose
// two columns the turn makes two output rows of four pixels each. The crop's x is even (and its y for 4:2:0),
// its height a multiple of 4, and the planes read in pairs have even offsets and strides (the renderer picks
// op_block.wgsl otherwise).

// Columns dx and dx + 1 (dx even) of crop rows dy..dy+3.
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dx = gid.x * 2u;
    let dy = gid.y * 4u;
    if (dx >= p.crop_w || dy >= p.crop_h) {
        return;
    }
    let sx = p.crop_x + dx;
    let sy = p.crop_y + dy;
    // Chroma per row: 4:2:0 rows share theirs in pairs.
    let c0 = block_chroma(sx, sy);
    let c2 = block_chroma(sx, sy + 2u);
    var c1 = c0;
    var c3 = c2;
    if (C_VSHIFT == 0u) {
        c1 = block_chroma(sx, sy + 1u);
        c3 = block_chroma(sx, sy + 3u);
    }
    let l0 = src_pair(0u, sx, sy);
    let l1 = src_pair(0u, sx, sy + 1u);
    let l2 = src_pair(0u, sx, sy + 2u);
    let l3 = src_pair(0u, sx, sy + 3u);
    store_turned4(dx, dy, vec4<u32>(
        pack(vec3<f32>(luma(l0 & 0xffu)) + c0),
        pack(vec3<f32>(luma(l1 & 0xffu)) + c1),
        pack(vec3<f32>(luma(l2 & 0xffu)) + c2),
        pack(vec3<f32>(luma(l3 & 0xffu)) + c3)
    ));
    if (dx + 1u < p.crop_w) {
        store_turned4(dx + 1u, dy, vec4<u32>(
            pack(vec3<f32>(luma(l0 >> 8u)) + c0),
            pack(vec3<f32>(luma(l1 >> 8u)) + c1),
            pack(vec3<f32>(luma(l2 >> 8u)) + c2),
            pack(vec3<f32>(luma(l3 >> 8u)) + c3)
        ));
    }
}
