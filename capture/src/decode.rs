//! The MJPEG decode stage: a source of compressed frames (`MJPG`/`JPEG`, from a webcam or the pattern
//! source's MJPG form) made into a source of XR24 frames every consumer can take.
//!
//! Each compressed frame is read on the CPU through its mapped dma-buf (the camera's own export) and decoded
//! by [`JpegDecoder`](crate::jpeg::JpegDecoder) straight into a buffer of a [`Ring`](crate::ring::Ring)
//! dmacam allocates (udmabuf or the DMA-BUF heap, memfd where neither exists), which then goes on as the
//! frame: to the GPU stage, the compositor, KMS or a file, with no further copy. The compressed buffer goes
//! back to the camera as soon as it is decoded.
//!
//! The decode is a CPU copy, and it is counted: every decoded frame carries its bytes in
//! [`Frame::cpu_bytes_copied`](crate::stream::Frame::cpu_bytes_copied), and
//! [`Decoded::stats`](crate::source::Decoded::stats) sums them, so the zero-copy report and
//! `check --zero-copy` see it. Corrupt or truncated frames are skipped (counted, with a rate-limited
//! warning); the next good frame takes their place. A frame the driver flagged as errored is handed on
//! undecoded, flagged, for the consumer to skip and count as it does for raw formats.

use crate::dmabuf::Fourcc;
use crate::format::{Format, PixelFormat, PlaneFormat};
use crate::jpeg::DECODED;
use crate::raw::b;

/// The format of decoded frames: XR24, tightly packed, full-range sRGB.
pub fn decoded_format(compressed: &Format) -> Format {
    let (w, h) = (compressed.width, compressed.height);
    Format {
        fourcc: DECODED,
        width: w,
        height: h,
        mplane: false,
        planes: vec![PlaneFormat {
            bytesperline: w * 4,
            sizeimage: w * h * 4,
        }],
        colorspace: b::v4l2_colorspace_V4L2_COLORSPACE_SRGB,
        ycbcr_enc: b::v4l2_ycbcr_encoding_V4L2_YCBCR_ENC_DEFAULT,
        quantization: b::v4l2_quantization_V4L2_QUANTIZATION_FULL_RANGE,
    }
}

/// Whether frames of `fourcc` are compressed (`MJPG`, `JPEG`): [`Source::new`](crate::source::Source::new)
/// puts the decode stage in front of them.
pub fn is_compressed(fourcc: Fourcc) -> bool {
    PixelFormat::lookup(fourcc).is_some_and(|p| p.is_compressed())
}

/// The format frames have once [`Source::new`](crate::source::Source::new) has set up a source negotiated to
/// `negotiated`: the decoded format for a compressed one, `negotiated` itself otherwise. For choosing outputs
/// before streaming.
pub fn frames_format(negotiated: &Format) -> Format {
    if is_compressed(negotiated.fourcc) {
        decoded_format(negotiated)
    } else {
        negotiated.clone()
    }
}

/// The fourcc frames of a source negotiated to `fourcc` have (see [`frames_format`]).
pub fn frames_fourcc(fourcc: Fourcc) -> Fourcc {
    if is_compressed(fourcc) {
        DECODED
    } else {
        fourcc
    }
}
