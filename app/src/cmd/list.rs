//! `dmacam list`: every V4L2 node with its capabilities, and for capture nodes their formats, frame sizes,
//! frame intervals and controls. `--pipeline` says which path each format of one node would take
//! ([`super::pipeline`]).

use std::process::ExitCode;

use dmacam_capture::format::{fourcc_name, FrameIntervals, FrameSizes};
use dmacam_capture::{enumerate_nodes, pattern, Device, DeviceInfo, PatternKind};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// For the node given with -d and the current Wayland display: which path each format would take in
    /// `dmacam view` (passthrough, gpu, shm) and why.
    #[arg(long)]
    pipeline: bool,
    /// The capture node for --pipeline.
    #[arg(short, long, default_value = "/dev/video0", requires = "pipeline")]
    device: std::path::PathBuf,
    /// The Wayland display for --pipeline (default: $WAYLAND_DISPLAY).
    #[arg(long, requires = "pipeline")]
    display: Option<String>,
    /// With --pipeline, also which path each format would take in `dmacam kms-view` on this DRM card (read
    /// without becoming DRM master), e.g. /dev/dri/card0.
    #[arg(long, requires = "pipeline")]
    card: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // A listing piped into `head` should end quietly, as other listing tools do, not panic in println!.
    // SAFETY: restoring the default disposition of SIGPIPE touches no Rust state.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if args.pipeline {
        super::pipeline::explain(&super::pipeline::Inputs {
            device: args.device,
            display: args.display,
            card: args.card,
            json: args.json,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let nodes = enumerate_nodes();
    if args.json {
        let list: Vec<_> = nodes
            .iter()
            .map(|n| match n {
                Ok(info) => {
                    let mut v = node_json(info);
                    if info.kind.is_capture() {
                        v["capture"] = capture_json(info);
                    }
                    v
                }
                Err(e) => json!({ "error": e.to_string() }),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "devices": list,
                "pattern": {
                    "names": PatternKind::ALL.map(PatternKind::source_name),
                    "formats": pattern::formats()
                        .iter()
                        .map(|p| fourcc_name(p.fourcc))
                        .collect::<Vec<_>>(),
                },
            }))?
        );
    } else if nodes.is_empty() {
        println!("no V4L2 nodes (/dev/video*) on this machine");
    } else {
        for n in &nodes {
            match n {
                Ok(i) => println!(
                    "{}: {} ({}) driver {} {}.{}.{}, {}{}, bus {}",
                    i.path.display(),
                    i.card,
                    i.kind.as_str(),
                    i.driver,
                    i.version.0,
                    i.version.1,
                    i.version.2,
                    i.caps,
                    if i.streaming {
                        ""
                    } else {
                        " (no streaming I/O)"
                    },
                    i.bus_info
                ),
                Err(e) => println!("skipped: {e}"),
            }
            if let Ok(i) = n {
                if i.kind.is_capture() {
                    print_capture(i);
                }
            }
        }
    }
    if !args.json {
        println!(
            "pattern: the built-in test pattern, no camera needed (-d pattern, {}); formats: {}",
            PatternKind::ALL.map(PatternKind::source_name).join(", "),
            pattern::format_names()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn node_json(i: &DeviceInfo) -> serde_json::Value {
    json!({
        "path": i.path,
        "driver": i.driver,
        "card": i.card,
        "bus_info": i.bus_info,
        "version": format!("{}.{}.{}", i.version.0, i.version.1, i.version.2),
        "kind": i.kind.as_str(),
        "streaming": i.streaming,
        "caps": format!("{}", i.caps),
    })
}

/// Formats, sizes, intervals and controls of a capture node as JSON (errors in place).
fn capture_json(info: &DeviceInfo) -> serde_json::Value {
    let dev = match Device::open(&info.path) {
        Ok(d) => d,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let formats = match dev.formats() {
        Ok(f) => f,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let current = dev.format().ok();
    let fmts: Vec<_> = formats
        .iter()
        .map(|f| {
            let sizes = dev.frame_sizes(f.fourcc).ok().flatten();
            let (size_list, steps) = match &sizes {
                Some(FrameSizes::Discrete(v)) => (v.clone(), None),
                Some(FrameSizes::Stepwise { min, max, step }) => {
                    (Vec::new(), Some(json!({"min": min, "max": max, "step": step})))
                }
                None => (Vec::new(), None),
            };
            let sizes_json: Vec<_> = size_list
                .iter()
                .map(|&(w, h)| {
                    json!({
                        "width": w,
                        "height": h,
                        "intervals": intervals_json(dev.frame_intervals(f.fourcc, w, h).ok().flatten()),
                    })
                })
                .collect();
            json!({
                "fourcc": f.fourcc.to_string(),
                "name": fourcc_name(f.fourcc),
                "description": f.description,
                "supported": f.supported,
                "sizes": sizes_json,
                "stepwise": steps,
            })
        })
        .collect();
    let controls: Vec<_> = dev
        .controls()
        .unwrap_or_default()
        .iter()
        .map(|c| super::controls::control_json(&dev, c))
        .collect();
    json!({
        "current": current.map(|f| json!({
            "fourcc": f.fourcc.to_string(),
            "width": f.width,
            "height": f.height,
            "planes": f.planes.iter().map(|p| json!({"bytesperline": p.bytesperline, "sizeimage": p.sizeimage})).collect::<Vec<_>>(),
        })),
        "formats": fmts,
        "controls": controls,
    })
}

fn intervals_json(iv: Option<FrameIntervals>) -> serde_json::Value {
    match iv {
        Some(FrameIntervals::Discrete(v)) => {
            json!(v.iter().map(|f| f.to_string()).collect::<Vec<_>>())
        }
        Some(FrameIntervals::Stepwise { min, max, step }) => {
            json!({"min": min.to_string(), "max": max.to_string(), "step": step.to_string()})
        }
        None => json!([]),
    }
}

fn print_capture(info: &DeviceInfo) {
    let dev = match Device::open(&info.path) {
        Ok(d) => d,
        Err(e) => {
            println!("  {e}");
            return;
        }
    };
    if let Ok(f) = dev.format() {
        println!("  current format: {f}");
    }
    match dev.formats() {
        Ok(formats) => {
            println!("  formats:");
            for f in &formats {
                let note = if f.supported {
                    ""
                } else {
                    " (not supported by dmacam)"
                };
                println!("    {} '{}'{note}", fourcc_name(f.fourcc), f.description);
                match dev.frame_sizes(f.fourcc).ok().flatten() {
                    Some(FrameSizes::Discrete(v)) => {
                        for (w, h) in v {
                            let iv = match dev.frame_intervals(f.fourcc, w, h).ok().flatten() {
                                Some(FrameIntervals::Discrete(v)) => v
                                    .iter()
                                    .map(|i| format!("{:.3}", i.fps()))
                                    .collect::<Vec<_>>()
                                    .join(" "),
                                Some(FrameIntervals::Stepwise { min, max, .. }) => {
                                    format!("{:.3} to {:.3}", max.fps(), min.fps())
                                }
                                None => String::new(),
                            };
                            println!("      {w}x{h}: {iv} fps");
                        }
                    }
                    Some(s) => println!("      sizes {s}"),
                    None => {}
                }
            }
        }
        Err(e) => println!("  {e}"),
    }
    if let Ok(ctrls) = dev.controls() {
        println!("  controls:");
        for c in &ctrls {
            super::controls::print_control(&dev, c, "    ");
        }
    }
}
