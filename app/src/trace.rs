//! `--trace FILE`: one JSON line per frame, following its buffers through the pipeline: the camera's
//! dma-bufs (inode and exporter name of each plane, from fstat and /proc/self/fdinfo), the Vulkan import
//! and the dma-buf the GPU produced (gpu path), the wl_buffer or KMS framebuffer it went to and the inodes it
//! was created from,
//! timestamps (CLOCK_MONOTONIC ns) at dequeue, GPU done, submit, commit, presentation and release, the
//! process's CPU time at dequeue (so that per-frame CPU can be told from start-up), and the bytes the CPU
//! copied. The file is written to a temporary name and renamed into place when the run ends,
//! so a failed run leaves no half-written trace.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use dmacam_capture::monotonic_ns;
use dmacam_capture::Dmabuf;
use dmacam_display::{DisplayRecord, FrameTrace};
use serde::{Deserialize, Serialize};

/// One dma-buf, as the kernel names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufId {
    pub inode: u64,
    pub exp_name: String,
}

/// The identities of a dma-buf's planes (each distinct dma-buf once, in plane order).
pub fn identities(d: &Dmabuf) -> Vec<BufId> {
    let mut out: Vec<BufId> = Vec::new();
    for p in &d.planes {
        match dmacam_capture::dmabuf::identity(p.fd.as_fd()) {
            Ok(id) => {
                if !out.iter().any(|b| b.inode == id.inode) {
                    out.push(BufId {
                        inode: id.inode,
                        exp_name: id.exp_name,
                    });
                }
            }
            Err(e) => tracing::warn!("trace: cannot identify a plane's dma-buf: {e}"),
        }
    }
    out
}

/// The render stage's part of a frame.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GpuRecord {
    /// image-drm-modifier or storage-buffer.
    pub import_path: String,
    /// Inodes of the dma-bufs Vulkan imported for this camera buffer.
    pub import_inodes: Vec<u64>,
    /// The exported output dma-buf and its index in the output ring.
    pub output: Option<BufId>,
    pub output_index: usize,
    /// When the loop learnt the GPU was done, or, for an output handed over at submission with the GPU's
    /// fence, when it was handed over.
    pub t_done_ns: u64,
    /// How the loop learnt the GPU was done: `sync-file` (the submission's fence exported as a sync_file the
    /// loop polls, where the driver offers it), `waiter-thread` (else a thread waits for the fence and wakes
    /// the loop through an eventfd; either way the loop never blocks on the GPU; `view` and `dump` alike) or
    /// `cpu-wait` (the caller waited; traces written before `dump` ran on the loop).
    #[serde(default)]
    pub completion: String,
    /// How the display learnt that the output was written: `explicit` (handed over at once with the GPU's
    /// sync_file as its acquire fence: the compositor's explicit sync, KMS's IN_FENCE_FD), `implicit-attached`
    /// (handed over at once, the sync_file attached to the output dma-buf for an implicit-sync reader),
    /// `cpu-wait` (handed over only once the loop saw the GPU done, or the display waited for it on the
    /// CPU: the wl_shm copy, a legacy KMS flip), or `signalled` (handed over at once, the GPU having finished
    /// before its fence could be exported: nothing to wait for).
    #[serde(default)]
    pub display_sync: String,
    /// For an output handed over at submission (`explicit`, `implicit-attached`, `signalled`): whether the GPU was still
    /// at work on it then (its sync_file not yet signalled), i.e. whether the display really got a fence to
    /// wait on rather than a finished picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_busy_at_handover: Option<bool>,
}

impl GpuRecord {
    /// The record of camera buffer `camera_index` just processed by `renderer` into `out`.
    pub fn new(
        renderer: &dmacam_render::Renderer,
        camera_index: u32,
        out: &dmacam_render::OutputFrame,
    ) -> GpuRecord {
        GpuRecord {
            import_path: renderer
                .buffer_import_path(camera_index)
                .unwrap_or(renderer.import_path())
                .name()
                .to_owned(),
            import_inodes: renderer
                .import_inodes(camera_index)
                .map(<[u64]>::to_vec)
                .unwrap_or_default(),
            output: out.dmabuf().and_then(|d| identities(d).into_iter().next()),
            output_index: out.buffer_index(),
            t_done_ns: monotonic_ns(),
            completion: "waiter-thread".into(),
            display_sync: "cpu-wait".into(),
            gpu_busy_at_handover: None,
        }
    }
}

/// The display stage's part of a frame.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DisplayPart {
    pub kind: Option<String>,
    pub wl_buffer: Option<u32>,
    /// The KMS framebuffer id (`--output kms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_fb: Option<u32>,
    pub inodes: Vec<u64>,
    pub t_submit_ns: u64,
    pub t_commit_ns: Option<u64>,
    pub t_present_ns: Option<u64>,
    /// The latency the display stage counted for this frame (`t_present_ns` minus the capture time it was
    /// given), as it went into `--stats`' percentiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ns: Option<u64>,
    pub t_release_ns: Option<u64>,
    /// The compositor's wp_presentation_feedback flags for it (`zero_copy`: scanned out as is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presentation_flags: Vec<String>,
    pub presented: bool,
    pub discarded: bool,
    pub replaced: bool,
}

/// One line of the trace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FrameRecord {
    pub sequence: u32,
    /// What wrote the frame's pixels: `camera-export`, `camera-import`, `pattern`, `mjpeg-decode`, `served`
    /// ([`dmacam_capture::Origin`]).
    #[serde(default)]
    pub origin: String,
    pub v4l2_index: usize,
    pub camera: Vec<BufId>,
    pub t_dequeue_ns: u64,
    /// When the frame was captured (its buffer timestamp, CLOCK_MONOTONIC); none if the driver stamps
    /// another clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_capture_ns: Option<u64>,
    /// The process's CPU time (user+sys, every thread: the software GPU's too) at dequeue; the difference
    /// between two frames is what the frames in between cost, start-up excluded.
    #[serde(default)]
    pub cpu_dequeue_ns: u64,
    /// When the frame was submitted to the GPU (the gpu path's loop; its GPU part's `t_done_ns` is when the
    /// loop learnt it was done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_gpu_submit_ns: Option<u64>,
    pub gpu: Option<GpuRecord>,
    pub display: Option<DisplayPart>,
    /// Bytes written to the output file (`dump`).
    pub file_bytes: Option<u64>,
    /// Bytes the CPU read out of the frame's dma-buf (`dump`'s file writer reads every payload byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_bytes_read: Option<u64>,
    /// Bytes the CPU wrote into memory of its own for this frame: the MJPEG decode or the pattern into the
    /// frame's buffer, and `dump`'s repack, RGB conversion and file staging (0 on the zero-copy paths).
    pub cpu_bytes_copied: u64,
}

impl FrameRecord {
    /// A record for a frame just dequeued from the camera.
    pub fn dequeued(frame: &dmacam_capture::Frame) -> FrameRecord {
        FrameRecord {
            sequence: frame.sequence(),
            origin: frame.origin().as_str().to_owned(),
            v4l2_index: frame.index(),
            camera: identities(frame.dmabuf()),
            t_dequeue_ns: monotonic_ns(),
            t_capture_ns: frame.capture_time().map(|t| t.as_nanos() as u64),
            // The MJPEG decode into this frame's buffer, if any.
            cpu_bytes_copied: frame.cpu_bytes_copied(),
            cpu_dequeue_ns: process_cpu_ns(),
            ..Default::default()
        }
    }
}

impl FrameRecord {
    /// Adds what `dump`'s file writer did with the frame's bytes.
    pub fn touched_by_the_writer(&mut self, touch: crate::sink::CpuTouch) {
        self.file_bytes = Some(touch.file);
        self.cpu_bytes_read = Some(touch.read);
        self.cpu_bytes_copied += touch.written;
    }
}

/// CPU time used so far by the whole process (CLOCK_PROCESS_CPUTIME_ID: user+sys of every thread, the
/// exited ones included), in ns; 0 if the clock cannot be read.
pub fn process_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return 0;
    }
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

/// The trace file: lines are appended as frames finish; [`TraceFile::finish`] puts it in place.
pub struct TraceFile {
    path: PathBuf,
    tmp: PathBuf,
    out: Mutex<Option<BufWriter<File>>>,
    lines: std::sync::atomic::AtomicU64,
}

impl TraceFile {
    pub fn create(path: &Path) -> Result<Arc<TraceFile>> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            bail!(
                "--trace {}: directory {} does not exist",
                path.display(),
                dir.display()
            );
        }
        let name = path
            .file_name()
            .with_context(|| format!("--trace {}: not a file name", path.display()))?;
        let tmp = dir.join(format!(
            ".{}.{}.partial",
            name.to_string_lossy(),
            std::process::id()
        ));
        let f = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(Arc::new(TraceFile {
            path: path.to_path_buf(),
            tmp,
            out: Mutex::new(Some(BufWriter::new(f))),
            lines: Default::default(),
        }))
    }

    /// Appends one record (errors are logged once the file is finished, not per frame).
    pub fn write(&self, rec: &FrameRecord) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = out.as_mut() {
            let ok = serde_json::to_writer(&mut *w, rec).is_ok() && w.write_all(b"\n").is_ok();
            if ok {
                self.lines
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                tracing::warn!("cannot write to {}", self.tmp.display());
            }
        }
    }

    /// Flushes the trace and renames it into place; returns the number of frames traced.
    pub fn finish(&self) -> Result<u64> {
        let w = self
            .out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .context("the trace was already finished")?;
        let f = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", self.tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("cannot write {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        Ok(self.lines.load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl Drop for TraceFile {
    fn drop(&mut self) {
        // Not finished: the run failed; leave nothing behind.
        if self
            .out
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some()
        {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// What `view` attaches to a frame it hands to the display: the record so far, and the display's trace
/// object whose completion writes the line.
pub struct ViewTrace {
    pub display: Arc<FrameTrace>,
    release: Arc<Mutex<Option<u64>>>,
}

impl ViewTrace {
    /// Starts the display part of `rec`; the line is written to `file` when the display is done with it.
    pub fn start(file: &Arc<TraceFile>, mut rec: FrameRecord) -> ViewTrace {
        let release = Arc::new(Mutex::new(None));
        let (file, rel) = (file.clone(), release.clone());
        let submitted = monotonic_ns();
        let display = FrameTrace::new(move |d: &DisplayRecord| {
            rec.cpu_bytes_copied += d.cpu_bytes_copied;
            // What the display did with the GPU's fence, in its own words, where it said.
            if let (Some(g), Some(sync)) = (rec.gpu.as_mut(), d.sync) {
                g.display_sync = sync.to_owned();
            }
            rec.display = Some(DisplayPart {
                kind: d.kind.map(str::to_owned),
                wl_buffer: d.wl_buffer,
                kms_fb: d.kms_fb,
                inodes: d.inodes.clone(),
                t_submit_ns: submitted,
                t_commit_ns: d.committed_ns,
                t_present_ns: d.presented_ns,
                latency_ns: d.latency_ns,
                t_release_ns: *rel.lock().unwrap_or_else(|e| e.into_inner()),
                presentation_flags: d
                    .presentation_flags
                    .iter()
                    .map(|f| (*f).to_owned())
                    .collect(),
                presented: d.presented_ns.is_some(),
                discarded: d.discarded,
                replaced: d.replaced,
            });
            file.write(&rec);
        });
        ViewTrace { display, release }
    }

    /// Wraps the producer's holder so its release time is recorded when the compositor lets it go.
    pub fn holder(&self, inner: Box<dyn std::any::Any + Send>) -> Box<dyn std::any::Any + Send> {
        Box::new(ReleaseStamp {
            _inner: inner,
            release: self.release.clone(),
            _display: self.display.clone(),
        })
    }
}

/// Holds the producer's buffer; stamps the release time when dropped (then the buffer goes back).
struct ReleaseStamp {
    _inner: Box<dyn std::any::Any + Send>,
    release: Arc<Mutex<Option<u64>>>,
    /// Keeps the record open until the release: the line is written after it.
    _display: Arc<FrameTrace>,
}

impl Drop for ReleaseStamp {
    fn drop(&mut self) {
        *self.release.lock().unwrap_or_else(|e| e.into_inner()) = Some(monotonic_ns());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_cpu_ns() -> u64 {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid, writable timespec for the duration of the call.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        assert_eq!(rc, 0);
        (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
    }

    #[test]
    fn process_cpu_time_counts_work_on_other_threads() {
        let before = process_cpu_ns();
        assert!(before > 0);
        // Busy work on another thread (as lavapipe's workers do) until that thread alone has used 50 ms.
        std::thread::spawn(|| {
            let mut x = 0u64;
            while thread_cpu_ns() < 50_000_000 {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
        })
        .join()
        .unwrap();
        let spent = process_cpu_ns() - before;
        assert!(spent >= 50_000_000, "only {spent} ns of CPU counted");
    }

    #[test]
    fn cpu_stamp_is_in_the_line_and_optional_when_read() {
        let rec = FrameRecord {
            sequence: 3,
            t_dequeue_ns: 10,
            cpu_dequeue_ns: 1234,
            ..Default::default()
        };
        let line = serde_json::to_string(&rec).unwrap();
        assert!(line.contains("\"cpu_dequeue_ns\":1234"), "{line}");
        // Traces written before the field existed still read.
        let old: FrameRecord =
            serde_json::from_str(&line.replace(",\"cpu_dequeue_ns\":1234", "")).unwrap();
        assert_eq!((old.sequence, old.cpu_dequeue_ns), (3, 0));
    }
}
