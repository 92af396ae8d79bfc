//! `dump`'s files as a [`Sink`]: each picture is written when it is handed over (raw, Y4M, PNG or PPM:
//! `crate::sink::FileSink`, reading the pixels through the picture's dma-buf) and released when the write is
//! done. The sink is always ready, so with [`super::Policy::Every`] every frame taken is written, in order. A
//! traced frame's line gets the writer's part (bytes read, copied and written) and is written with it.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dmacam_capture::{Frame, Mapping};
use dmacam_render::OutputFrame;

use super::sink::{wait_fds, Picture, Sink};
use crate::progress::Bar;
use crate::sink::{CpuTouch, FileSink, MappedFrame};
use crate::trace::{FrameRecord, TraceFile};

/// The file writer fed by the loop, with the progress bar and the CPU mappings of the render stage's output
/// buffers (one per buffer of its ring, made once).
pub struct FileOutput {
    writer: FileSink,
    bar: Bar,
    maps: Vec<Option<Mapping>>,
}

impl FileOutput {
    /// Writes what the loop hands over to `writer`; `bar` counts the frames written.
    pub fn new(writer: FileSink, bar: Bar) -> FileOutput {
        FileOutput {
            writer,
            bar,
            maps: Vec::new(),
        }
    }

    /// The writer, to finish the files (or drop them, unfinished); the progress bar is done.
    pub fn into_writer(self) -> FileSink {
        self.bar.finish();
        self.writer
    }

    /// Writes `picture`: a camera frame through its own mapping, or the render stage's output through a
    /// mapping of its exported dma-buf.
    fn write(&mut self, picture: &Picture) -> Result<CpuTouch> {
        let holder = picture.holder.as_deref();
        if let Some(frame) = holder.and_then(|h| h.downcast_ref::<Frame>()) {
            return self.writer.write(frame);
        }
        let Some(out) = holder.and_then(|h| h.downcast_ref::<OutputFrame>()) else {
            bail!(
                "frame {}: the file writer takes camera frames and the render stage's output only",
                picture.sequence
            );
        };
        let map = mapping(&mut self.maps, out.buffer_index(), picture)?;
        self.writer.write(&MappedFrame {
            map,
            sequence: picture.sequence,
            len: out.stride() * out.height(),
        })
    }
}

impl FileOutput {
    /// After a write: the traced frame's line gets the writer's part and is written; the bar moves on.
    fn written(&mut self, touch: CpuTouch, traced: Option<(&Arc<TraceFile>, FrameRecord)>) {
        if let Some((file, mut record)) = traced {
            record.touched_by_the_writer(touch);
            file.write(&record);
        }
        self.bar.set(self.shown());
    }
}

/// The CPU mapping of output buffer `index` (the one `picture` shows), made the first time it is written.
fn mapping<'m>(
    maps: &'m mut Vec<Option<Mapping>>,
    index: usize,
    picture: &Picture,
) -> Result<&'m Mapping> {
    if maps.len() <= index {
        maps.resize_with(index + 1, || None);
    }
    let slot = &mut maps[index];
    if slot.is_none() {
        let m = Mapping::new(picture.dmabuf.planes[0].fd.clone(), false)
            .context("cannot map the render stage's output dma-buf")?;
        *slot = Some(m);
    }
    Ok(slot.as_ref().expect("mapped above"))
}

impl Sink for FileOutput {
    fn wait(&mut self, fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Vec<bool>> {
        wait_fds(fds, timeout)
    }

    fn submit(&mut self, picture: Picture) -> Result<()> {
        self.deliver(picture, None)
    }

    fn deliver(
        &mut self,
        picture: Picture,
        traced: Option<(&Arc<TraceFile>, FrameRecord)>,
    ) -> Result<()> {
        let touch = self.write(&picture)?;
        self.written(touch, traced);
        // Dropped here: written, the buffer goes back to its producer.
        Ok(())
    }

    fn deliver_host(
        &mut self,
        out: OutputFrame,
        sequence: u32,
        traced: Option<(&Arc<TraceFile>, FrameRecord)>,
    ) -> Result<()> {
        let touch = self.writer.write(&crate::gpu::HostOutput {
            out: &out,
            sequence,
        })?;
        self.written(touch, traced);
        Ok(())
    }

    /// Frames written.
    fn shown(&self) -> u64 {
        self.writer.touched().0
    }

    fn release_frames(&mut self) -> Result<()> {
        Ok(())
    }
}
