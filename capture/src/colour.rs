//! Pure colour maths shared by every stage that paints or checks a known picture: the eight 100 % colour
//! bars and BT.601 limited-range R'G'B' → Y'CbCr. No buffers, no I/O.

/// The bars, left to right, as R'G'B' (100 % amplitude): white, yellow, cyan, green, magenta, red, blue,
/// black.
pub const BARS: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];

/// The bar colour of column `x` of a `width`-pixel-wide picture: bar `x * 8 / width`.
pub fn bar_rgb(x: u32, width: u32) -> [u8; 3] {
    BARS[(u64::from(x) * 8 / u64::from(width.max(1))).min(7) as usize]
}

/// BT.601 limited-range R'G'B' to Y'CbCr (8 bit; Y' 16-235, Cb/Cr 16-240), in the usual 8-bit fixed-point
/// form (coefficients scaled by 256, rounded), which is within 1 of the exact value.
pub fn rgb_to_yuv(rgb: [u8; 3]) -> (u8, u8, u8) {
    let [r, g, b] = rgb.map(i32::from);
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (y as u8, u as u8, v as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_encode_to_the_textbook_bt601_values() {
        // ITU-R BT.601 limited range, 100 % bars.
        let want = [
            (235, 128, 128),
            (210, 16, 146),
            (170, 166, 16),
            (145, 54, 34),
            (106, 202, 222),
            (81, 90, 240),
            (41, 240, 110),
            (16, 128, 128),
        ];
        for (rgb, want) in BARS.iter().zip(want) {
            let got = rgb_to_yuv(*rgb);
            let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).abs();
            assert!(
                d(got.0, want.0) <= 1 && d(got.1, want.1) <= 1 && d(got.2, want.2) <= 1,
                "{rgb:?}: {got:?} vs {want:?}"
            );
        }
        assert_eq!(bar_rgb(0, 640), BARS[0]);
        assert_eq!(bar_rgb(79, 640), BARS[0]);
        assert_eq!(bar_rgb(80, 640), BARS[1]);
        assert_eq!(bar_rgb(639, 640), BARS[7]);
    }
}
