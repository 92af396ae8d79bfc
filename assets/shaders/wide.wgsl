// The output of the wide variants: four XRGB8888 pixels per store. A software GPU (lavapipe) stores to a
// storage buffer lane by lane, one 32-bit scalar at a time, so one 16-byte store in place of four 32-bit ones
// is most of what a 1:1 conversion costs it (render/examples/convert_bench measures it). Output rows are
// padded to 64 bytes, so a row starts on a 16-byte boundary.

@group(1) @binding(0) var<storage, read_write> dst4: array<vec4<u32>>;

// For the unscaled wide variants (no quarter turn; the crop's width a multiple of 8): pixels dx..dx+7 of the
// crop's row dy (dx a multiple of 8), `a` the first four, written where the mirrors put them (a half turn
// is both mirrors).
fn store8(dx: u32, dy: u32, a: vec4<u32>, b: vec4<u32>) {
    let half = (p.transform & 3u) == 2u;
    let mirror_x = ((p.transform & 4u) != 0u) != half;
    let mirror_y = ((p.transform & 8u) != 0u) != half;
    let row = select(dy, p.crop_h - 1u - dy, mirror_y) * (p.dst_stride_px >> 2u);
    if (mirror_x) {
        let o = row + ((p.crop_w - 8u - dx) >> 2u);
        dst4[o] = b.wzyx;
        dst4[o + 1u] = a.wzyx;
    } else {
        let o = row + (dx >> 2u);
        dst4[o] = a;
        dst4[o + 1u] = b;
    }
}
