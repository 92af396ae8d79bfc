// Source reader for the image import path: each plane is an R8_UINT image imported with an explicit DRM format
// modifier (LINEAR) whose plane layout carries the V4L2 offset and row pitch; one texel is one byte of a row.

@group(0) @binding(0) var src0: texture_2d<u32>;
@group(0) @binding(1) var src1: texture_2d<u32>;

fn src_byte(plane: u32, xb: u32, row: u32) -> u32 {
    if (plane == 0u) {
        return textureLoad(src0, vec2<u32>(xb, row), 0).r;
    }
    return textureLoad(src1, vec2<u32>(xb, row), 0).r;
}
