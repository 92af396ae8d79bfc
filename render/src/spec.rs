//! What to do to a frame on the GPU besides converting it: crop, mirror, rotate, scale.

use std::fmt;
use std::str::FromStr;

/// Largest output side the stage accepts (Vulkan guarantees 4096 for images; buffers go further, but a
/// camera frame larger than this is a mistake).
pub const MAX_SIDE: u32 = 16384;

/// A rectangle in source pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Clockwise rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rotation {
    #[default]
    R0,
    R90,
    R180,
    R270,
}

impl Rotation {
    pub fn quarter_turns(self) -> u32 {
        match self {
            Self::R0 => 0,
            Self::R90 => 1,
            Self::R180 => 2,
            Self::R270 => 3,
        }
    }
}

/// Resampling filter used when the output is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    Nearest,
    #[default]
    Bilinear,
}

/// The processing applied to every frame, in this order: crop (source pixels) → mirror → rotate → scale to the
/// output size. Parsed from text such as `convert`, `scale=1280x720,mirror`, `crop=320x240+16+8,rotate=90`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessSpec {
    /// Source rectangle; the whole frame when `None`.
    pub crop: Option<Rect>,
    /// Mirror left ↔ right.
    pub mirror_x: bool,
    /// Mirror top ↔ bottom.
    pub mirror_y: bool,
    pub rotate: Rotation,
    /// Output size; the (cropped, rotated) source size when `None`.
    pub scale: Option<(u32, u32)>,
    pub filter: Filter,
}

/// Why a processing spec is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad processing spec '{spec}': {reason}")]
pub struct SpecError {
    pub spec: String,
    pub reason: String,
}

/// `WIDTHxHEIGHT`, both at least 1.
fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?)).filter(|&(w, h)| w > 0 && h > 0)
}

impl FromStr for ProcessSpec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        let err = |reason: String| SpecError {
            spec: text.to_owned(),
            reason,
        };
        let mut spec = ProcessSpec::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (item, None),
            };
            match (key, value) {
                ("convert", None) => {}
                ("scale", Some(v)) => {
                    let (w, h) = parse_size(v)
                        .ok_or_else(|| err(format!("scale wants WIDTHxHEIGHT, e.g. scale=1280x720, not '{v}'")))?;
                    spec.scale = Some((w, h));
                }
                ("crop", Some(v)) => {
                    let mut parts = v.split('+');
                    let size = parts.next().and_then(parse_size);
                    let x = parts.next().map(str::parse::<u32>);
                    let y = parts.next().map(str::parse::<u32>);
                    match (size, x, y, parts.next()) {
                        (Some((width, height)), Some(Ok(x)), Some(Ok(y)), None) => {
                            spec.crop = Some(Rect { x, y, width, height })
                        }
                        (Some((width, height)), None, None, None) => {
                            spec.crop = Some(Rect { x: 0, y: 0, width, height })
                        }
                        _ => return Err(err(format!("crop wants WIDTHxHEIGHT+X+Y, e.g. crop=640x360+32+16, not '{v}'"))),
                    }
                }
                ("mirror" | "hflip", None) => spec.mirror_x = !spec.mirror_x,
                ("flip" | "vflip", None) => spec.mirror_y = !spec.mirror_y,
                ("mirror", Some(v)) => match v {
                    "h" | "x" => spec.mirror_x = !spec.mirror_x,
                    "v" | "y" => spec.mirror_y = !spec.mirror_y,
                    "hv" | "vh" | "xy" => {
                        spec.mirror_x = !spec.mirror_x;
                        spec.mirror_y = !spec.mirror_y;
                    }
                    _ => return Err(err(format!("mirror wants h, v or hv, not '{v}'"))),
                },
                ("rotate", Some(v)) => {
                    spec.rotate = match v {
                        "0" => Rotation::R0,
                        "90" => Rotation::R90,
                        "180" => Rotation::R180,
                        "270" | "-90" => Rotation::R270,
                        _ => return Err(err(format!("rotate wants 0, 90, 180 or 270 (clockwise), not '{v}'"))),
                    }
                }
                ("filter", Some(v)) => {
                    spec.filter = match v {
                        "nearest" => Filter::Nearest,
                        "bilinear" => Filter::Bilinear,
                        _ => return Err(err(format!("filter wants nearest or bilinear, not '{v}'"))),
                    }
                }
                _ => {
                    return Err(err(format!(
                        "unknown item '{item}' (known: convert, scale=WxH, crop=WxH+X+Y, mirror[=h|v|hv], flip, \
                         rotate=90|180|270, filter=nearest|bilinear)"
                    )))
                }
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for ProcessSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items = vec![];
        if let Some(c) = self.crop {
            items.push(format!("crop={}x{}+{}+{}", c.width, c.height, c.x, c.y));
        }
        match (self.mirror_x, self.mirror_y) {
            (true, true) => items.push("mirror=hv".into()),
            (true, false) => items.push("mirror=h".into()),
            (false, true) => items.push("mirror=v".into()),
            _ => {}
        }
        if self.rotate != Rotation::R0 {
            items.push(format!("rotate={}", self.rotate.quarter_turns() * 90));
        }
        if let Some((w, h)) = self.scale {
            items.push(format!("scale={w}x{h}"));
        }
        if self.filter == Filter::Nearest {
            items.push("filter=nearest".into());
        }
        if items.is_empty() {
            items.push("convert".into());
        }
        write!(f, "{}", items.join(","))
    }
}

impl ProcessSpec {
    /// The crop rectangle for a `width`×`height` source, checked against it.
    pub fn crop_rect(&self, width: u32, height: u32) -> Result<Rect, SpecError> {
        let r = self.crop.unwrap_or(Rect {
            x: 0,
            y: 0,
            width,
            height,
        });
        let fits = r.width > 0
            && r.height > 0
            && r.x.checked_add(r.width).is_some_and(|e| e <= width)
            && r.y.checked_add(r.height).is_some_and(|e| e <= height);
        if !fits {
            return Err(SpecError {
                spec: self.to_string(),
                reason: format!(
                    "crop {}x{}+{}+{} does not fit in the {width}x{height} frame",
                    r.width, r.height, r.x, r.y
                ),
            });
        }
        Ok(r)
    }

    /// The output size for a `width`×`height` source.
    pub fn output_size(&self, width: u32, height: u32) -> Result<(u32, u32), SpecError> {
        let r = self.crop_rect(width, height)?;
        let (w, h) = match self.scale {
            Some(s) => s,
            None if self.rotate.quarter_turns() % 2 == 1 => (r.height, r.width),
            None => (r.width, r.height),
        };
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
            return Err(SpecError {
                spec: self.to_string(),
                reason: format!("output size {w}x{h} is outside 1..{MAX_SIDE}"),
            });
        }
        Ok((w, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_specs() {
        let s: ProcessSpec = "crop=320x240+16+8,mirror,rotate=90,scale=1280x720"
            .parse()
            .unwrap();
        assert_eq!(
            s.crop,
            Some(Rect {
                x: 16,
                y: 8,
                width: 320,
                height: 240
            })
        );
        assert!(s.mirror_x && !s.mirror_y);
        assert_eq!(s.rotate, Rotation::R90);
        assert_eq!(s.scale, Some((1280, 720)));
        assert_eq!(s.to_string().parse::<ProcessSpec>().unwrap(), s);
        assert_eq!(
            "convert".parse::<ProcessSpec>().unwrap(),
            ProcessSpec::default()
        );
        assert_eq!(s.output_size(640, 360).unwrap(), (1280, 720));
        let r: ProcessSpec = "rotate=270,crop=100x50".parse().unwrap();
        assert_eq!(r.output_size(640, 360).unwrap(), (50, 100));
    }

    #[test]
    fn rejects_bad_specs_with_a_reason() {
        for bad in [
            "scale=12",
            "scale=0x3",
            "crop=0x10+0+0",
            "rotate=45",
            "crop=10x10+1",
            "zoom=2",
            "mirror=q",
            "scale=0x10",
        ] {
            let e = bad
                .parse::<ProcessSpec>()
                .and_then(|s| s.output_size(640, 360).map(|_| s))
                .unwrap_err();
            assert!(
                e.to_string().contains(bad.split('=').next().unwrap()) || !e.reason.is_empty(),
                "{e}"
            );
        }
        let s: ProcessSpec = "crop=600x300+100+100".parse().unwrap();
        let e = s.output_size(640, 360).unwrap_err();
        assert!(
            e.reason.contains("does not fit in the 640x360 frame"),
            "{e}"
        );
    }
}
