//! `dmacam check --zero-copy`: runs the viewer on the camera with a trace, then proves from the trace that
//! every frame that reached the screen travelled without a CPU copy: its chain of dma-buf identities is
//! unbroken — camera export → compositor (passthrough), or camera export → Vulkan import → Vulkan export →
//! compositor (gpu) — each link an fstat of the fd that stage actually used, and the CPU copied 0 bytes.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::capture_opts::CaptureOpts;
use crate::show::{Ask, KmsOpts, ViewAsk};
use crate::trace::FrameRecord;

/// What to run.
pub struct Request {
    pub capture: CaptureOpts,
    pub format: Option<String>,
    pub path: String,
    pub frames: u64,
    pub display: Option<String>,
    /// Keep the trace here (else a temporary file, removed afterwards).
    pub trace: Option<PathBuf>,
    /// Where to show the frames: `wayland` or `kms` (`view --output`).
    pub output: String,
    pub kms: KmsOpts,
}

/// The verdict on a trace.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub displayed: usize,
    pub unbroken: usize,
    pub chain: String,
    /// The first broken links, one line each.
    pub broken: Vec<String>,
    /// Displayed frames the compositor flagged `zero_copy` (scanned out as is, not composited).
    pub flagged_zero_copy: usize,
    /// Displayed frames a KMS plane scanned out from their own framebuffer.
    pub scanned_out: usize,
}

fn set(v: impl IntoIterator<Item = u64>) -> BTreeSet<u64> {
    v.into_iter().collect()
}

/// The first link as the report names it.
fn source_link(r: &FrameRecord) -> String {
    let exp = &r.camera[0].exp_name;
    match r.origin.as_str() {
        "camera-import" => format!("camera writes into an imported dma-buf ({exp})"),
        "pipewire" => format!("PipeWire producer's dma-buf ({exp})"),
        _ => format!("camera export ({exp})"),
    }
}

/// Why the frame's first link is not a camera's own write, if it is not: a V4L2 driver must have written
/// the buffer, and an exported (MMAP) buffer must have been exported by a videobuf2 allocator (the
/// exporter's name is its kernel module: videobuf2_vmalloc, videobuf2_dma_contig, videobuf2_dma_sg).
fn first_link(r: &FrameRecord) -> Option<String> {
    match r.origin.as_str() {
        "camera-export" => r
            .camera
            .iter()
            .find(|b| !b.exp_name.starts_with("videobuf2"))
            .map(|b| {
                format!(
                    "the camera's buffer was exported by {}, not by a V4L2 driver (videobuf2)",
                    b.exp_name
                )
            }),
        "camera-import" => None,
        // Handed over by another process as it is (a camera's v4l2 node, another application): dmacam
        // writes nothing into it; a memfd, which is no dma-buf, fails the identity check below.
        "pipewire" => None,
        "pattern" | "mjpeg-decode" => Some(format!(
            "1 CPU write per frame ({}), then zero-copy: not a camera's zero-copy frame",
            if r.origin == "pattern" {
                "the pattern"
            } else {
                "MJPEG decode"
            }
        )),
        "" => Some("the trace does not say what wrote the frame (no origin)".into()),
        other => Some(format!(
            "written by {other}, not by the camera (run check --zero-copy on the camera itself)"
        )),
    }
}

/// Checks each displayed frame's chain.
pub fn judge(records: &[FrameRecord]) -> Verdict {
    let mut v = Verdict {
        displayed: 0,
        unbroken: 0,
        chain: String::new(),
        broken: Vec::new(),
        flagged_zero_copy: 0,
        scanned_out: 0,
    };
    for r in records {
        let Some(d) = r.display.as_ref().filter(|d| d.presented) else {
            continue;
        };
        v.displayed += 1;
        let kms = d.kind.as_deref() == Some("kms");
        // The last link in the display's own words: the compositor's presentation flags, or the page flip
        // of the frame's own framebuffer.
        if kms && d.kms_fb.is_some() {
            v.scanned_out += 1;
        }
        if d.presentation_flags.iter().any(|f| f == "zero_copy") {
            v.flagged_zero_copy += 1;
        }
        let (sink, who) = if kms {
            ("KMS plane (framebuffer)", "the KMS plane")
        } else {
            ("compositor (wl_buffer)", "the compositor")
        };
        let camera = set(r.camera.iter().map(|b| b.inode));
        let fail = |why: String| format!("frame {}: {why}", r.sequence);
        // What wrote the frame first: a source that fills its buffers on the CPU (the pattern, the MJPEG
        // decode) is named as such, not reported as an anonymous copy.
        let problem = if let Some(why) = first_link(r) {
            Some(fail(why))
        } else if r.cpu_bytes_copied > 0 {
            Some(fail(format!(
                "the CPU copied {} bytes (the {} path)",
                r.cpu_bytes_copied,
                d.kind.as_deref().unwrap_or("?")
            )))
        } else if d.kind.as_deref() != Some("dmabuf") && !kms {
            Some(fail(format!(
                "shown from a {} buffer, not a dma-buf",
                d.kind.as_deref().unwrap_or("unknown")
            )))
        } else if camera.is_empty() || r.camera.iter().any(|b| b.exp_name.is_empty()) {
            Some(fail(
                "the camera's buffer is not an identified dma-buf".into(),
            ))
        } else {
            match &r.gpu {
                None => {
                    v.chain = format!("{} → {sink}", source_link(r));
                    (set(d.inodes.iter().copied()) != camera).then(|| {
                        fail(format!(
                            "{who} got dma-buf inodes {:?}, the camera exported {:?}",
                            d.inodes, camera
                        ))
                    })
                }
                Some(g) => {
                    let out = g.output.as_ref();
                    v.chain = format!(
                        "{} → Vulkan import ({}) → Vulkan export ({}) → {sink}",
                        source_link(r),
                        g.import_path,
                        out.map(|o| o.exp_name.as_str()).unwrap_or("?")
                    );
                    if set(g.import_inodes.iter().copied()) != camera {
                        Some(fail(format!(
                            "Vulkan imported inodes {:?}, the camera exported {:?}",
                            g.import_inodes, camera
                        )))
                    } else if let Some(o) = out {
                        (d.inodes != [o.inode]).then(|| {
                            fail(format!(
                                "{who} got inodes {:?}, the GPU exported {}",
                                d.inodes, o.inode
                            ))
                        })
                    } else {
                        Some(fail("the GPU output is not an identified dma-buf".into()))
                    }
                }
            }
        };
        match problem {
            None => v.unbroken += 1,
            Some(p) if v.broken.len() < 5 => v.broken.push(p),
            Some(_) => {}
        }
    }
    v
}

/// What the display said it did with the frames it showed.
fn last_link(v: &Verdict) -> String {
    if v.scanned_out == v.displayed {
        return "each was scanned out by the plane from its own framebuffer (page flip)".to_owned();
    }
    format!(
        "the compositor flagged {} of {} zero_copy (scanned out as is) and composited the others (a GPU \
         pass inside the compositor, not a CPU copy)",
        v.flagged_zero_copy, v.displayed
    )
}

pub fn prove(req: Request) -> Result<ExitCode> {
    if req.frames == 0 {
        bail!("--frames must be at least 1");
    }
    let (trace, keep) = match &req.trace {
        Some(p) => (p.clone(), true),
        None => (
            std::env::temp_dir().join(format!("dmacam-zero-copy-{}.jsonl", std::process::id())),
            false,
        ),
    };
    // The viewer's plan, as `view --until-shown FRAMES --trace FILE` makes it.
    let ask = Ask {
        capture: req.capture.clone(),
        format: req.format.clone(),
        path: req.path.clone(),
        process: None,
        // Under a software GPU the first frames take seconds to reach the screen; bound the run anyway.
        duration: Some(60.0 + 2.0 * req.frames as f64),
        stats: false,
        stats_json: None,
        trace: Some(trace.clone()),
        reconnect: false,
    };
    let plan = ask.view(ViewAsk {
        output: req.output.clone(),
        frames: None,
        until_shown: Some(req.frames),
        display: req.display.clone(),
        fullscreen: false,
        kms: req.kms.clone(),
        health: None,
        health_every: 1000,
        keys: None,
        test_dmabuf_modifier: None,
        frame_actions: None,
    });
    let ran = plan.and_then(crate::show::run);
    let text = std::fs::read_to_string(&trace);
    if !keep {
        let _ = std::fs::remove_file(&trace);
    }
    ran?;
    let text = text.with_context(|| format!("cannot read the trace {}", trace.display()))?;
    let records: Vec<FrameRecord> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a dmacam trace", trace.display()))?;
    let v = judge(&records);
    if v.displayed == 0 {
        println!(
            "zero-copy: FAIL: none of {} traced frames reached the screen",
            records.len()
        );
        return Ok(ExitCode::from(1));
    }
    if v.broken.is_empty() && (v.displayed as u64) < req.frames {
        println!(
            "zero-copy: FAIL: only {} of {} frames reached the screen in time (all {} unbroken: {})",
            v.displayed, req.frames, v.unbroken, v.chain
        );
        return Ok(ExitCode::from(1));
    }
    if v.broken.is_empty() {
        println!(
            "zero-copy: PASS: {} of {} displayed frames unbroken, 0 CPU bytes copied: {}; {}",
            v.unbroken,
            v.displayed,
            v.chain,
            last_link(&v)
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "zero-copy: FAIL: {} of {} displayed frames broken; first: {}",
            v.displayed - v.unbroken,
            v.displayed,
            v.broken.join("; ")
        );
        Ok(ExitCode::from(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{BufId, DisplayPart, GpuRecord};

    fn shown(
        seq: u32,
        camera: u64,
        gpu: Option<(u64, u64)>,
        shown_inode: u64,
        copied: u64,
    ) -> FrameRecord {
        FrameRecord {
            sequence: seq,
            origin: "camera-export".into(),
            camera: vec![BufId {
                inode: camera,
                exp_name: "videobuf2_vmalloc".into(),
            }],
            gpu: gpu.map(|(import, out)| GpuRecord {
                import_path: "image-drm-modifier".into(),
                import_inodes: vec![import],
                output: Some(BufId {
                    inode: out,
                    exp_name: "udmabuf".into(),
                }),
                ..Default::default()
            }),
            display: Some(DisplayPart {
                kind: Some(if copied > 0 { "shm" } else { "dmabuf" }.into()),
                inodes: if copied > 0 {
                    vec![]
                } else {
                    vec![shown_inode]
                },
                presented: true,
                ..Default::default()
            }),
            cpu_bytes_copied: copied,
            ..Default::default()
        }
    }

    #[test]
    fn unbroken_chains_pass_and_each_broken_link_is_named() {
        let ok = judge(&[
            shown(1, 10, None, 10, 0),
            shown(2, 11, Some((11, 90)), 90, 0),
        ]);
        assert_eq!((ok.displayed, ok.unbroken), (2, 2));
        assert!(ok.broken.is_empty());
        let bad = judge(&[
            shown(3, 10, None, 12, 0),
            shown(4, 11, Some((12, 90)), 90, 0),
            shown(5, 11, Some((11, 90)), 91, 0),
            shown(6, 11, None, 0, 614400),
        ]);
        assert_eq!((bad.displayed, bad.unbroken), (4, 0));
        assert!(bad.broken[0].contains("compositor got"), "{:?}", bad.broken);
        assert!(
            bad.broken[1].contains("Vulkan imported"),
            "{:?}",
            bad.broken
        );
        assert!(bad.broken[2].contains("GPU exported"), "{:?}", bad.broken);
        assert!(
            bad.broken[3].contains("CPU copied 614400"),
            "{:?}",
            bad.broken
        );
        // The first link: a V4L2 driver wrote the buffer, and an exported one is videobuf2's.
        let mut imported = shown(8, 10, None, 10, 0);
        imported.origin = "camera-import".into();
        imported.camera[0].exp_name = "udmabuf".into();
        let v = judge(&[imported.clone()]);
        assert_eq!(v.unbroken, 1, "{:?}", v.broken);
        assert!(v
            .chain
            .starts_with("camera writes into an imported dma-buf (udmabuf)"));
        let mut not_vb2 = imported.clone();
        not_vb2.origin = "camera-export".into();
        let mut pattern = imported.clone();
        pattern.origin = "pattern".into();
        let mut decoded = imported.clone();
        decoded.origin = "mjpeg-decode".into();
        let mut pipewire = imported.clone();
        pipewire.origin = "pipewire".into();
        pipewire.camera[0].exp_name = "videobuf2_vmalloc".into();
        let v = judge(&[pipewire.clone()]);
        assert_eq!(v.unbroken, 1, "{:?}", v.broken);
        assert!(v
            .chain
            .starts_with("PipeWire producer's dma-buf (videobuf2_vmalloc)"));
        // A producer's memfd is no dma-buf: no identity, so no zero-copy chain.
        pipewire.camera[0].exp_name = String::new();
        assert!(judge(&[pipewire]).broken[0].contains("not an identified dma-buf"));
        let mut unknown = imported;
        unknown.origin = String::new();
        let bad = judge(&[not_vb2, pattern, decoded, unknown]);
        assert_eq!(bad.unbroken, 0);
        assert!(bad.broken[0].contains("exported by udmabuf, not by a V4L2 driver"));
        assert!(bad.broken[1].contains("1 CPU write per frame (the pattern)"));
        assert!(bad.broken[2].contains("1 CPU write per frame (MJPEG decode)"));
        assert!(bad.broken[3].contains("no origin"));
        // Frames that never reached the screen are not judged.
        let mut hidden = shown(7, 10, None, 12, 0);
        hidden.display.as_mut().unwrap().presented = false;
        assert_eq!(judge(&[hidden]).displayed, 0);
    }

    #[test]
    fn the_last_link_is_what_the_display_said() {
        let mut wayland = [shown(1, 10, None, 10, 0), shown(2, 11, None, 11, 0)];
        wayland[1].display.as_mut().unwrap().presentation_flags =
            vec!["vsync".into(), "zero_copy".into()];
        let v = judge(&wayland);
        assert_eq!((v.unbroken, v.flagged_zero_copy, v.scanned_out), (2, 1, 0));
        assert!(v.chain.ends_with("→ compositor (wl_buffer)"), "{}", v.chain);
        assert!(
            last_link(&v).contains("flagged 1 of 2 zero_copy"),
            "{}",
            last_link(&v)
        );

        let mut kms = [shown(3, 10, Some((10, 90)), 90, 0)];
        let d = kms[0].display.as_mut().unwrap();
        d.kind = Some("kms".into());
        d.kms_fb = Some(42);
        let v = judge(&kms);
        assert_eq!((v.unbroken, v.scanned_out), (1, 1), "{:?}", v.broken);
        assert!(
            v.chain.ends_with("→ KMS plane (framebuffer)"),
            "{}",
            v.chain
        );
        assert!(last_link(&v).contains("scanned out by the plane"));
        // A KMS frame whose framebuffer was made from another buffer breaks the chain.
        kms[0].display.as_mut().unwrap().inodes = vec![91];
        assert!(judge(&kms).broken[0].contains("the KMS plane got inodes [91]"));
    }
}
