// Unscaled, for formats with one pixel per sample (GREY and the packed RGB formats): one invocation per pixel
// of the crop, no resampling; crop, mirrors and quarter turns are folded into where it is written (`out_index`).

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (any(gid.xy >= vec2<u32>(p.crop_w, p.crop_h))) {
        return;
    }
    dst[out_index(gid.x, gid.y)] = pack(fetch(p.crop_x + gid.x, p.crop_y + gid.y));
}
