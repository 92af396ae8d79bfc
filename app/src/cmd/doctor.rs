//! `dmacam doctor`: what this machine offers each stage of the pipeline, and what is missing.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let nodes: Vec<_> = dmacam_capture::enumerate_nodes()
        .into_iter()
        .map(|n| match n {
            Ok(info) => super::list::node_json(&info),
            Err(e) => json!({ "error": e.to_string() }),
        })
        .collect();
    let allocators = json!({
        "dma_heap_system": Path::new("/dev/dma_heap/system").exists(),
        "udmabuf": Path::new("/dev/udmabuf").exists(),
    });
    let drm_cards: Vec<String> = std::fs::read_dir("/dev/dri")
        .map(|d| {
            let mut v: Vec<String> = d
                .filter_map(|e| e.ok())
                .map(|e| e.path().display().to_string())
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    let vulkan = match dmacam_render::probe() {
        Ok(devs) => json!(devs
            .iter()
            .map(|d| json!({
                "name": d.name,
                "driver": d.driver_name,
                "type": d.device_type,
                "api": format!("{}.{}.{}", d.api_version.0, d.api_version.1, d.api_version.2),
                "offered": d.offered,
                "missing_required": d.missing_required,
            }))
            .collect::<Vec<_>>()),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let wayland = match dmacam_display::probe_wayland() {
        Ok(r) => json!({
            "linux_dmabuf": r.version_of("zwp_linux_dmabuf_v1"),
            "wl_shm": r.version_of("wl_shm"),
            "xdg_wm_base": r.version_of("xdg_wm_base"),
            "wp_presentation": r.version_of("wp_presentation"),
            "wp_viewporter": r.version_of("wp_viewporter"),
            "globals": r.globals.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let report = json!({
        "v4l2": nodes,
        "allocators": allocators,
        "drm": drm_cards,
        "vulkan": vulkan,
        "wayland": wayland,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(r: &serde_json::Value) {
    println!("V4L2 nodes:");
    match r["v4l2"].as_array() {
        Some(a) if !a.is_empty() => {
            for n in a {
                if let Some(e) = n["error"].as_str() {
                    println!("  skipped: {e}");
                } else {
                    println!(
                        "  {} {} ({}, {})",
                        n["path"].as_str().unwrap_or("?"),
                        n["card"].as_str().unwrap_or("?"),
                        n["kind"].as_str().unwrap_or("?"),
                        n["driver"].as_str().unwrap_or("?")
                    );
                }
            }
        }
        _ => println!("  none"),
    }
    let yes = |b: &serde_json::Value| {
        if b.as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        }
    };
    println!(
        "dma-buf allocators: DMA-BUF heap (/dev/dma_heap/system): {}, udmabuf: {}",
        yes(&r["allocators"]["dma_heap_system"]),
        yes(&r["allocators"]["udmabuf"])
    );
    println!(
        "DRM nodes: {}",
        r["drm"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", "))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    );
    println!("Vulkan:");
    match r["vulkan"].as_array() {
        Some(a) => {
            for d in a {
                println!(
                    "  {} ({}, Vulkan {})",
                    d["name"].as_str().unwrap_or("?"),
                    d["driver"].as_str().unwrap_or("?"),
                    d["api"].as_str().unwrap_or("?")
                );
                println!(
                    "    offers: {}",
                    d["offered"]
                        .as_array()
                        .map(|v| v
                            .iter()
                            .filter_map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default()
                );
                let missing: Vec<_> = d["missing_required"]
                    .as_array()
                    .map(|v| v.iter().filter_map(|s| s.as_str()).collect())
                    .unwrap_or_default();
                if !missing.is_empty() {
                    println!("    MISSING (required): {}", missing.join(", "));
                }
            }
        }
        None => println!(
            "  unavailable: {}",
            r["vulkan"]["error"].as_str().unwrap_or("?")
        ),
    }
    let w = &r["wayland"];
    if let Some(e) = w["error"].as_str() {
        println!("Wayland: unavailable: {e}");
    } else {
        let v = |k: &str| {
            w[k].as_u64()
                .map(|v| format!("v{v}"))
                .unwrap_or_else(|| "absent".into())
        };
        println!("Wayland: zwp_linux_dmabuf_v1 {}, wl_shm {}, xdg_wm_base {}, wp_presentation {}, wp_viewporter {}", v("linux_dmabuf"), v("wl_shm"), v("xdg_wm_base"), v("wp_presentation"), v("wp_viewporter"));
    }
}
