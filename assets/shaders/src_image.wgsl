// Source reader for the image import path: each plane is an R8_UINT image imported with an explicit DRM format
// modifier (LINEAR) whose plane layout carries the V4L2 offset and row pitch; one texel is one byte of a row.
// The contract of src_byte / src_pair / src_word is in common.wgsl; here they need no alignment. A byte past
// the end of a row (the second luma byte of an odd-width NV12 row) reads the row's last byte instead.

@group(0) @binding(0) var src0: texture_2d<u32>;
@group(0) @binding(1) var src1: texture_2d<u32>;
@group(0) @binding(2) var src2: texture_2d<u32>;

fn src_byte(plane: u32, xb: u32, row: u32) -> u32 {
    if (plane == 0u) {
        return textureLoad(src0, vec2<u32>(min(xb, textureDimensions(src0).x - 1u), row), 0).r;
    }
    if (plane == 1u) {
        return textureLoad(src1, vec2<u32>(min(xb, textureDimensions(src1).x - 1u), row), 0).r;
    }
    return textureLoad(src2, vec2<u32>(min(xb, textureDimensions(src2).x - 1u), row), 0).r;
}

fn src_pair(plane: u32, xb: u32, row: u32) -> u32 {
    return src_byte(plane, xb, row) | (src_byte(plane, xb + 1u, row) << 8u);
}

fn src_word(plane: u32, xb: u32, row: u32) -> u32 {
    return src_pair(plane, xb, row) | (src_pair(plane, xb + 2u, row) << 16u);
}
