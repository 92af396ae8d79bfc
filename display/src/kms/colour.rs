//! Telling a plane what a Y'CbCr framebuffer's values mean: its `COLOR_ENCODING` (the matrix) and
//! `COLOR_RANGE` enum properties, where the driver has them (`drm_plane_create_color_properties`). A plane
//! without them converts as its driver likes; the kernel's drivers default to BT.601 limited range, which is
//! what dmacam assumes of them ([`KMS_ASSUMES`]).

use dmacam_capture::colour::{Colorimetry, Encoding, Range};

use super::props::Props;
use crate::path::colorimetry_name;

/// What a plane that cannot be told assumes of Y'CbCr (the default every kernel driver with the properties
/// gives them).
pub const KMS_ASSUMES: Colorimetry = Colorimetry {
    encoding: Encoding::Bt601,
    range: Range::Limited,
};

pub(crate) const COLOR_ENCODING: &str = "COLOR_ENCODING";
pub(crate) const COLOR_RANGE: &str = "COLOR_RANGE";

/// The kernel's name of the `COLOR_ENCODING` value for `e` (`drm_color_mgmt.c`), if it has one.
pub(crate) fn encoding_name(e: Encoding) -> Option<&'static str> {
    match e {
        Encoding::Bt601 => Some("ITU-R BT.601 YCbCr"),
        Encoding::Bt709 => Some("ITU-R BT.709 YCbCr"),
        Encoding::Bt2020 => Some("ITU-R BT.2020 YCbCr"),
        Encoding::Smpte240m | Encoding::Other(_) => None,
    }
}

/// The kernel's name of the `COLOR_RANGE` value for `r`.
pub(crate) fn range_name(r: Range) -> &'static str {
    match r {
        Range::Limited => "YCbCr limited range",
        Range::Full => "YCbCr full range",
    }
}

/// What the plane is told about the frames' colours, decided once before the first commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaneColour {
    /// R'G'B' framebuffers: nothing to tell.
    Rgb,
    /// The plane is told: `COLOR_ENCODING` and `COLOR_RANGE` set to these values (names as the kernel has
    /// them).
    Told {
        encoding: &'static str,
        range: &'static str,
    },
    /// The plane cannot be told (`why`); it reads the frames as [`KMS_ASSUMES`]. `off` says why the colours
    /// will then be wrong, when they will.
    Untold { why: String, off: Option<String> },
}

impl PlaneColour {
    /// Why the colours on screen will be wrong, if they will.
    pub fn colours_off(&self) -> Option<&str> {
        match self {
            PlaneColour::Untold { off, .. } => off.as_deref(),
            _ => None,
        }
    }

    /// For the path line: what the plane is told or why it cannot be.
    pub fn describe(&self) -> String {
        match self {
            PlaneColour::Rgb => "R'G'B' frames".to_owned(),
            PlaneColour::Told { encoding, range } => {
                format!(
                    "the plane is told {COLOR_ENCODING} \"{encoding}\", {COLOR_RANGE} \"{range}\""
                )
            }
            PlaneColour::Untold { why, off: None } => {
                format!("{why}; it reads them as BT.601 limited range, which they are")
            }
            PlaneColour::Untold {
                why,
                off: Some(off),
            } => format!("{why}; {off}"),
        }
    }
}

/// The values to set (raw enum values, as the plane lists them) for frames of colorimetry `c`, given the
/// plane's `COLOR_ENCODING` and `COLOR_RANGE` enum entries (`None` where it lacks the property), or what the
/// plane does instead.
pub(crate) fn choose(
    c: Option<Colorimetry>,
    encodings: Option<&[(String, u64)]>,
    ranges: Option<&[(String, u64)]>,
) -> (PlaneColour, Option<[(&'static str, u64); 2]>) {
    let Some(c) = c else {
        return (PlaneColour::Rgb, None);
    };
    let find = |list: Option<&[(String, u64)]>, name: &str| {
        list.and_then(|l| l.iter().find(|(n, _)| n == name).map(|(_, v)| *v))
    };
    let enc = encoding_name(c.encoding);
    let range = range_name(c.range);
    let why = match (encodings, ranges, enc) {
        (None, _, _) | (_, None, _) => {
            "the plane has no COLOR_ENCODING/COLOR_RANGE properties".to_owned()
        }
        (Some(_), Some(_), None) => format!(
            "KMS has no COLOR_ENCODING for the camera's {}",
            colorimetry_name(c)
        ),
        (Some(_), Some(_), Some(enc)) => match (find(encodings, enc), find(ranges, range)) {
            (Some(e), Some(r)) => {
                return (
                    PlaneColour::Told {
                        encoding: enc,
                        range,
                    },
                    Some([(COLOR_ENCODING, e), (COLOR_RANGE, r)]),
                )
            }
            (None, _) => format!("the plane's COLOR_ENCODING has no \"{enc}\""),
            (_, None) => format!("the plane's COLOR_RANGE has no \"{range}\""),
        },
    };
    let off = (c != KMS_ASSUMES).then(|| {
        format!(
            "the camera's frames are {} Y'CbCr, which the plane would read as {}: colours will be off",
            colorimetry_name(c),
            colorimetry_name(KMS_ASSUMES)
        )
    });
    (PlaneColour::Untold { why, off }, None)
}

/// [`choose`] for a plane with properties `props`.
pub(crate) fn for_plane(
    c: Option<Colorimetry>,
    props: &Props,
    atomic: bool,
) -> (PlaneColour, Option<[(&'static str, u64); 2]>) {
    if !atomic {
        let (colour, _) = choose(c, None, None);
        return match colour {
            PlaneColour::Untold { off, .. } => (
                PlaneColour::Untold {
                    why: "legacy modesetting sets no plane properties".to_owned(),
                    off,
                },
                None,
            ),
            other => (other, None),
        };
    }
    let encodings = props.enum_values(COLOR_ENCODING);
    let ranges = props.enum_values(COLOR_RANGE);
    choose(c, encodings.as_deref(), ranges.as_deref())
}

#[cfg(test)]
mod tests {
    use super::super::props::Entries;
    use super::*;

    /// The enum entries of a plane made by `drm_plane_create_color_properties` with every encoding and
    /// range (the kernel's names; values are the enum's).
    fn kernel_lists() -> (Entries, Entries) {
        let e = [
            "ITU-R BT.601 YCbCr",
            "ITU-R BT.709 YCbCr",
            "ITU-R BT.2020 YCbCr",
        ];
        let r = ["YCbCr limited range", "YCbCr full range"];
        let list = |names: &[&str]| {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.to_string(), i as u64))
                .collect()
        };
        (list(&e), list(&r))
    }

    fn c(encoding: Encoding, range: Range) -> Option<Colorimetry> {
        Some(Colorimetry { encoding, range })
    }

    #[test]
    fn colorimetry_becomes_the_kernel_enum_values() {
        let (e, r) = kernel_lists();
        let pick = |col| choose(col, Some(&e), Some(&r));
        for (col, enc, range, values) in [
            (
                c(Encoding::Bt601, Range::Limited),
                "ITU-R BT.601 YCbCr",
                "YCbCr limited range",
                [0, 0],
            ),
            (
                c(Encoding::Bt709, Range::Limited),
                "ITU-R BT.709 YCbCr",
                "YCbCr limited range",
                [1, 0],
            ),
            (
                c(Encoding::Bt709, Range::Full),
                "ITU-R BT.709 YCbCr",
                "YCbCr full range",
                [1, 1],
            ),
            (
                c(Encoding::Bt2020, Range::Full),
                "ITU-R BT.2020 YCbCr",
                "YCbCr full range",
                [2, 1],
            ),
        ] {
            let (colour, set) = pick(col);
            assert_eq!(
                colour,
                PlaneColour::Told {
                    encoding: enc,
                    range
                }
            );
            assert_eq!(
                set,
                Some([(COLOR_ENCODING, values[0]), (COLOR_RANGE, values[1])])
            );
            assert!(colour.colours_off().is_none());
        }
        // R'G'B' frames: nothing to set.
        assert_eq!(pick(None), (PlaneColour::Rgb, None));
    }

    #[test]
    fn a_plane_that_cannot_be_told_says_when_colours_will_be_off() {
        let (e, r) = kernel_lists();
        // No properties (vkms): BT.601 limited is right anyway, BT.709 full is not.
        let (colour, set) = choose(c(Encoding::Bt601, Range::Limited), None, None);
        assert!(
            set.is_none() && colour.colours_off().is_none(),
            "{colour:?}"
        );
        assert!(colour.describe().contains("no COLOR_ENCODING/COLOR_RANGE"));
        let (colour, set) = choose(c(Encoding::Bt709, Range::Full), None, Some(&r));
        assert!(set.is_none());
        let off = colour.colours_off().expect("colours off");
        assert!(
            off.contains("BT.709 full-range") && off.contains("BT.601 limited-range"),
            "{off}"
        );
        // A plane offering only BT.601 and BT.709 limited range.
        let (colour, _) = choose(
            c(Encoding::Bt709, Range::Full),
            Some(&e[..2]),
            Some(&r[..1]),
        );
        assert!(
            colour
                .describe()
                .contains("COLOR_RANGE has no \"YCbCr full range\""),
            "{colour:?}"
        );
        assert!(colour.colours_off().is_some());
        // An encoding KMS cannot name.
        let (colour, _) = choose(c(Encoding::Smpte240m, Range::Limited), Some(&e), Some(&r));
        assert!(
            colour.describe().contains("no COLOR_ENCODING for"),
            "{colour:?}"
        );
        assert!(colour.colours_off().is_some());
    }
}
