//! `dmacam list`: every V4L2 node with its capabilities.

use std::process::ExitCode;

use dmacam_capture::{enumerate_nodes, DeviceInfo};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let nodes = enumerate_nodes();
    if args.json {
        let list: Vec<_> = nodes
            .iter()
            .map(|n| match n {
                Ok(info) => node_json(info),
                Err(e) => json!({ "error": e.to_string() }),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "devices": list }))?
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
        }
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
