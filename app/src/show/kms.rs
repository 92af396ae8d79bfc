//! Setting up the KMS output (`kms-view`, `view --output kms`): the camera on a bare DRM/KMS display, no
//! compositor. The plane and the camera's format are chosen together. Passthrough: each camera buffer is
//! imported into the card once (PRIME) and scanned out directly. Gpu: the render stage converts (and scales
//! to the mode, or as `--process` says) into XRGB8888 dma-bufs, which are imported the same way. Page-flip
//! events pace the loop (`crate::pipeline`, the scanout as a sink in `pipeline/kms.rs`) and a buffer goes
//! back to its producer only after the flip that replaced it. On exit, Ctrl-C included, the CRTC
//! configuration found at start is restored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dmacam_capture::colour::Colorimetry;
use dmacam_capture::decode::{frames_format, frames_fourcc};
use dmacam_capture::format::FormatDesc;
use dmacam_capture::{Format, FormatRequest, Fourcc, Input, Source, StreamOptions};
use dmacam_display::kms::{
    drm_format_for, kms_path, no_plane, Card, KmsError, KmsSummary, OutputRequest, Scanout,
};
use dmacam_display::{BufferPath, PathDecision, PathRequest};
use dmacam_render::{ProcessSpec, SourceFormat, OUTPUT_FOURCC};

use super::plan::{Kms, Plan, Ready};
use crate::gpu::{GpuStage, StageError};
use crate::pipeline::{Picture, Progress};

/// Camera buffers: the display holds up to three (active, queued, pending); keep the camera fed besides.
const KMS_BUFFERS: u32 = 6;

/// `spec`, or when the frame is larger than the mode and no output size was asked for, `spec` with a scale
/// to fit the mode keeping the aspect ratio (vkms's planes do not scale; the render stage does).
fn fit_to_mode(spec: ProcessSpec, frame: (u32, u32), mode: (u32, u32)) -> Result<ProcessSpec> {
    let (w, h) = spec
        .output_size(frame.0, frame.1)
        .map_err(|e| anyhow::anyhow!("--process: {e}"))?;
    if spec.scale.is_some() || (w <= mode.0 && h <= mode.1) {
        return Ok(spec);
    }
    let k = f64::min(
        f64::from(mode.0) / f64::from(w),
        f64::from(mode.1) / f64::from(h),
    );
    let fit = |v: u32| ((f64::from(v) * k).floor() as u32).max(1);
    Ok(ProcessSpec {
        scale: Some((fit(w), fit(h))),
        ..spec
    })
}

/// Writes `bytes` to `path` through a temporary file, so no half-written file is ever left.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Opens the card (without master on a card there is nothing to do, and the camera is left alone), then the
/// camera, and chooses the format and the plane together.
pub fn open(plan: &Plan, kms: &Kms) -> Result<(Scanout<Picture>, Ready)> {
    let request = OutputRequest {
        connector: kms.opts.connector.clone(),
        mode: kms.mode,
    };
    let card = Card::open(&kms.opts.card, kms.opts.legacy)?;
    let dev = crate::capture_opts::open(&plan.capture)?;
    let Chosen {
        format,
        scanout,
        gpu,
        decision,
    } = negotiate(&dev, &card, &request, plan)?;
    let dev_path = dev.path().to_path_buf();
    let stream = Source::new(
        dev,
        format,
        &StreamOptions {
            buffers: KMS_BUFFERS,
            io: plan.io,
        },
    )?;
    crate::capture_opts::require_dmabuf(&stream, "KMS scanout (PRIME import)")?;
    let how = match &gpu {
        None => "PRIME import of the camera's dma-bufs, no copy".to_owned(),
        Some(g) => {
            let (w, h) = g
                .spec
                .output_size(stream.format().width, stream.format().height)?;
            format!(
                "{w}x{h} XR24 ({}), PRIME import, no copy",
                g.renderer.import_path().name()
            )
        }
    };
    eprintln!(
        "dmacam kms: {} {} {}x{} -> {} {} {} ({} plane, {}); path {}: {}; {how}",
        dev_path.display(),
        stream.format().fourcc,
        stream.format().width,
        stream.format().height,
        card.path().display(),
        scanout.output().connector_name,
        scanout.output().mode_name(),
        scanout.output().plane_kind.as_str(),
        if card.info().atomic {
            "atomic"
        } else {
            "legacy"
        },
        decision.path,
        decision.reason,
    );
    let ready = Ready {
        stream,
        gpu,
        dev: dev_path,
        buffers: KMS_BUFFERS,
        who: "kms",
        announce: "view --output kms",
    };
    Ok((scanout, ready))
}

/// What [`negotiate`] chose: the camera format, the scanout, the render stage on the gpu path, and the
/// path with its reason (what the plane is told of the colours, or why the gpu path).
struct Chosen {
    format: Format,
    scanout: Scanout<Picture>,
    gpu: Option<GpuStage>,
    decision: PathDecision,
}

/// Picks the camera format and the output: passthrough with the format asked for (or the first the camera
/// offers that a plane scans out — for `auto`, with its colours right: a Y'CbCr plane that cannot be told
/// the camera's colorimetry would show them off), else — for `auto` and `gpu` — the render stage's XR24 on
/// the primary plane with the format asked for (or the first the shaders read), converted with the camera's
/// own colorimetry. `auto` keeps a passthrough with colours off only when the render stage cannot run.
fn negotiate(
    dev: &Input,
    card: &std::sync::Arc<Card>,
    request: &OutputRequest,
    plan: &Plan,
) -> Result<Chosen> {
    let (fourcc, size, fps, path) = (plan.format, plan.size, plan.fps, plan.path);
    let offered = dev.formats()?;
    let mut last = None;
    let mut why_gpu = vec![];
    // `auto`'s passthrough with colours off, the last resort.
    let mut colours_off = None;
    if path != PathRequest::Gpu {
        let candidates: Vec<Fourcc> = match fourcc {
            Some(f) => vec![f],
            None => offered
                .iter()
                .filter(|d| d.supported && drm_format_for(d.fourcc).is_some())
                .map(|d| d.fourcc)
                .collect(),
        };
        for f in &candidates {
            // MJPEG frames reach the scanout decoded (XR24).
            match Scanout::new(card.clone(), request, frames_fourcc(*f)) {
                Ok(mut scanout) => {
                    let format = dev.negotiate(&FormatRequest {
                        fourcc: Some(*f),
                        size,
                        fps,
                    })?;
                    scanout.check_frame_size(format.width, format.height)?;
                    let c = Colorimetry::of_ycbcr(&frames_format(&format));
                    let colour = scanout.set_colorimetry(c);
                    // The render stage is assumed to run here; if it cannot, see below.
                    let decision = kms_path(path, *f, c, &Ok(colour.clone()), &Ok(()))
                        .map_err(anyhow::Error::msg)?;
                    if decision.path == BufferPath::Gpu {
                        why_gpu.push(format!("{f} on a plane: {}", colour.describe()));
                        colours_off.get_or_insert((format, scanout, colour));
                        continue;
                    }
                    return Ok(Chosen {
                        format,
                        scanout,
                        gpu: None,
                        decision,
                    });
                }
                Err(e @ (KmsError::NoPlane { .. } | KmsError::UnknownFormat { .. })) => {
                    why_gpu.push(no_plane(card.path(), *f));
                    last = Some(e)
                }
                Err(e) => return Err(e.into()),
            }
        }
        if path == PathRequest::Passthrough {
            return match (last, fourcc) {
                (Some(e), Some(_)) => Err(anyhow::Error::new(e)
                    .context("--path passthrough is impossible; try --path gpu")),
                _ => bail!(
                    "{}: none of the camera's formats can be scanned out by {} as is; try --path gpu",
                    dev.path().display(),
                    card.path().display()
                ),
            };
        }
    }
    if why_gpu.is_empty() && path == PathRequest::Auto {
        why_gpu.push(format!(
            "no plane of {} scans out any of the camera's formats",
            card.path().display()
        ));
    }
    match gpu_path(dev, card, request, plan, &offered) {
        Ok((format, scanout, gpu)) => {
            let c = Colorimetry::of_ycbcr(&frames_format(&format));
            let decision = kms_path(path, format.fourcc, c, &Err(why_gpu.join("; ")), &Ok(()))
                .map_err(anyhow::Error::msg)?;
            Ok(Chosen {
                format,
                scanout,
                gpu: Some(gpu),
                decision,
            })
        }
        Err(e) => match colours_off {
            // The render stage cannot run: show the camera's frames with the colours off, and say so.
            Some((format, scanout, colour)) => {
                let format = dev.negotiate(&FormatRequest {
                    fourcc: Some(format.fourcc),
                    size,
                    fps,
                })?;
                let c = Colorimetry::of_ycbcr(&frames_format(&format));
                let decision =
                    kms_path(path, format.fourcc, c, &Ok(colour), &Err(format!("{e:#}")))
                        .map_err(anyhow::Error::msg)?;
                Ok(Chosen {
                    format,
                    scanout,
                    gpu: None,
                    decision,
                })
            }
            None => Err(e),
        },
    }
}

/// The gpu path: the camera format asked for or the first the shaders read, the render stage's XR24 on the
/// primary plane.
fn gpu_path(
    dev: &Input,
    card: &std::sync::Arc<Card>,
    request: &OutputRequest,
    plan: &Plan,
    offered: &[FormatDesc],
) -> Result<(Format, Scanout<Picture>, GpuStage)> {
    let camera = match plan.format {
        Some(f) => f,
        None => offered
            .iter()
            .find(|d| d.supported && SourceFormat::from_fourcc(d.fourcc).is_some())
            .map(|d| d.fourcc)
            .with_context(|| {
                format!(
                    "{}: none of the camera's formats can be shown on {}: no plane scans them out and the render stage reads none of them",
                    dev.path().display(),
                    card.path().display()
                )
            })?,
    };
    let scanout = Scanout::new(card.clone(), request, OUTPUT_FOURCC)?;
    let format = dev.negotiate(&FormatRequest {
        fourcc: Some(camera),
        size: plan.size,
        fps: plan.fps,
    })?;
    let spec = fit_to_mode(
        plan.spec.unwrap_or_default(),
        (format.width, format.height),
        scanout.output().mode_size(),
    )?;
    let (w, h) = spec.output_size(format.width, format.height)?;
    scanout.check_frame_size(w, h)?;
    let gpu = GpuStage::new(&frames_format(&format), spec)
        .map_err(|e| match e {
            StageError::Device(e) => anyhow::Error::new(e)
                .context("the gpu path needs a Vulkan device that imports dma-bufs"),
            e => anyhow::Error::new(e),
        })
        .with_context(|| format!("{}: {camera} on the gpu path", dev.path().display()))?;
    Ok((format, scanout, gpu))
}

/// The statistics at the end, and the writeback image written; restores the display (this also hands every
/// frame back), then stops the camera.
pub fn finish(
    kms: &Kms,
    mut scanout: Scanout<Picture>,
    result: Result<()>,
    mut stream: Option<Source>,
    gpu: &Option<GpuStage>,
    progress: Progress,
) -> Result<KmsSummary> {
    let writeback = match (&result, &kms.opts.writeback) {
        (Ok(()), Some(p)) => Some(
            scanout
                .capture_writeback(Duration::from_secs(5))
                .map(|img| (p.clone(), img)),
        ),
        _ => None,
    };
    let finished = scanout.finish();
    if let Some(s) = stream.as_mut() {
        s.stop().ok();
    }
    result?;
    let mut summary = finished?;
    summary.intake = Some(progress.intake);
    if let Some(g) = gpu {
        summary.path = "gpu (the render stage's XR24 dma-bufs, PRIME import, no copy)".into();
        summary.cpu_bytes_copied_total += g.finish_report();
    }
    if let Some(s) = stream.as_ref() {
        crate::decoding::add_to(&mut summary, s);
    }
    if let Some(wb) = writeback {
        let (path, img) = wb?;
        write_atomically(&path, &img.to_ppm())?;
        tracing::info!("writeback image written to {}", path.display());
    }
    Ok(summary)
}
