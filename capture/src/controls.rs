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

impl Control {
    /// Whether the control cannot be set (`V4L2_CTRL_FLAG_READ_ONLY`).
    pub fn read_only(&self) -> bool {
        self.flags & b::V4L2_CTRL_FLAG_READ_ONLY != 0
    }

    /// The flags worth showing a user (`inactive`, `read-only`, ...).
    pub fn flag_names(&self) -> Vec<&'static str> {
        [
            (b::V4L2_CTRL_FLAG_GRABBED, "grabbed"),
            (b::V4L2_CTRL_FLAG_READ_ONLY, "read-only"),
            (b::V4L2_CTRL_FLAG_INACTIVE, "inactive"),
            (b::V4L2_CTRL_FLAG_VOLATILE, "volatile"),
            (b::V4L2_CTRL_FLAG_WRITE_ONLY, "write-only"),
        ]
        .into_iter()
        .filter(|(f, _)| self.flags & f != 0)
        .map(|(_, n)| n)
        .collect()
    }

    /// What values the control takes, for messages and listings: `0..255 step 1`, `0: Off, 1: On`, ...
    pub fn valid_values(&self) -> String {
        match self.kind {
            ControlType::Menu | ControlType::IntegerMenu => self
                .menu
                .iter()
                .map(|(i, n)| format!("{i}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            ControlType::Boolean => "0 or 1 (false/true, off/on)".to_owned(),
            ControlType::Button => "any value (a button: setting it presses it)".to_owned(),
            ControlType::Integer | ControlType::Integer64 => {
                format!("{}..{} step {}", self.minimum, self.maximum, self.step)
            }
            _ if self.flags & b::V4L2_CTRL_FLAG_HAS_PAYLOAD != 0 => {
                "nothing dmacam can set".to_owned()
            }
            ControlType::String | ControlType::Other(_) => "nothing dmacam can set".to_owned(),
        }
    }

    /// Checks `value` (a number, a menu entry's index or name, or for booleans true/false/on/off) against
    /// the control's type, range, step and menu; returns what VIDIOC_S_CTRL is to be given.
    fn parse_value(&self, value: &str) -> Result<i32, String> {
        let v = value.trim();
        let number = parse_int(v);
        if self.flags & b::V4L2_CTRL_FLAG_HAS_PAYLOAD != 0 {
            return Err("it is an array or compound control".to_owned());
        }
        match self.kind {
            ControlType::Button => Ok(1),
            ControlType::Boolean => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "on" | "yes" => Ok(1),
                "0" | "false" | "off" | "no" => Ok(0),
                _ => Err(format!("'{v}' is not a boolean")),
            },
            ControlType::Integer | ControlType::Integer64 => {
                let n = number.ok_or_else(|| format!("'{v}' is not a number"))?;
                if n < self.minimum || n > self.maximum {
                    return Err(format!("{n} is out of range"));
                }
                if self.step > 1 && (n - self.minimum) as u64 % self.step != 0 {
                    return Err(format!("{n} is not on a step"));
                }
                i32::try_from(n).map_err(|_| format!("{n} does not fit VIDIOC_S_CTRL"))
            }
            ControlType::Menu | ControlType::IntegerMenu => {
                let by_index = number.and_then(|n| {
                    self.menu
                        .iter()
                        .find(|(i, _)| i64::from(*i) == n)
                        .map(|(i, _)| *i)
                });
                let by_name = || {
                    let want = control_name(v);
                    let matches: Vec<u32> = self
                        .menu
                        .iter()
                        .filter(|(_, n)| !want.is_empty() && control_name(n) == want)
                        .map(|(i, _)| *i)
                        .collect();
                    (matches.len() == 1).then(|| matches[0])
                };
                // An integer menu names its entries by their value; a number is an index first.
                by_index
                    .or_else(by_name)
                    .map(|i| i as i32)
                    .ok_or_else(|| format!("'{v}' is not one of its menu entries"))
            }
            ControlType::String | ControlType::Other(_) => {
                Err(format!("it is a {} control", self.kind.as_str()))
            }
        }
    }
}

/// A decimal or `0x` hexadecimal integer.
fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let n = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(h) => i64::from_str_radix(h, 16).ok()?,
        None => digits.parse::<i64>().ok()?,
    };
    Some(if neg { -n } else { n })
}

/// A `NAME=VALUE` setting checked against the device's controls, ready for [`Device::apply_settings`].
#[derive(Debug, Clone)]
pub struct ControlSetting {
    pub control: Control,
    /// The value VIDIOC_S_CTRL is given (a menu entry's index for menus).
    pub value: i32,
}

/// Why a control could not be listed, read or set.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error("{path} has no control named '{name}' (see `dmacam controls -d {path}`)")]
    NoSuchControl { path: PathBuf, name: String },
    #[error("control setting '{spec}' for {path} must be NAME=VALUE, e.g. brightness=128")]
    Syntax { path: PathBuf, spec: String },
    #[error("control '{name}' of {path}: {why}; it takes {valid}")]
    BadValue {
        path: PathBuf,
        name: String,
        why: String,
        valid: String,
    },
    #[error("control '{name}' of {path} is read-only")]
    ReadOnly { path: PathBuf, name: String },
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

    /// Checks a `NAME=VALUE` setting (`v4l2-ctl -L` names; menu entries by name or index) against this
    /// device's controls without setting anything.
    pub fn parse_setting(&self, spec: &str) -> Result<ControlSetting, ControlError> {
        let path = || self.path().to_path_buf();
        let (name, value) = spec
            .split_once('=')
            .filter(|(n, _)| !n.trim().is_empty())
            .ok_or_else(|| ControlError::Syntax {
                path: path(),
                spec: spec.to_owned(),
            })?;
        let control = self.control(name.trim())?;
        if control.read_only() {
            return Err(ControlError::ReadOnly {
                path: path(),
                name: control.name,
            });
        }
        let value = control
            .parse_value(value)
            .map_err(|why| ControlError::BadValue {
                path: path(),
                name: control.name.clone(),
                why,
                valid: control.valid_values(),
            })?;
        Ok(ControlSetting { control, value })
    }

    /// Checks every setting first, then applies them in order: a bad one sets none.
    pub fn apply_settings<S: AsRef<str>>(
        &self,
        specs: &[S],
    ) -> Result<Vec<ControlSetting>, ControlError> {
        let settings = specs
            .iter()
            .map(|s| self.parse_setting(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        for s in &settings {
            self.set_control(&s.control, s.value)?;
        }
        Ok(settings)
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

    fn control(kind: ControlType, min: i64, max: i64, step: u64, menu: &[&str]) -> Control {
        Control {
            id: 1,
            label: "X".into(),
            name: "x".into(),
            kind,
            minimum: min,
            maximum: max,
            step,
            default: min,
            flags: 0,
            menu: menu
                .iter()
                .enumerate()
                .map(|(i, n)| (i as u32, (*n).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn values_are_checked_against_range_step_and_menu() {
        let int = control(ControlType::Integer, -10, 255, 5, &[]);
        assert_eq!(int.parse_value("0"), Ok(0));
        assert_eq!(int.parse_value("-10"), Ok(-10));
        assert_eq!(int.parse_value("0x0a"), Ok(10));
        assert!(int.parse_value("256").unwrap_err().contains("out of range"));
        assert!(int.parse_value("3").unwrap_err().contains("step"));
        assert!(int
            .parse_value("bright")
            .unwrap_err()
            .contains("not a number"));
        assert_eq!(int.valid_values(), "-10..255 step 5");
        let b = control(ControlType::Boolean, 0, 1, 1, &[]);
        assert_eq!(b.parse_value("on"), Ok(1));
        assert_eq!(b.parse_value("false"), Ok(0));
        assert!(b.parse_value("2").is_err());
        let menu = control(
            ControlType::Menu,
            0,
            2,
            1,
            &["75% Colorbar", "100% Colorbar", "CSC Colorbar"],
        );
        assert_eq!(menu.parse_value("1"), Ok(1));
        assert_eq!(menu.parse_value("100% colorbar"), Ok(1));
        assert_eq!(menu.parse_value("csc_colorbar"), Ok(2));
        assert!(menu.parse_value("3").is_err());
        assert!(menu.parse_value("Colorbar").is_err());
        assert_eq!(
            menu.valid_values(),
            "0: 75% Colorbar, 1: 100% Colorbar, 2: CSC Colorbar"
        );
        assert_eq!(
            control(ControlType::Button, 0, 0, 0, &[]).parse_value("x"),
            Ok(1)
        );
        assert!(control(ControlType::String, 0, 0, 0, &[])
            .parse_value("x")
            .is_err());
    }
}
