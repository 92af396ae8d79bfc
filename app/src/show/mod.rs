//! Showing the camera: a viewer command (`view`, `kms-view`, `check --zero-copy`) turns its options into a
//! [`Plan`] (`options.rs`) and [`run`] runs it: opens the output and the camera (`window.rs` for a window or
//! the null output, `kms.rs` for a KMS plane, which chooses the camera's format with it), streams them
//! through the one loop (`crate::pipeline`), and reports.

mod kms;
mod options;
mod plan;
mod window;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use dmacam_capture::Source;

use crate::gpu::GpuStage;
use crate::pipeline::{self, Progress, Sink};
use crate::trace::TraceFile;
pub(crate) use options::ask_of;
pub use options::{Ask, ViewAsk};
pub use plan::{KmsOpts, Plan};
use plan::{Output, Ready};

/// Runs `plan`: the output first (without one there is nothing to do, and the camera is left alone), then
/// the camera, the loop until a stop rule or a signal, and the report (`--trace`, `--stats`, `--stats-json`).
pub fn run(plan: Plan) -> Result<ExitCode> {
    let trace = plan.trace.as_deref().map(TraceFile::create).transpose()?;
    let trace = trace.as_ref();
    let out = match &plan.output {
        Output::Kms(k) => {
            let (mut scanout, ready) = kms::open(&plan, k)?;
            let ran = stream(&plan, &mut scanout, ready, trace)?;
            let summary = kms::finish(k, scanout, ran.result, ran.stream, &ran.gpu, ran.progress)?;
            return report(&plan, trace, &summary);
        }
        Output::Wayland(w) => window::connect(&plan, w)?,
        Output::Plain(make) => make(),
    };
    let (mut out, ready) = window::open(&plan, out)?;
    let ran = stream(&plan, out.as_mut(), ready, trace)?;
    let summary = window::finish(out, ran.result, ran.stream, &ran.gpu, &ran.progress)?;
    report(&plan, trace, &summary)
}

/// What the loop leaves.
struct Ran {
    /// How the streaming ended.
    result: Result<()>,
    /// The camera, if it is still there.
    stream: Option<Source>,
    gpu: Option<GpuStage>,
    progress: Progress,
}

/// Starts the camera and streams it into `sink` until a stop rule says so.
fn stream(
    plan: &Plan,
    sink: &mut dyn Sink,
    ready: Ready,
    trace: Option<&Arc<TraceFile>>,
) -> Result<Ran> {
    let Ready {
        mut stream,
        mut gpu,
        dev,
        buffers,
        who,
        announce,
    } = ready;
    crate::decoding::announce(announce, &stream);
    crate::signals::install()?;
    stream.start()?;
    let mut progress = Progress::new(
        plan.health
            .as_ref()
            .map(|(p, every)| crate::health::Health::create(p, *every))
            .transpose()?,
    );
    let cfg = pipeline::Loop {
        who,
        dev: &dev,
        capture: &plan.capture,
        io: plan.io,
        buffers,
        reconnect: plan.reconnect,
        stop: plan.stop,
        trace,
        keys: plan.keys.clone(),
        policy: pipeline::Policy::Newest,
    };
    let (result, stream) = pipeline::run(sink, stream, &mut gpu, &cfg, &mut progress)?;
    Ok(Ran {
        result,
        stream,
        gpu,
        progress,
    })
}

/// The trace finished, the statistics printed (`--stats`) and written (`--stats-json`).
fn report<S: std::fmt::Display + serde::Serialize>(
    plan: &Plan,
    trace: Option<&Arc<TraceFile>>,
    summary: &S,
) -> Result<ExitCode> {
    if let (Some(t), Some(p)) = (trace, &plan.trace) {
        let n = t.finish()?;
        tracing::info!("trace of {n} frames written to {}", p.display());
    }
    if plan.stats {
        println!("{summary}");
    }
    if let Some(p) = &plan.stats_json {
        let text = serde_json::to_string_pretty(summary)?;
        kms::write_atomically(p, (text + "\n").as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}
