//! Colour as a contract on the Wayland output: a camera whose Y'CbCr is not what the compositor assumes
//! (BT.601 limited range; Weston cannot be told otherwise) is taken through the render stage by `auto`,
//! which converts with the camera's own colorimetry, and `list --pipeline` says why. The bars on screen are
//! checked against a reference computed here from vivid's raw frame with the textbook equations, not by any
//! of dmacam's code.

use super::*;

/// vivid's colorimetry controls (`v4l2-ctl -L` names) and their values before a test changed them, put back
/// on drop: they persist on the device and would change every later test's frames.
struct VividColour {
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

/// The 8 bars of a raw 640x360 YUYV frame (sampled at the row and bar centres the screenshot check uses),
/// decoded as BT.709 in `full` or limited range.
fn bt709_bars(raw: &[u8], full: bool) -> Vec<[u8; 3]> {
    (0..8)
        .map(|bar| {
            let x = bar * 80 + 40; // even: Y0 of a macropixel
            let i = 180 * 1280 + x * 2;
            ycbcr_to_rgb(raw[i], raw[i + 1], raw[i + 3], (0.2126, 0.0722), full)
        })
        .collect()
}

/// vivid set to BT.709 (full, then limited range) under the GL Weston: `auto` takes the gpu path and says
/// why, the screen shows the bars as the textbook BT.709 decode of vivid's own frame says (≤ 4/255), and
/// `list --pipeline` gives the same reason for YUYV.
#[test]
fn view_auto_takes_the_gpu_when_the_compositor_would_get_the_colours_wrong() {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    for (quantization, full, range) in [(1, true, "full"), (2, false, "limited")] {
        // Rec. 709 colorspace (menu index 1), Rec. 709 encoding (2), full (1) or limited (2) range.
        let _colour = VividColour::set(1, 2, quantization);
        let expect = bt709_bars(&vivid_reference("YUYV"), full);
        // vivid's 75 % bars: a right decode gives ~191 for each lit channel.
        assert!(
            (i32::from(expect[0][0]) - 191).abs() <= 12,
            "BT.709 {range}: white bar decodes to {:?}",
            expect[0]
        );
        let tag = format!("vivid-colour-709-{range}");
        let (s, err) =
            view_vivid_expecting(&weston, "YUYV", "auto", &tag, &[], 4, &|bar| expect[bar]);
        let why = format!(
            "the camera's YUYV is BT.709 {range}-range Y'CbCr, which the compositor would read as BT.601 \
             limited-range"
        );
        assert!(err.contains("path gpu") && err.contains(&why), "{err}");
        assert_eq!(s["path"], "gpu", "{s}");

        let mut cmd = dmacam();
        weston.env(&mut cmd);
        let out = dmacam_tests::run_ok(cmd.args(["list", "--pipeline", "-d", VIVID, "--json"]));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let yuyv = v["formats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["format"] == "YUYV")
            .unwrap_or_else(|| panic!("no YUYV row: {v}"));
        assert_eq!(yuyv["auto"]["path"], "gpu", "{yuyv}");
        assert!(
            yuyv["auto"]["reason"].as_str().unwrap().contains(&why),
            "{yuyv}"
        );
    }
}
