// Source reader for the buffer import path (and host-memory mode): each plane's dma-buf is a storage buffer,
// read with the V4L2 plane offset and stride. Planes 1 and 2 may be the same buffer as plane 0 (NV12 or YU12 in
// one dma-buf).
// The contract of src_byte / src_pair / src_word is in common.wgsl.

@group(0) @binding(0) var<storage, read> src0: array<u32>;
@group(0) @binding(1) var<storage, read> src1: array<u32>;
@group(0) @binding(2) var<storage, read> src2: array<u32>;

// Byte address of byte `xb` of row `row` of `plane`.
fn src_addr(plane: u32, xb: u32, row: u32) -> u32 {
    if (plane == 0u) {
        return p.off0 + row * p.stride0 + xb;
    }
    if (plane == 1u) {
        return p.off1 + row * p.stride1 + xb;
    }
    return p.off2 + row * p.stride2 + xb;
}

// The aligned word holding byte address `b`.
fn src_load(plane: u32, b: u32) -> u32 {
    if (plane == 0u) {
        return src0[b >> 2u];
    }
    if (plane == 1u) {
        return src1[b >> 2u];
    }
    return src2[b >> 2u];
}

fn src_byte(plane: u32, xb: u32, row: u32) -> u32 {
    let b = src_addr(plane, xb, row);
    return (src_load(plane, b) >> ((b & 3u) * 8u)) & 0xffu;
}

fn src_pair(plane: u32, xb: u32, row: u32) -> u32 {
    let b = src_addr(plane, xb, row);
    return (src_load(plane, b) >> ((b & 2u) * 8u)) & 0xffffu;
}

fn src_word(plane: u32, xb: u32, row: u32) -> u32 {
    return src_load(plane, src_addr(plane, xb, row));
}
