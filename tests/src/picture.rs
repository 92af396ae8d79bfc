//! Known pictures: the 100 % colour bars (vivid's "100% Colorbar" and the pattern's `bars`), PPM files, and
//! the check of pictures decoded from the pattern's MJPG form against the pattern's specification (the CPU
//! reference): colour bars over a black band holding a white square.

use std::path::Path;

/// The eight 100 % colour bars as R'G'B', left to right.
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

/// How far a decoded component may be from the picture, away from edges: JPEG at quality 85 with 4:2:0
/// chroma measured at most 10 levels off two pixels from a bar edge.
pub const JPEG_TOLERANCE: u8 = 16;
/// Pixels this close to a bar edge or the band are not compared (DCT ringing, chroma bleeding).
pub const EDGE: usize = 2;

/// A P6 PPM as (width, height, RGB).
pub fn read_ppm(path: &Path) -> (usize, usize, Vec<u8>) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = String::from_utf8_lossy(&data[..data.len().min(64)]).into_owned();
    let mut it = text.split_ascii_whitespace();
    assert_eq!(it.next(), Some("P6"), "{}", path.display());
    let w: usize = it.next().unwrap().parse().unwrap();
    let h: usize = it.next().unwrap().parse().unwrap();
    assert_eq!(it.next(), Some("255"));
    let rgb = data[data.len() - w * h * 3..].to_vec();
    (w, h, rgb)
}

/// Checks `rgb` (`w`x`h`, RGB24, decoded from JPEG) against `pattern:bars` within [`JPEG_TOLERANCE`]
/// away from edges, and finds the marker: returns the x of the white square's left edge in the band.
pub fn check_decoded_bars(what: &str, w: usize, h: usize, rgb: &[u8]) -> usize {
    let band = ((h / 8) / 2 * 2).max(2);
    let top = h - band;
    let px = |x: usize, y: usize| &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
    let bar_w = w / 8;
    let mut worst = 0;
    for y in 0..top - EDGE {
        for x in 0..w {
            let in_bar = x % bar_w;
            if in_bar < EDGE || in_bar >= bar_w - EDGE {
                continue;
            }
            let want = BARS[x * 8 / w];
            let got = px(x, y);
            let err = (0..3).map(|c| got[c].abs_diff(want[c])).max().unwrap();
            worst = worst.max(err);
            assert!(
                err <= JPEG_TOLERANCE,
                "{what}: pixel ({x},{y}) is {got:?}, bar colour {want:?} (tolerance {JPEG_TOLERANCE})"
            );
        }
    }
    // The band's middle row: black, with one white square of band height.
    let y = top + band / 2;
    let white: Vec<usize> = (0..w)
        .filter(|&x| px(x, y).iter().all(|&c| c > 128))
        .collect();
    assert!(
        white.len().abs_diff(band) <= 2,
        "{what}: the marker should be {band} px wide, the band's white pixels are {white:?}"
    );
    assert!(
        white.windows(2).all(|p| p[1] == p[0] + 1),
        "{what}: the marker is not one square: {white:?}"
    );
    eprintln!(
        "{what}: bars within {worst} levels, marker at x={}",
        white[0]
    );
    white[0]
}

/// The number in "N corrupt frames skipped" (the decode summary) in `text`.
pub fn corrupt_skipped(text: &str) -> u64 {
    text.split(" corrupt frames skipped")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no corrupt-frame count in: {text}"))
}
