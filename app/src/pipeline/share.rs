//! `serve --socket`: a sink that shares each camera frame with the consumers connected to a Unix socket
//! (`dmacam_capture::Server`: the buffers' fds went to each consumer once, at its hello; each frame is a
//! message naming its buffer). A frame goes back to the camera when every consumer that got it has
//! released it, or was dropped for holding it past `--max-hold`. The camera's own buffers only: there is no
//! render stage on this path, and frames the driver flagged corrupt are passed on flagged, as the driver
//! gave them.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use anyhow::{anyhow, Result};
use dmacam_capture::{Frame, Server};

use super::sink::{Picture, Sink};

/// The socket's consumers as the loop's sink.
pub struct ShareSink {
    pub server: Server,
}

impl Sink for ShareSink {
    fn wait(&mut self, fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Vec<bool>> {
        Ok(self.server.wait(fds, timeout)?)
    }

    fn submit(&mut self, picture: Picture) -> Result<()> {
        let frame = camera_frame(picture, "serve --socket")?;
        self.server.publish(frame);
        Ok(())
    }

    fn corrupt(&mut self, frame: Frame) {
        self.server.publish(frame);
    }

    /// Frames handed to the server (with or without a consumer to take them).
    fn shown(&self) -> u64 {
        self.server.stats().frames
    }

    fn held(&self) -> usize {
        self.server.held()
    }

    fn release_frames(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The camera frame a picture on the passthrough path holds (what `serve` shares: the camera's own buffer).
pub fn camera_frame(picture: Picture, who: &str) -> Result<Frame> {
    picture
        .holder
        .and_then(|h| h.downcast::<Frame>().ok())
        .map(|f| *f)
        .ok_or_else(|| {
            anyhow!(
                "{who}: frame {} is not a camera buffer (only the camera's own buffers are shared)",
                picture.sequence
            )
        })
}
