//! A camera frame's dma-bufs as Vulkan sees them: the planes the shader reads ([`PlaneRef`]), the identity of
//! the buffers behind a V4L2 index ([`ImportKey`]), and importing one dma-buf fd as `VkDeviceMemory`.

use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;

use ash::vk;
use dmacam_capture::{Dmabuf, DmabufPlane, Fourcc, DRM_FORMAT_MOD_LINEAR};

use crate::conv::{Family, SourceFormat};
use crate::device::Gpu;
use crate::RenderError;

/// One plane as the shader reads it.
#[derive(Debug, Clone)]
pub(super) struct PlaneRef {
    pub(super) fd: Arc<OwnedFd>,
    pub(super) offset: u32,
    pub(super) stride: u32,
    pub(super) row_bytes: u32,
    pub(super) rows: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ImportKey {
    fourcc: Fourcc,
    width: u32,
    height: u32,
    planes: Vec<(u64, u64, u32, u32)>,
}

/// The planes the shader reads, from a frame's dma-bufs. A single-buffer semi-planar frame (NV12, NV21,
/// NV16, NV61) may come as one plane; its chroma plane then follows the Y plane in the same buffer.
pub(super) fn plane_refs(
    frame: &Dmabuf,
    format: SourceFormat,
) -> Result<Vec<PlaneRef>, RenderError> {
    let bad = |reason: String| RenderError::BadFrame {
        fourcc: frame.fourcc,
        width: frame.width,
        height: frame.height,
        reason,
    };
    if frame.modifier != DRM_FORMAT_MOD_LINEAR {
        return Err(bad(format!(
            "DRM modifier {:#x} is not LINEAR; only LINEAR buffers can be read",
            frame.modifier
        )));
    }
    if frame.width == 0 || frame.height == 0 {
        return Err(bad("empty frame".into()));
    }
    let mut given: Vec<DmabufPlane> = frame.planes.clone();
    if matches!(format.family(), Family::SemiPlanar { .. }) && given.len() == 1 {
        let p = &given[0];
        given.push(DmabufPlane {
            fd: p.fd.clone(),
            offset: p.offset + p.stride * frame.height,
            stride: p.stride,
        });
    }
    if given.len() != format.planes() {
        return Err(bad(format!(
            "{} planes given, the format has {}",
            given.len(),
            format.planes()
        )));
    }
    given
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let (row_bytes, rows) = format.plane_extent(i, frame.width, frame.height);
            if p.stride < row_bytes {
                return Err(bad(format!(
                    "plane {i} stride {} is below its row size {row_bytes}",
                    p.stride
                )));
            }
            Ok(PlaneRef {
                fd: p.fd,
                offset: p.offset,
                stride: p.stride,
                row_bytes,
                rows,
            })
        })
        .collect()
}

/// Whether `dup` is still an open fd of the same file as `original` (same device and inode).
fn still_same_file(dup: &OwnedFd, original: &OwnedFd) -> bool {
    let id = |fd: &OwnedFd| nix::sys::stat::fstat(fd.as_raw_fd()).map(|st| (st.st_dev, st.st_ino));
    matches!((id(dup), id(original)), (Ok(a), Ok(b)) if a == b)
}

pub(super) fn inode(fd: &Arc<OwnedFd>, plane: usize) -> Result<u64, RenderError> {
    nix::sys::stat::fstat(fd.as_raw_fd())
        .map(|st| st.st_ino)
        .map_err(|e| RenderError::Dup {
            plane,
            source: e.into(),
        })
}

pub(super) fn import_key(frame: &Dmabuf, planes: &[PlaneRef]) -> Result<ImportKey, RenderError> {
    let mut v = vec![];
    for (i, p) in planes.iter().enumerate() {
        let st = nix::sys::stat::fstat(p.fd.as_raw_fd()).map_err(|e| RenderError::Dup {
            plane: i,
            source: e.into(),
        })?;
        v.push((st.st_dev, st.st_ino, p.offset, p.stride));
    }
    Ok(ImportKey {
        fourcc: frame.fourcc,
        width: frame.width,
        height: frame.height,
        planes: v,
    })
}

pub(super) fn check_plane_fits(p: &PlaneRef, size: u64) -> Result<(), String> {
    let need = p.offset as u64 + p.stride as u64 * (p.rows as u64 - 1) + p.row_bytes as u64;
    if need > size {
        return Err(format!(
            "the plane needs {need} bytes (offset {} + {} rows of stride {}), the dma-buf has only {size}",
            p.offset, p.rows, p.stride
        ));
    }
    Ok(())
}

/// Size of the dma-buf behind `fd` and the memory types it can be imported into.
pub(super) fn fd_props(
    ext_fd: &ash::khr::external_memory_fd::Device,
    fd: &Arc<OwnedFd>,
    plane: usize,
    fourcc: Fourcc,
) -> Result<(u64, u32), RenderError> {
    let size =
        dmacam_capture::dmabuf::size_of(fd.as_fd()).map_err(|e| RenderError::ImportRejected {
            plane,
            fourcc,
            reason: format!("the fd is not a dma-buf (cannot size it: {e})"),
        })? as u64;
    let mut props = vk::MemoryFdPropertiesKHR::default();
    // SAFETY: `fd` is a live fd; the call only inspects it and does not take ownership.
    unsafe {
        ext_fd.get_memory_fd_properties(
            vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT,
            fd.as_raw_fd(),
            &mut props,
        )
    }
    .map_err(|source| RenderError::Import {
        plane,
        fourcc,
        what: "vkGetMemoryFdPropertiesKHR",
        source,
    })?;
    Ok((size, props.memory_type_bits))
}

pub(super) enum Dedicated {
    Buffer(vk::Buffer),
    Image(vk::Image),
}

/// An import failure before the plane is known.
pub(super) struct ImportFailure {
    what: &'static str,
    reason: Result<vk::Result, String>,
}

impl ImportFailure {
    pub(super) fn at(self, plane: usize, fourcc: Fourcc) -> RenderError {
        match self.reason {
            Ok(source) => RenderError::Import {
                plane,
                fourcc,
                what: self.what,
                source,
            },
            Err(reason) => RenderError::ImportRejected {
                plane,
                fourcc,
                reason,
            },
        }
    }
}

/// Imports the dma-buf behind `fd` (dup'd: a successful import owns the duplicate).
pub(super) fn import_memory(
    gpu: &Gpu,
    fd: &Arc<OwnedFd>,
    size: u64,
    reqs: vk::MemoryRequirements,
    fd_type_bits: u32,
    dedicated: Option<Dedicated>,
) -> Result<vk::DeviceMemory, ImportFailure> {
    if reqs.size > size {
        return Err(ImportFailure {
            what: "size check",
            reason: Err(format!(
                "Vulkan needs {} bytes, the dma-buf has {size}",
                reqs.size
            )),
        });
    }
    let bits = reqs.memory_type_bits & fd_type_bits;
    let ty = gpu
        .memory_type(bits, vk::MemoryPropertyFlags::empty())
        .ok_or(ImportFailure {
            what: "memory type",
            reason: Err(format!(
                "no memory type fits both the resource ({:#x}) and the dma-buf ({fd_type_bits:#x})",
                reqs.memory_type_bits
            )),
        })?;
    let dup = fd.try_clone().map_err(|e| ImportFailure {
        what: "dup",
        reason: Err(format!("cannot duplicate the fd: {e}")),
    })?;
    let mut import = vk::ImportMemoryFdInfoKHR::default()
        .handle_type(vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT)
        .fd(dup.as_raw_fd());
    let mut ded = vk::MemoryDedicatedAllocateInfo::default();
    match dedicated {
        Some(Dedicated::Buffer(b)) => ded = ded.buffer(b),
        Some(Dedicated::Image(i)) => ded = ded.image(i),
        None => {}
    }
    let mut info = vk::MemoryAllocateInfo::default()
        .allocation_size(size)
        .memory_type_index(ty)
        .push_next(&mut import);
    if dedicated.is_some() {
        info = info.push_next(&mut ded);
    }
    // SAFETY: valid allocate info; the fd is a dma-buf (sized above) whose memory types include `ty`
    // (VUID-VkImportMemoryFdInfoKHR-handleType-00670). On success Vulkan owns the fd (released below).
    let memory = match unsafe { gpu.device.allocate_memory(&info, None) } {
        Ok(m) => m,
        Err(e) => {
            // A failed import leaves the fd with us (VUID-VkImportMemoryFdInfoKHR-fd-00668's "on
            // success"), but lavapipe (Mesa 25.0) closes it even when the import fails (seen with the
            // read-only dma-bufs PipeWire's v4l2 source exports): closing it again would close
            // whatever now has that number (and aborts a debug build). Close it only if it is still
            // the same dma-buf.
            if !still_same_file(&dup, fd) {
                let _ = dup.into_raw_fd();
            }
            return Err(ImportFailure {
                what: "vkAllocateMemory (dma-buf import)",
                reason: Ok(e),
            });
        }
    };
    // The driver owns the duplicate now: forget it without closing.
    let _ = dup.into_raw_fd();
    Ok(memory)
}
