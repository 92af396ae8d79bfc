//! What the viewer measured: frames shown and dropped, presentation-time latency, CPU bytes copied.

use std::time::Duration;

use serde::Serialize;

/// At most this many latency samples are kept (a ring): long runs keep constant memory.
const MAX_SAMPLES: usize = 1 << 16;

/// Capture-to-display latencies: the latest [`MAX_SAMPLES`] of them (a ring), for percentiles.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    ns: Vec<u64>,
    next: usize,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let ns = latency.as_nanos().min(u128::from(u64::MAX)) as u64;
        if self.ns.len() < MAX_SAMPLES {
            self.ns.push(ns);
        } else {
            self.ns[self.next] = ns;
            self.next = (self.next + 1) % MAX_SAMPLES;
        }
    }

    /// Samples kept.
    pub fn len(&self) -> usize {
        self.ns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ns.is_empty()
    }

    /// Percentile `p` (0..=100) in milliseconds, nearest rank.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        if self.ns.is_empty() {
            return None;
        }
        let mut v = self.ns.clone();
        v.sort_unstable();
        let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
        Some(v[rank.min(v.len()) - 1] as f64 / 1e6)
    }
}

/// Counters of one viewer, updated as frames flow.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Frames handed to the viewer.
    pub submitted: u64,
    /// Frames attached and committed to the surface.
    pub committed: u64,
    /// Frames the compositor reports presented (wp_presentation).
    pub presented: u64,
    /// Committed frames the compositor reports discarded.
    pub discarded: u64,
    /// Frames replaced by a newer one before the compositor was ready for them (frame-callback pacing).
    pub replaced: u64,
    /// Frames the producer skipped (gaps in the sequence numbers).
    pub sequence_gaps: u64,
    /// Bytes the CPU copied out of frames (the shm fallback only).
    pub cpu_bytes_copied: u64,
    /// Frames that went through a CPU copy.
    pub cpu_copied_frames: u64,
    /// wl_buffers created over dma-bufs (one per distinct dma-buf).
    pub dmabuf_wl_buffers: u64,
    /// wl_shm buffers created.
    pub shm_wl_buffers: u64,
    /// Presentations stamped earlier than the frame's capture (the receive time was used for the latency).
    pub stamped_before_capture: u64,
    /// Capture-to-presentation latencies.
    latencies: Latencies,
    first_present: Option<Duration>,
    last_present: Option<Duration>,
    last_sequence: Option<u32>,
}

/// The CPU decode in front of the output (MJPEG input): what it decoded and the bytes it wrote, which are
/// CPU copies and are added to the summary's.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeSummary {
    /// What was decoded into what, e.g. `MJPG 1280x720 to XR24`.
    pub what: String,
    pub frames_decoded: u64,
    /// Corrupt or truncated frames skipped (the next good frame took their place).
    pub corrupt_frames_skipped: u64,
    pub cpu_bytes_written: u64,
}

impl DecodeSummary {
    pub fn new(what: String, stats: dmacam_capture::jpeg::JpegStats) -> DecodeSummary {
        DecodeSummary {
            what,
            frames_decoded: stats.decoded,
            corrupt_frames_skipped: stats.corrupt,
            cpu_bytes_written: stats.cpu_bytes_written,
        }
    }

    /// Bytes written per decoded frame.
    pub fn bytes_per_frame(&self) -> f64 {
        if self.frames_decoded == 0 {
            0.0
        } else {
            self.cpu_bytes_written as f64 / self.frames_decoded as f64
        }
    }
}

impl std::fmt::Display for DecodeSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "decode (CPU): {}: {} frames decoded, {} corrupt frames skipped, {:.0} bytes written per frame",
            self.what,
            self.frames_decoded,
            self.corrupt_frames_skipped,
            self.bytes_per_frame()
        )
    }
}

/// The source's own CPU write into its frames (the pattern paints each one): like the decode, one CPU write
/// per frame, counted as copied.
#[derive(Debug, Clone, Serialize)]
pub struct SourceWrite {
    /// What wrote, e.g. `the pattern`.
    pub what: String,
    pub frames: u64,
    pub cpu_bytes_written: u64,
}

impl SourceWrite {
    /// Bytes written per frame.
    pub fn bytes_per_frame(&self) -> f64 {
        if self.frames == 0 {
            0.0
        } else {
            self.cpu_bytes_written as f64 / self.frames as f64
        }
    }
}

impl std::fmt::Display for SourceWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "source (CPU): {} wrote {} frames, {:.0} bytes per frame",
            self.what,
            self.frames,
            self.bytes_per_frame()
        )
    }
}

/// The frames taken from the camera, and whose drops the gaps in their sequence numbers are: the device's
/// (it had no buffer queued, or skipped frames itself) or dmacam's own (taken, but passed over before the
/// display: the render stage converts only the newest frame waiting, and skips a frame while every output
/// buffer is held). The display's own drops (replaced before commit, discarded) are counted by the display.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Intake {
    pub frames_taken: u64,
    /// Gaps in the sequence numbers of the frames taken.
    pub dropped_by_device: u64,
    /// Frames taken and passed over by dmacam before the display.
    pub passed_over_by_dmacam: u64,
    #[serde(skip)]
    last_sequence: Option<u32>,
}

/// The frames missing between sequence numbers `last` and `next`: 0 when `next` does not come after `last` (a
/// repeat, or a sequence that went backwards).
pub(crate) fn frames_between(last: u32, next: u32) -> u64 {
    let gap = next.wrapping_sub(last).wrapping_sub(1);
    if gap < u32::MAX / 2 {
        u64::from(gap)
    } else {
        0
    }
}

impl Intake {
    /// Counts a frame taken from the camera, noting the gap before it.
    pub fn take(&mut self, sequence: u32) {
        self.frames_taken += 1;
        if let Some(last) = self.last_sequence {
            self.dropped_by_device += frames_between(last, sequence);
        }
        self.last_sequence = Some(sequence);
    }

    /// A new stream (after a reconnection) numbers its frames afresh.
    pub fn restart(&mut self) {
        self.last_sequence = None;
    }
}

impl std::fmt::Display for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "camera: {} frames taken, {} dropped by the device, {} passed over by dmacam (a newer frame was waiting, or every output buffer was held)",
            self.frames_taken, self.dropped_by_device, self.passed_over_by_dmacam
        )
    }
}

/// A summary for `--stats` and `--stats-json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The buffer path that was used (passthrough, gpu or shm).
    pub path: String,
    pub frames_submitted: u64,
    pub frames_shown: u64,
    /// Frames that never reached the screen: replaced before commit, discarded, or skipped by the producer.
    pub drops: u64,
    pub replaced: u64,
    pub discarded: u64,
    pub sequence_gaps: u64,
    /// Frames shown per second: between the first and the last shown, on CLOCK_MONOTONIC (Wayland: when each
    /// presentation event arrived; the null output: when each picture was let go).
    pub fps: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub latency_samples: usize,
    /// CPU bytes copied per committed frame (0 on the dma-buf paths).
    pub cpu_bytes_copied_per_frame: f64,
    pub cpu_bytes_copied_total: u64,
    pub cpu_copied_frames: u64,
    pub dmabuf_wl_buffers: u64,
    pub shm_wl_buffers: u64,
    /// Presentations stamped before the capture time; their latency is measured at the event's arrival.
    pub stamped_before_capture: u64,
    /// The CPU decode in front of the viewer, if the input is compressed (MJPEG).
    pub decode: Option<DecodeSummary>,
    /// The source's own CPU write, if the CPU makes the frames (the pattern).
    pub source_write: Option<SourceWrite>,
    /// The frames taken from the camera and whose drops the sequence gaps are (filled in by the application).
    pub intake: Option<Intake>,
}

/// A summary that counts the CPU writes in front of the display: each is one CPU write per frame and joins
/// the copied totals.
pub trait CpuWrites {
    /// Adds the decode stage (MJPEG): each shown frame was decoded once.
    fn add_decode(&mut self, decode: DecodeSummary);
    /// Adds the source's own CPU write (the pattern's painting).
    fn add_source_write(&mut self, write: SourceWrite);
}

impl CpuWrites for Summary {
    fn add_decode(&mut self, decode: DecodeSummary) {
        self.cpu_bytes_copied_total += decode.cpu_bytes_written;
        self.cpu_copied_frames += decode.frames_decoded;
        self.cpu_bytes_copied_per_frame += decode.bytes_per_frame();
        self.decode = Some(decode);
    }

    fn add_source_write(&mut self, write: SourceWrite) {
        self.cpu_bytes_copied_total += write.cpu_bytes_written;
        self.cpu_copied_frames += write.frames;
        self.cpu_bytes_copied_per_frame += write.bytes_per_frame();
        self.source_write = Some(write);
    }
}

impl Stats {
    /// A picture of the producer's frame `sequence` was handed over (gaps since the last count as drops).
    pub fn record_submitted(&mut self, sequence: u32) {
        self.submitted += 1;
        if let Some(last) = self.last_sequence {
            self.sequence_gaps += frames_between(last, sequence);
        }
        self.last_sequence = Some(sequence);
    }

    /// A picture was presented, as the client learnt at `when` (CLOCK_MONOTONIC), `latency` after its
    /// capture.
    pub fn record_presented(&mut self, when: Duration, latency: Option<Duration>) {
        self.presented += 1;
        self.first_present.get_or_insert(when);
        self.last_present = Some(when);
        if let Some(l) = latency {
            self.latencies.record(l);
        }
    }

    /// Latency percentile `p` (0..=100) in milliseconds, nearest-rank.
    pub fn latency_percentile_ms(&self, p: f64) -> Option<f64> {
        self.latencies.percentile_ms(p)
    }

    /// The summary, naming the path used.
    pub fn summary(&self, path: &str) -> Summary {
        let fps = match (self.first_present, self.last_present) {
            (Some(a), Some(b)) if b > a && self.presented > 1 => {
                Some((self.presented - 1) as f64 / (b - a).as_secs_f64())
            }
            _ => None,
        };
        Summary {
            path: path.to_owned(),
            frames_submitted: self.submitted,
            frames_shown: self.presented,
            drops: self.replaced + self.discarded + self.sequence_gaps,
            replaced: self.replaced,
            discarded: self.discarded,
            sequence_gaps: self.sequence_gaps,
            fps,
            latency_ms_p50: self.latency_percentile_ms(50.0),
            latency_ms_p95: self.latency_percentile_ms(95.0),
            latency_ms_p99: self.latency_percentile_ms(99.0),
            latency_samples: self.latencies.len(),
            cpu_bytes_copied_per_frame: if self.committed == 0 {
                0.0
            } else {
                self.cpu_bytes_copied as f64 / self.committed as f64
            },
            cpu_bytes_copied_total: self.cpu_bytes_copied,
            cpu_copied_frames: self.cpu_copied_frames,
            dmabuf_wl_buffers: self.dmabuf_wl_buffers,
            stamped_before_capture: self.stamped_before_capture,
            shm_wl_buffers: self.shm_wl_buffers,
            decode: None,
            source_write: None,
            intake: None,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1} ms"));
        writeln!(f, "path: {}", self.path)?;
        if let Some(d) = &self.decode {
            writeln!(f, "{d}")?;
        }
        if let Some(w) = &self.source_write {
            writeln!(f, "{w}")?;
        }
        if let Some(i) = &self.intake {
            writeln!(f, "{i}")?;
        }
        writeln!(
            f,
            "frames: {} submitted, {} shown, {} dropped ({} replaced before commit, {} discarded, {} skipped by the producer)",
            self.frames_submitted, self.frames_shown, self.drops, self.replaced, self.discarded, self.sequence_gaps
        )?;
        writeln!(
            f,
            "fps: {}",
            self.fps
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
        )?;
        writeln!(
            f,
            "latency (capture to presentation, {} samples): p50 {}, p95 {}, p99 {}",
            self.latency_samples,
            ms(self.latency_ms_p50),
            ms(self.latency_ms_p95),
            ms(self.latency_ms_p99)
        )?;
        write!(
            f,
            "CPU bytes copied per frame: {:.0} ({} bytes in {} frames); wl_buffers: {} dma-buf, {} shm",
            self.cpu_bytes_copied_per_frame,
            self.cpu_bytes_copied_total,
            self.cpu_copied_frames,
            self.dmabuf_wl_buffers,
            self.shm_wl_buffers
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intake_tells_device_gaps_from_a_new_stream() {
        let mut i = Intake::default();
        for seq in [10, 11, 15, 16] {
            i.take(seq);
        }
        assert_eq!((i.frames_taken, i.dropped_by_device), (4, 3));
        // After a reconnection the new stream starts again from 0: not a gap.
        i.restart();
        i.take(0);
        i.take(2);
        assert_eq!((i.frames_taken, i.dropped_by_device), (6, 4));
        // A sequence that goes backwards is not counted as billions of drops.
        i.take(1);
        assert_eq!(i.dropped_by_device, 4);
        let json = serde_json::to_value(&i).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"frames_taken": 7, "dropped_by_device": 4, "passed_over_by_dmacam": 0})
        );
    }

    #[test]
    fn percentiles_and_fps() {
        let mut s = Stats::default();
        for i in 1..=100u64 {
            s.record_presented(
                Duration::from_millis(i * 10),
                Some(Duration::from_millis(i)),
            );
        }
        s.committed = 100;
        assert_eq!(s.latency_percentile_ms(50.0), Some(50.0));
        assert_eq!(s.latency_percentile_ms(99.0), Some(99.0));
        let sum = s.summary("passthrough");
        assert!((sum.fps.unwrap() - 100.0).abs() < 1e-6);
        assert_eq!(sum.cpu_bytes_copied_per_frame, 0.0);
        assert!(sum.to_string().contains("p95 95.0 ms"));
    }
}
