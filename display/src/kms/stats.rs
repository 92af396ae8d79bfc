//! What the KMS output measured: frames, drops, capture-to-flip latency, CPU bytes copied (none: frames are
//! imported, never mapped) and the kernel objects made.

use std::time::Duration;

use serde::Serialize;

use crate::stats::Latencies;

/// Counters of one scanout, updated as frames flow.
#[derive(Debug, Default, Clone)]
pub struct KmsStats {
    /// Frames handed to the scanout.
    pub submitted: u64,
    /// Frames committed (atomic commit or page flip).
    pub committed: u64,
    /// Flips completed with a new frame (page-flip events).
    pub shown: u64,
    /// Frames replaced by a newer one while waiting for a flip.
    pub replaced: u64,
    /// Frames the producer skipped (gaps in the sequence numbers).
    pub sequence_gaps: u64,
    /// Bytes the CPU copied out of frames. The KMS path has no copy; this stays 0 and is reported so.
    pub cpu_bytes_copied: u64,
    /// Flips whose event timestamp preceded the frame's capture timestamp (the driver stamps the ideal
    /// vblank time); their latency was taken at event reception instead.
    pub flip_stamped_before_capture: u64,
    latencies: Latencies,
    first_flip: Option<Duration>,
    last_flip: Option<Duration>,
    last_sequence: Option<u32>,
}

/// A summary for `--stats` and `--stats-json`.
#[derive(Debug, Clone, Serialize)]
pub struct KmsSummary {
    pub path: String,
    pub card: String,
    pub connector: String,
    pub mode: String,
    pub plane: String,
    pub placement: String,
    pub atomic: bool,
    pub frames_submitted: u64,
    pub frames_committed: u64,
    pub frames_shown: u64,
    /// Frames that never reached the screen: replaced while a flip was pending, or skipped by the producer.
    pub drops: u64,
    pub replaced: u64,
    pub sequence_gaps: u64,
    /// Flips per second, from the page-flip event timestamps.
    pub fps: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub latency_samples: usize,
    /// Flips whose latency was measured at event reception (see [`KmsStats::flip_stamped_before_capture`]).
    pub flips_stamped_before_capture: u64,
    pub cpu_bytes_copied_per_frame: f64,
    pub cpu_bytes_copied_total: u64,
    /// PRIME imports made (one per distinct dma-buf fd).
    pub prime_imports: u64,
    /// Framebuffers added (one per distinct buffer).
    pub framebuffers_added: u64,
    /// The CPU decode in front of the scanout, if the input is compressed (MJPEG).
    pub decode: Option<crate::stats::DecodeSummary>,
    /// The source's own CPU write, if the CPU makes the frames (the pattern).
    pub source_write: Option<crate::stats::SourceWrite>,
    /// The frames taken from the camera and whose drops the sequence gaps are (filled in by the application).
    pub intake: Option<crate::stats::Intake>,
}

impl crate::stats::CpuWrites for KmsSummary {
    fn add_decode(&mut self, decode: crate::stats::DecodeSummary) {
        self.cpu_bytes_copied_total += decode.cpu_bytes_written;
        self.cpu_bytes_copied_per_frame += decode.bytes_per_frame();
        self.decode = Some(decode);
    }

    fn add_source_write(&mut self, write: crate::stats::SourceWrite) {
        self.cpu_bytes_copied_total += write.cpu_bytes_written;
        self.cpu_bytes_copied_per_frame += write.bytes_per_frame();
        self.source_write = Some(write);
    }
}

impl KmsStats {
    /// Counts a frame handed over, noting gaps in the producer's sequence.
    pub(crate) fn record_submitted(&mut self, sequence: Option<u32>) {
        self.submitted += 1;
        if let Some(seq) = sequence {
            if let Some(last) = self.last_sequence {
                self.sequence_gaps += crate::stats::frames_between(last, seq);
            }
            self.last_sequence = Some(seq);
        }
    }

    /// Counts a completed flip at `when` (CLOCK_MONOTONIC) with the frame's capture-to-flip latency.
    pub(crate) fn record_shown(&mut self, when: Duration, latency: Option<Duration>) {
        self.shown += 1;
        self.first_flip.get_or_insert(when);
        self.last_flip = Some(when);
        if let Some(l) = latency {
            self.latencies.record(l);
        }
    }

    /// Latency percentile `p` (0..=100) in milliseconds, nearest rank.
    pub fn latency_percentile_ms(&self, p: f64) -> Option<f64> {
        self.latencies.percentile_ms(p)
    }

    /// Flips per second between the first and last flip.
    pub fn fps(&self) -> Option<f64> {
        match (self.first_flip, self.last_flip) {
            (Some(a), Some(b)) if b > a && self.shown > 1 => {
                Some((self.shown - 1) as f64 / (b - a).as_secs_f64())
            }
            _ => None,
        }
    }

    pub(crate) fn latency_samples(&self) -> usize {
        self.latencies.len()
    }
}

impl std::fmt::Display for KmsSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1} ms"));
        writeln!(
            f,
            "output: kms {} {} {}, {} plane, {} ({})",
            self.card,
            self.connector,
            self.mode,
            self.plane,
            self.placement,
            if self.atomic { "atomic" } else { "legacy" }
        )?;
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
            "frames: {} submitted, {} shown, {} dropped ({} replaced while a flip was pending, {} skipped by the producer)",
            self.frames_submitted, self.frames_shown, self.drops, self.replaced, self.sequence_gaps
        )?;
        writeln!(
            f,
            "fps: {}",
            self.fps
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
        )?;
        writeln!(
            f,
            "latency (capture to page flip, {} samples, {} taken at event reception): p50 {}, p95 {}, p99 {}",
            self.latency_samples,
            self.flips_stamped_before_capture,
            ms(self.latency_ms_p50),
            ms(self.latency_ms_p95),
            ms(self.latency_ms_p99)
        )?;
        write!(
            f,
            "CPU bytes copied per frame: {:.0} ({} in total); PRIME imports: {}, framebuffers: {}",
            self.cpu_bytes_copied_per_frame,
            self.cpu_bytes_copied_total,
            self.prime_imports,
            self.framebuffers_added
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_percentiles_and_fps() {
        let mut s = KmsStats::default();
        for seq in [0u32, 1, 2, 5, 6] {
            s.record_submitted(Some(seq));
        }
        assert_eq!(s.sequence_gaps, 2);
        for i in 1..=100u64 {
            s.record_shown(
                Duration::from_millis(i * 10),
                Some(Duration::from_millis(i)),
            );
        }
        assert_eq!(s.latency_percentile_ms(50.0), Some(50.0));
        assert_eq!(s.latency_percentile_ms(95.0), Some(95.0));
        assert_eq!(s.latency_percentile_ms(99.0), Some(99.0));
        assert!((s.fps().unwrap() - 100.0).abs() < 1e-6);
    }
}
