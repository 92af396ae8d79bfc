//! Which path a camera format takes on a KMS output, and why: passthrough when a plane scans the format out
//! with its colours right (told through COLOR_ENCODING/COLOR_RANGE, or R'G'B', or the BT.601 limited range
//! a plane assumes), else the render stage's XR24 converted with the camera's own colorimetry. `kms-view`
//! (`app/src/show/kms.rs`) and `list --pipeline --card` decide with it.

use std::path::Path;
use std::sync::Arc;

use dmacam_capture::colour::Colorimetry;
use dmacam_capture::Fourcc;

use super::card::Card;
use super::colour::{self, PlaneColour};
use super::error::KmsError;
use super::output::{Output, OutputRequest};
use crate::formats::drm_format_for;
use crate::path::{colorimetry_name, BufferPath, PathDecision, PathRequest};

/// Why the camera's `fourcc` cannot go on a plane of `card` as it is.
pub fn no_plane(card: &Path, fourcc: Fourcc) -> String {
    format!("no plane of {} scans out {fourcc}", card.display())
}

/// What a plane of `card` (on the connector and mode `req` picks) does with frames of V4L2 format `fourcc`
/// and colorimetry `c`: `Ok` with what it is told of their colours, or why no plane takes them.
pub fn plane_for(
    card: &Arc<Card>,
    req: &OutputRequest,
    fourcc: Fourcc,
    c: Option<Colorimetry>,
) -> Result<Result<PlaneColour, String>, KmsError> {
    let Some(drm) = drm_format_for(fourcc) else {
        return Ok(Err(no_plane(card.path(), fourcc)));
    };
    let out = match Output::select(card, req, drm) {
        Ok(out) => out,
        Err(KmsError::NoPlane { .. }) => return Ok(Err(no_plane(card.path(), fourcc))),
        Err(e) => return Err(e),
    };
    let props = card.properties(out.plane)?;
    Ok(Ok(colour::for_plane(c, &props, card.info().atomic).0))
}

/// The path for `req` (`auto`, `passthrough` or `gpu`) of a camera format `camera` with colorimetry
/// `colour`, given what a plane does with it (`plane`, from [`plane_for`]) and whether the render stage can
/// convert it (`gpu`). An impossible request is an error that says what to try.
pub fn kms_path(
    req: PathRequest,
    camera: Fourcc,
    colour: Option<Colorimetry>,
    plane: &Result<PlaneColour, String>,
    gpu: &Result<(), String>,
) -> Result<PathDecision, String> {
    let decide = |path, reason: String| Ok(PathDecision { path, reason });
    let with = colour
        .map(|c| format!(" with the camera's {} colorimetry", colorimetry_name(c)))
        .unwrap_or_default();
    let convert = format!("the render stage converts {camera}{with} into XR24 dma-bufs");
    match (req, plane, gpu) {
        (PathRequest::Passthrough, Ok(p), _) => decide(
            BufferPath::Passthrough,
            format!(
                "requested; a plane scans out {camera}; colours: {}",
                p.describe()
            ),
        ),
        (PathRequest::Passthrough, Err(e), _) => Err(format!(
            "--path passthrough is impossible: {e}; try --path gpu"
        )),
        (PathRequest::Gpu, _, Ok(())) => decide(BufferPath::Gpu, format!("requested; {convert}")),
        (PathRequest::Gpu, _, Err(e)) => Err(format!(
            "--path gpu is impossible: the GPU stage is unavailable: {e}"
        )),
        (PathRequest::Shm, ..) => Err("there is no shm path on KMS".to_owned()),
        (PathRequest::Auto, Ok(p), _) if p.colours_off().is_none() => decide(
            BufferPath::Passthrough,
            format!(
                "zero-copy: a plane scans out {camera}; colours: {}",
                p.describe()
            ),
        ),
        (PathRequest::Auto, Ok(p), Ok(())) => decide(
            BufferPath::Gpu,
            format!("{camera} on a plane: {}; {convert} instead", p.describe()),
        ),
        (PathRequest::Auto, Ok(p), Err(e)) => decide(
            BufferPath::Passthrough,
            format!(
                "a plane scans out {camera}; colours: {} (the GPU stage is unavailable: {e})",
                p.describe()
            ),
        ),
        (PathRequest::Auto, Err(why), Ok(())) => {
            decide(BufferPath::Gpu, format!("{why}; {convert}"))
        }
        (PathRequest::Auto, Err(why), Err(e)) => Err(format!(
            "no way to show {camera}: {why}, and the GPU stage is unavailable: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dmacam_capture::colour::{Encoding, Range};

    const YUYV: Fourcc = Fourcc::new(b"YUYV");

    fn full709() -> Option<Colorimetry> {
        Some(Colorimetry {
            encoding: Encoding::Bt709,
            range: Range::Full,
        })
    }

    #[test]
    fn auto_converts_on_the_gpu_when_no_plane_shows_the_colours_right() {
        let ok = Ok(());
        // vkms: no plane scans out YUYV.
        let none: Result<PlaneColour, String> = Err(no_plane(Path::new("/dev/dri/card0"), YUYV));
        let d = kms_path(PathRequest::Auto, YUYV, full709(), &none, &ok).unwrap();
        assert_eq!(d.path, BufferPath::Gpu);
        assert_eq!(
            d.reason,
            "no plane of /dev/dri/card0 scans out YUYV; the render stage converts YUYV with the camera's \
             BT.709 full-range colorimetry into XR24 dma-bufs"
        );
        let e = kms_path(PathRequest::Passthrough, YUYV, full709(), &none, &ok).unwrap_err();
        assert!(e.contains("--path passthrough is impossible"), "{e}");
        // A plane told COLOR_ENCODING/COLOR_RANGE: passthrough.
        let told = Ok(PlaneColour::Told {
            encoding: "ITU-R BT.709 YCbCr",
            range: "YCbCr full range",
        });
        let d = kms_path(PathRequest::Auto, YUYV, full709(), &told, &ok).unwrap();
        assert_eq!(d.path, BufferPath::Passthrough);
        assert!(
            d.reason.contains("COLOR_RANGE \"YCbCr full range\""),
            "{}",
            d.reason
        );
        // A plane that cannot be told and would read BT.601 limited: gpu, or passthrough said to be off.
        let untold = Ok(PlaneColour::Untold {
            why: "the plane has no COLOR_ENCODING/COLOR_RANGE properties".into(),
            off: Some("colours will be off".into()),
        });
        let d = kms_path(PathRequest::Auto, YUYV, full709(), &untold, &ok).unwrap();
        assert_eq!(d.path, BufferPath::Gpu, "{}", d.reason);
        let no_gpu = Err("no Vulkan device".to_owned());
        let d = kms_path(PathRequest::Auto, YUYV, full709(), &untold, &no_gpu).unwrap();
        assert_eq!(d.path, BufferPath::Passthrough);
        assert!(
            d.reason.contains("colours will be off") && d.reason.contains("no Vulkan device"),
            "{}",
            d.reason
        );
        let d = kms_path(PathRequest::Passthrough, YUYV, full709(), &untold, &ok).unwrap();
        assert!(d.reason.contains("colours will be off"), "{}", d.reason);
        // R'G'B' passes through; nothing at all is an error naming both reasons.
        let d = kms_path(
            PathRequest::Auto,
            Fourcc::new(b"XR24"),
            None,
            &Ok(PlaneColour::Rgb),
            &no_gpu,
        )
        .unwrap();
        assert_eq!(d.path, BufferPath::Passthrough);
        let e = kms_path(PathRequest::Auto, YUYV, full709(), &none, &no_gpu).unwrap_err();
        assert!(
            e.contains("scans out YUYV") && e.contains("no Vulkan device"),
            "{e}"
        );
    }
}
