//! CPU reference for the render stage's tests, written independently of the shaders: a detailed synthetic
//! RGB picture, its encoding into each camera format, a decoder back to RGB, and crop/mirror/rotate/scale done
//! step by step on whole images. Shared by the host tests (`render/tests/`) and the VM suite
//! (`tests/suite/render.rs`, via `#[path]`).
#![allow(dead_code)]

use dmacam_render::{Colorimetry, Filter, ProcessSpec, Quantization, YcbcrEnc};

/// Largest per-channel difference (in 1/255 steps) the GPU output may have from this reference.
pub const TOLERANCE: u8 = 2;

pub type Rgb = [f64; 3];

/// A detailed test picture in 0..1 RGB: colour bars on top, smooth gradients in the middle, fine detail
/// (one-pixel checker, diagonal lines, pseudo-random noise) at the bottom. No two rows or columns are alike.
pub fn pattern(width: u32, height: u32, seed: u32) -> Vec<Rgb> {
    const BARS: [Rgb; 8] = [
        [1.0, 1.0, 1.0],
        [1.0, 1.0, 0.0],
        [0.0, 1.0, 1.0],
        [0.0, 1.0, 0.0],
        [1.0, 0.0, 1.0],
        [1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0],
        [0.0, 0.0, 0.0],
    ];
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(12345);
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 1000) as f64 / 999.0
    };
    let (w, h) = (width as f64, height as f64);
    let mut out = Vec::with_capacity((width * height) as usize);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f64 / w, y as f64 / h);
            let px = if y < height / 3 {
                let mut c = BARS[(x * 8 / width) as usize];
                // Darken the bars towards their bottom so rows differ.
                let k = 0.6 + 0.4 * (1.0 - fy * 3.0);
                c.iter_mut().for_each(|v| *v = *v * k + 0.05 * (1.0 - k));
                c
            } else if y < 2 * height / 3 {
                [
                    fx,
                    1.0 - fx * 0.5 - fy * 0.3,
                    ((fx + fy * 2.0) * 3.0).fract(),
                ]
            } else {
                let checker = ((x + y) % 2) as f64;
                let diag = if (x + 2 * y) % 7 == 0 { 1.0 } else { 0.0 };
                [
                    0.5 * checker + 0.5 * rnd(),
                    0.3 + 0.4 * rnd() + 0.3 * diag,
                    (0.8 * fx + 0.2 * checker).min(1.0),
                ]
            };
            out.push(px);
        }
    }
    out
}

fn coeffs(c: Colorimetry) -> (f64, f64) {
    match c.ycbcr_enc {
        YcbcrEnc::Bt601 => (0.299, 0.114),
        YcbcrEnc::Bt709 => (0.2126, 0.0722),
    }
}

fn q(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// RGB (0..1) → Y', Cb, Cr codes.
fn to_ycc(c: Colorimetry, [r, g, b]: Rgb) -> (f64, f64, f64) {
    let (kr, kb) = coeffs(c);
    let y = kr * r + (1.0 - kr - kb) * g + kb * b;
    let cb = (b - y) / (2.0 * (1.0 - kb));
    let cr = (r - y) / (2.0 * (1.0 - kr));
    match c.quantization {
        Quantization::Limited => (16.0 + 219.0 * y, 128.0 + 224.0 * cb, 128.0 + 224.0 * cr),
        Quantization::Full => (255.0 * y, 128.0 + 255.0 * cb, 128.0 + 255.0 * cr),
    }
}

fn rgb_code(c: Colorimetry, v: f64) -> u8 {
    match c.quantization {
        Quantization::Limited => q(16.0 + 219.0 * v),
        Quantization::Full => q(255.0 * v),
    }
}

/// One encoded frame: planes with strides (rows padded with junk bytes so a stride mix-up shows).
pub struct Encoded {
    pub fourcc: &'static str,
    pub width: u32,
    pub height: u32,
    pub planes: Vec<(Vec<u8>, u32)>,
}

/// Byte positions of (Y0, Cb, Y1, Cr) in a packed 4:2:2 pair, per V4L2's definition of each format.
fn packed422_order(fourcc: &str) -> Option<[usize; 4]> {
    Some(match fourcc {
        "YUYV" => [0, 1, 2, 3],
        "YVYU" => [0, 3, 2, 1],
        "UYVY" => [1, 0, 3, 2],
        "VYUY" => [1, 2, 3, 0],
        _ => return None,
    })
}

/// Semi-planar formats (single- and multi-buffer): (vertical chroma subsampling, Cr before Cb).
fn semi_planar(fourcc: &str) -> Option<(usize, bool)> {
    Some(match fourcc {
        "NV12" | "NM12" => (2, false),
        "NV21" | "NM21" => (2, true),
        "NV16" | "NM16" => (1, false),
        "NV61" | "NM61" => (1, true),
        _ => return None,
    })
}

/// Three-plane 4:2:0 formats: whether the Cr plane comes before the Cb plane.
fn planar420(fourcc: &str) -> Option<bool> {
    Some(match fourcc {
        "YU12" | "YM12" => false,
        "YV12" | "YM21" => true,
        _ => return None,
    })
}

/// 32-bit RGB formats: byte positions of (R, G, B, X|A) in each pixel, as V4L2 defines them.
fn rgb32(fourcc: &str) -> Option<[usize; 4]> {
    Some(match fourcc {
        "XR24" | "AR24" => [2, 1, 0, 3],
        "BX24" | "BA24" => [1, 2, 3, 0],
        "XB24" | "AB24" => [0, 1, 2, 3],
        "RX24" => [3, 2, 1, 0],
        _ => return None,
    })
}

/// Encodes `rgb` as `fourcc` (any of [`FORMATS`]) with `pad` junk bytes after each row.
pub fn encode(
    fourcc: &'static str,
    width: u32,
    height: u32,
    rgb: &[Rgb],
    c: Colorimetry,
    pad: u32,
) -> Encoded {
    let (w, h) = (width as usize, height as usize);
    let px = |x: usize, y: usize| rgb[y * w + x];
    let plane = |row_bytes: usize, rows: usize, fill: &mut dyn FnMut(usize, &mut [u8])| {
        let stride = row_bytes + pad as usize;
        let mut v = vec![0u8; stride * rows];
        for (i, b) in v.iter_mut().enumerate() {
            *b = (i * 7 + 0x5a) as u8; // junk in the padding
        }
        for y in 0..rows {
            fill(y, &mut v[y * stride..y * stride + row_bytes]);
        }
        (v, stride as u32)
    };
    let luma = || {
        plane(w, h, &mut |y, row| {
            for (x, b) in row.iter_mut().enumerate() {
                *b = q(to_ycc(c, px(x, y)).0);
            }
        })
    };
    // Mean (Cb, Cr) of the pixels a chroma sample at (cx, cy) covers, `vsub` rows high.
    let chroma = |cx: usize, cy: usize, vsub: usize| {
        let mut s = (0.0, 0.0);
        let n = (2 * vsub) as f64;
        for dy in 0..vsub {
            for dx in 0..2 {
                let v = to_ycc(c, px((2 * cx + dx).min(w - 1), (vsub * cy + dy).min(h - 1)));
                s.0 += v.1 / n;
                s.1 += v.2 / n;
            }
        }
        s
    };
    let planes = if let Some(order) = packed422_order(fourcc) {
        vec![plane(w.div_ceil(2) * 4, h, &mut |y, row| {
            for p in 0..w.div_ceil(2) {
                let a = to_ycc(c, px(2 * p, y));
                let b = to_ycc(c, px((2 * p + 1).min(w - 1), y));
                let (cb, cr) = ((a.1 + b.1) / 2.0, (a.2 + b.2) / 2.0);
                for (i, v) in [a.0, cb, b.0, cr].into_iter().enumerate() {
                    row[4 * p + order[i]] = q(v);
                }
            }
        })]
    } else if let Some((vsub, cr_first)) = semi_planar(fourcc) {
        let cbcr = plane(w.div_ceil(2) * 2, h.div_ceil(vsub), &mut |y, row| {
            for p in 0..w.div_ceil(2) {
                let (cb, cr) = chroma(p, y, vsub);
                let (first, second) = if cr_first { (cr, cb) } else { (cb, cr) };
                row[2 * p] = q(first);
                row[2 * p + 1] = q(second);
            }
        });
        vec![luma(), cbcr]
    } else if let Some(cr_first) = planar420(fourcc) {
        let part = |cr: bool| {
            plane(w.div_ceil(2), h.div_ceil(2), &mut |y, row| {
                for (p, b) in row.iter_mut().enumerate() {
                    let (cb, crv) = chroma(p, y, 2);
                    *b = q(if cr { crv } else { cb });
                }
            })
        };
        vec![luma(), part(cr_first), part(!cr_first)]
    } else if let Some([r, g, b, x]) = rgb32(fourcc) {
        vec![plane(w * 4, h, &mut |y, row| {
            for xx in 0..w {
                let v = px(xx, y);
                let o = &mut row[4 * xx..4 * xx + 4];
                o[r] = rgb_code(c, v[0]);
                o[g] = rgb_code(c, v[1]);
                o[b] = rgb_code(c, v[2]);
                // Alpha (or the X byte) varies, so a format read with the wrong byte order shows.
                o[x] = (xx * 3 + y) as u8;
            }
        })]
    } else {
        match fourcc {
            "GREY" => vec![luma()],
            "RGB3" | "BGR3" => vec![plane(w * 3, h, &mut |y, row| {
                for x in 0..w {
                    let [r, g, b] = px(x, y);
                    let v = [rgb_code(c, r), rgb_code(c, g), rgb_code(c, b)];
                    let v = if fourcc == "BGR3" {
                        [v[2], v[1], v[0]]
                    } else {
                        v
                    };
                    row[3 * x..3 * x + 3].copy_from_slice(&v);
                }
            })],
            other => panic!("reference cannot encode {other}"),
        }
    };
    Encoded {
        fourcc,
        width,
        height,
        planes,
    }
}

/// Decodes an encoded frame back to RGB (0..1, clamped), reading codes from the bytes as a camera wrote them.
/// Chroma is taken from the co-sited sample (pair for 4:2:2, 2×2 block for 4:2:0).
pub fn decode(e: &Encoded, c: Colorimetry) -> Vec<Rgb> {
    let (kr, kb) = coeffs(c);
    let kg = 1.0 - kr - kb;
    let (yo, ys, cs) = match c.quantization {
        Quantization::Limited => (16.0, 219.0, 224.0),
        Quantization::Full => (0.0, 255.0, 255.0),
    };
    let ycc = |y: u8, u: u8, v: u8| -> Rgb {
        let yy = (y as f64 - yo) / ys;
        let cb = (u as f64 - 128.0) / cs;
        let cr = (v as f64 - 128.0) / cs;
        let r = yy + 2.0 * (1.0 - kr) * cr;
        let b = yy + 2.0 * (1.0 - kb) * cb;
        let g = (yy - kr * r - kb * b) / kg;
        [r, g, b]
    };
    let rgbq = |v: u8| (v as f64 - yo) / ys;
    let (w, h) = (e.width as usize, e.height as usize);
    let at = |p: usize, x: usize, y: usize| {
        let (data, stride) = &e.planes[p];
        data[y * *stride as usize + x]
    };
    let f = e.fourcc;
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let px = if let Some(o) = packed422_order(f) {
                let pair = (x / 2) * 4;
                let yb = if x % 2 == 0 { o[0] } else { o[2] };
                ycc(
                    at(0, pair + yb, y),
                    at(0, pair + o[1], y),
                    at(0, pair + o[3], y),
                )
            } else if let Some((vsub, cr_first)) = semi_planar(f) {
                let (a, b) = (
                    at(1, (x / 2) * 2, y / vsub),
                    at(1, (x / 2) * 2 + 1, y / vsub),
                );
                let (cb, cr) = if cr_first { (b, a) } else { (a, b) };
                ycc(at(0, x, y), cb, cr)
            } else if let Some(cr_first) = planar420(f) {
                let (cb_plane, cr_plane) = if cr_first { (2, 1) } else { (1, 2) };
                ycc(
                    at(0, x, y),
                    at(cb_plane, x / 2, y / 2),
                    at(cr_plane, x / 2, y / 2),
                )
            } else if let Some([r, g, b, _]) = rgb32(f) {
                [
                    rgbq(at(0, 4 * x + r, y)),
                    rgbq(at(0, 4 * x + g, y)),
                    rgbq(at(0, 4 * x + b, y)),
                ]
            } else {
                match f {
                    "GREY" => {
                        let l = (at(0, x, y) as f64 - yo) / ys;
                        [l, l, l]
                    }
                    "RGB3" => [
                        rgbq(at(0, 3 * x, y)),
                        rgbq(at(0, 3 * x + 1, y)),
                        rgbq(at(0, 3 * x + 2, y)),
                    ],
                    "BGR3" => [
                        rgbq(at(0, 3 * x + 2, y)),
                        rgbq(at(0, 3 * x + 1, y)),
                        rgbq(at(0, 3 * x, y)),
                    ],
                    other => panic!("reference cannot decode {other}"),
                }
            };
            out.push(px.map(|v| v.clamp(0.0, 1.0)));
        }
    }
    out
}

/// An image in the reference pipeline.
#[derive(Clone)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub px: Vec<Rgb>,
}

impl Image {
    fn get(&self, x: usize, y: usize) -> Rgb {
        self.px[y * self.width + x]
    }
}

/// Applies `spec` step by step: crop, mirror, rotate (each materialised), then resample to the output size.
pub fn process(src: Image, spec: &ProcessSpec) -> Image {
    let mut img = src;
    if let Some(r) = spec.crop {
        let mut px = vec![];
        for y in r.y as usize..(r.y + r.height) as usize {
            for x in r.x as usize..(r.x + r.width) as usize {
                px.push(img.get(x, y));
            }
        }
        img = Image {
            width: r.width as usize,
            height: r.height as usize,
            px,
        };
    }
    if spec.mirror_x {
        for row in img.px.chunks_mut(img.width) {
            row.reverse();
        }
    }
    if spec.mirror_y {
        let rows: Vec<Vec<Rgb>> = img.px.chunks(img.width).rev().map(|r| r.to_vec()).collect();
        img.px = rows.concat();
    }
    for _ in 0..spec.rotate.quarter_turns() {
        // One clockwise quarter turn: source (x, y) lands at (height-1-y, x).
        let (w, h) = (img.width, img.height);
        let mut px = vec![[0.0; 3]; w * h];
        for y in 0..h {
            for x in 0..w {
                let (nx, ny) = (h - 1 - y, x);
                px[ny * h + nx] = img.get(x, y);
            }
        }
        img = Image {
            width: h,
            height: w,
            px,
        };
    }
    if let Some((ow, oh)) = spec.scale {
        let (ow, oh) = (ow as usize, oh as usize);
        let pos = |o: usize, out: usize, inp: usize| {
            (((o as f64 + 0.5) * inp as f64 / out as f64) - 0.5).clamp(0.0, (inp - 1) as f64)
        };
        let mut px = Vec::with_capacity(ow * oh);
        for y in 0..oh {
            for x in 0..ow {
                let (sx, sy) = (pos(x, ow, img.width), pos(y, oh, img.height));
                let v = match spec.filter {
                    Filter::Nearest => img.get((sx + 0.5) as usize, (sy + 0.5) as usize),
                    Filter::Bilinear => {
                        let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
                        let (x1, y1) = ((x0 + 1).min(img.width - 1), (y0 + 1).min(img.height - 1));
                        let (ax, ay) = (sx - x0 as f64, sy - y0 as f64);
                        let lerp =
                            |a: Rgb, b: Rgb, t: f64| [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * t);
                        lerp(
                            lerp(img.get(x0, y0), img.get(x1, y0), ax),
                            lerp(img.get(x0, y1), img.get(x1, y1), ax),
                            ay,
                        )
                    }
                };
                px.push(v);
            }
        }
        img = Image {
            width: ow,
            height: oh,
            px,
        };
    }
    img
}

/// Compares an XRGB8888 output (`stride` bytes per row) with the reference; returns the largest per-channel
/// error and panics with the first bad pixel if it exceeds [`TOLERANCE`] or X is not 0xff.
pub fn compare(what: &str, out: &[u8], stride: usize, want: &Image) -> u8 {
    let mut worst = 0u8;
    let mut first_bad = None;
    for y in 0..want.height {
        for x in 0..want.width {
            let o = &out[y * stride + 4 * x..y * stride + 4 * x + 4];
            let got = [o[2], o[1], o[0]];
            let exp = want
                .get(x, y)
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8);
            for i in 0..3 {
                let d = got[i].abs_diff(exp[i]);
                worst = worst.max(d);
                if (d > TOLERANCE || o[3] != 0xff) && first_bad.is_none() {
                    first_bad = Some((x, y, got, o[3], exp));
                }
            }
        }
    }
    if let Some((x, y, got, xb, exp)) = first_bad {
        panic!(
            "{what}: pixel ({x}, {y}) is RGB {got:?} X {xb:#x}, reference {exp:?} (max error {worst}, tolerance {TOLERANCE})"
        );
    }
    worst
}

/// The four colorimetries every conversion is checked with.
pub fn colorimetries() -> [Colorimetry; 4] {
    [
        (YcbcrEnc::Bt601, Quantization::Limited),
        (YcbcrEnc::Bt601, Quantization::Full),
        (YcbcrEnc::Bt709, Quantization::Limited),
        (YcbcrEnc::Bt709, Quantization::Full),
    ]
    .map(|(ycbcr_enc, quantization)| Colorimetry {
        ycbcr_enc,
        quantization,
    })
}

/// Every camera format the render stage reads (single- and multi-buffer forms; RX24 is known but not
/// captured).
pub const FORMATS: [&str; 26] = [
    "YUYV", "YVYU", "UYVY", "VYUY", "NV12", "NM12", "NV21", "NM21", "NV16", "NM16", "NV61", "NM61",
    "YU12", "YM12", "YV12", "YM21", "GREY", "XR24", "AR24", "BX24", "BA24", "XB24", "AB24", "RX24",
    "RGB3", "BGR3",
];

/// Whether a format of [`FORMATS`] keeps each plane in its own buffer (the `...M` forms).
pub fn multi_buffer(fourcc: &str) -> bool {
    fourcc.starts_with("NM") || fourcc == "YM12" || fourcc == "YM21"
}

/// The spread of a picture's values: a test frame must have real detail, never a flat field.
pub fn assert_detailed(img: &Image, min_colours: usize) {
    let mut distinct = std::collections::HashSet::new();
    for p in &img.px {
        distinct.insert(p.map(|v| (v * 255.0).round() as u8));
    }
    assert!(
        distinct.len() >= min_colours,
        "test picture has only {} distinct colours (want {min_colours})",
        distinct.len()
    );
    let rows: std::collections::HashSet<Vec<[u8; 3]>> = img
        .px
        .chunks(img.width)
        .map(|r| {
            r.iter()
                .map(|p| p.map(|v| (v * 255.0).round() as u8))
                .collect()
        })
        .collect();
    assert!(
        rows.len() * 2 > img.height,
        "test picture repeats its rows: {} distinct of {}",
        rows.len(),
        img.height
    );
}
