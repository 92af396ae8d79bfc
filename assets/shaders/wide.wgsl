// The output of the wide variants: four XRGB8888 pixels per store. A software GPU (lavapipe) stores to a
// storage buffer lane by lane, one 32-bit scalar at a time, so one 16-byte store in place of four 32-bit ones
// is most of what a 1:1 conversion costs it (render/examples/convert_bench measures it). Output rows are
// padded to 64 bytes, so a row starts on a 16-byte boundary.

@group(1) @binding(0) var<storage, read_write> dst4: array<vec4<u32>>;

// The unscaled wide variants run over the crop in one of two ways: without a quarter turn, eight pixels of a
// row per invocation (op_*_wide.wgsl, `store8`; the crop's width a multiple of 8); with one, a crop row becomes
// an output column, so two columns of four rows per invocation (op_*_columns.wgsl, `store_turned4`; the crop's
// height a multiple of 4). They are separate variants: lavapipe runs both sides of a branch on a push constant.

// For a transform without a quarter turn: whether it mirrors across (x) and down (y), a half turn being both
// mirrors.
fn unturned_mirrors() -> vec2<bool> {
    let half = (p.transform & 3u) == 2u;
    return vec2<bool>(((p.transform & 4u) != 0u) != half, ((p.transform & 8u) != 0u) != half);
}

// Without a quarter turn: pixels dx..dx+7 of the crop's row dy (dx a multiple of 8), `a` the first four,
// written where the mirrors put them.
fn store8(dx: u32, dy: u32, a: vec4<u32>, b: vec4<u32>) {
    let mirror = unturned_mirrors();
    let row = select(dy, p.crop_h - 1u - dy, mirror.y) * (p.dst_stride_px >> 2u);
    if (mirror.x) {
        let o = row + ((p.crop_w - 8u - dx) >> 2u);
        dst4[o] = b.wzyx;
        dst4[o + 1u] = a.wzyx;
    } else {
        let o = row + (dx >> 2u);
        dst4[o] = a;
        dst4[o + 1u] = b;
    }
}

// With a quarter turn: pixels (x, dy)..(x, dy + 3) of the crop (dy a multiple of 4), which the turn puts side
// by side in one output row, written there after the mirrors.
fn store_turned4(x: u32, dy: u32, c: vec4<u32>) {
    let mx = select(x, p.crop_w - 1u - x, (p.transform & 4u) != 0u);
    let mirror_y = (p.transform & 8u) != 0u;
    // The lowest of the four mirrored rows, and the pixels in the order of their mirrored rows.
    let my0 = select(dy, p.crop_h - 4u - dy, mirror_y);
    let m = select(c, c.wzyx, mirror_y);
    let row = p.dst_stride_px >> 2u;
    if ((p.transform & 3u) == 1u) {
        // Clockwise: mirrored (mx, my) goes to (crop_h - 1 - my, mx); columns fall as rows rise.
        dst4[mx * row + ((p.crop_h - 4u - my0) >> 2u)] = m.wzyx;
    } else {
        // Three quarters: (my, crop_w - 1 - mx).
        dst4[(p.crop_w - 1u - mx) * row + (my0 >> 2u)] = m;
    }
}
