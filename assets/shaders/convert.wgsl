// dmacam render stage: camera pixels -> XRGB8888, with crop, mirror, rotate and bilinear scale.
//
// This file is the common part. build.rs prepends one source reader (src_buffer.wgsl or src_image.wgsl),
// which defines `fn src_byte(plane: u32, xb: u32, row: u32) -> u32`: byte `xb` of row `row` of plane 0 or 1
// of the camera frame, read in place from the imported dma-buf.
//
// Output pixel (dx, dy) is mapped back to the source in this order (the inverse of crop -> mirror -> rotate ->
// scale): undo the rotation (quarter turns clockwise), undo the mirror, then scale into the crop rectangle.
// Pixels are converted to RGB before filtering, so chroma is taken at the nearest co-sited sample
// (x/2 for 4:2:2, (x/2, y/2) for 4:2:0) and bilinear weights apply to converted RGB.

struct Params {
    format: u32,         // FMT_* below
    src_w: u32,
    src_h: u32,
    off0: u32,           // plane byte offsets and strides (buffer reader only)
    stride0: u32,
    off1: u32,
    stride1: u32,
    dst_w: u32,
    dst_h: u32,
    dst_stride_px: u32,  // output row pitch in pixels (u32 words)
    crop_x: u32,
    crop_y: u32,
    crop_w: u32,
    crop_h: u32,
    transform: u32,      // bits 0-1: quarter turns clockwise; bit 2: mirror x; bit 3: mirror y; bit 4: bilinear
    is_yuv: u32,
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

const FMT_YUYV: u32 = 0u;
const FMT_UYVY: u32 = 1u;
const FMT_NV12: u32 = 2u;
const FMT_GREY: u32 = 3u;
const FMT_BGRX: u32 = 4u;   // V4L2 XR24 / AR24: bytes B, G, R, X|A
const FMT_RGB3: u32 = 5u;
const FMT_BGR3: u32 = 6u;

var<immediate> p: Params;

@group(1) @binding(0) var<storage, read_write> dst: array<u32>;

fn to_rgb_yuv(y: u32, u: u32, v: u32) -> vec3<f32> {
    let yy = (f32(y) - p.y_off) * p.y_scale;
    let cb = (f32(u) - 128.0) * p.c_scale;
    let cr = (f32(v) - 128.0) * p.c_scale;
    return vec3<f32>(yy + p.cr_r * cr, yy + p.cb_g * cb + p.cr_g * cr, yy + p.cb_b * cb);
}

fn to_rgb_rgb(r: u32, g: u32, b: u32) -> vec3<f32> {
    return (vec3<f32>(f32(r), f32(g), f32(b)) - vec3<f32>(p.y_off)) * p.y_scale;
}

// The source pixel (x, y), converted to RGB in 0..1 (not yet clamped).
fn fetch(x: u32, y: u32) -> vec3<f32> {
    switch p.format {
        case 0u: { // YUYV: Y0 U Y1 V
            let pair = (x >> 1u) * 4u;
            return to_rgb_yuv(src_byte(0u, x * 2u, y), src_byte(0u, pair + 1u, y), src_byte(0u, pair + 3u, y));
        }
        case 1u: { // UYVY: U Y0 V Y1
            let pair = (x >> 1u) * 4u;
            return to_rgb_yuv(src_byte(0u, x * 2u + 1u, y), src_byte(0u, pair, y), src_byte(0u, pair + 2u, y));
        }
        case 2u: { // NV12: Y plane, then interleaved CbCr at half resolution
            let cx = (x >> 1u) * 2u;
            let cy = y >> 1u;
            return to_rgb_yuv(src_byte(0u, x, y), src_byte(1u, cx, cy), src_byte(1u, cx + 1u, cy));
        }
        case 3u: { // GREY
            let l = (f32(src_byte(0u, x, y)) - p.y_off) * p.y_scale;
            return vec3<f32>(l, l, l);
        }
        case 4u: { // XR24 / AR24: B G R X
            let b = x * 4u;
            return to_rgb_rgb(src_byte(0u, b + 2u, y), src_byte(0u, b + 1u, y), src_byte(0u, b, y));
        }
        case 5u: { // RGB3
            let b = x * 3u;
            return to_rgb_rgb(src_byte(0u, b, y), src_byte(0u, b + 1u, y), src_byte(0u, b + 2u, y));
        }
        default: { // BGR3
            let b = x * 3u;
            return to_rgb_rgb(src_byte(0u, b + 2u, y), src_byte(0u, b + 1u, y), src_byte(0u, b, y));
        }
    }
}

fn pack(c: vec3<f32>) -> u32 {
    let q = vec3<u32>(clamp(c, vec3<f32>(0.0), vec3<f32>(1.0)) * 255.0 + vec3<f32>(0.5));
    return 0xff000000u | (q.x << 16u) | (q.y << 8u) | q.z;
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dx = gid.x;
    let dy = gid.y;
    if (dx >= p.dst_w || dy >= p.dst_h) {
        return;
    }
    let turns = p.transform & 3u;
    // Size of the scaled image before rotation.
    var sw = p.dst_w;
    var sh = p.dst_h;
    if ((turns & 1u) == 1u) {
        sw = p.dst_h;
        sh = p.dst_w;
    }
    // Undo the rotation (clockwise quarter turns).
    var x = dx;
    var y = dy;
    if (turns == 1u) {
        x = dy;
        y = sh - 1u - dx;
    } else if (turns == 2u) {
        x = sw - 1u - dx;
        y = sh - 1u - dy;
    } else if (turns == 3u) {
        x = sw - 1u - dy;
        y = dx;
    }
    // Undo the mirror.
    if ((p.transform & 4u) != 0u) {
        x = sw - 1u - x;
    }
    if ((p.transform & 8u) != 0u) {
        y = sh - 1u - y;
    }
    // Into the crop rectangle, in source pixel centres.
    let fx = clamp((f32(x) + 0.5) * p.scale_x - 0.5, 0.0, f32(p.crop_w - 1u));
    let fy = clamp((f32(y) + 0.5) * p.scale_y - 0.5, 0.0, f32(p.crop_h - 1u));
    var rgb: vec3<f32>;
    if ((p.transform & 16u) == 0u) {
        rgb = fetch(p.crop_x + u32(fx + 0.5), p.crop_y + u32(fy + 0.5));
    } else {
        let x0 = u32(floor(fx));
        let y0 = u32(floor(fy));
        let ax = fx - f32(x0);
        let ay = fy - f32(y0);
        let x1 = min(x0 + 1u, p.crop_w - 1u);
        let y1 = min(y0 + 1u, p.crop_h - 1u);
        let c00 = fetch(p.crop_x + x0, p.crop_y + y0);
        if (ax == 0.0 && ay == 0.0) {
            rgb = c00;
        } else {
            let c10 = fetch(p.crop_x + x1, p.crop_y + y0);
            let c01 = fetch(p.crop_x + x0, p.crop_y + y1);
            let c11 = fetch(p.crop_x + x1, p.crop_y + y1);
            // Filter clamped colours, as a texture sampler would.
            let top = mix(clamp(c00, vec3<f32>(0.0), vec3<f32>(1.0)), clamp(c10, vec3<f32>(0.0), vec3<f32>(1.0)), ax);
            let bot = mix(clamp(c01, vec3<f32>(0.0), vec3<f32>(1.0)), clamp(c11, vec3<f32>(0.0), vec3<f32>(1.0)), ax);
            rgb = mix(top, bot, ay);
        }
    }
    dst[dy * p.dst_stride_px + dx] = pack(rgb);
}
