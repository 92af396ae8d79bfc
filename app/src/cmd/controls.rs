//! `dmacam controls`: a capture node's controls with their type, range, step, default, menu entries and
//! current value (text or `--json`); `--set NAME=VALUE` (repeatable) sets some first, all checked before
//! any is set. The listing helpers are shared with `dmacam list`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use dmacam_capture::{Control, ControlType, Device};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// The V4L2 node.
    #[arg(short, long, default_value = "/dev/video0")]
    pub device: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Set a control before listing, NAME=VALUE (`v4l2-ctl -L` names; menu entries by name or index).
    /// Repeatable; all are checked before any is set.
    #[arg(long = "set", visible_alias = "ctrl", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(Ok(kind)) = args
        .device
        .to_str()
        .and_then(dmacam_capture::pattern::parse_source_name)
    {
        anyhow::bail!(
            "{} has no controls (controls belong to V4L2 devices); give a V4L2 node such as /dev/video0",
            kind.source_name()
        );
    }
    let dev = crate::capture_opts::open_capture_node(&args.device)?;
    dev.apply_settings(&args.set)?;
    let controls = dev.controls()?;
    if args.json {
        let list: Vec<_> = controls.iter().map(|c| control_json(&dev, c)).collect();
        let v = json!({
            "device": dev.path().display().to_string(),
            "driver": dev.info().driver,
            "card": dev.info().card,
            "controls": list,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} ({}, {}): {} controls",
            dev.path().display(),
            dev.info().driver,
            dev.info().card,
            controls.len()
        );
        for c in &controls {
            print_control(&dev, c, "  ");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A control as JSON: names, type, range, menu and current value (`null` where it cannot be read).
pub fn control_json(dev: &Device, c: &Control) -> serde_json::Value {
    json!({
        "id": c.id,
        "name": c.name,
        "label": c.label,
        "type": c.kind.as_str(),
        "min": c.minimum,
        "max": c.maximum,
        "step": c.step,
        "default": c.default,
        "value": value_of(dev, c),
        "flags": c.flag_names(),
        "menu": c.menu.iter().map(|(i, n)| json!({"index": i, "name": n})).collect::<Vec<_>>(),
    })
}

/// The current value, for controls VIDIOC_G_CTRL can read (not buttons, strings or compound controls).
fn value_of(dev: &Device, c: &Control) -> Option<i32> {
    match c.kind {
        ControlType::Button | ControlType::String | ControlType::Other(_) => None,
        _ => dev.get_control(c).ok(),
    }
}

/// One control as text: `name (type) range, default D = value`, then one line per menu entry.
pub fn print_control(dev: &Device, c: &Control, indent: &str) {
    let value = value_of(dev, c);
    let current = match (value, c.kind) {
        (Some(v), ControlType::Menu | ControlType::IntegerMenu) => {
            let entry = c.menu.iter().find(|(i, _)| i64::from(*i) == i64::from(v));
            format!(
                " = {v}{}",
                entry.map(|(_, n)| format!(" ({n})")).unwrap_or_default()
            )
        }
        (Some(v), _) => format!(" = {v}"),
        (None, _) => String::new(),
    };
    let range = match c.kind {
        ControlType::Integer | ControlType::Integer64 => format!(
            " {}..{} step {}, default {}",
            c.minimum, c.maximum, c.step, c.default
        ),
        ControlType::Boolean | ControlType::Menu | ControlType::IntegerMenu => {
            format!(" default {}", c.default)
        }
        _ => String::new(),
    };
    let flags = c.flag_names();
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", flags.join(", "))
    };
    println!(
        "{indent}{:<32} {:<8}{range}{current}{flags}",
        c.name,
        c.kind.as_str()
    );
    for (i, n) in &c.menu {
        println!("{indent}    {i}: {n}");
    }
}
