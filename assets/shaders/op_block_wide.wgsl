// Unscaled, for the luma + chroma-plane formats without a quarter turn, four pixels per store (wide.wgsl): one
// invocation converts an 8x2 block, four luma pairs per row and their chroma (shared by both rows for 4:2:0,
// C_VSHIFT 1; one per row for 4:2:2), and writes each row as two 4-pixel stores. The crop's x is even (and its
// y for 4:2:0), its width a multiple of 8, and the planes read in pairs have even offsets and strides (the
// renderer picks op_block.wgsl otherwise; op_block_columns.wgsl for a quarter turn).

// Pixels x..x+3 (x even) of source row y: two luma pairs, `c0` and `c1` their chroma.
fn row4(x: u32, y: u32, c0: vec3<f32>, c1: vec3<f32>) -> vec4<u32> {
    let l0 = src_pair(0u, x, y);
    let l1 = src_pair(0u, x + 2u, y);
    return vec4<u32>(
        pack(vec3<f32>(luma(l0 & 0xffu)) + c0),
        pack(vec3<f32>(luma(l0 >> 8u)) + c0),
        pack(vec3<f32>(luma(l1 & 0xffu)) + c1),
        pack(vec3<f32>(luma(l1 >> 8u)) + c1)
    );
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dx = gid.x * 8u;
    let dy = gid.y * 2u;
    if (dx >= p.crop_w || dy >= p.crop_h) {
        return;
    }
    let sx = p.crop_x + dx;
    let sy = p.crop_y + dy;
    let c0 = block_chroma(sx, sy);
    let c1 = block_chroma(sx + 2u, sy);
    let c2 = block_chroma(sx + 4u, sy);
    let c3 = block_chroma(sx + 6u, sy);
    store8(dx, dy, row4(sx, sy, c0, c1), row4(sx + 4u, sy, c2, c3));
    if (dy + 1u < p.crop_h) {
        let sy1 = sy + 1u;
        if (C_VSHIFT == 0u) {
            let d0 = block_chroma(sx, sy1);
            let d1 = block_chroma(sx + 2u, sy1);
            let d2 = block_chroma(sx + 4u, sy1);
            let d3 = block_chroma(sx + 6u, sy1);
            store8(dx, dy + 1u, row4(sx, sy1, d0, d1), row4(sx + 4u, sy1, d2, d3));
        } else {
            store8(dx, dy + 1u, row4(sx, sy1, c0, c1), row4(sx + 4u, sy1, c2, c3));
        }
    }
}
