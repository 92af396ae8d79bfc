// op_transform.wgsl's operation, four neighbouring output pixels of a row per invocation written by one store
// (wide.wgsl); the output's width is a multiple of 4 (the renderer picks op_transform_one.wgsl otherwise).

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dx = gid.x * 4u;
    let dy = gid.y;
    if (dx >= p.dst_w || dy >= p.dst_h) {
        return;
    }
    dst4[(dy * p.dst_stride_px + dx) >> 2u] = vec4<u32>(
        transformed(dx, dy),
        transformed(dx + 1u, dy),
        transformed(dx + 2u, dy),
        transformed(dx + 3u, dy)
    );
}
