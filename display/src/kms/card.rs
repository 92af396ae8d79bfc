//! An opened DRM card: the fd, DRM master, and what the driver can do.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use drm::control::Device as _;
use drm::{ClientCapability, Device as _, DriverCapability};

use super::error::KmsError;
use super::props::Props;

/// What the driver offers, read once at open.
#[derive(Debug, Clone)]
pub struct CardInfo {
    /// The driver's name, e.g. `vkms`, `i915`.
    pub driver: String,
    /// Atomic modesetting is in use (the driver offers it and the client capability was accepted).
    pub atomic: bool,
    /// `DRM_CAP_ADDFB2_MODIFIERS`: framebuffers carry an explicit format modifier.
    pub addfb2_modifiers: bool,
    /// `DRM_CAP_TIMESTAMP_MONOTONIC`: event timestamps are CLOCK_MONOTONIC (as V4L2's usually are).
    pub monotonic_timestamps: bool,
    /// `DRM_CAP_PRIME` has import.
    pub prime_import: bool,
}

/// An opened DRM card node whose client is DRM master (unless opened with [`Card::inspect`]). Children (GEM handles, framebuffers) keep an `Arc` of
/// it, so none of their `Drop`s runs against a closed fd.
#[derive(Debug)]
pub struct Card {
    file: File,
    path: PathBuf,
    info: CardInfo,
}

impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl drm::Device for Card {}
impl drm::control::Device for Card {}

/// `DRM_PRIME_CAP_IMPORT`.
const PRIME_CAP_IMPORT: u64 = 1;

impl Card {
    /// Opens `path` (read-write, close-on-exec), becomes DRM master and enables universal planes and, unless
    /// `legacy`, atomic modesetting (falling back to legacy when the driver refuses it).
    pub fn open(path: &Path, legacy: bool) -> Result<Arc<Card>, KmsError> {
        Card::open_node(path, legacy, true)
    }

    /// Opens `path` as [`Card::open`] does but without becoming DRM master: enough to read connectors, planes
    /// and properties (`list --pipeline --card`) while a compositor holds the display; nothing can be shown.
    pub fn inspect(path: &Path) -> Result<Arc<Card>, KmsError> {
        Card::open_node(path, false, false)
    }

    fn open_node(path: &Path, legacy: bool, master: bool) -> Result<Arc<Card>, KmsError> {
        let meta = std::fs::metadata(path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                KmsError::NoSuchCard {
                    path: path.to_path_buf(),
                    available: list_cards(),
                }
            } else {
                KmsError::Open {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        if !meta.file_type().is_char_device() {
            return Err(KmsError::NotDrm {
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a character device"),
            });
        }
        // std opens with O_CLOEXEC.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| KmsError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let mut card = Card {
            file,
            path: path.to_path_buf(),
            info: CardInfo {
                driver: String::new(),
                atomic: false,
                addfb2_modifiers: false,
                monotonic_timestamps: false,
                prime_import: false,
            },
        };
        let driver = card.get_driver().map_err(|source| KmsError::NotDrm {
            path: path.to_path_buf(),
            source,
        })?;
        card.info.driver = driver.name().to_string_lossy().into_owned();
        // Render nodes (minor >= 128) take no modesetting ioctls.
        if libc_minor(meta.rdev()) >= 128 {
            return Err(KmsError::RenderNode {
                path: path.to_path_buf(),
            });
        }
        if master {
            if let Err(source) = card.acquire_master_lock() {
                return Err(KmsError::NotMaster {
                    path: path.to_path_buf(),
                    holder: master_holder(meta.rdev()),
                    source,
                });
            }
        }
        card.set_client_capability(ClientCapability::UniversalPlanes, true)
            .map_err(|e| KmsError::ioctl(path, "DRM_CLIENT_CAP_UNIVERSAL_PLANES", e))?;
        card.info.atomic = !legacy
            && card
                .set_client_capability(ClientCapability::Atomic, true)
                .is_ok();
        let cap = |c| card.get_driver_capability(c).unwrap_or(0);
        let addfb2_modifiers = cap(DriverCapability::AddFB2Modifiers) != 0;
        let monotonic_timestamps = cap(DriverCapability::MonotonicTimestamp) != 0;
        let prime_import = cap(DriverCapability::Prime) & PRIME_CAP_IMPORT != 0;
        card.info.addfb2_modifiers = addfb2_modifiers;
        card.info.monotonic_timestamps = monotonic_timestamps;
        card.info.prime_import = prime_import;
        if !card.info.prime_import {
            return Err(KmsError::NoPrime {
                path: path.to_path_buf(),
                driver: card.info.driver.clone(),
            });
        }
        tracing::debug!(
            card = %path.display(),
            driver = %card.info.driver,
            atomic = card.info.atomic,
            addfb2_modifiers = card.info.addfb2_modifiers,
            master,
            "DRM card opened"
        );
        Ok(Arc::new(card))
    }

    /// The node's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the driver offers.
    pub fn info(&self) -> &CardInfo {
        &self.info
    }

    /// Enables the writeback connectors client capability (needs atomic).
    pub(crate) fn enable_writeback(&self) -> io::Result<()> {
        self.set_client_capability(ClientCapability::WritebackConnectors, true)
    }

    /// Reads the property values of `object` by name.
    pub(crate) fn properties<T: drm::control::ResourceHandle>(
        &self,
        object: T,
    ) -> Result<Props, KmsError> {
        let set = self
            .get_properties(object)
            .map_err(|e| KmsError::ioctl(&self.path, "DRM_IOCTL_MODE_OBJ_GETPROPERTIES", e))?;
        let (ids, values) = set.as_props_and_values();
        let mut props = Props::default();
        for (&id, &value) in ids.iter().zip(values) {
            let info = self
                .get_property(id)
                .map_err(|e| KmsError::ioctl(&self.path, "DRM_IOCTL_MODE_GETPROPERTY", e))?;
            props.insert(info.name().to_string_lossy().into_owned(), id, value, info);
        }
        Ok(props)
    }
}

fn libc_minor(rdev: u64) -> u64 {
    // The glibc encoding of minor(): bits 0-7 and 20-39.
    (rdev & 0xff) | ((rdev >> 12) & !0xff)
}

/// The card nodes under /dev/dri, for error messages.
fn list_cards() -> String {
    let mut cards: Vec<String> = std::fs::read_dir("/dev/dri")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("card"))
                .map(|n| format!("/dev/dri/{n}"))
                .collect()
        })
        .unwrap_or_default();
    cards.sort();
    if cards.is_empty() {
        "none".to_owned()
    } else {
        cards.join(", ")
    }
}

/// Who holds DRM master on the card with device number `rdev`, from the DRM debugfs client list when it is
/// readable, otherwise the likely cause.
fn master_holder(rdev: u64) -> String {
    let minor = libc_minor(rdev);
    let me = std::process::id().to_string();
    let clients = std::fs::read_to_string(format!("/sys/kernel/debug/dri/{minor}/clients"));
    if let Ok(text) = clients {
        // Columns: command tgid dev master a uid magic [name id].
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() >= 4 && cols[3] == "y" && cols[1] != me {
                return format!(
                    "the display is held by {} (pid {}), a compositor or another KMS program",
                    cols[0], cols[1]
                );
            }
        }
    }
    "another program holds the display (a compositor such as Weston or a desktop session, or another KMS \
     program), or this user may not become master"
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_numbers() {
        // makedev(226, 0) and makedev(226, 128) in the glibc encoding.
        assert_eq!(libc_minor(226 << 8), 0);
        assert_eq!(libc_minor((226 << 8) | 128), 128);
        assert_eq!(
            libc_minor((226 << 8) | (0x123 & 0xff) | ((0x123 & !0xff) << 12)),
            0x123
        );
    }
}
