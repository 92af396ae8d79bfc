// Unscaled, for packed 4:2:2 with a quarter turn, four pixels per store (wide.wgsl): a crop row becomes an
// output column, so one invocation converts one 32-bit word from each of four rows, two columns that the turn
// makes two output rows of four pixels each. The crop's x is even and its height a multiple of 4; the plane
// offset and stride are multiples of 4 (the renderer picks op_packed422.wgsl otherwise).

// Columns dx and dx + 1 (dx even) of crop rows dy..dy+3.
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dx = gid.x * 2u;
    let dy = gid.y * 4u;
    if (dx >= p.crop_w || dy >= p.crop_h) {
        return;
    }
    let xb = (p.crop_x + dx) * 2u;
    let sy = p.crop_y + dy;
    let r0 = unpack422(src_word(0u, xb, sy));
    let r1 = unpack422(src_word(0u, xb, sy + 1u));
    let r2 = unpack422(src_word(0u, xb, sy + 2u));
    let r3 = unpack422(src_word(0u, xb, sy + 3u));
    let c0 = chroma(r0.y, r0.w);
    let c1 = chroma(r1.y, r1.w);
    let c2 = chroma(r2.y, r2.w);
    let c3 = chroma(r3.y, r3.w);
    store_turned4(dx, dy, vec4<u32>(
        pack(vec3<f32>(luma(r0.x)) + c0),
        pack(vec3<f32>(luma(r1.x)) + c1),
        pack(vec3<f32>(luma(r2.x)) + c2),
        pack(vec3<f32>(luma(r3.x)) + c3)
    ));
    if (dx + 1u < p.crop_w) {
        store_turned4(dx + 1u, dy, vec4<u32>(
            pack(vec3<f32>(luma(r0.z)) + c0),
            pack(vec3<f32>(luma(r1.z)) + c1),
            pack(vec3<f32>(luma(r2.z)) + c2),
            pack(vec3<f32>(luma(r3.z)) + c3)
        ));
    }
}
