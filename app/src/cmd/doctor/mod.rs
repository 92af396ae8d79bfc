//! `dmacam doctor`: what this machine offers each stage of the pipeline, what is missing, and which device
//! nodes the user running it can actually open (`access.rs`).

mod access;
mod syncfile;

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
    let access: Vec<_> = access::probe_all()
        .iter()
        .map(|p| {
            let v = access::verdict(p);
            json!({
                "path": p.path.display().to_string(),
                "kind": p.kind.label(),
                "usable": v.usable,
                "group": p.owner.as_ref().map(|o| o.group.clone()),
                "mode": p.owner.as_ref().map(|o| format!("{:04o}", o.mode)),
                "line": v.line,
            })
        })
        .collect();
    let usable = |path: &str| {
        access
            .iter()
            .any(|a| a["path"] == path && a["usable"] == true)
    };
    // "udmabuf"/"dma_heap_system": the node exists; "*_usable": this user can open it.
    let allocators = json!({
        "dma_heap_system": Path::new("/dev/dma_heap/system").exists(),
        "udmabuf": Path::new("/dev/udmabuf").exists(),
        "dma_heap_system_usable": usable("/dev/dma_heap/system"),
        "udmabuf_usable": usable("/dev/udmabuf"),
        "dmabuf_sync_file": syncfile::probe(),
    });
    let euid = nix::unistd::geteuid().as_raw();
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
                "sync_fd": {
                    "fence_export": d.sync_fd.fence_export,
                    "fence_import": d.sync_fd.fence_import,
                    "semaphore_export": d.sync_fd.semaphore_export,
                    "semaphore_import": d.sync_fd.semaphore_import,
                },
            }))
            .collect::<Vec<_>>()),
        Err(e) => json!({ "error": e.to_string() }),
    };
    // Whether the render stage can hand its output on as a dma-buf: what the gpu path of a viewer needs.
    let export = match dmacam_render::probe_export() {
        Ok(()) => json!({ "ok": true }),
        Err(e @ dmacam_render::RenderError::ExportUnavailable { .. }) => {
            json!({ "ok": false, "imports": true, "error": e.to_string() })
        }
        Err(e) => json!({ "ok": false, "imports": false, "error": e.to_string() }),
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
    // PipeWire is optional: without a daemon only `-d pipewire` is unavailable.
    let pipewire = match dmacam_capture::pipewire::daemon_reachable() {
        Ok(socket) => json!({ "reachable": true, "socket": socket.display().to_string() }),
        Err((socket, e)) => json!({
            "reachable": false,
            "socket": socket.display().to_string(),
            "error": e.to_string(),
        }),
    };
    let report = json!({
        "v4l2": nodes,
        "allocators": allocators,
        "euid": euid,
        "access": access,
        "drm": drm_cards,
        "vulkan": vulkan,
        "vulkan_export": export,
        "wayland": wayland,
        "pipewire": pipewire,
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
    let state = |key: &str| {
        let a = &r["allocators"];
        match (a[key].as_bool(), a[format!("{key}_usable")].as_bool()) {
            (Some(true), Some(true)) => "yes",
            (Some(true), _) => "exists, but you cannot open it (see Access)",
            _ => "no",
        }
    };
    println!(
        "dma-buf allocators: DMA-BUF heap (/dev/dma_heap/system): {}, udmabuf: {}",
        state("dma_heap_system"),
        state("udmabuf")
    );
    println!("{}", syncfile::line(&r["allocators"]["dmabuf_sync_file"]));
    let drm = strings(&r["drm"]);
    if drm.is_empty() {
        println!("DRM nodes: none");
    } else {
        println!("DRM nodes: {}", drm.join(", "));
    }
    print_access(r);
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
                println!("    offers: {}", strings(&d["offered"]).join(", "));
                let sync = &d["sync_fd"];
                let yes = |k: &str| {
                    if sync[k].as_bool() == Some(true) {
                        "yes"
                    } else {
                        "no"
                    }
                };
                println!(
                    "    sync_file (SYNC_FD): fence export {}, import {}; semaphore export {}, import {}",
                    yes("fence_export"),
                    yes("fence_import"),
                    yes("semaphore_export"),
                    yes("semaphore_import")
                );
                let missing = strings(&d["missing_required"]);
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
    println!("{}", export_line(&r["vulkan_export"]));
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
    println!("{}", pipewire_line(&r["pipewire"]));
}

/// Whether the render stage's output can be exported as a dma-buf, and what follows when it cannot.
fn export_line(e: &serde_json::Value) -> String {
    if e["ok"] == true {
        return "  output export as a dma-buf: yes (the gpu path can show the render stage's output)".into();
    }
    let error = e["error"].as_str().unwrap_or("?");
    if e["imports"] != true {
        return format!(
            "  output export as a dma-buf: NO: {error}; so neither the gpu path nor dump --process can run"
        );
    }
    format!(
        "  output export as a dma-buf: NO: {error}; so the gpu path of view and kms-view is unavailable \
         (--path auto takes passthrough or shm, --path gpu fails), dump --process reads the output from \
         host memory"
    )
}

/// The PipeWire line: where the daemon answers, or why it does not and what to do (not an error: dmacam
/// needs PipeWire only for `-d pipewire`).
fn pipewire_line(p: &serde_json::Value) -> String {
    let socket = p["socket"].as_str().unwrap_or("?");
    if p["reachable"] == true {
        format!("PipeWire: daemon reachable at {socket} (-d pipewire[:NODE] can be used)")
    } else {
        format!(
            "PipeWire: no daemon reachable at {socket} ({}); -d pipewire needs one: start pipewire and \
             wireplumber in the session (V4L2 devices and the pattern work without it)",
            p["error"].as_str().unwrap_or("?")
        )
    }
}

/// The strings of a JSON array (none when it is not one).
fn strings(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
        .unwrap_or_default()
}

/// The Access section: the nodes this user opens on one line, then one line per node that it cannot.
fn print_access(r: &serde_json::Value) {
    let nodes = r["access"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    match r["euid"].as_u64() {
        Some(0) => println!(
            "Access (as root, who opens every node; run doctor as the user who will run dmacam to see theirs):"
        ),
        Some(uid) => println!("Access (as uid {uid}):"),
        None => println!("Access:"),
    }
    let ok: Vec<&str> = nodes
        .iter()
        .filter(|n| n["usable"] == true)
        .filter_map(|n| n["path"].as_str())
        .collect();
    if !ok.is_empty() {
        println!("  opens: {}", ok.join(", "));
    }
    for n in nodes.iter().filter(|n| n["usable"] != true) {
        println!("  {}", n["line"].as_str().unwrap_or("?"));
    }
}
