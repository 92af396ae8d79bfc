// Bilinear scaling without a quarter turn where the image is not narrowed (the output at least as wide as
// the crop), four neighbouring output pixels of a row per invocation, written by one store (wide.wgsl). Four
// such pixels span at most four source pixels across, so their taps come from five source columns, each
// read (two rows, blended vertically) once and shared, instead of four taps per pixel: 10 fetches in place
// of 16. Output pixel (dx, dy) maps back to the source as in op_transform.wgsl (a half turn is both mirrors).
// The output's width is a multiple of 4 (the renderer picks op_transform.wgsl otherwise).

// Column x of the crop at fractional row between y0 and y1 (weight ay), clamped colours as a sampler would.
fn column(x: u32, y0: u32, y1: u32, ay: f32) -> vec3<f32> {
    let top = clamp(fetch(p.crop_x + x, p.crop_y + y0), vec3<f32>(0.0), vec3<f32>(1.0));
    let bottom = clamp(fetch(p.crop_x + x, p.crop_y + y1), vec3<f32>(0.0), vec3<f32>(1.0));
    return mix(top, bottom, ay);
}

// The k-th (0..3) of four consecutive columns.
fn pick(k: u32, c0: vec3<f32>, c1: vec3<f32>, c2: vec3<f32>, c3: vec3<f32>) -> vec3<f32> {
    return select(select(select(c0, c1, k == 1u), c2, k == 2u), c3, k == 3u);
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dx = gid.x * 4u;
    let dy = gid.y;
    if (dx >= p.dst_w || dy >= p.dst_h) {
        return;
    }
    let mirror = unturned_mirrors();
    // Into the crop rectangle, in source pixel centres: one row pair for all four.
    let y = select(dy, p.dst_h - 1u - dy, mirror.y);
    let fy = clamp((f32(y) + 0.5) * p.scale_y - 0.5, 0.0, f32(p.crop_h - 1u));
    let y0 = u32(floor(fy));
    let y1 = min(y0 + 1u, p.crop_h - 1u);
    let ay = fy - f32(y0);
    let xs = vec4<u32>(dx, dx + 1u, dx + 2u, dx + 3u);
    let x = select(xs, vec4<u32>(p.dst_w - 1u) - xs, mirror.x);
    let fx = clamp((vec4<f32>(x) + 0.5) * p.scale_x - 0.5, vec4<f32>(0.0), vec4<f32>(f32(p.crop_w - 1u)));
    let x0 = vec4<u32>(floor(fx));
    let ax = fx - floor(fx);
    // Each pixel's left tap, counted from the leftmost (0..3: scale_x is at most 1).
    let first = min(x0.x, x0.w);
    let k = x0 - vec4<u32>(first);
    let last = p.crop_w - 1u;
    let c0 = column(first, y0, y1, ay);
    let c1 = column(min(first + 1u, last), y0, y1, ay);
    let c2 = column(min(first + 2u, last), y0, y1, ay);
    let c3 = column(min(first + 3u, last), y0, y1, ay);
    let c4 = column(min(first + 4u, last), y0, y1, ay);
    dst4[(dy * p.dst_stride_px + dx) >> 2u] = vec4<u32>(
        pack(mix(pick(k.x, c0, c1, c2, c3), pick(k.x, c1, c2, c3, c4), ax.x)),
        pack(mix(pick(k.y, c0, c1, c2, c3), pick(k.y, c1, c2, c3, c4), ax.y)),
        pack(mix(pick(k.z, c0, c1, c2, c3), pick(k.z, c1, c2, c3, c4), ax.z)),
        pack(mix(pick(k.w, c0, c1, c2, c3), pick(k.w, c1, c2, c3, c4), ax.w))
    );
}
