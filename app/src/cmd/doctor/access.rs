//! Which device nodes the user running `doctor` can actually open, not just which exist: /dev/udmabuf, each
//! DMA-BUF heap, each V4L2 node and each DRM node is opened read-write (and closed at once). A node that
//! exists but is not the user's gets one line naming its group and mode and what to do (join the group, log
//! in again, or a udev rule). [`verdict`] is the pure decision, [`probe`] gathers what it decides on.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

/// What a node is for, as doctor names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Udmabuf,
    DmaHeap,
    Camera,
    Render,
    Card,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Udmabuf => "udmabuf",
            Kind::DmaHeap => "DMA-BUF heap",
            Kind::Camera => "V4L2",
            Kind::Render => "DRM render node",
            Kind::Card => "DRM card",
        }
    }

    /// A udev rule that gives nodes like `name` to the group users of this kind of node are usually in.
    fn udev_rule(self, name: &str) -> String {
        let (matches, group) = match self {
            Kind::Udmabuf => ("KERNEL==\"udmabuf\"".to_owned(), "video"),
            Kind::DmaHeap => (
                format!("SUBSYSTEM==\"dma_heap\", KERNEL==\"{name}\""),
                "video",
            ),
            Kind::Camera => ("SUBSYSTEM==\"video4linux\"".to_owned(), "video"),
            Kind::Render => (
                "SUBSYSTEM==\"drm\", KERNEL==\"renderD*\"".to_owned(),
                "render",
            ),
            Kind::Card => ("SUBSYSTEM==\"drm\", KERNEL==\"card*\"".to_owned(), "video"),
        };
        format!("/etc/udev/rules.d/70-dmacam.rules: {matches}, GROUP=\"{group}\", MODE=\"0660\"")
    }

    /// What to do when such a node does not exist at all.
    fn when_absent(self) -> &'static str {
        match self {
            Kind::Udmabuf => {
                "load the module (sudo modprobe udmabuf); without it `--io udmabuf` cannot work and the \
                 pattern and MJPEG decode take the DMA-BUF heap, else memfd (no dma-buf)"
            }
            Kind::DmaHeap => {
                "a kernel with CONFIG_DMABUF_HEAPS_SYSTEM provides it; without it `--io dma-heap` cannot work"
            }
            Kind::Camera => "no camera here; `-d pattern` is the built-in source",
            Kind::Render | Kind::Card => "no DRM driver loaded",
        }
    }
}

/// Whether the user is in a node's group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    /// This process has the group: it should not be what stops the open.
    Active,
    /// The group database lists the user, but this login started before they were added.
    NotInThisLogin,
    No,
}

/// Who may open a node: its owner, group and permission bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub user: String,
    pub group: String,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub membership: Membership,
}

/// What happened when the node was opened read-write.
#[derive(Debug)]
pub enum Opened {
    Absent,
    Yes,
    /// EACCES or EPERM.
    Denied,
    Failed(io::Error),
}

/// One node as found.
#[derive(Debug)]
pub struct Probe {
    pub path: PathBuf,
    pub kind: Kind,
    pub opened: Opened,
    /// None when the node could not be stat'ed (absent).
    pub owner: Option<Owner>,
}

/// What doctor says about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub usable: bool,
    pub line: String,
}

/// The line for a node: whether the user can open it and, when not, why and what to do.
pub fn verdict(p: &Probe) -> Verdict {
    let (label, path) = (p.kind.label(), p.path.display());
    let name = p
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let line = match (&p.opened, &p.owner) {
        (Opened::Yes, _) => format!("{label}: {path}: yours (opens read-write)"),
        (Opened::Absent, _) => format!("{label}: {path} does not exist: {}", p.kind.when_absent()),
        (Opened::Failed(e), _) => format!("{label}: {path} exists but cannot be opened: {e}"),
        (Opened::Denied, None) => format!(
            "{label}: {path} exists but is not yours (permission denied): add a udev rule, e.g. {}",
            p.kind.udev_rule(&name)
        ),
        (Opened::Denied, Some(o)) => {
            let (group, mode) = (&o.group, format!("{:04o}", o.mode & 0o7777));
            let group_may = o.mode & 0o060 == 0o060 && group != "root";
            match o.membership {
                Membership::NotInThisLogin if group_may => format!(
                    "{label}: {path} exists but is not yours in this login (group {group}, mode {mode}): \
                     you were added to group {group} after logging in; log out and in again (or run newgrp {group})"
                ),
                _ if group_may => format!(
                    "{label}: {path} exists but is not yours (group {group}, mode {mode}): add yourself to \
                     group {group} (sudo usermod -aG {group} $USER, then log in again) or add a udev rule, \
                     e.g. {}",
                    p.kind.udev_rule(&name)
                ),
                _ => format!(
                    "{label}: {path} exists but only {} can open it (owner {}, group {group}, mode {mode}): \
                     give it to a group you are in with a udev rule, e.g. {}",
                    o.user,
                    o.user,
                    p.kind.udev_rule(&name)
                ),
            }
        }
    };
    Verdict {
        usable: matches!(p.opened, Opened::Yes),
        line,
    }
}

/// Every node doctor checks: /dev/udmabuf and /dev/dma_heap/system (reported even when absent), the other
/// heaps, /dev/video*, /dev/dri/renderD* and /dev/dri/card*, each opened once by this process.
pub fn probe_all() -> Vec<Probe> {
    let mut nodes = vec![(PathBuf::from("/dev/udmabuf"), Kind::Udmabuf)];
    let mut heaps = entries("/dev/dma_heap", |_| true);
    if !heaps.iter().any(|p| p.ends_with("system")) {
        heaps.insert(0, PathBuf::from("/dev/dma_heap/system"));
    }
    nodes.extend(heaps.into_iter().map(|p| (p, Kind::DmaHeap)));
    let video = |n: &str| {
        n.strip_prefix("video")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    };
    nodes.extend(
        entries("/dev", video)
            .into_iter()
            .map(|p| (p, Kind::Camera)),
    );
    let dri = entries("/dev/dri", |n| {
        n.starts_with("renderD") || n.starts_with("card")
    });
    nodes.extend(dri.into_iter().map(|p| {
        let kind = if p.to_string_lossy().contains("renderD") {
            Kind::Render
        } else {
            Kind::Card
        };
        (p, kind)
    }));
    nodes
        .into_iter()
        .map(|(path, kind)| probe(&path, kind))
        .collect()
}

/// The entries of `dir` whose names pass `keep`, sorted by name with numbers in order (video2 before video10).
fn entries(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| keep(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    found.sort_by_key(|p| {
        let s = p.to_string_lossy().into_owned();
        let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (stem, n) = s.split_at(s.len() - digits);
        (stem.to_owned(), n.parse::<u64>().unwrap_or(0))
    });
    found
}

/// Opens `path` read-write (close-on-exec, non-blocking, closed again at once) and reads its owner.
pub fn probe(path: &Path, kind: Kind) -> Probe {
    let opened = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(_file) => Opened::Yes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Opened::Absent,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Opened::Denied,
        Err(e) => Opened::Failed(e),
    };
    let owner = std::fs::metadata(path).ok().map(|m| Owner {
        user: User::from_uid(Uid::from_raw(m.uid()))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {}", m.uid())),
        group: group_name(m.gid()),
        mode: m.mode() & 0o7777,
        membership: membership(m.gid()),
    });
    Probe {
        path: path.to_owned(),
        kind,
        opened,
        owner,
    }
}

fn group_name(gid: u32) -> String {
    Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string())
}

/// Whether this process has group `gid`, or only the group database says the user is in it.
fn membership(gid: u32) -> Membership {
    let gid = Gid::from_raw(gid);
    let active =
        Gid::effective() == gid || nix::unistd::getgroups().is_ok_and(|g| g.contains(&gid));
    if active {
        return Membership::Active;
    }
    let user = User::from_uid(Uid::current()).ok().flatten();
    let listed = user.is_some_and(|u| {
        u.gid == gid
            || Group::from_gid(gid)
                .ok()
                .flatten()
                .is_some_and(|g| g.mem.contains(&u.name))
    });
    if listed {
        Membership::NotInThisLogin
    } else {
        Membership::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(path: &str, kind: Kind, user: &str, group: &str, mode: u32, m: Membership) -> Probe {
        Probe {
            path: path.into(),
            kind,
            opened: Opened::Denied,
            owner: Some(Owner {
                user: user.into(),
                group: group.into(),
                mode,
                membership: m,
            }),
        }
    }

    #[test]
    fn a_node_of_a_group_the_user_is_not_in_names_the_group_and_both_remedies() {
        let v = verdict(&denied(
            "/dev/udmabuf",
            Kind::Udmabuf,
            "root",
            "kvm",
            0o660,
            Membership::No,
        ));
        assert!(!v.usable);
        assert_eq!(
            v.line,
            "udmabuf: /dev/udmabuf exists but is not yours (group kvm, mode 0660): add yourself to group kvm \
             (sudo usermod -aG kvm $USER, then log in again) or add a udev rule, e.g. \
             /etc/udev/rules.d/70-dmacam.rules: KERNEL==\"udmabuf\", GROUP=\"video\", MODE=\"0660\""
        );
    }

    #[test]
    fn a_root_only_node_asks_for_a_udev_rule_not_for_group_root() {
        let heap = denied(
            "/dev/dma_heap/system",
            Kind::DmaHeap,
            "root",
            "root",
            0o600,
            Membership::No,
        );
        let v = verdict(&heap);
        assert!(!v.usable);
        assert_eq!(
            v.line,
            "DMA-BUF heap: /dev/dma_heap/system exists but only root can open it (owner root, group root, \
             mode 0600): give it to a group you are in with a udev rule, e.g. /etc/udev/rules.d/70-dmacam.rules: \
             SUBSYSTEM==\"dma_heap\", KERNEL==\"system\", GROUP=\"video\", MODE=\"0660\""
        );
        // Group bits that do not grant read-write are no reason to join the group.
        let v = verdict(&denied(
            "/dev/video0",
            Kind::Camera,
            "root",
            "video",
            0o640,
            Membership::No,
        ));
        assert!(v.line.contains("only root can open it"), "{}", v.line);
        assert!(v.line.contains("SUBSYSTEM==\"video4linux\""), "{}", v.line);
    }

    #[test]
    fn a_group_joined_after_login_says_log_in_again() {
        let p = denied(
            "/dev/dri/renderD128",
            Kind::Render,
            "root",
            "render",
            0o660,
            Membership::NotInThisLogin,
        );
        assert_eq!(
            verdict(&p).line,
            "DRM render node: /dev/dri/renderD128 exists but is not yours in this login (group render, mode \
             0660): you were added to group render after logging in; log out and in again (or run newgrp render)"
        );
    }

    #[test]
    fn an_open_node_an_absent_one_and_another_failure() {
        let probe = |opened| Probe {
            path: "/dev/udmabuf".into(),
            kind: Kind::Udmabuf,
            opened,
            owner: None,
        };
        let v = verdict(&probe(Opened::Yes));
        assert!(v.usable);
        assert_eq!(v.line, "udmabuf: /dev/udmabuf: yours (opens read-write)");
        let v = verdict(&probe(Opened::Absent));
        assert!(!v.usable);
        assert!(
            v.line
                .starts_with("udmabuf: /dev/udmabuf does not exist: load the module"),
            "{}",
            v.line
        );
        let v = verdict(&probe(Opened::Failed(io::Error::from_raw_os_error(
            libc::EBUSY,
        ))));
        assert!(!v.usable);
        assert!(
            v.line.starts_with(
                "udmabuf: /dev/udmabuf exists but cannot be opened: Device or resource busy"
            ),
            "{}",
            v.line
        );
        let v = verdict(&probe(Opened::Denied));
        assert!(
            v.line
                .contains("not yours (permission denied): add a udev rule"),
            "{}",
            v.line
        );
    }

    #[test]
    fn probing_real_files_here() {
        // This host has no udmabuf or camera; /dev/null opens for everyone and a missing node is absent.
        let null = probe(Path::new("/dev/null"), Kind::Camera);
        assert!(verdict(&null).usable);
        assert_eq!(null.owner.as_ref().map(|o| o.mode), Some(0o666));
        let gone = probe(Path::new("/dev/dmacam-no-such-node"), Kind::Udmabuf);
        assert!(matches!(gone.opened, Opened::Absent));
        assert!(gone.owner.is_none());
        // Every node probe_all reports is a path it looked for; the two allocators are always there.
        let all = probe_all();
        assert_eq!(all[0].path, Path::new("/dev/udmabuf"));
        assert!(all
            .iter()
            .any(|p| p.path == Path::new("/dev/dma_heap/system")));
    }

    #[test]
    fn nodes_are_listed_in_numeric_order() {
        let dir = std::env::temp_dir().join(format!("dmacam-doctor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in ["video10", "video2", "video0", "vbi0"] {
            std::fs::write(dir.join(n), b"").unwrap();
        }
        let names: Vec<String> = entries(dir.to_str().unwrap(), |n| n.starts_with("video"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(names, ["video0", "video2", "video10"]);
    }
}
