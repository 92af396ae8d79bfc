//! `view --output null`: a sink that takes each picture and lets it go at once (its holder dropped: the
//! camera buffer, or the render stage's output, goes straight back), counting it shown. It measures the
//! pipeline without a display: `auto` is passthrough (there is no display to refuse anything), `--path gpu`
//! and `--process` run the render stage as for a window. Latency is capture to hand-over.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use anyhow::{bail, Result};
use dmacam_capture::{monotonic_now, Source};
use dmacam_display::{PathRequest, Stats, Summary};

use super::sink::{wait_fds, Output, Picture, Sink, Start};
use crate::gpu::GpuStage;

/// The sink that shows nothing.
#[derive(Default)]
pub struct NullSink {
    stats: Stats,
    gpu: bool,
}

impl Sink for NullSink {
    fn wait(&mut self, fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Vec<bool>> {
        wait_fds(fds, timeout)
    }

    fn submit(&mut self, picture: Picture) -> Result<()> {
        let now = monotonic_now();
        let latency = picture.timestamp.and_then(|t| now.checked_sub(t));
        self.stats.record_submitted(picture.sequence);
        self.stats.committed += 1;
        self.stats.record_presented(now, latency);
        if let Some(t) = &picture.trace {
            let ns = now.as_nanos() as u64;
            t.update(|r| {
                r.kind = Some("null");
                r.committed_ns = Some(ns);
                r.presented_ns = Some(ns);
                r.latency_ns = latency.map(|l| l.as_nanos() as u64);
            });
        }
        // Dropped here: the buffer goes back, then the trace line is written.
        Ok(())
    }

    fn shown(&self) -> u64 {
        self.stats.presented
    }

    fn release_frames(&mut self) -> Result<()> {
        Ok(())
    }
}

impl Output for NullSink {
    fn start(&mut self, stream: &Source, ask: &Start) -> Result<Option<GpuStage>> {
        let gpu = match ask.path {
            PathRequest::Auto | PathRequest::Passthrough => None,
            PathRequest::Gpu => {
                crate::capture_opts::require_dmabuf(stream, "the gpu path")?;
                let spec = ask.spec.unwrap_or_default();
                Some(
                    GpuStage::new(stream.format(), spec)
                        .map_err(|e| anyhow::anyhow!("{}: the gpu path: {e}", ask.dev.display()))?,
                )
            }
            PathRequest::Shm => {
                bail!("--path shm: the null output copies nothing (use auto, passthrough or gpu)")
            }
        };
        self.gpu = gpu.is_some();
        eprintln!(
            "dmacam view: path {}: the null output lets each picture go at once",
            if self.gpu { "gpu" } else { "passthrough" }
        );
        Ok(gpu)
    }

    fn summary(&self) -> Summary {
        self.stats
            .summary(if self.gpu { "null (gpu)" } else { "null" })
    }
}
