// The general operation: crop, mirror, quarter turns and scaling, output pixel by output pixel: one per
// invocation (op_transform_one.wgsl) or, where the output's width is a multiple of 4, four neighbours of a row
// per invocation, written by one store (op_transform_wide.wgsl). The generated `BILINEAR` constant says
// whether this variant filters (the renderer uses it only when the image is actually resampled); without it
// the nearest source pixel is taken.
//
// Output pixel (dx, dy) is mapped back to the source in this order (the inverse of crop -> mirror -> rotate ->
// scale): undo the rotation (quarter turns clockwise), undo the mirror, then scale into the crop rectangle.
// Pixels are converted to RGB before filtering, and bilinear weights apply to converted, clamped RGB.

// Output pixel (dx, dy) as one XRGB8888 word.
fn transformed(dx: u32, dy: u32) -> u32 {
    let turns = p.transform & 3u;
    // Size of the scaled image before rotation.
    var sw = p.dst_w;
    var sh = p.dst_h;
    if ((turns & 1u) == 1u) {
        sw = p.dst_h;
        sh = p.dst_w;
    }
    // Undo the rotation (clockwise quarter turns).
    var x = dx;
    var y = dy;
    if (turns == 1u) {
        x = dy;
        y = sh - 1u - dx;
    } else if (turns == 2u) {
        x = sw - 1u - dx;
        y = sh - 1u - dy;
    } else if (turns == 3u) {
        x = sw - 1u - dy;
        y = dx;
    }
    // Undo the mirror.
    if ((p.transform & 4u) != 0u) {
        x = sw - 1u - x;
    }
    if ((p.transform & 8u) != 0u) {
        y = sh - 1u - y;
    }
    // Into the crop rectangle, in source pixel centres.
    let fx = clamp((f32(x) + 0.5) * p.scale_x - 0.5, 0.0, f32(p.crop_w - 1u));
    let fy = clamp((f32(y) + 0.5) * p.scale_y - 0.5, 0.0, f32(p.crop_h - 1u));
    var rgb: vec3<f32>;
    if (!BILINEAR) {
        rgb = fetch(p.crop_x + u32(fx + 0.5), p.crop_y + u32(fy + 0.5));
    } else {
        let x0 = u32(floor(fx));
        let y0 = u32(floor(fy));
        let ax = fx - f32(x0);
        let ay = fy - f32(y0);
        let x1 = min(x0 + 1u, p.crop_w - 1u);
        let y1 = min(y0 + 1u, p.crop_h - 1u);
        // Filter clamped colours, as a texture sampler would.
        let c00 = clamp(fetch(p.crop_x + x0, p.crop_y + y0), vec3<f32>(0.0), vec3<f32>(1.0));
        let c10 = clamp(fetch(p.crop_x + x1, p.crop_y + y0), vec3<f32>(0.0), vec3<f32>(1.0));
        let c01 = clamp(fetch(p.crop_x + x0, p.crop_y + y1), vec3<f32>(0.0), vec3<f32>(1.0));
        let c11 = clamp(fetch(p.crop_x + x1, p.crop_y + y1), vec3<f32>(0.0), vec3<f32>(1.0));
        rgb = mix(mix(c00, c10, ax), mix(c01, c11, ax), ay);
    }
    return pack(rgb);
}
