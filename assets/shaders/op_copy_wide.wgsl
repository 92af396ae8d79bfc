// Unscaled, for formats with one pixel per sample (GREY and the packed RGB formats) without a quarter turn,
// four pixels per store (wide.wgsl): one invocation converts eight pixels of a row and writes them as two
// 4-pixel stores. The crop's width is a multiple of 8 (the renderer picks op_copy.wgsl otherwise;
// op_copy_columns.wgsl for a quarter turn).

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dx = gid.x * 8u;
    let dy = gid.y;
    if (dx >= p.crop_w || dy >= p.crop_h) {
        return;
    }
    let x = p.crop_x + dx;
    let y = p.crop_y + dy;
    store8(
        dx,
        dy,
        vec4<u32>(pack(fetch(x, y)), pack(fetch(x + 1u, y)), pack(fetch(x + 2u, y)), pack(fetch(x + 3u, y))),
        vec4<u32>(pack(fetch(x + 4u, y)), pack(fetch(x + 5u, y)), pack(fetch(x + 6u, y)), pack(fetch(x + 7u, y)))
    );
}
