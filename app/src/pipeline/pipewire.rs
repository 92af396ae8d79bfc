//! `serve --pipewire`: a sink that publishes each camera frame on a PipeWire Video/Source node
//! (`dmacam_capture::pipewire::PwProducer`, whose own thread runs the PipeWire loop). The frame goes back to
//! the camera when PipeWire returns its buffer, or when the node takes it back after `--max-hold`.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use dmacam_capture::pipewire::PwProducer;
use dmacam_capture::Frame;

use super::share::camera_frame;
use super::sink::{wait_fds, Picture, Sink};

/// A PipeWire node as the loop's sink.
pub struct PipeWireSink {
    pub producer: PwProducer,
    /// The camera's node and the PipeWire node's name, for messages.
    pub dev: PathBuf,
    pub name: String,
}

impl Sink for PipeWireSink {
    fn wait(&mut self, fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Vec<bool>> {
        if let Some(what) = self.producer.failed() {
            bail!(
                "{}: PipeWire node '{}': {what}",
                self.dev.display(),
                self.name
            );
        }
        let ready = wait_fds(fds, timeout)?;
        if !ready.iter().any(|&r| r) {
            // No frame for a while: every buffer may be out, so let the node take back any held too long.
            self.producer.tick();
        }
        Ok(ready)
    }

    fn submit(&mut self, picture: Picture) -> Result<()> {
        let frame = camera_frame(picture, "serve --pipewire")?;
        self.producer.publish(frame);
        Ok(())
    }

    fn corrupt(&mut self, frame: Frame) {
        self.producer.publish(frame);
    }

    /// Frames PipeWire took (a consumer linked and a buffer free).
    fn shown(&self) -> u64 {
        self.producer.stats().published
    }

    fn release_frames(&mut self) -> Result<()> {
        Ok(())
    }
}
