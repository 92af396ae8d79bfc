// op_transform.wgsl's operation, one output pixel per invocation.

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (any(gid.xy >= vec2<u32>(p.dst_w, p.dst_h))) {
        return;
    }
    dst[gid.y * p.dst_stride_px + gid.x] = transformed(gid.x, gid.y);
}
