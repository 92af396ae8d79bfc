//! Colour as a contract on the KMS output: vivid set to BT.601 limited, BT.709 limited and BT.709 full range
//! and shown with `kms-view`. vkms (6.12) scans out no Y'CbCr format, so the render stage converts with the
//! camera's own colorimetry (a plane that scans Y'CbCr out is told it through COLOR_ENCODING and
//! COLOR_RANGE instead); what the CRTC composed, read back through the writeback connector, is checked
//! against the textbook decode of vivid's own frame (`crate::view::colour`), not by any of dmacam's code.

use super::*;
use crate::view::colour::{yuyv_row, CASES};

#[test]
fn kms_view_shows_each_colorimetry_right() {
    require_vm();
    mount_debugfs();
    let before = display_state();
    for case in &CASES {
        let _colour = case.set();
        let expect = case.bars();
        let name = format!("kms-colour-{}", case.tag);
        let wb = results_dir().join(format!("{name}.ppm"));
        let stats = results_dir().join(format!("{name}.json"));
        let _ = std::fs::remove_file(&wb);
        // A 640x360 frame on a 640x480 mode: unscaled, centred (60 black rows above).
        let mut cmd = dmacam();
        cmd.args([
            "kms-view",
            "--format",
            "YUYV",
            "--size",
            "640x360",
            "--fps",
            "30",
            "--mode",
            "640x480",
            "--frames",
            "10",
            "--ctrl",
            "osd_text_mode=2",
        ])
        .arg("--writeback")
        .arg(&wb)
        .arg("--stats-json")
        .arg(&stats);
        let out = run_with_deadline(&mut cmd, Duration::from_secs(180))
            .unwrap_or_else(|h| panic!("{name}: {h}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {cmd:?} failed: {err}");
        // No plane of vkms takes YUYV: the path line says so and names the colorimetry converted with.
        assert!(
            err.contains("path gpu")
                && err.contains("scans out YUYV")
                && err.contains(&format!("the camera's {} colorimetry", case.name)),
            "{name}: {err}"
        );
        let s = stats_json(&stats);
        assert!(
            s["path"].as_str().unwrap().starts_with("gpu"),
            "{name}: {s}"
        );
        let placement = s["placement"].as_str().expect("placement").to_owned();
        let (_, (dw, dh, dx, dy)) = parse_placement(&placement);
        assert_eq!((dw, dh, dx, dy), (640, 360, 0, 60), "{name}: {placement}");
        let img = Ppm::read(&wb);
        let mut bad = Vec::new();
        for (bar, want) in expect.iter().enumerate() {
            let got = img.px(bar as u32 * 80 + 40, 60 + 180);
            if (0..3).any(|c| (i32::from(got[c]) - i32::from(want[c])).abs() > 3) {
                bad.push(format!("bar {bar}: {got:?}, want {want:?}"));
            }
        }
        assert!(bad.is_empty(), "{name}: {}", bad.join("; "));

        // `list --pipeline --card` gives kms-view's choice and reason for YUYV.
        let out = run_ok(dmacam().args([
            "list",
            "--pipeline",
            "-d",
            "/dev/video0",
            "--card",
            "/dev/dri/card0",
            "--json",
        ]));
        let yuyv = yuyv_row(&out);
        let kms = &yuyv["kms"];
        assert_eq!(kms["auto"]["path"], "gpu", "{name}: {kms}");
        let reason = kms["auto"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("scans out YUYV")
                && reason.contains(&format!("the camera's {} colorimetry", case.name)),
            "{name}: {kms}"
        );
        assert_eq!(kms["paths"]["passthrough"]["possible"], false, "{kms}");
    }
    assert_eq!(display_state(), before, "the display was not restored");
}
