//! `dmacam serve`: owns the camera and shares its buffers with consumers over a Unix socket (by fd, no copy).
//! Consumers are the other commands with `--from SOCKET`. Protocol and safety rules: `dmacam_capture::share`.
//! With `--pipewire` it publishes the camera as a PipeWire video source node instead
//! (`dmacam_capture::pipewire::PwProducer`), which every PipeWire application can take. Either runs the one
//! loop (`crate::pipeline`) into its sink: `pipeline/share.rs`, `pipeline/pipewire.rs`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use dmacam_capture::format::{parse_fourcc, Fraction};
use dmacam_capture::pipewire::{ProducerOptions, PwProducer};
use dmacam_capture::{ServeOptions, Server, Source, StreamOptions};

use crate::capture_opts::{negotiate, open, CaptureOpts};
use crate::pipeline::pipewire::PipeWireSink;
use crate::pipeline::share::ShareSink;
use crate::pipeline::{self, Progress, Sink, Stop};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub capture: CaptureOpts,
    /// Pixel format (fourcc such as YUYV, NV12, or NV12M for the multi-planar NM12).
    #[arg(long = "format", value_name = "FOURCC")]
    pub format_arg: Option<String>,
    /// Where to listen (a Unix socket path; created mode 0600).
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "pipewire",
        conflicts_with = "pipewire"
    )]
    pub socket: Option<PathBuf>,
    /// Publish the camera as a PipeWire video source node (its buffers handed over as dma-bufs) instead of
    /// on a socket.
    #[arg(long)]
    pub pipewire: bool,
    /// The PipeWire node's name (what consumers target: `-d pipewire:NAME`, `pipewiresrc target-object=NAME`).
    #[arg(
        long,
        default_value = "dmacam",
        value_name = "NAME",
        requires = "pipewire"
    )]
    pub pipewire_name: String,
    /// Create the socket mode 0660 and accept consumers of the server's group too (default: its uid only).
    #[arg(long)]
    pub allow_group: bool,
    /// Seconds a consumer may hold a frame before it is dropped (the camera never waits longer).
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub max_hold: f64,
    /// Most consumers at once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub max_clients: usize,
    /// Start the camera only once N consumers are connected (waits up to --timeout seconds), so that they
    /// all get the same frames from the first one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub wait_clients: usize,
    /// Stop after serving N frames (default: until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// Camera buffers (consumers holding frames keep them from the camera; more buffers give slack).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub buffers: u32,
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(socket) = &args.capture.from {
        bail!(
            "serve --from {}: a server serves a device or the pattern (-d), not another server's socket",
            socket.display()
        );
    }
    if !(args.max_hold.is_finite() && args.max_hold > 0.0 && args.max_hold <= 3600.0) {
        bail!(
            "--max-hold {}: give the seconds a consumer may hold a frame, above 0 and at most 3600",
            args.max_hold
        );
    }
    if !(2..=32).contains(&args.buffers) {
        bail!("--buffers {}: give 2 to 32 buffers", args.buffers);
    }
    if args.max_clients == 0 {
        bail!("--max-clients must be at least 1");
    }
    let fourcc = args
        .format_arg
        .as_deref()
        .map(parse_fourcc)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--format: {e}"))?;
    if args.pipewire_name.trim().is_empty() {
        bail!("--pipewire-name: give the node a name, e.g. dmacam");
    }
    crate::signals::install()?;
    let input = open(&args.capture)?;
    let (format, interval) = negotiate(&input, fourcc, &args.capture)?;
    let mut source = Source::new(
        input,
        format,
        &StreamOptions {
            buffers: args.buffers,
            io: args.capture.io()?,
        },
    )?;
    let Some(socket) = args.socket.clone() else {
        return publish(&args, source, interval);
    };
    let mut server = Server::new(
        &source,
        ServeOptions {
            socket: socket.clone(),
            allow_group: args.allow_group,
            max_hold: Duration::from_secs_f64(args.max_hold),
            max_clients: args.max_clients,
        },
    )?;
    server.set_interval(interval.numerator, interval.denominator);
    eprintln!(
        "dmacam serve: {} {} ({} buffers, {}) at {} (mode {})",
        source.path().display(),
        source.format(),
        source.buffer_count(),
        source.io().as_str(),
        socket.display(),
        if args.allow_group { "0660" } else { "0600" }
    );
    let stop = crate::signals::stop_requested;
    if args.wait_clients > 0 {
        let timeout = Duration::from_secs(args.capture.timeout.max(1));
        if !server.wait_for_clients(args.wait_clients, timeout, &stop)? && !stop() {
            bail!(
                "{}: {} of {} consumers connected within {}s (--wait-clients, --timeout)",
                socket.display(),
                server.clients(),
                args.wait_clients,
                timeout.as_secs()
            );
        }
    }
    crate::decoding::announce("serve", &source);
    source.start()?;
    let mut sink = ShareSink { server };
    let (ended, _, source) = stream(&args, &mut sink, source)?;
    // Consumers are told why the stream ends, and give their frames back, before the camera closes.
    sink.server
        .end(ended.as_ref().err().map(|e| format!("{e:#}")).as_deref());
    drop(source);
    ended?;
    let stats = sink.server.stats();
    eprintln!(
        "dmacam serve: {} frames served ({} with no consumer); {} consumers, {} refused, {} dropped as too slow, {} for protocol errors; {} frames dropped by the camera (no free buffer)",
        stats.frames,
        stats.unwatched,
        stats.clients,
        stats.refused,
        stats.dropped_slow,
        stats.dropped_protocol,
        stats.camera_dropped
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs the one loop from the started `source` into `sink` until Ctrl-C, `--frames` or a failure; says what
/// the decoder did (for an MJPEG camera) at the end. Returns how the streaming ended, the frames taken and the
/// source (to be closed once the sink has let every frame go).
fn stream(
    args: &Args,
    sink: &mut dyn Sink,
    source: Source,
) -> Result<(Result<()>, u64, Option<Source>)> {
    let dev = source.path().to_path_buf();
    let stop = Stop {
        // The socket counts every frame taken, the PipeWire node those it published.
        taken: args.frames.filter(|_| args.socket.is_some()),
        shown: args.frames.filter(|_| args.pipewire),
        ..Stop::default()
    };
    // Every frame is handed over in order; one the driver flagged corrupt is passed on flagged.
    let cfg = pipeline::Loop::every(
        "serve",
        &dev,
        &args.capture,
        source.io(),
        args.buffers,
        stop,
        u32::MAX,
    );
    let mut progress = Progress::new(None);
    let (ended, source) = pipeline::run(sink, source, &mut None, &cfg, &mut progress)?;
    if let Some(source) = &source {
        crate::decoding::report("serve", source);
    }
    Ok((ended, progress.intake.frames_taken, source))
}

/// `serve --pipewire`: the camera as a PipeWire node; runs until Ctrl-C, `--frames`, or the camera or the node
/// fails.
fn publish(args: &Args, mut source: Source, interval: Fraction) -> Result<ExitCode> {
    if args.wait_clients > 0 || args.allow_group {
        bail!("--wait-clients and --allow-group are for --socket; PipeWire decides who may link to the node");
    }
    let producer = PwProducer::new(
        &source,
        (interval.numerator, interval.denominator),
        ProducerOptions {
            name: args.pipewire_name.clone(),
            description: format!("dmacam: {}", source.path().display()),
            max_hold: Duration::from_secs_f64(args.max_hold),
        },
    )?;
    eprintln!(
        "dmacam serve: {} {} ({} buffers, {}) as PipeWire node {} '{}'",
        source.path().display(),
        source.format(),
        source.buffer_count(),
        source.io().as_str(),
        producer.node_id().unwrap_or_default(),
        args.pipewire_name
    );
    crate::decoding::announce("serve", &source);
    source.start()?;
    let mut sink = PipeWireSink {
        producer,
        dev: source.path().to_path_buf(),
        name: args.pipewire_name.clone(),
    };
    let (ended, taken, source) = stream(args, &mut sink, source)?;
    let stats = sink.producer.stats();
    // PipeWire gives every buffer back before the camera closes.
    drop(sink);
    drop(source);
    ended?;
    eprintln!(
        "dmacam serve: {} frames published on PipeWire of {taken} taken: {} in the camera's own buffers (no copy), \
         {} copied by the CPU into memfds ({} bytes) for consumers that take no dma-buf, {} not published \
         (no consumer linked, buffer still out, or a newer frame came first); {} buffers taken back after \
         --max-hold {}s",
        stats.published,
        stats.shared,
        stats.copied,
        stats.copied_bytes,
        stats.skipped,
        stats.reclaimed,
        args.max_hold
    );
    Ok(ExitCode::SUCCESS)
}
