// dmacam render stage: camera pixels -> XRGB8888. The part every shader variant shares: the push constants
// and the colour maths.
//
// build.rs compiles one variant per (source reader, input format, operation), each the concatenation of
// a reader (src_buffer.wgsl or src_image.wgsl), this file, a few generated lines that set the format's
// parameters (byte order, chroma subsampling and plane order as constants), pick its reader (`fetch`), say
// whether to filter (`BILINEAR`) and declare the output, the format family's file (fmt_*.wgsl), wide.wgsl for
// the variants that write four pixels per store, and the operation (op_*.wgsl: one file holding `main`, or
// op_transform.wgsl and one of its two mains). Nothing in the hot path switches on the format: each variant
// reads exactly one.
//
// Readers define, for plane 0, 1 or 2 of the camera frame read in place (row `row`, byte `xb` of the row):
//   src_byte(plane, xb, row) -> u32   one byte
//   src_pair(plane, xb, row) -> u32   two bytes, little-endian; (plane offset + row * stride + xb) even
//   src_word(plane, xb, row) -> u32   four bytes, little-endian; (plane offset + row * stride + xb) % 4 == 0

struct Params {
    src_w: u32,
    src_h: u32,
    off0: u32,           // plane byte offsets and strides (buffer reader only)
    stride0: u32,
    off1: u32,
    stride1: u32,
    off2: u32,
    stride2: u32,
    dst_w: u32,
    dst_h: u32,
    dst_stride_px: u32,  // output row pitch in pixels (u32 words)
    crop_x: u32,
    crop_y: u32,
    crop_w: u32,
    crop_h: u32,
    transform: u32,      // bits 0-1: quarter turns clockwise; bit 2: mirror x; bit 3: mirror y
    y_off: f32,          // (code - y_off) * y_scale gives luma / RGB in 0..1
    y_scale: f32,
    c_scale: f32,        // (code - 128) * c_scale gives Cb, Cr in -0.5..0.5
    cr_r: f32,           // R = Y + cr_r Cr; G = Y + cb_g Cb + cr_g Cr; B = Y + cb_b Cb
    cb_g: f32,
    cr_g: f32,
    cb_b: f32,
    scale_x: f32,        // crop_w / width of the (unrotated) scaled image
    scale_y: f32,
}

var<immediate> p: Params;

// The output buffer (group 1, binding 0) is declared by the generated lines: `dst`, one XRGB8888 pixel per
// element, or, for the wide variants (wide.wgsl), `dst4`, four pixels per element.

// Luma code to 0..1.
fn luma(y: u32) -> f32 {
    return (f32(y) - p.y_off) * p.y_scale;
}

// What Cb and Cr add to (R, G, B); shared by the pixels that share a chroma sample.
fn chroma(u: u32, v: u32) -> vec3<f32> {
    let cb = (f32(u) - 128.0) * p.c_scale;
    let cr = (f32(v) - 128.0) * p.c_scale;
    return vec3<f32>(p.cr_r * cr, p.cb_g * cb + p.cr_g * cr, p.cb_b * cb);
}

fn to_rgb_yuv(y: u32, u: u32, v: u32) -> vec3<f32> {
    return vec3<f32>(luma(y)) + chroma(u, v);
}

fn to_rgb_rgb(r: u32, g: u32, b: u32) -> vec3<f32> {
    return (vec3<f32>(f32(r), f32(g), f32(b)) - vec3<f32>(p.y_off)) * p.y_scale;
}

// For the unscaled variants: where pixel (x, y) of the crop lands in the output, mirrored and then turned as
// `transform` says (the forward map of op_transform.wgsl's inverse one).
fn out_index(x: u32, y: u32) -> u32 {
    var mx = x;
    var my = y;
    if ((p.transform & 4u) != 0u) {
        mx = p.crop_w - 1u - x;
    }
    if ((p.transform & 8u) != 0u) {
        my = p.crop_h - 1u - y;
    }
    let turns = p.transform & 3u;
    var o = vec2<u32>(mx, my);
    if (turns == 1u) {
        o = vec2<u32>(p.crop_h - 1u - my, mx);
    } else if (turns == 2u) {
        o = vec2<u32>(p.crop_w - 1u - mx, p.crop_h - 1u - my);
    } else if (turns == 3u) {
        o = vec2<u32>(my, p.crop_w - 1u - mx);
    }
    return o.y * p.dst_stride_px + o.x;
}

// RGB in 0..1 (clamped here) to one XRGB8888 word.
fn pack(c: vec3<f32>) -> u32 {
    let q = vec3<u32>(clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)) * 255.0 + vec3<f32>(0.5));
    return 0xff000000u | (q.x << 16u) | (q.y << 8u) | q.z;
}
