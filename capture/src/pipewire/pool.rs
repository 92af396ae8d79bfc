//! The producer's buffers as dmacam holds them: one slot per PipeWire buffer (its fds, duplicated), the
//! [`FramePool`] every frame of a [`super::PwSource`] goes back to (a release queues the buffer to the
//! producer again, on the PipeWire thread).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pipewire::spa::buffer::DataType;

use super::consumer::{Block, Cmd, CmdTx};
use super::PwError;
use crate::dmabuf::Mapping;
use crate::frame::{FramePool, Origin};

/// Buffers a stream may have (PipeWire negotiates 2 to 16; room for a renegotiation).
pub(super) const MAX_BUFFERS: usize = 64;

/// What memory the producer's buffers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// SPA_DATA_DmaBuf: the producer's dma-bufs, no copy.
    DmaBuf,
    /// SPA_DATA_MemFd: shared memory, readable by the CPU only.
    MemFd,
}

impl Memory {
    pub fn as_str(self) -> &'static str {
        match self {
            Memory::DmaBuf => "dma-buf",
            Memory::MemFd => "memfd",
        }
    }
}

#[derive(Debug)]
pub(super) struct Slot {
    pub memory: Vec<Arc<OwnedFd>>,
    pub mapoffsets: Vec<u32>,
    pub kind: Memory,
    pub maps: OnceLock<Vec<Mapping>>,
    pub held: AtomicBool,
}

/// The producer's buffers, shared by every frame handed out.
#[derive(Debug)]
pub(super) struct Pool {
    pub name: PathBuf,
    pub cmd: Mutex<CmdTx>,
    pub slots: Vec<OnceLock<Slot>>,
}

impl FramePool for Pool {
    fn name(&self) -> &Path {
        &self.name
    }

    fn memory(&self, index: usize) -> &[Arc<OwnedFd>] {
        self.slots[index].get().map_or(&[], |s| &s.memory)
    }

    fn maps(&self, index: usize) -> &OnceLock<Vec<Mapping>> {
        &self.slots[index]
            .get()
            .expect("a frame's buffer was received before the frame")
            .maps
    }

    fn release(&self, index: usize) {
        if let Some(slot) = self.slots[index].get() {
            slot.held.store(false, Ordering::SeqCst);
        }
        let cmd = self.cmd.lock().unwrap_or_else(|p| p.into_inner());
        // The thread is gone when the source was dropped first: nothing to give back to.
        let _ = cmd.send(Cmd::Release(index as u32));
    }

    fn origin(&self) -> Origin {
        Origin::PipeWire
    }
}

/// Takes buffer `index`'s memory; `Err(why)` when dmacam cannot take it without a copy.
pub(super) fn add_buffer(pool: &Pool, index: u32, blocks: Vec<Block>) -> Result<(), PwError> {
    let name = pool.name.display().to_string();
    let Some(slot) = pool.slots.get(index as usize) else {
        return Err(PwError::Stream {
            name,
            what: format!("more than {MAX_BUFFERS} buffers"),
        });
    };
    let kind = if blocks.iter().all(|b| b.kind == DataType::DmaBuf) {
        Memory::DmaBuf
    } else {
        Memory::MemFd
    };
    let mut memory = Vec::new();
    let mut mapoffsets = Vec::new();
    for b in blocks {
        let Some(fd) = b.fd else {
            return Err(PwError::Stream {
                name,
                what: "its producer's buffers are plain process memory (SPA_DATA_MemPtr, no fd), which \
                       dmacam does not copy; use a producer that offers dma-bufs or memfds (a camera's \
                       v4l2 node, `dmacam serve --pipewire`)"
                    .into(),
            });
        };
        tracing::trace!(
            source = %pool.name.display(),
            "buffer {index}: {:?} fd, {} bytes at {}",
            b.kind,
            b.maxsize,
            b.mapoffset
        );
        memory.push(Arc::new(fd));
        mapoffsets.push(b.mapoffset);
    }
    let _ = slot.set(Slot {
        memory,
        mapoffsets,
        kind,
        maps: OnceLock::new(),
        held: AtomicBool::new(false),
    });
    Ok(())
}
