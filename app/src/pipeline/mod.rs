//! The one streaming loop every output runs (`view` on Wayland, KMS or null, `dump`'s files, `check`'s
//! driver run, `serve`'s socket and PipeWire node): poll the sink's fd together with the source's, take each
//! frame (counted by the [`Intake`]), pass over frames the driver
//! flagged corrupt, run the render stage when the path has one (newest frame wins for a display, every frame
//! for files: the [`Policy`]; then convert), attach the trace record, hand the [`Picture`] to the [`Sink`],
//! act on keys, and stop on `--frames`, `--until-shown`, `--duration`, a signal or the user's close; around
//! it, [`run`] reconnects a camera that went away.
//!
//! A new output is a [`Sink`] (and, if `view` sets it up, an [`Output`]): see `null.rs`, the smallest.

pub mod file;
pub mod kms;
pub mod null;
pub mod pipewire;
pub mod share;
pub mod sink;
pub mod wayland;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use dmacam_capture::stream::StreamError;
use dmacam_capture::{IoMode, Source};
use dmacam_display::Intake;
use dmacam_render::ProcessSpec;

use crate::capture_opts::CaptureOpts;
use crate::gpu::GpuStage;
use crate::trace::{FrameRecord, TraceFile};
pub use sink::{Acquire, Output, Picture, Sink, Start};

/// How long the loop waits for the sink and the source at a time.
const POLL: Duration = Duration::from_millis(100);

/// At the end, how long pictures still on their way may take to be presented.
const FINISHING: Duration = Duration::from_secs(1);

/// When a run is done (whichever comes first); a signal or the user's close ends it too.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stop {
    /// Frames taken from the source (`view --frames`).
    pub taken: Option<u64>,
    /// Pictures the sink presented (`view --until-shown`, `kms-view --frames`).
    pub shown: Option<u64>,
    /// Seconds since the start.
    pub duration: Option<f64>,
    /// Frames taken that the driver did not flag corrupt (`dump --frames`: with [`Policy::Every`], each is
    /// written).
    pub accepted: Option<u64>,
}

/// What the loop does with frames that come faster than the sink takes them, and with corrupt ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Policy {
    /// For a display: the render stage converts the newest frame waiting (older ones go straight back,
    /// counted as passed over); a frame the driver flagged corrupt is passed over with a warning.
    #[default]
    Newest,
    /// For files: every frame taken is converted and handed over, in order (the sink is always ready); a
    /// corrupt frame is counted ([`Progress::corrupt`]) and `give_up` of them in a row end the run.
    Every { give_up: u32 },
}

/// What the loop runs with.
pub struct Loop<'a> {
    /// The command's name in the lines said on stderr (`view`, `kms`).
    pub who: &'static str,
    /// The source's node, for messages and to open it again.
    pub dev: &'a Path,
    /// `-d`, `--set`, `--timeout`: to reopen the source after a disconnect, and the stall timeout.
    pub capture: &'a CaptureOpts,
    pub io: IoMode,
    /// Buffers of the source.
    pub buffers: u32,
    /// `--reconnect`.
    pub reconnect: bool,
    pub stop: Stop,
    pub trace: Option<&'a Arc<TraceFile>>,
    /// Keys acted on as if pressed once the first picture is submitted (`view --keys`).
    pub keys: Option<String>,
    pub policy: Policy,
}

impl<'a> Loop<'a> {
    /// A run that hands over every frame in order ([`Policy::Every`], `give_up` corrupt frames in a row end
    /// it) until `stop`: files, `check`'s driver run, `serve`. No reconnection, keys or trace (set `trace`
    /// after, if any).
    pub fn every(
        who: &'static str,
        dev: &'a Path,
        capture: &'a CaptureOpts,
        io: IoMode,
        buffers: u32,
        stop: Stop,
        give_up: u32,
    ) -> Loop<'a> {
        Loop {
            who,
            dev,
            capture,
            io,
            buffers,
            reconnect: false,
            stop,
            trace: None,
            keys: None,
            policy: Policy::Every { give_up },
        }
    }
}

/// How far the run has got, across reconnections.
pub struct Progress {
    pub start: Instant,
    /// Frames taken from the source, and whose drops the gaps are.
    pub intake: Intake,
    /// `--health`.
    pub health: Option<crate::health::Health>,
    /// Frames taken that the driver did not flag corrupt.
    pub accepted: u64,
    /// Frames the driver flagged corrupt (V4L2_BUF_FLAG_ERROR), and how many of the last ones in a row.
    pub corrupt: u64,
    corrupt_in_a_row: u32,
}

impl Progress {
    pub fn new(health: Option<crate::health::Health>) -> Progress {
        Progress {
            start: Instant::now(),
            intake: Intake::default(),
            health,
            accepted: 0,
            corrupt: 0,
            corrupt_in_a_row: 0,
        }
    }

    fn tick(&mut self, gpu: Option<&GpuStage>) {
        if let Some(h) = self.health.as_mut() {
            h.tick(self.intake.frames_taken, gpu.map(|g| &g.renderer));
        }
    }
}

/// Streams `stream` into `sink` until a stop rule says so, reconnecting the source when it goes away (with
/// `--reconnect`) while the sink keeps its last picture. Returns how the streaming ended and the source, if
/// it is still there; an error in reconnecting is returned as such.
pub fn run(
    sink: &mut dyn Sink,
    mut stream: Source,
    gpu: &mut Option<GpuStage>,
    cfg: &Loop<'_>,
    progress: &mut Progress,
) -> Result<(Result<()>, Option<Source>)> {
    loop {
        let r = stream_loop(sink, &mut stream, gpu, cfg, progress);
        if !(crate::reconnect::is_disconnect(&r) && cfg.reconnect) {
            return Ok((r, Some(stream)));
        }
        crate::reconnect::say_waiting(cfg.who, cfg.dev);
        // Every frame of the old stream goes back (those on the GPU once it is done with them); the sink
        // keeps showing the last one.
        if let Some(g) = gpu.as_mut() {
            g.drain();
        }
        sink.release_frames()?;
        // Keeps the sink serviced (a window responsive, page flips read) while waiting.
        let service = |wait| {
            sink.wait(&[], wait)?;
            Ok(!sink.close_requested())
        };
        let reopened = crate::reconnect::reopen(
            cfg.capture,
            cfg.dev,
            cfg.io,
            cfg.buffers,
            stream,
            gpu,
            service,
        )?;
        stream = match reopened {
            Some(s) => s,
            None => return Ok((Ok(()), None)),
        };
        progress.intake.restart();
        crate::reconnect::say_back(cfg.who, cfg.dev);
    }
}

/// Whether a stop rule is met.
fn done(cfg: &Loop<'_>, progress: &Progress, sink: &dyn Sink) -> bool {
    let s = &cfg.stop;
    s.taken.is_some_and(|n| progress.intake.frames_taken >= n)
        || s.shown.is_some_and(|n| sink.shown() >= n)
        || s.duration
            .is_some_and(|d| progress.start.elapsed().as_secs_f64() >= d)
        || s.accepted.is_some_and(|n| progress.accepted >= n)
}

fn stream_loop(
    sink: &mut dyn Sink,
    stream: &mut Source,
    gpu: &mut Option<GpuStage>,
    cfg: &Loop<'_>,
    progress: &mut Progress,
) -> Result<()> {
    let dev = cfg.dev;
    let trace = cfg.trace;
    let stall = Duration::from_secs(cfg.capture.timeout.max(1));
    let mut last_frame = Instant::now();
    let mut finishing: Option<Instant> = None;
    let mut scripted_keys = cfg.keys.clone();
    let buffers = stream.buffer_count();
    let forced_sync = Acquire::forced();
    loop {
        if crate::signals::stop_requested() {
            tracing::info!("signal received: stopping");
            return Ok(());
        }
        if sink.close_requested() {
            if let Some(why) = sink.close_reason() {
                eprintln!("dmacam {}: {why}: stopping", cfg.who);
            }
            return Ok(());
        }
        if done(cfg, progress, sink) {
            // Conversions started before the stop rule was met are shown, as they would have been had the
            // loop waited for each (a signal or the user's close ends the run without them).
            if let Some(g) = gpu.as_mut().filter(|g| g.busy()) {
                let ready = sink.wait(g.completion_fd().as_slice(), POLL)?;
                if ready.first().copied().unwrap_or(false) {
                    show_converted(sink, g, dev, trace)?;
                }
                continue;
            }
            // Let the last pictures reach the screen (their presentation feedback), for a moment at most.
            let t = *finishing.get_or_insert_with(Instant::now);
            if !sink.in_flight() || t.elapsed() > FINISHING {
                return Ok(());
            }
            sink.wait(&[], Duration::from_millis(20))?;
            continue;
        }
        // Ask the source only while it has a buffer the sink does not hold and the render stage (if any) has
        // room for another conversion; listen for conversions finishing while any is in flight.
        let want_source = sink.held() < buffers && gpu.as_ref().is_none_or(GpuStage::has_room);
        let (source_ready, gpu_ready) = {
            let gpu_fd = gpu.as_ref().and_then(GpuStage::completion_fd);
            let fds: Vec<_> = want_source
                .then(|| stream.fd())
                .into_iter()
                .chain(gpu_fd)
                .collect();
            let ready = sink.wait(&fds, POLL)?;
            let at = |i: usize| ready.get(i).copied().unwrap_or(false);
            match (want_source, gpu_fd.is_some()) {
                (true, true) => (at(0), at(1)),
                (true, false) => (at(0), false),
                (false, true) => (false, at(0)),
                (false, false) => (false, false),
            }
        };
        if gpu_ready {
            let g = gpu.as_mut().expect("a completion fd means a render stage");
            show_converted(sink, g, dev, trace)?;
        }
        if !source_ready {
            if want_source && last_frame.elapsed() > stall {
                return Err(StreamError::Timeout {
                    path: dev.to_path_buf(),
                    timeout: stall,
                }
                .into());
            }
            if !want_source {
                // Not asking is not a stall.
                last_frame = Instant::now();
            }
            continue;
        }
        let frame = match stream.next_frame(Duration::ZERO) {
            Ok(f) => f,
            Err(StreamError::Timeout { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        last_frame = Instant::now();
        progress.intake.take(frame.sequence());
        progress.tick(gpu.as_ref());
        if frame.is_error() {
            let sequence = frame.sequence();
            sink.corrupt(frame);
            corrupt(cfg, progress, sequence)?;
            continue;
        }
        progress.corrupt_in_a_row = 0;
        progress.accepted += 1;
        if gpu.is_none() {
            if let Some(why) = sink.refused() {
                // The sink refused the camera's dma-bufs: the next path is the render stage's.
                let stage = GpuStage::new(stream.format(), ProcessSpec::default());
                sink.fell_back(&why, stage.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                *gpu = stage.ok();
            }
        }
        let mut record = trace.map(|_| FrameRecord::dequeued(&frame));
        match gpu.as_mut() {
            None => {
                let (dmabuf, sequence, timestamp) = (
                    frame.dmabuf().clone(),
                    frame.sequence(),
                    frame.capture_time(),
                );
                show(
                    sink,
                    trace,
                    record,
                    dmabuf,
                    sequence,
                    timestamp,
                    Box::new(frame),
                )?;
            }
            Some(g) => {
                // The newest frame waiting is converted (a display's policy; files take every frame); the
                // picture it gives is handed over with that frame's own sequence and capture time: at once
                // with the GPU's fence where the sink takes that, else when the GPU is done.
                let frame = match cfg.policy {
                    Policy::Newest => {
                        let f =
                            g.newest(frame, stream, trace, &mut record, &mut progress.intake)?;
                        progress.tick(Some(g));
                        f
                    }
                    Policy::Every { .. } => frame,
                };
                if matches!(forced_sync, Some(Some(_))) {
                    g.force_fences();
                }
                let acquire = forced_sync.unwrap_or_else(|| sink.acquire());
                if let Some(c) =
                    g.start(frame, dev, trace, record, &mut progress.intake, acquire)?
                {
                    show_one(sink, c, trace)?;
                }
            }
        }
        for key in scripted_keys.take().unwrap_or_default().chars() {
            step_control(stream, key);
        }
        for key in sink.take_keys() {
            step_control(stream, key);
        }
    }
}

/// Counts a frame the driver flagged corrupt (V4L2_BUF_FLAG_ERROR): it is not handed over; files give up
/// after [`Policy::Every`]'s `give_up` in a row.
fn corrupt(cfg: &Loop<'_>, progress: &mut Progress, sequence: u32) -> Result<()> {
    progress.corrupt += 1;
    progress.corrupt_in_a_row += 1;
    match cfg.policy {
        Policy::Newest => tracing::warn!(
            "{}: frame {sequence} flagged corrupt by the driver; not shown",
            cfg.dev.display()
        ),
        Policy::Every { give_up } => {
            tracing::debug!(sequence, "V4L2_BUF_FLAG_ERROR: frame skipped");
            if progress.corrupt_in_a_row >= give_up {
                bail!(
                    "{}: {} frames in a row came back with V4L2_BUF_FLAG_ERROR (the driver reports corrupt data)",
                    cfg.dev.display(),
                    progress.corrupt_in_a_row
                );
            }
        }
    }
    Ok(())
}

/// Hands one picture to the sink: `dmabuf`, with the sequence and capture time of the frame it comes from,
/// kept alive by `holder` (the camera frame, or the render stage's output) and traced with `record`.
fn show(
    sink: &mut dyn Sink,
    trace: Option<&Arc<TraceFile>>,
    record: Option<FrameRecord>,
    dmabuf: dmacam_capture::Dmabuf,
    sequence: u32,
    timestamp: Option<Duration>,
    holder: Box<dyn std::any::Any + Send>,
) -> Result<()> {
    sink.deliver(
        Picture::new(dmabuf, sequence, timestamp, holder),
        trace.zip(record),
    )
}

/// Shows every conversion of `gpu` that has finished, in order.
fn show_converted(
    sink: &mut dyn Sink,
    gpu: &mut GpuStage,
    dev: &Path,
    trace: Option<&Arc<TraceFile>>,
) -> Result<()> {
    for c in gpu.finished(dev)? {
        show_one(sink, c, trace)?;
    }
    Ok(())
}

/// Hands one conversion to the sink: its output dma-buf (with its fences, if the GPU is still writing it),
/// or, kept in host memory, to a CPU reader.
fn show_one(
    sink: &mut dyn Sink,
    c: crate::gpu::Converted,
    trace: Option<&Arc<TraceFile>>,
) -> Result<()> {
    let Some(dmabuf) = c.dmabuf else {
        // Kept in host memory (the driver cannot export): only a CPU reader takes it.
        return sink.deliver_host(c.out, c.sequence, trace.zip(c.record));
    };
    let picture = Picture {
        dmabuf,
        sequence: c.sequence,
        timestamp: c.timestamp,
        holder: Some(Box::new(c.out)),
        trace: None,
        fences: c.fences,
    };
    sink.deliver(picture, trace.zip(c.record))
}

/// Keys that step a camera control: lower case steps down, upper case up.
pub const CONTROL_KEYS: [(char, &str, i64); 4] = [
    ('b', "brightness", -1),
    ('B', "brightness", 1),
    ('c', "contrast", -1),
    ('C', "contrast", 1),
];

/// Steps the control `key` is bound to (see [`CONTROL_KEYS`]) by a sixteenth of its range, and says so.
fn step_control(stream: &Source, key: char) {
    let Some(&(_, name, dir)) = CONTROL_KEYS.iter().find(|(k, ..)| *k == key) else {
        return;
    };
    // The camera's own device, behind the MJPEG decoder too.
    let Some(dev) = stream.device() else {
        eprintln!(
            "dmacam view: {} has no {name} control",
            stream.path().display()
        );
        return;
    };
    let stepped = || -> Result<i64, dmacam_capture::ControlError> {
        let c = dev.control(name)?;
        let now = i64::from(dev.get_control(&c)?);
        let unit = (c.step as i64).max(1);
        let step = ((c.maximum - c.minimum) / 16 / unit).max(1) * unit;
        let value = (now + dir * step).clamp(c.minimum, c.maximum);
        dev.set_control(&c, value as i32)?;
        Ok(value)
    };
    match stepped() {
        Ok(v) => eprintln!("dmacam view: {name} {v}"),
        Err(e) => eprintln!("dmacam view: {e}"),
    }
}
