// Source reader for the buffer import path: each plane's dma-buf is a storage buffer, read with the V4L2
// plane offset and stride. Plane 1 may be the same buffer as plane 0 (NV12 in one dma-buf).

@group(0) @binding(0) var<storage, read> src0: array<u32>;
@group(0) @binding(1) var<storage, read> src1: array<u32>;

fn src_byte(plane: u32, xb: u32, row: u32) -> u32 {
    var word: u32;
    var b: u32;
    if (plane == 0u) {
        b = p.off0 + row * p.stride0 + xb;
        word = src0[b >> 2u];
    } else {
        b = p.off1 + row * p.stride1 + xb;
        word = src1[b >> 2u];
    }
    return (word >> ((b & 3u) * 8u)) & 0xffu;
}
