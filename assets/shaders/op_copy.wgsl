// 1:1 (crop, mirrors, half turn) for formats with one pixel per sample (GREY, XR24/AR24, RGB3, BGR3): one invocation per
// pixel, no resampling.

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (any(gid.xy >= vec2<u32>(p.dst_w, p.dst_h))) {
        return;
    }
    dst[out_index(gid.x, gid.y)] = pack(fetch(p.crop_x + gid.x, p.crop_y + gid.y));
}
