//! Device controls: enumerate (VIDIOC_QUERY_EXT_CTRL, VIDIOC_QUERYMENU), read and set (VIDIOC_G/S_CTRL).
//!
//! Controls are named as `v4l2-ctl -L` names them: the driver's name lower-cased with every run of other
//! characters turned into `_` (vivid's "OSD Text Mode" is `osd_text_mode`).

use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::errno::Errno;
use thiserror::Error;

use crate::device::Device;
use crate::raw::{self, b};

/// The kind of value a control holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Integer,
    Boolean,
    Menu,
    IntegerMenu,
    Button,
    Integer64,
    String,
    Other(u32),
}

impl ControlType {
    fn from_raw(t: u32) -> Self {
        match t {
            b::v4l2_ctrl_type_V4L2_CTRL_TYPE_INTEGER => ControlType::Integer,
            b::v4l2_ctrl_type_V4L2_CTRL_TYPE_BOOLEAN => ControlType::Boolean,
            b::v4l2_ctrl_type_V4L2_CTRL_TYPE_MENU => ControlType::Menu,
            b::v4l2_ctrl_type_V4L2_CTRL_TYPE_INTEGER_MENU => ControlType::IntegerMenu,
            b::v4l2_ctrl_type_V4L2_CTRL_TYPE_BUTTON => ControlType::Button,
            b::v4l2_ctrl_type_V4L2_CTRL_TYPE_INTEGER64 => ControlType::Integer64,
            b::v4l2_ctrl_type_V4L2_CTRL_TYPE_STRING => ControlType::String,
            t => ControlType::Other(t),
        }
    }

    /// A short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlType::Integer => "int",
            ControlType::Boolean => "bool",
            ControlType::Menu => "menu",
            ControlType::IntegerMenu => "intmenu",
            ControlType::Button => "button",
            ControlType::Integer64 => "int64",
            ControlType::String => "string",
            ControlType::Other(_) => "other",
        }
    }
}

/// One control as the device describes it.
#[derive(Debug, Clone)]
pub struct Control {
    pub id: u32,
    /// The driver's name ("OSD Text Mode").
    pub label: String,
    /// The `v4l2-ctl` style name (`osd_text_mode`).
    pub name: String,
    pub kind: ControlType,
    pub minimum: i64,
    pub maximum: i64,
    pub step: u64,
    pub default: i64,
    pub flags: u32,
    /// Menu entries (index, name) for menu controls.
    pub menu: Vec<(u32, String)>,
}

/// Why a control could not be listed, read or set.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error("{path} has no control named '{name}' (see `dmacam list`)")]
    NoSuchControl { path: PathBuf, name: String },
    #[error("control '{name}' of {path} has no menu entry '{entry}'; it offers {offered}")]
    NoSuchEntry {
        path: PathBuf,
        name: String,
        entry: String,
        offered: String,
    },
    #[error("{what} of control '{name}' on {path} failed: {source}")]
    Ioctl {
        path: PathBuf,
        name: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The `v4l2-ctl` style name of a control label.
pub fn control_name(label: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            if sep && !out.is_empty() {
                out.push('_');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        } else {
            sep = true;
        }
    }
    out
}

impl Device {
    /// Every control of the node (skipping control-class headers and disabled controls).
    pub fn controls(&self) -> Result<Vec<Control>, ControlError> {
        let mut out = Vec::new();
        let mut id = b::V4L2_CTRL_FLAG_NEXT_CTRL | b::V4L2_CTRL_FLAG_NEXT_COMPOUND;
        loop {
            let mut q = b::v4l2_query_ext_ctrl {
                id,
                ..Default::default()
            };
            match raw::query_ext_ctrl(self.as_fd(), &mut q) {
                Ok(()) => {}
                Err(Errno::EINVAL) | Err(Errno::ENOTTY) => break,
                Err(e) => {
                    return Err(ControlError::Ioctl {
                        path: self.path().to_path_buf(),
                        name: String::new(),
                        what: "VIDIOC_QUERY_EXT_CTRL",
                        source: e.into(),
                    })
                }
            }
            id = q.id | b::V4L2_CTRL_FLAG_NEXT_CTRL | b::V4L2_CTRL_FLAG_NEXT_COMPOUND;
            let kind = ControlType::from_raw(q.type_);
            if q.type_ == b::v4l2_ctrl_type_V4L2_CTRL_TYPE_CTRL_CLASS
                || q.flags & b::V4L2_CTRL_FLAG_DISABLED != 0
            {
                continue;
            }
            let label = raw::cstr(&q.name);
            let mut menu = Vec::new();
            if matches!(kind, ControlType::Menu | ControlType::IntegerMenu) {
                for index in q.minimum.max(0)..=q.maximum.min(255) {
                    let mut m = b::v4l2_querymenu {
                        id: q.id,
                        index: index as u32,
                        ..Default::default()
                    };
                    if raw::querymenu(self.as_fd(), &mut m).is_ok() {
                        let text = if kind == ControlType::Menu {
                            // SAFETY: for a MENU control the driver filled the `name` member.
                            raw::cstr(&unsafe { m.__bindgen_anon_1.name })
                        } else {
                            // SAFETY: for an INTEGER_MENU control the driver filled the `value` member.
                            unsafe { m.__bindgen_anon_1.value }.to_string()
                        };
                        menu.push((index as u32, text));
                    }
                }
            }
            out.push(Control {
                id: q.id,
                name: control_name(&label),
                label,
                kind,
                minimum: q.minimum,
                maximum: q.maximum,
                step: q.step,
                default: q.default_value,
                flags: q.flags,
                menu,
            });
        }
        Ok(out)
    }

    /// Finds a control by its `v4l2-ctl` name.
    pub fn control(&self, name: &str) -> Result<Control, ControlError> {
        self.controls()?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ControlError::NoSuchControl {
                path: self.path().to_path_buf(),
                name: name.to_owned(),
            })
    }

    /// Reads an integer/boolean/menu control's value (VIDIOC_G_CTRL).
    pub fn get_control(&self, c: &Control) -> Result<i32, ControlError> {
        let mut arg = b::v4l2_control { id: c.id, value: 0 };
        raw::g_ctrl(self.as_fd(), &mut arg).map_err(|e| self.ctrl_err(c, "VIDIOC_G_CTRL", e))?;
        Ok(arg.value)
    }

    /// Sets an integer/boolean/menu/button control (VIDIOC_S_CTRL).
    pub fn set_control(&self, c: &Control, value: i32) -> Result<(), ControlError> {
        let mut arg = b::v4l2_control { id: c.id, value };
        raw::s_ctrl(self.as_fd(), &mut arg).map_err(|e| self.ctrl_err(c, "VIDIOC_S_CTRL", e))?;
        tracing::debug!(device = %self.path().display(), control = %c.name, value, "control set");
        Ok(())
    }

    /// Sets a menu control to the entry whose name contains `entry` (case-insensitive).
    pub fn set_menu(&self, c: &Control, entry: &str) -> Result<u32, ControlError> {
        let want = entry.to_ascii_lowercase();
        let found = c
            .menu
            .iter()
            .find(|(_, n)| n.to_ascii_lowercase() == want)
            .or_else(|| {
                c.menu
                    .iter()
                    .find(|(_, n)| n.to_ascii_lowercase().contains(&want))
            });
        let Some((index, _)) = found else {
            let offered: Vec<&str> = c.menu.iter().map(|(_, n)| n.as_str()).collect();
            return Err(ControlError::NoSuchEntry {
                path: self.path().to_path_buf(),
                name: c.name.clone(),
                entry: entry.to_owned(),
                offered: offered.join(", "),
            });
        };
        self.set_control(c, *index as i32)?;
        Ok(*index)
    }

    fn ctrl_err(&self, c: &Control, what: &'static str, e: Errno) -> ControlError {
        ControlError::Ioctl {
            path: self.path().to_path_buf(),
            name: c.name.clone(),
            what,
            source: e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_v4l2_ctl() {
        assert_eq!(control_name("OSD Text Mode"), "osd_text_mode");
        assert_eq!(
            control_name("Inject VIDIOC_STREAMON Error"),
            "inject_vidioc_streamon_error"
        );
        assert_eq!(control_name("Test Pattern"), "test_pattern");
    }
}
