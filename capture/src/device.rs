//! An opened V4L2 node and what it says about itself (VIDIOC_QUERYCAP).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;
use v4l2r::ioctl::{self, Capabilities, Capability};

/// Why a V4L2 node could not be opened as a device.
#[derive(Debug, Error)]
pub enum OpenError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a V4L2 device (not a character device); give a /dev/videoN node")]
    NotCharDevice { path: PathBuf },
    #[error(
        "{path} is not a V4L2 device (VIDIOC_QUERYCAP failed: {errno}); give a /dev/videoN node"
    )]
    NotV4l2 {
        path: PathBuf,
        errno: nix_errno::Errno,
    },
}

/// Re-export of the errno type v4l2r reports, so callers need not depend on nix.
pub mod nix_errno {
    pub use v4l2r::nix::errno::Errno;
}

/// What kind of node this is, from the device capabilities of the opened node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Single-planar video capture.
    Capture,
    /// Multi-planar video capture.
    CaptureMplane,
    /// Video output (single- or multi-planar).
    Output,
    /// Memory-to-memory (codec, scaler).
    M2m,
    /// Anything else (VBI, radio, SDR, touch, metadata).
    Other,
}

impl NodeKind {
    fn from_caps(caps: Capabilities) -> Self {
        if caps.intersects(Capabilities::VIDEO_M2M | Capabilities::VIDEO_M2M_MPLANE) {
            NodeKind::M2m
        } else if caps.contains(Capabilities::VIDEO_CAPTURE_MPLANE) {
            NodeKind::CaptureMplane
        } else if caps.contains(Capabilities::VIDEO_CAPTURE) {
            NodeKind::Capture
        } else if caps.intersects(Capabilities::VIDEO_OUTPUT | Capabilities::VIDEO_OUTPUT_MPLANE) {
            NodeKind::Output
        } else {
            NodeKind::Other
        }
    }

    /// A short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Capture => "capture",
            NodeKind::CaptureMplane => "capture-mplane",
            NodeKind::Output => "output",
            NodeKind::M2m => "m2m",
            NodeKind::Other => "other",
        }
    }

    /// Whether frames can be captured from this node.
    pub fn is_capture(self) -> bool {
        matches!(self, NodeKind::Capture | NodeKind::CaptureMplane)
    }
}

/// Identity and capabilities of a V4L2 node.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub path: PathBuf,
    pub driver: String,
    pub card: String,
    pub bus_info: String,
    /// Kernel version the driver reports, as (major, minor, patch).
    pub version: (u32, u32, u32),
    pub kind: NodeKind,
    /// Capabilities of this node (`device_caps`).
    pub caps: Capabilities,
    /// Whether the node supports the streaming I/O (MMAP/DMABUF) dmacam relies on.
    pub streaming: bool,
}

impl DeviceInfo {
    fn new(path: PathBuf, cap: Capability) -> Self {
        let caps = cap.device_caps();
        DeviceInfo {
            path,
            version: (
                cap.version >> 16,
                (cap.version >> 8) & 0xff,
                cap.version & 0xff,
            ),
            kind: NodeKind::from_caps(caps),
            streaming: caps.contains(Capabilities::STREAMING),
            caps,
            driver: cap.driver,
            card: cap.card,
            bus_info: cap.bus_info,
        }
    }
}

/// An opened V4L2 node. The fd is opened non-blocking and close-on-exec.
#[derive(Debug)]
pub struct Device {
    fd: OwnedFd,
    info: DeviceInfo,
}

impl Device {
    /// Opens `path` read-write and asks it what it is.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| OpenError::Open {
                path: path.clone(),
                source,
            })?;
        let meta = file.metadata().map_err(|source| OpenError::Open {
            path: path.clone(),
            source,
        })?;
        if !meta.file_type().is_char_device() {
            return Err(OpenError::NotCharDevice { path });
        }
        let fd = OwnedFd::from(file);
        let cap: Capability = ioctl::querycap(&fd).map_err(|e| OpenError::NotV4l2 {
            path: path.clone(),
            errno: e.into(),
        })?;
        let info = DeviceInfo::new(path, cap);
        tracing::debug!(path = %info.path.display(), driver = %info.driver, kind = info.kind.as_str(), "opened V4L2 node");
        Ok(Device { fd, info })
    }

    /// What the node said about itself.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The node's path.
    pub fn path(&self) -> &Path {
        &self.info.path
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Every `/dev/video*` node, sorted by number, with what it reports. Nodes that cannot be opened or are not
/// V4L2 devices are returned as errors in place, so a listing can say why a node was skipped.
pub fn enumerate_nodes() -> Vec<Result<DeviceInfo, OpenError>> {
    let mut paths: Vec<(u32, PathBuf)> = match std::fs::read_dir("/dev") {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let n = name.strip_prefix("video")?.parse::<u32>().ok()?;
                Some((n, e.path()))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    paths.sort();
    paths
        .into_iter()
        .map(|(_, p)| Device::open(&p).map(|d| d.info))
        .collect()
}
