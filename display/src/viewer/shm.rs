//! The wl_shm fallback: a few shm buffers, each frame copied into a free one by the CPU (the one counted copy).

use std::os::fd::AsFd;

use dmacam_capture::{monotonic_ns, Mapping};
use smithay_client_toolkit::shm::raw::RawPool;
use smithay_client_toolkit::shm::{Shm, ShmHandler};
use wayland_client::protocol::{wl_buffer, wl_shm};
use wayland_client::{Connection, Dispatch, Proxy, QueueHandle};

use super::dmabuf::{effective_planes, inode, MAX_DMABUF_CACHE};
use super::error::DisplayError;
use super::options::Picture;
use super::state::{ShmSlot, State};
use crate::convert::{copy_packed, to_xrgb8888, ConvertError, PlaneRef};
use crate::formats::{shm_code, FormatInfo};

/// At most this many shm buffers are in flight.
const MAX_SHM_SLOTS: usize = 4;

/// User data of shm wl_buffers: the slot index.
struct ShmBufferData(usize);

impl State {
    /// Copies the frame into a free wl_shm buffer (the one CPU copy), drops its holder, attaches the buffer.
    pub(super) fn attach_shm(
        &mut self,
        mut frame: Picture,
        info: &FormatInfo,
        qh: &QueueHandle<State>,
    ) -> bool {
        // A picture still being written by its producer is copied only once it is done: the CPU waits here.
        if frame.fences.wait_acquire() {
            if let Some(t) = &frame.trace {
                t.update(|r| r.sync = Some("cpu-wait"));
            }
        }
        let d = &frame.dmabuf;
        let (w, h) = (d.width, d.height);
        let native = self.caps.shm_formats.contains(&info.drm);
        let format = if native { shm_code(info.drm) } else { 1 };
        let stride = if native { info.min_stride(0, w) } else { w * 4 };
        let len = if native {
            info.frame_bytes(w, h) as usize
        } else {
            (w * 4 * h) as usize
        };
        let matching = self
            .shm
            .slots
            .iter()
            .position(|s| !s.busy && (s.width, s.height, s.format) == (w, h, format));
        let idle = self.shm.slots.iter().position(|s| !s.busy);
        let slot = match (matching, idle) {
            (Some(i), _) => i,
            (None, Some(i)) => {
                // An idle slot of another geometry: rebuild it in place.
                match self.new_shm_slot(i, (w, h, format, stride, len), qh) {
                    Ok(s) => {
                        let old = std::mem::replace(&mut self.shm.slots[i], s);
                        old.buffer.destroy();
                        i
                    }
                    Err(e) => {
                        self.set_fatal(e);
                        return false;
                    }
                }
            }
            (None, None) if self.shm.slots.len() < MAX_SHM_SLOTS => {
                let i = self.shm.slots.len();
                match self.new_shm_slot(i, (w, h, format, stride, len), qh) {
                    Ok(s) => {
                        self.shm.slots.push(s);
                        i
                    }
                    Err(e) => {
                        self.set_fatal(e);
                        return false;
                    }
                }
            }
            (None, None) => {
                // Every slot is still with the compositor: wait for a release.
                self.presentation.pending = Some(frame);
                return false;
            }
        };
        let planes = match effective_planes(d, info) {
            Ok(p) => p,
            Err(e) => {
                self.frame_error(d.fourcc, e);
                return false;
            }
        };
        if self.shm.mappings.len() > MAX_DMABUF_CACHE {
            self.shm.mappings.clear();
        }
        for (fd, _, _) in &planes {
            let ino = match inode(fd.as_fd()) {
                Ok(i) => i,
                Err(e) => {
                    self.frame_error(d.fourcc, format!("fstat of its dma-buf failed: {e}"));
                    return false;
                }
            };
            if let std::collections::hash_map::Entry::Vacant(v) = self.shm.mappings.entry(ino) {
                match Mapping::new(fd.clone(), false) {
                    Ok(m) => {
                        v.insert(m);
                    }
                    Err(e) => {
                        self.set_fatal(e.into());
                        return false;
                    }
                }
            }
        }
        let result = {
            let mut guards = Vec::with_capacity(planes.len());
            let mut err = None;
            for (fd, _, _) in &planes {
                let ino = inode(fd.as_fd()).unwrap_or_default();
                match self.shm.mappings[&ino].read() {
                    Ok(g) => guards.push(g),
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = err {
                Err(DisplayError::Map(e))
            } else {
                let mut refs = Vec::with_capacity(planes.len());
                let mut short = None;
                for (g, (_, off, stride)) in guards.iter().zip(&planes) {
                    match g.get(*off as usize..) {
                        Some(data) => refs.push(PlaneRef {
                            data,
                            stride: *stride as usize,
                        }),
                        None => short = Some(*off),
                    }
                }
                if let Some(off) = short {
                    Err(DisplayError::Frame {
                        fourcc: d.fourcc,
                        detail: format!("a plane offset {off} lies beyond its dma-buf"),
                    })
                } else {
                    let dst = &mut self.shm.slots[slot].pool.mmap()[..];
                    let r: Result<u64, ConvertError> = if native {
                        copy_packed(info, w, h, &refs, dst)
                    } else {
                        to_xrgb8888(info, w, h, &refs, dst, stride as usize)
                    };
                    r.map_err(|e| DisplayError::Frame {
                        fourcc: d.fourcc,
                        detail: e.to_string(),
                    })
                }
            }
        };
        match result {
            Ok(bytes) => {
                self.stats.cpu_bytes_copied += bytes;
                self.stats.cpu_copied_frames += 1;
                if let Some(t) = &frame.trace {
                    t.update(|r| r.cpu_bytes_copied += bytes);
                }
            }
            Err(e) => {
                self.set_fatal(e);
                return false;
            }
        }
        // The copy is done: the producer may have its buffer back now.
        drop(frame.holder.take());
        let s = &mut self.shm.slots[slot];
        s.busy = true;
        self.layout.video.attach(Some(&s.buffer), 0, 0);
        if let Some(t) = &frame.trace {
            let id = s.buffer.id().protocol_id();
            t.update(|r| {
                r.kind = Some("shm");
                r.wl_buffer = Some(id);
                r.committed_ns = Some(monotonic_ns());
            });
        }
        self.request_feedback(frame.timestamp, frame.trace.take(), qh);
        true
    }

    fn new_shm_slot(
        &mut self,
        index: usize,
        (w, h, format, stride, len): (u32, u32, u32, u32, usize),
        qh: &QueueHandle<State>,
    ) -> Result<ShmSlot, DisplayError> {
        let mut pool =
            RawPool::new(len, &self.shm.global).map_err(|e| DisplayError::Shm(e.to_string()))?;
        let fmt = wl_shm::Format::try_from(format).unwrap_or(wl_shm::Format::Xrgb8888);
        let buffer = pool.create_buffer(
            0,
            w as i32,
            h as i32,
            stride as i32,
            fmt,
            ShmBufferData(index),
            qh,
        );
        self.stats.shm_wl_buffers += 1;
        tracing::debug!(w, h, format, "created a wl_shm buffer");
        Ok(ShmSlot {
            pool,
            buffer,
            width: w,
            height: h,
            format,
            busy: false,
        })
    }
}

impl ShmHandler for State {
    fn shm_state(&mut self) -> &mut Shm {
        &mut self.shm.global
    }
}

impl Dispatch<wl_buffer::WlBuffer, ShmBufferData> for State {
    fn event(
        state: &mut Self,
        _: &wl_buffer::WlBuffer,
        event: wl_buffer::Event,
        data: &ShmBufferData,
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        if let wl_buffer::Event::Release = event {
            if let Some(s) = state.shm.slots.get_mut(data.0) {
                s.busy = false;
            }
            state.try_commit(qh);
        }
    }
}
