//! Colour as a contract on the Wayland output: vivid set to BT.601 limited, BT.709 limited and BT.709 full
//! range. A camera whose Y'CbCr is what the compositor assumes (BT.601 limited range) passes through; one
//! whose Y'CbCr is not (Weston cannot be told otherwise) is taken through the render stage by `auto`, which
//! converts with the camera's own colorimetry, and `list --pipeline` says why. The bars on screen are checked
//! against a reference computed here from vivid's raw frame with the textbook equations, not by any of
//! dmacam's code. The same cases on the KMS output: `tests/suite/kms/colour.rs`.

use super::*;

/// vivid's colorimetry controls (`v4l2-ctl -L` names) and their values before a test changed them, put back
/// on drop: they persist on the device and would change every later test's frames.
pub(crate) struct VividColour {
    saved: String,
}

const COLOUR_CONTROLS: &str = "colorspace,y_cbcr_encoding,quantization";

impl VividColour {
    /// Sets vivid's colorspace, Y'CbCr encoding and quantization controls (menu indices).
    fn set(colorspace: u32, encoding: u32, quantization: u32) -> VividColour {
        let now = dmacam_tests::run_ok(Command::new("v4l2-ctl").args([
            "-d",
            VIVID,
            &format!("--get-ctrl={COLOUR_CONTROLS}"),
        ]));
        // "colorspace: 2" lines → "colorspace=2,...".
        let saved = now
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| format!("{}={}", k.trim(), v.trim()))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(saved.matches('=').count(), 3, "{now}");
        let set = VividColour { saved };
        dmacam_tests::run_ok(Command::new("v4l2-ctl").args([
            "-d",
            VIVID,
            "-c",
            &format!(
                "colorspace={colorspace},y_cbcr_encoding={encoding},quantization={quantization}"
            ),
        ]));
        set
    }
}

impl Drop for VividColour {
    fn drop(&mut self) {
        let _ = dmacam_tests::run(Command::new("v4l2-ctl").args(["-d", VIVID, "-c", &self.saved]));
    }
}

/// One colorimetry the colour tests set vivid to.
pub(crate) struct Case {
    /// For file names: `601-limited`.
    pub(crate) tag: &'static str,
    /// As dmacam names it: `BT.601 limited-range`.
    pub(crate) name: &'static str,
    /// vivid's menu indices: colorspace, y_cbcr_encoding, quantization.
    controls: (u32, u32, u32),
    /// The luma coefficients Kr, Kb.
    k: (f64, f64),
    full: bool,
}

/// BT.601 limited (what compositors assume), BT.709 limited, BT.709 full. vivid's colorspace menu: 0 SMPTE
/// 170M, 1 Rec. 709; encoding: 1 ITU-R 601, 2 Rec. 709; quantization: 1 full, 2 limited.
pub(crate) const CASES: [Case; 3] = [
    Case {
        tag: "601-limited",
        name: "BT.601 limited-range",
        controls: (0, 1, 2),
        k: (0.299, 0.114),
        full: false,
    },
    Case {
        tag: "709-limited",
        name: "BT.709 limited-range",
        controls: (1, 2, 2),
        k: (0.2126, 0.0722),
        full: false,
    },
    Case {
        tag: "709-full",
        name: "BT.709 full-range",
        controls: (1, 2, 1),
        k: (0.2126, 0.0722),
        full: true,
    },
];

impl Case {
    /// Sets vivid to this colorimetry until the guard drops.
    pub(crate) fn set(&self) -> VividColour {
        let (cs, enc, q) = self.controls;
        VividColour::set(cs, enc, q)
    }

    /// Whether a compositor told nothing reads it right.
    pub(crate) fn compositor_default(&self) -> bool {
        self.tag == "601-limited"
    }

    /// The 8 bars of vivid's raw 640x360 YUYV frame in this colorimetry (sampled at the row and bar centres
    /// the screenshot check uses), decoded by the textbook equations; checked to be the 75 % bars.
    pub(crate) fn bars(&self) -> Vec<[u8; 3]> {
        let raw = vivid_reference("YUYV");
        let bars: Vec<[u8; 3]> = (0..8)
            .map(|bar| {
                let x = bar * 80 + 40; // even: Y0 of a macropixel
                let i = 180 * 1280 + x * 2;
                ycbcr_to_rgb(raw[i], raw[i + 1], raw[i + 3], self.k, self.full)
            })
            .collect();
        // vivid's 75 % bars: a right decode gives ~191 for each lit channel.
        assert!(
            (i32::from(bars[0][0]) - 191).abs() <= 12,
            "{}: white bar decodes to {:?}",
            self.name,
            bars[0]
        );
        bars
    }
}

/// The R'G'B' of Y'CbCr (8 bit) by the textbook equations: `kr`, `kb` the luma coefficients, `full` the
/// range.
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8, (kr, kb): (f64, f64), full: bool) -> [u8; 3] {
    let (y, cb, cr) = (f64::from(y), f64::from(cb) - 128.0, f64::from(cr) - 128.0);
    let (y, cb, cr) = if full {
        (y / 255.0, cb / 255.0, cr / 255.0)
    } else {
        ((y - 16.0) / 219.0, cb / 224.0, cr / 224.0)
    };
    let kg = 1.0 - kr - kb;
    let r = y + 2.0 * (1.0 - kr) * cr;
    let b = y + 2.0 * (1.0 - kb) * cb;
    let g = (y - kr * r - kb * b) / kg;
    [r, g, b].map(|c| (c * 255.0).round().clamp(0.0, 255.0) as u8)
}

/// The YUYV row of `list --pipeline --json`'s output.
pub(crate) fn yuyv_row(out: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v["formats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["format"] == "YUYV")
        .unwrap_or_else(|| panic!("no YUYV row: {v}"))
        .clone()
}

/// vivid in each of the three colorimetries under the GL Weston: `auto` passes BT.601 limited through (what
/// Weston assumes) and takes the gpu path for the other two, saying why; the screen shows the bars as the
/// textbook decode of vivid's own frame says (≤ 3/255); `list --pipeline` gives the same choice for YUYV.
#[test]
fn view_auto_takes_the_gpu_when_the_compositor_would_get_the_colours_wrong() {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    for case in &CASES {
        let _colour = case.set();
        let expect = case.bars();
        let tag = format!("vivid-colour-{}", case.tag);
        let (s, err) =
            view_vivid_expecting(&weston, "YUYV", "auto", &tag, &[], 3, &|bar| expect[bar]);
        let (path, why) = if case.compositor_default() {
            ("passthrough", "zero-copy".to_owned())
        } else {
            (
                "gpu",
                format!(
                    "the camera's YUYV is {} Y'CbCr, which the compositor would read as BT.601 \
                     limited-range",
                    case.name
                ),
            )
        };
        assert!(
            err.contains(&format!("path {path}")) && err.contains(&why),
            "{}: {err}",
            case.name
        );
        assert_eq!(s["path"], path, "{}: {s}", case.name);

        let mut cmd = dmacam();
        weston.env(&mut cmd);
        let out = dmacam_tests::run_ok(cmd.args(["list", "--pipeline", "-d", VIVID, "--json"]));
        let yuyv = yuyv_row(&out);
        assert_eq!(yuyv["auto"]["path"], path, "{}: {yuyv}", case.name);
        let reason = yuyv["auto"]["reason"].as_str().unwrap();
        assert!(reason.contains(&why), "{}: {yuyv}", case.name);
        assert_eq!(
            reason.contains("colours"),
            !case.compositor_default(),
            "{}: {yuyv}",
            case.name
        );
    }
}
