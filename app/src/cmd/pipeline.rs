//! `dmacam list --pipeline`: for one capture node and the current Wayland display, which path each format
//! would take in `dmacam view` (passthrough, gpu, shm) and why, from the same decision `view` makes: the
//! compositor's linux-dmabuf formats and modifiers (v4 feedback or v3 modifier events) and whether a Vulkan
//! device can import the camera's dma-bufs and read the format in its shaders. With `--card`, also the path
//! `kms-view` would take on that card (`dmacam_display::kms::kms_path`: a plane that scans the format out with
//! its colours right, else the render stage).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use dmacam_capture::colour::Colorimetry;
use dmacam_capture::decode::frames_fourcc;
use dmacam_capture::format::{fourcc_name, FormatDesc};
use dmacam_capture::pattern::parse_source_name;
use dmacam_capture::{Format, Fourcc, Input, DRM_FORMAT_MOD_LINEAR};
use dmacam_display::kms::{kms_path, plane_for, Card, OutputRequest};
use dmacam_display::{
    select_path, BufferMode, Capabilities, PathDecision, PathInputs, PathRequest, Viewer,
    ViewerOptions,
};
use dmacam_render::{Renderer, SourceFormat};
use serde_json::json;

/// What `--pipeline` looks at.
pub struct Inputs {
    pub device: PathBuf,
    pub display: Option<String>,
    /// The DRM card for the `kms-view` verdicts, if asked.
    pub card: Option<PathBuf>,
    pub json: bool,
}

/// The render stage as `view` would bring it up, or why it cannot run.
struct Gpu {
    device: String,
    import: String,
    reason: String,
}

pub fn explain(inputs: &Inputs) -> Result<()> {
    let (card, formats, current) = match inputs.device.to_str().and_then(parse_source_name) {
        Some(kind) => {
            let kind = kind?;
            let formats = Input::pattern(kind).formats()?;
            // The pattern paints BT.601 limited range, what a compositor assumes.
            (
                format!("dmacam's built-in {}", kind.source_name()),
                formats,
                None,
            )
        }
        None => open_capture(inputs)?,
    };
    report(inputs, card, formats, current)
}

/// Opens the capture node and lists its formats; returns its card name, the formats and the current format
/// (whose colorimetry fields say what the camera's Y'CbCr means now).
fn open_capture(inputs: &Inputs) -> Result<(String, Vec<FormatDesc>, Option<Format>)> {
    let dev = crate::capture_opts::open_capture_node(&inputs.device)?;
    let formats = dev
        .formats()
        .map_err(|e| anyhow::anyhow!("{}: {e}", inputs.device.display()))?;
    Ok((dev.info().card.clone(), formats, dev.format().ok()))
}

fn report(
    inputs: &Inputs,
    card: String,
    formats: Vec<FormatDesc>,
    current: Option<Format>,
) -> Result<()> {
    // wayland-backend reports connection errors through `log`; the reason is printed below instead.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        log::set_max_level(log::LevelFilter::Off);
    }
    // The compositor's per-surface feedback is what `view` decides from, so ask for it the same way: a
    // window is opened and closed at once.
    let caps: Result<Capabilities, String> = Viewer::connect(&ViewerOptions {
        display: inputs.display.clone(),
        title: "dmacam list --pipeline".into(),
        initial_size: (64, 36),
        fullscreen: false,
        mode: BufferMode::Dmabuf,
        allow_shm_fallback: true,
        modifier_override: None,
        frame_actions: Default::default(),
    })
    .map(|v| v.capabilities().clone())
    .map_err(|e| e.to_string());
    let gpu: Result<Gpu, String> = Renderer::new(dmacam_render::Options::default())
        .map(|r| Gpu {
            device: r.device_name().to_owned(),
            import: r.import_path().name().to_owned(),
            reason: r.import_path_reason().to_owned(),
        })
        .map_err(|e| e.to_string());

    let drm = inputs
        .card
        .as_ref()
        .map(|p| Card::inspect(p).map_err(|e| e.to_string()));
    let mut rows = Vec::new();
    for f in &formats {
        let name = fourcc_name(f.fourcc);
        // MJPEG is decoded on the CPU first: the paths are those of the decoded XR24 frames.
        let shown = frames_fourcc(f.fourcc);
        let decoded = shown != f.fourcc;
        let gpu_for = match &gpu {
            Err(e) => Err(e.clone()),
            Ok(_) if SourceFormat::from_fourcc(shown).is_none() => {
                Err(format!("the shaders cannot read {name}"))
            }
            Ok(_) => Ok(()),
        };
        let colour = current.as_ref().and_then(|c| {
            let mut f = c.clone();
            f.fourcc = shown;
            Colorimetry::of_ycbcr(&f)
        });
        let decide = |req| {
            caps.as_ref().map_err(Clone::clone).and_then(|c| {
                select_path(
                    req,
                    c,
                    &PathInputs {
                        camera: shown,
                        modifier: DRM_FORMAT_MOD_LINEAR,
                        gpu: gpu_for.clone(),
                        colour,
                    },
                )
            })
        };
        let kms = drm
            .as_ref()
            .map(|drm| kms_verdicts(drm, shown, colour, &gpu_for));
        let auto = decide(PathRequest::Auto);
        let each: Vec<(&str, Result<(), String>)> = [
            ("passthrough", PathRequest::Passthrough),
            ("gpu", PathRequest::Gpu),
            ("shm", PathRequest::Shm),
        ]
        .into_iter()
        .map(|(n, r)| (n, decide(r).map(|_| ())))
        .collect();
        let desc = if decoded {
            format!(
                "{}, decoded on the CPU to {shown} (one copy per frame)",
                f.description
            )
        } else {
            f.description.clone()
        };
        rows.push((name, desc, f.supported, auto, each, kms));
    }

    if inputs.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(name, desc, supported, auto, each, kms)| {
                let mut row = json!({
                    "format": name,
                    "description": desc,
                    "captured_by_dmacam": supported,
                    "auto": auto_json(auto),
                    "paths": paths_json(each),
                });
                if let Some(k) = kms {
                    row["kms"] = match k {
                        Ok((auto, each)) => json!({
                            "auto": auto_json(auto),
                            "paths": paths_json(each),
                        }),
                        Err(e) => json!({ "error": e }),
                    };
                }
                row
            })
            .collect();
        let mut out = json!({
            "device": inputs.device,
            "card": card,
            "wayland": match &caps {
                Ok(c) => json!({
                    "linux_dmabuf_version": c.linux_dmabuf_version,
                    "feedback": c.feedback,
                    "dmabuf_format_modifier_pairs": c.dmabuf_formats.len(),
                    "shm_formats": c.shm_formats.len(),
                }),
                Err(e) => json!({ "error": e }),
            },
            "vulkan": match &gpu {
                Ok(g) => json!({ "device": g.device, "import": g.import, "reason": g.reason }),
                Err(e) => json!({ "error": e }),
            },
            "formats": list,
        });
        if let Some(c) = &drm {
            out["kms"] = match c {
                Ok(c) => json!({ "card": c.path(), "driver": c.info().driver }),
                Err(e) => json!({ "error": e }),
            };
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }

    println!("{} ({card})", inputs.device.display());
    match &caps {
        Ok(c) => println!(
            "  Wayland: {}, {} format/modifier pairs; wl_shm {} formats",
            match (c.linux_dmabuf_version, c.feedback) {
                (None, _) => "no zwp_linux_dmabuf_v1".to_owned(),
                (Some(v), true) => format!("zwp_linux_dmabuf_v1 v{v} (feedback)"),
                (Some(v), false) => format!("zwp_linux_dmabuf_v1 v{v} (modifier events)"),
            },
            c.dmabuf_formats.len(),
            c.shm_formats.len()
        ),
        Err(e) => println!("  Wayland: {e}"),
    }
    match &gpu {
        Ok(g) => println!(
            "  Vulkan: {}, imports as {} ({})",
            g.device, g.import, g.reason
        ),
        Err(e) => println!("  Vulkan: {e}"),
    }
    match &drm {
        Some(Ok(c)) => println!("  KMS: {} ({})", c.path().display(), c.info().driver),
        Some(Err(e)) => println!("  KMS: {e}"),
        None => {}
    }
    for (name, desc, supported, auto, each, kms) in &rows {
        let verdicts: Vec<String> = each
            .iter()
            .map(|(n, r)| format!("{n} {}", if r.is_ok() { "yes" } else { "no" }))
            .collect();
        println!(
            "  {name:<5} {desc}{}: {}",
            if *supported {
                ""
            } else {
                " (not captured by dmacam)"
            },
            verdicts.join(", ")
        );
        match auto {
            Ok(d) => println!("        auto -> {}: {}", d.path, d.reason),
            Err(e) => println!("        auto -> none: {e}"),
        }
        match kms {
            Some(Ok((Ok(d), _))) => println!("        kms-view auto -> {}: {}", d.path, d.reason),
            Some(Ok((Err(e), _))) => println!("        kms-view auto -> none: {e}"),
            Some(Err(e)) => println!("        kms-view: {e}"),
            None => {}
        }
    }
    Ok(())
}

/// A verdict for every path, and `auto`'s choice.
type Verdicts = (
    Result<PathDecision, String>,
    Vec<(&'static str, Result<(), String>)>,
);

/// What `kms-view` would do with frames of `shown` and `colour` on `card`: `auto`'s choice and whether
/// passthrough and gpu are possible.
fn kms_verdicts(
    card: &Result<Arc<Card>, String>,
    shown: Fourcc,
    colour: Option<Colorimetry>,
    gpu: &Result<(), String>,
) -> Result<Verdicts, String> {
    let card = card.as_ref().map_err(Clone::clone)?;
    let plane =
        plane_for(card, &OutputRequest::default(), shown, colour).map_err(|e| e.to_string())?;
    let decide = |req| kms_path(req, shown, colour, &plane, gpu);
    let each = [
        ("passthrough", PathRequest::Passthrough),
        ("gpu", PathRequest::Gpu),
    ]
    .into_iter()
    .map(|(n, r)| (n, decide(r).map(|_| ())))
    .collect();
    Ok((decide(PathRequest::Auto), each))
}

fn auto_json(auto: &Result<PathDecision, String>) -> serde_json::Value {
    match auto {
        Ok(d) => json!({ "path": d.path.as_str(), "reason": d.reason }),
        Err(e) => json!({ "path": null, "reason": e }),
    }
}

fn paths_json(each: &[(&str, Result<(), String>)]) -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for (n, r) in each {
        paths.insert(
            (*n).into(),
            match r {
                Ok(()) => json!({ "possible": true }),
                Err(e) => json!({ "possible": false, "why_not": e }),
            },
        );
    }
    paths.into()
}
