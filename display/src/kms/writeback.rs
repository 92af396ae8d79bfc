//! Capturing what a CRTC composed through a writeback connector: an atomic commit routes the writeback
//! connector to the CRTC with a framebuffer to write into (`WRITEBACK_FB_ID`) and asks for a fence
//! (`WRITEBACK_OUT_FENCE_PTR`); when the fence signals, the framebuffer holds exactly the pixels the CRTC
//! produced. This is a verification tool (one CPU read of one image), not part of the per-frame path.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use dmacam_capture::Fourcc;
use drm::buffer::{Buffer as _, DrmFourcc};
use drm::control::{connector, framebuffer, AtomicCommitFlags, Device as _};

use super::card::Card;
use super::commit::{OutputProps, Request};
use super::error::KmsError;
use super::output::{Output, Placement};
use super::poll::wait_readable;
use super::props::Props;

/// An XRGB8888 image read back from a writeback connector.
#[derive(Debug, Clone)]
pub struct WritebackImage {
    pub width: u32,
    pub height: u32,
    /// Always `XR24` (bytes B, G, R, X).
    pub format: Fourcc,
    /// Bytes per row in `data`.
    pub stride: u32,
    pub data: Vec<u8>,
}

impl WritebackImage {
    /// The (R, G, B) of pixel (x, y).
    pub fn rgb(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y * self.stride + x * 4) as usize;
        [self.data[i + 2], self.data[i + 1], self.data[i]]
    }

    /// The image as a binary PPM (P6).
    pub fn to_ppm(&self) -> Vec<u8> {
        let mut out = format!("P6\n{} {}\n255\n", self.width, self.height).into_bytes();
        out.reserve((self.width * self.height * 3) as usize);
        for y in 0..self.height {
            for x in 0..self.width {
                out.extend_from_slice(&self.rgb(x, y));
            }
        }
        out
    }
}

/// A dumb buffer as the writeback target, destroyed (with its framebuffer) on drop.
struct Target {
    card: Arc<Card>,
    dumb: drm::control::dumbbuffer::DumbBuffer,
    fb: Option<framebuffer::Handle>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(fb) = self.fb.take() {
            if let Err(e) = self.card.destroy_framebuffer(fb) {
                tracing::warn!("RMFB of the writeback framebuffer: {e}");
            }
        }
        if let Err(e) = self.card.destroy_dumb_buffer(self.dumb) {
            tracing::warn!("destroying the writeback dumb buffer: {e}");
        }
    }
}

/// Finds the writeback connector that can serve `out`'s CRTC and its properties.
fn find_connector(card: &Card, out: &Output) -> Result<(connector::Handle, Props), KmsError> {
    let err = |why: String| KmsError::Writeback {
        path: card.path().to_path_buf(),
        why,
    };
    card.enable_writeback().map_err(|e| {
        err(format!(
            "the driver refused DRM_CLIENT_CAP_WRITEBACK_CONNECTORS: {e}"
        ))
    })?;
    let res = card
        .resource_handles()
        .map_err(|e| KmsError::ioctl(card.path(), "DRM_IOCTL_MODE_GETRESOURCES", e))?;
    for &c in res.connectors() {
        let Ok(info) = card.get_connector(c, false) else {
            continue;
        };
        if info.interface() != connector::Interface::Writeback {
            continue;
        }
        let serves = info.encoders().iter().any(|&e| {
            card.get_encoder(e)
                .map(|e| res.filter_crtcs(e.possible_crtcs()).contains(&out.crtc))
                .unwrap_or(false)
        });
        if serves {
            return Ok((c, card.properties(c)?));
        }
    }
    Err(err(
        "the card has no writeback connector for this CRTC (vkms has one with enable_writeback=1)"
            .to_owned(),
    ))
}

/// Runs one writeback job on `out`'s CRTC showing `fb` at `placement`, and reads the result.
pub(crate) fn capture(
    card: &Arc<Card>,
    out: &Output,
    props: &OutputProps,
    fb: framebuffer::Handle,
    placement: &Placement,
    timeout: Duration,
) -> Result<WritebackImage, KmsError> {
    let path = card.path().to_path_buf();
    let err = |why: String| KmsError::Writeback {
        path: path.clone(),
        why,
    };
    if !card.info().atomic {
        return Err(err("writeback needs atomic modesetting".to_owned()));
    }
    let (wb, wb_props) = find_connector(card, out)?;
    if let Some(blob) = wb_props.value("WRITEBACK_PIXEL_FORMATS") {
        let bytes = card
            .get_property_blob(blob)
            .map_err(|e| KmsError::ioctl(&path, "DRM_IOCTL_MODE_GETPROPBLOB", e))?;
        let xr24 = Fourcc::new(b"XR24").0;
        let offers = bytes
            .chunks_exact(4)
            .any(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) == xr24);
        if !offers {
            return Err(err("the writeback connector does not write XR24".to_owned()));
        }
    }
    let (w, h) = out.mode_size();
    let dumb = card
        .create_dumb_buffer((w, h), DrmFourcc::Xrgb8888, 32)
        .map_err(|e| KmsError::ioctl(&path, "DRM_IOCTL_MODE_CREATE_DUMB", e))?;
    let mut target = Target {
        card: card.clone(),
        dumb,
        fb: None,
    };
    let wb_fb = card
        .add_framebuffer(&target.dumb, 24, 32)
        .map_err(|source| KmsError::AddFb {
            path: path.clone(),
            format: "XR24".to_owned(),
            width: w,
            height: h,
            source,
        })?;
    target.fb = Some(wb_fb);

    // Kernels with the encoder "valid clones" check (6.12 stable, 6.14+) refuse a writeback encoder next to
    // the CRTC's real encoder when the driver does not declare them clones (vkms does not): then the
    // writeback connector takes the CRTC alone for this one job. The CRTC composes the same planes either
    // way, which is what the image is for.
    let mut fence_fd: i32 = -1;
    let fence_ptr = std::ptr::addr_of_mut!(fence_fd);
    let mut alone = false;
    for attempt_alone in [false, true] {
        let mut req = Request::new(card);
        req.set(wb, &wb_props, "CRTC_ID", u64::from(u32::from(out.crtc)))?;
        req.set(
            wb,
            &wb_props,
            "WRITEBACK_FB_ID",
            u64::from(u32::from(wb_fb)),
        )?;
        req.set(wb, &wb_props, "WRITEBACK_OUT_FENCE_PTR", fence_ptr as u64)?;
        req.plane(out.plane, &props.plane, out.crtc, Some(fb), placement)?;
        if attempt_alone {
            req.set(out.connector, &props.connector, "CRTC_ID", 0)?;
        }
        match req.commit(AtomicCommitFlags::ALLOW_MODESET) {
            Ok(()) => {
                alone = attempt_alone;
                break;
            }
            Err(e)
                if !attempt_alone && e.raw_os_error() == Some(nix::errno::Errno::EINVAL as i32) =>
            {
                tracing::debug!(
                    "writeback next to {} refused ({e}); trying it alone",
                    out.connector_name
                );
            }
            Err(source) => {
                return Err(KmsError::Commit {
                    path: path.clone(),
                    what: "writeback",
                    source,
                })
            }
        }
    }
    // SAFETY: `fence_ptr` points to `fence_fd`, alive on this stack frame; the kernel wrote it during the
    // commit, which the compiler cannot see, hence the volatile read.
    let raw = unsafe { fence_ptr.read_volatile() };
    let fence = if raw >= 0 {
        // SAFETY: the kernel created this sync_file fd (close-on-exec) for us in the commit; nothing else owns
        // it.
        Some(unsafe { OwnedFd::from_raw_fd(raw) })
    } else {
        None
    };
    let detach = |card: &Card| {
        let mut req = Request::new(card);
        req.set(wb, &wb_props, "CRTC_ID", 0)?;
        req.set(wb, &wb_props, "WRITEBACK_FB_ID", 0)?;
        if alone {
            req.set(
                out.connector,
                &props.connector,
                "CRTC_ID",
                u64::from(u32::from(out.crtc)),
            )?;
        }
        req.commit(AtomicCommitFlags::ALLOW_MODESET)
            .map_err(|source| KmsError::Commit {
                path: path.clone(),
                what: "writeback detach",
                source,
            })
    };
    let signalled = match &fence {
        Some(f) => wait_readable(f.as_fd(), timeout)?,
        None => false,
    };
    if !signalled {
        detach(card)?;
        return Err(err(format!(
            "the writeback fence did not signal within {} ms",
            timeout.as_millis()
        )));
    }
    drop(fence);
    let data = {
        let mut map = card
            .map_dumb_buffer(&mut target.dumb)
            .map_err(|e| KmsError::ioctl(&path, "DRM_IOCTL_MODE_MAP_DUMB", e))?;
        map.as_mut().to_vec()
    };
    let stride = target.dumb.pitch();
    detach(card)?;
    drop(target);
    let need = (stride * h) as usize;
    if data.len() < need {
        return Err(err(format!(
            "the dumb buffer holds {} bytes, expected {need}",
            data.len()
        )));
    }
    Ok(WritebackImage {
        width: w,
        height: h,
        format: Fourcc::new(b"XR24"),
        stride,
        data,
    })
}
