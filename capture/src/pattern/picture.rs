//! The pattern's picture as a pure description: which colour pixel (x, y) of frame `seq` has (see the
//! [module docs](super)).

use thiserror::Error;

use crate::colour::bar_rgb;

/// Which picture the pattern source draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PatternKind {
    /// Eight colour bars (the default).
    #[default]
    Bars,
    /// Horizontal and vertical colour ramps.
    Gradient,
    /// Grey noise, new every frame, deterministic per sequence number.
    Noise,
}

impl PatternKind {
    pub const ALL: [PatternKind; 3] =
        [PatternKind::Bars, PatternKind::Gradient, PatternKind::Noise];

    pub fn as_str(self) -> &'static str {
        match self {
            PatternKind::Bars => "bars",
            PatternKind::Gradient => "gradient",
            PatternKind::Noise => "noise",
        }
    }

    /// The source name, `pattern:KIND`.
    pub fn source_name(self) -> String {
        format!("pattern:{}", self.as_str())
    }
}

/// Why a pattern source name is not understood.
#[derive(Debug, Error)]
pub enum PatternError {
    #[error("-d {name}: unknown pattern '{kind}'; use pattern (colour bars), pattern:bars, pattern:gradient or pattern:noise")]
    UnknownKind { name: String, kind: String },
}

/// Reads a `-d` value: `None` if it does not name the pattern source (a device path), else the pattern
/// kind of `pattern` (bars) or `pattern:KIND`, or an error for an unknown kind.
pub fn parse_source_name(name: &str) -> Option<Result<PatternKind, PatternError>> {
    let rest = name.strip_prefix("pattern")?;
    if rest.is_empty() {
        return Some(Ok(PatternKind::Bars));
    }
    let kind = rest.strip_prefix(':')?;
    Some(
        PatternKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| PatternError::UnknownKind {
                name: name.to_owned(),
                kind: kind.to_owned(),
            }),
    )
}

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && x < self.x + self.w && y >= self.y && y < self.y + self.h
    }
}

/// Seed of the noise pattern.
pub const NOISE_SEED: u64 = 0x646d_6163_616d_2121;

/// The picture of the pattern source, as a pure function of pixel position and sequence number. See the
/// [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picture {
    pub kind: PatternKind,
    pub width: u32,
    pub height: u32,
}

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];

fn ramp(v: u32, n: u32) -> u8 {
    (u64::from(v.min(n.saturating_sub(1))) * 255 / u64::from(n.saturating_sub(1).max(1))) as u8
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Picture {
    /// Height of the marker band: an eighth of the picture, even, at least 2 rows.
    pub fn band_height(&self) -> u32 {
        ((self.height / 8) & !1).max(2).min(self.height)
    }

    /// The first row of the marker band.
    pub fn band_top(&self) -> u32 {
        self.height - self.band_height()
    }

    /// How far the marker moves per frame period: a 64th of the width, even, at least 2 pixels.
    pub fn marker_step(&self) -> u32 {
        ((self.width / 64) & !1).max(2)
    }

    /// Number of distinct marker positions before it wraps to the left edge.
    pub fn marker_positions(&self) -> u32 {
        let side = self.band_height().min(self.width);
        (self.width - side) / self.marker_step() + 1
    }

    /// The white square of frame `seq`: as tall as the band, at `x = (seq mod positions) * step`.
    pub fn marker(&self, seq: u32) -> Rect {
        let side = self.band_height().min(self.width);
        Rect {
            x: (seq % self.marker_positions()) * self.marker_step(),
            y: self.band_top(),
            w: side,
            h: self.band_height(),
        }
    }

    /// The R'G'B' colour of pixel (`x`, `y`) in frame `seq`.
    pub fn rgb(&self, x: u32, y: u32, seq: u32) -> [u8; 3] {
        if y >= self.band_top() {
            return if self.marker(seq).contains(x, y) {
                WHITE
            } else {
                BLACK
            };
        }
        match self.kind {
            PatternKind::Bars => bar_rgb(x, self.width),
            PatternKind::Gradient => {
                let r = ramp(x, self.width);
                [r, ramp(y, self.band_top()), 255 - r]
            }
            PatternKind::Noise => {
                let key = (u64::from(seq) << 40) ^ (u64::from(y) << 20) ^ u64::from(x);
                let n = (mix(key ^ NOISE_SEED) >> 56) as u8;
                [n, n, n]
            }
        }
    }

    /// Whether row `y` is the same in every frame (so a buffer painted once need not be painted again).
    pub fn row_is_static(&self, y: u32) -> bool {
        y < self.band_top() && self.kind != PatternKind::Noise
    }

    /// Row `y` of frame `seq` into `out` (one entry per column).
    pub(super) fn row(&self, y: u32, seq: u32, out: &mut [[u8; 3]]) {
        if y >= self.band_top() {
            let m = self.marker(seq);
            for (x, px) in out.iter_mut().enumerate() {
                *px = if m.contains(x as u32, y) {
                    WHITE
                } else {
                    BLACK
                };
            }
            return;
        }
        match self.kind {
            PatternKind::Bars => {
                for (x, px) in out.iter_mut().enumerate() {
                    *px = bar_rgb(x as u32, self.width);
                }
            }
            _ => {
                for (x, px) in out.iter_mut().enumerate() {
                    *px = self.rgb(x as u32, y, seq);
                }
            }
        }
    }
}
