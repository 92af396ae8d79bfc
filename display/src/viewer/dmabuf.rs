//! The linux-dmabuf path: one zwp_linux_dmabuf_v1 wl_buffer per distinct dma-buf, cached by the buffer's
//! identity, created through buffer params (created or failed), handed back to the producer at
//! `wl_buffer.release`, and re-created when v4 feedback changes what the compositor accepts.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use dmacam_capture::{monotonic_ns, Dmabuf, Fourcc};
use smithay_client_toolkit::dmabuf::{DmabufFeedback, DmabufHandler, DmabufState};
use wayland_client::protocol::wl_buffer;
use wayland_client::{Connection, Proxy, QueueHandle};
use wayland_protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_buffer_params_v1, zwp_linux_dmabuf_feedback_v1,
};

use super::error::DisplayError;
use super::options::{BufferMode, Picture};
use super::state::{BufferKey, DmabufEntry, ImportState, State};
use crate::formats::FormatInfo;

/// Cached dma-buf wl_buffers beyond this count are evicted (least recently used first, idle ones only).
pub(super) const MAX_DMABUF_CACHE: usize = 32;

/// The planes of a frame as (fd, offset, stride), derived from plane 0 where a single-buffer format (e.g.
/// NV12 from a single-planar V4L2 node) comes with fewer plane entries than colour planes.
pub(super) fn effective_planes(
    d: &Dmabuf,
    info: &FormatInfo,
) -> Result<Vec<(Arc<OwnedFd>, u32, u32)>, String> {
    let n = info.planes();
    let first = d.planes.first().ok_or("the frame has no planes")?;
    let mut out: Vec<(Arc<OwnedFd>, u32, u32)> = d
        .planes
        .iter()
        .take(n)
        .map(|p| (p.fd.clone(), p.offset, p.stride))
        .collect();
    while out.len() < n {
        let i = out.len();
        let (_, off, stride) = out[i - 1].clone();
        let rows = info.rows(i - 1, d.height);
        let next_stride = if i == 0 || n == 2 {
            first.stride
        } else {
            first.stride / info.pixel.chroma_sub().0
        };
        out.push((first.fd.clone(), off + stride * rows, next_stride));
    }
    Ok(out)
}

pub(super) fn inode(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io::Error::from)?;
    Ok(st.st_ino)
}

impl State {
    /// Attaches the frame's cached wl_buffer (creating it on first sight). Returns false, keeping the frame
    /// pending, while the wl_buffer is being created.
    pub(super) fn attach_dmabuf(
        &mut self,
        mut frame: Picture,
        info: &FormatInfo,
        qh: &QueueHandle<State>,
    ) -> bool {
        let d = &frame.dmabuf;
        let planes = match effective_planes(d, info) {
            Ok(p) => p,
            Err(e) => {
                self.frame_error(d.fourcc, e);
                return false;
            }
        };
        let mut key_planes = Vec::with_capacity(planes.len());
        for (fd, off, stride) in &planes {
            match inode(fd.as_fd()) {
                Ok(ino) => key_planes.push((ino, *off, *stride)),
                Err(e) => {
                    self.frame_error(d.fourcc, format!("fstat of its dma-buf failed: {e}"));
                    return false;
                }
            }
        }
        let key = BufferKey {
            planes: key_planes,
            width: d.width,
            height: d.height,
            fourcc: d.fourcc,
            modifier: d.modifier,
        };
        self.dmabuf.use_counter += 1;
        let now = self.dmabuf.use_counter;
        if !self.dmabuf.entries.contains_key(&key) {
            self.evict_dmabufs();
            let modifier = self.modifier_override_for(d.fourcc).unwrap_or_else(|| {
                self.caps
                    .modifier_for(info.drm, d.modifier)
                    .unwrap_or(d.modifier)
            });
            let params = match self.dmabuf.global.create_params(qh) {
                Ok(p) => p,
                Err(_) => {
                    self.import_failed(
                        d.fourcc,
                        d.width,
                        d.height,
                        d.modifier,
                        "no zwp_linux_dmabuf_v1",
                    );
                    self.presentation.pending = Some(frame);
                    self.try_commit(qh);
                    return false;
                }
            };
            for (i, (fd, off, stride)) in planes.iter().enumerate() {
                params.add(fd.as_fd(), i as u32, *off, *stride, modifier);
            }
            let proxy = params.create(
                d.width as i32,
                d.height as i32,
                info.drm.0,
                zwp_linux_buffer_params_v1::Flags::empty(),
            );
            tracing::debug!(fourcc = %d.fourcc, drm = %info.drm, modifier, "creating a dma-buf wl_buffer");
            self.dmabuf.by_params.insert(proxy.id(), key.clone());
            self.dmabuf.entries.insert(
                key.clone(),
                DmabufEntry {
                    state: ImportState::Creating,
                    holders: Vec::new(),
                    busy: false,
                    stale: false,
                    _fds: planes.into_iter().map(|p| p.0).collect(),
                    last_used: now,
                },
            );
        }
        let entry = self.dmabuf.entries.get_mut(&key).expect("inserted above");
        entry.last_used = now;
        match &entry.state {
            ImportState::Creating => {
                self.presentation.pending = Some(frame);
                false
            }
            ImportState::Failed => {
                // The failure switched the mode (or set a fatal error); retry on the new mode.
                self.presentation.pending = Some(frame);
                if self.mode == BufferMode::Shm {
                    self.try_commit(qh);
                }
                false
            }
            ImportState::Ready(buf) => {
                self.layout.video.attach(Some(buf), 0, 0);
                entry.busy = true;
                if let Some(t) = &frame.trace {
                    let id = buf.id().protocol_id();
                    let inodes: Vec<u64> = key.planes.iter().map(|p| p.0).collect();
                    t.update(|r| {
                        r.kind = Some("dmabuf");
                        r.wl_buffer = Some(id);
                        r.inodes = inodes;
                        r.committed_ns = Some(monotonic_ns());
                    });
                }
                // With its acquire fence the holder waits for this commit's own release; else for the
                // wl_buffer's.
                if !self.explicit.commit(&mut frame, qh) {
                    if let Some(h) = frame.holder.take() {
                        entry.holders.push(h);
                    }
                }
                self.request_feedback(frame.timestamp, frame.trace.take(), qh);
                true
            }
        }
    }

    fn evict_dmabufs(&mut self) {
        while self.dmabuf.entries.len() >= MAX_DMABUF_CACHE {
            let victim = self
                .dmabuf
                .entries
                .iter()
                .filter(|(_, e)| !e.busy && !matches!(e.state, ImportState::Creating))
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            let Some(k) = victim else { break };
            if let Some(e) = self.dmabuf.entries.remove(&k) {
                if let ImportState::Ready(b) = e.state {
                    self.dmabuf.by_buffer.remove(&b.id());
                    b.destroy();
                }
            }
        }
    }

    /// The modifier the test aid `modifier_override` announces for `fourcc` buffers, if any.
    fn modifier_override_for(&self, fourcc: Fourcc) -> Option<u64> {
        self.dmabuf
            .modifier_override
            .filter(|(f, _)| *f == fourcc)
            .map(|(_, m)| m)
    }

    fn import_failed(&mut self, fourcc: Fourcc, width: u32, height: u32, modifier: u64, why: &str) {
        let modifier = self.modifier_override_for(fourcc).unwrap_or(modifier);
        if self.mode == BufferMode::Shm && self.fallback_reason.is_some() {
            // Buffers created before the switch fail as well: the fallback was already said.
            tracing::debug!("another {fourcc} dma-buf import failed ({why}); already on wl_shm");
            return;
        }
        let reason = format!(
            "the compositor could not import a {fourcc} {width}x{height} dma-buf (modifier {modifier:#x}): {why}"
        );
        if self.allow_fallback {
            tracing::warn!("{reason}; falling back to wl_shm with one CPU copy per frame");
            self.mode = BufferMode::Shm;
            self.fallback_reason = Some(reason);
        } else {
            self.set_fatal(DisplayError::Import {
                display: self.display.clone(),
                fourcc,
                width,
                height,
                modifier,
            });
        }
    }

    pub(super) fn released_dmabuf(&mut self, buffer: &wl_buffer::WlBuffer) {
        let Some(key) = self.dmabuf.by_buffer.get(&buffer.id()).cloned() else {
            return;
        };
        if let Some(e) = self.dmabuf.entries.get_mut(&key) {
            e.busy = false;
            // Dropping the holders hands the frames back to their producer.
            e.holders.clear();
            if e.stale {
                if let Some(e) = self.dmabuf.entries.remove(&key) {
                    if let ImportState::Ready(b) = e.state {
                        self.dmabuf.by_buffer.remove(&b.id());
                        b.destroy();
                    }
                }
            }
        }
    }

    /// New v4 feedback: the accepted formats may have changed; cached wl_buffers are re-created.
    fn apply_feedback(&mut self, fb: &DmabufFeedback) {
        let table = fb.format_table();
        let mut formats: Vec<(Fourcc, u64)> = Vec::new();
        for t in fb.tranches() {
            for &i in &t.formats {
                if let Some(f) = table.get(usize::from(i)) {
                    let pair = (Fourcc(f.format), f.modifier);
                    if !formats.contains(&pair) {
                        formats.push(pair);
                    }
                }
            }
        }
        let changed = self.caps.feedback && self.caps.dmabuf_formats != formats;
        tracing::debug!(
            tranches = fb.tranches().len(),
            pairs = formats.len(),
            main_device = fb.main_device(),
            "linux-dmabuf feedback"
        );
        self.caps.feedback = true;
        self.caps.main_device = Some(fb.main_device());
        self.caps.dmabuf_formats = formats;
        if changed {
            tracing::info!("linux-dmabuf feedback changed: re-creating the dma-buf wl_buffers");
            let keys: Vec<BufferKey> = self.dmabuf.entries.keys().cloned().collect();
            for k in keys {
                let e = self.dmabuf.entries.get_mut(&k).expect("key listed");
                if e.busy || matches!(e.state, ImportState::Creating) {
                    e.stale = true;
                } else if let Some(e) = self.dmabuf.entries.remove(&k) {
                    if let ImportState::Ready(b) = e.state {
                        self.dmabuf.by_buffer.remove(&b.id());
                        b.destroy();
                    }
                }
            }
        }
    }
}

impl DmabufHandler for State {
    fn dmabuf_state(&mut self) -> &mut DmabufState {
        &mut self.dmabuf.global
    }

    fn dmabuf_feedback(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1,
        feedback: DmabufFeedback,
    ) {
        self.apply_feedback(&feedback);
    }

    fn created(
        &mut self,
        _: &Connection,
        qh: &QueueHandle<Self>,
        params: &zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1,
        buffer: wl_buffer::WlBuffer,
    ) {
        params.destroy();
        let Some(key) = self.dmabuf.by_params.remove(&params.id()) else {
            buffer.destroy();
            return;
        };
        match self.dmabuf.entries.get_mut(&key) {
            Some(e) => {
                tracing::debug!(fourcc = %key.fourcc, "dma-buf wl_buffer created");
                self.stats.dmabuf_wl_buffers += 1;
                self.dmabuf.by_buffer.insert(buffer.id(), key);
                e.state = ImportState::Ready(buffer);
            }
            None => buffer.destroy(),
        }
        self.try_commit(qh);
    }

    fn failed(
        &mut self,
        _: &Connection,
        qh: &QueueHandle<Self>,
        params: &zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1,
    ) {
        params.destroy();
        let Some(key) = self.dmabuf.by_params.remove(&params.id()) else {
            return;
        };
        if let Some(e) = self.dmabuf.entries.get_mut(&key) {
            e.state = ImportState::Failed;
        }
        self.import_failed(
            key.fourcc,
            key.width,
            key.height,
            key.modifier,
            "zwp_linux_buffer_params_v1.failed",
        );
        self.try_commit(qh);
    }

    fn released(&mut self, _: &Connection, qh: &QueueHandle<Self>, buffer: &wl_buffer::WlBuffer) {
        self.released_dmabuf(buffer);
        self.try_commit(qh);
    }
}
