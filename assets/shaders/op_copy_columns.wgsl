// Unscaled, for formats with one pixel per sample (GREY and the packed RGB formats) with a quarter turn, four
// pixels per store (wide.wgsl): one invocation converts two columns of four crop rows, which the turn makes two
// output rows of four pixels each. The crop's height is a multiple of 4 (the renderer picks op_copy.wgsl
// otherwise).

// Crop column `dx` of rows dy..dy+3 as four pixels.
fn column4(dx: u32, dy: u32) -> vec4<u32> {
    let x = p.crop_x + dx;
    let y = p.crop_y + dy;
    return vec4<u32>(pack(fetch(x, y)), pack(fetch(x, y + 1u)), pack(fetch(x, y + 2u)), pack(fetch(x, y + 3u)));
}

// Columns dx and dx + 1 (dx even) of crop rows dy..dy+3.
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dx = gid.x * 2u;
    let dy = gid.y * 4u;
    if (dx >= p.crop_w || dy >= p.crop_h) {
        return;
    }
    store_turned4(dx, dy, column4(dx, dy));
    if (dx + 1u < p.crop_w) {
        store_turned4(dx + 1u, dy, column4(dx + 1u, dy));
    }
}
