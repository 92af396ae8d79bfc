//! The CPU decode in front of every output (MJPEG input): said at start, summed at the end. It is the one
//! CPU copy on that path, so it is never silent.

use dmacam_capture::format::fourcc_name;
use dmacam_capture::Source;
use dmacam_display::{CpuWrites, DecodeSummary, SourceWrite};

/// Says once, at start, that `source`'s frames are decoded on the CPU, if they are.
pub fn announce(cmd: &str, source: &Source) {
    if let Some(c) = source.compressed_format() {
        eprintln!(
            "dmacam {cmd}: {} sends {} {}x{}: each frame is decoded on the CPU into an XR24 {} buffer \
             ({} bytes written per frame, counted as copied)",
            source.path().display(),
            fourcc_name(c.fourcc),
            c.width,
            c.height,
            source.io().as_str(),
            source.format().planes[0].sizeimage
        );
    }
}

/// What the decode did so far, if `source` decodes.
pub fn summary_of_decode(source: &Source) -> Option<DecodeSummary> {
    let c = source.compressed_format()?;
    let stats = source.decode_stats()?;
    Some(DecodeSummary::new(
        format!(
            "{} {}x{} to {}",
            fourcc_name(c.fourcc),
            c.width,
            c.height,
            fourcc_name(source.format().fourcc)
        ),
        stats,
    ))
}

/// Adds the source's CPU writes to a viewer's summary: the MJPEG decode, or the pattern's painting. Each is
/// one CPU write per frame and joins the copied totals.
pub fn add_to(summary: &mut impl CpuWrites, source: &Source) {
    if let Some(d) = summary_of_decode(source) {
        summary.add_decode(d);
    }
    if let Some((what, w)) = source.cpu_writes() {
        summary.add_source_write(SourceWrite {
            what: what.to_owned(),
            frames: w.frames,
            cpu_bytes_written: w.bytes,
        });
    }
}

/// One line for the end of a run that has no summary of its own (`dump`, `serve`, `check`).
pub fn report(cmd: &str, source: &Source) {
    if let Some(d) = summary_of_decode(source) {
        eprintln!("dmacam {cmd}: {}: {d}", source.path().display());
    }
}
