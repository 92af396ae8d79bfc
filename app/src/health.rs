//! `--health FILE` (hidden; for soak runs, `tests/suite/soak.rs`): every N frames one JSON line with the
//! process's open fds, its resident memory and the render stage's import counts, so that a long run shows
//! they stay constant. Each line is flushed as it is written: a run that dies still leaves its samples.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dmacam_render::Renderer;
use serde::Serialize;

/// One sample.
#[derive(Serialize)]
struct Sample {
    frames: u64,
    fds: usize,
    rss_kib: u64,
    /// The parts of `rss_kib`: anonymous memory, mapped files, shared memory (memfds, dma-bufs over shmem).
    anon_kib: u64,
    file_kib: u64,
    shmem_kib: u64,
    /// Anonymous memory in transparent huge pages (/proc/self/smaps_rollup): khugepaged collapsing partly
    /// used 2 MiB ranges into huge pages raises `anon_kib` without the program touching anything.
    anon_huge_kib: u64,
    imports: Option<u64>,
    memory_imports: Option<u64>,
}

/// The health log of a run.
pub struct Health {
    path: PathBuf,
    out: BufWriter<File>,
    every: u64,
    /// The frame count at which the next sample is due.
    next: u64,
}

impl Health {
    /// A log at `path` sampled every `every` frames (at least 1).
    pub fn create(path: &Path, every: u64) -> Result<Health> {
        let f = File::create(path)
            .with_context(|| format!("--health: cannot create {}", path.display()))?;
        Ok(Health {
            path: path.to_path_buf(),
            out: BufWriter::new(f),
            every: every.max(1),
            next: every.max(1),
        })
    }

    /// Called with the frames so far, after each frame or batch of frames: writes a sample each time the count
    /// reaches or passes a multiple of `every`.
    pub fn tick(&mut self, frames: u64, renderer: Option<&Renderer>) {
        if frames < self.next {
            return;
        }
        self.next = (frames / self.every + 1) * self.every;
        let stats = renderer.map(Renderer::stats);
        let sample = Sample {
            frames,
            fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
            rss_kib: status_kib("VmRSS:").unwrap_or(0),
            anon_kib: status_kib("RssAnon:").unwrap_or(0),
            file_kib: status_kib("RssFile:").unwrap_or(0),
            shmem_kib: status_kib("RssShmem:").unwrap_or(0),
            anon_huge_kib: kib_field("/proc/self/smaps_rollup", "AnonHugePages:").unwrap_or(0),
            imports: stats.map(|s| s.imports),
            memory_imports: stats.map(|s| s.memory_imports),
        };
        let ok = serde_json::to_writer(&mut self.out, &sample).is_ok()
            && self.out.write_all(b"\n").is_ok()
            && self.out.flush().is_ok();
        if !ok {
            tracing::warn!("--health: cannot write to {}", self.path.display());
        }
    }
}

/// A `kB` field of /proc/self/status (`VmRSS:`, `RssAnon:`...).
fn status_kib(field: &str) -> Option<u64> {
    kib_field("/proc/self/status", field)
}

/// A `kB` field of a /proc file of `Name: value kB` lines.
fn kib_field(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
