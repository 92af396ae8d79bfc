//! Frame pacing and presentation: the waiting frame is committed when the video's frame callback allows it,
//! and wp_presentation feedback measures each shown frame's latency.

use std::sync::Arc;
use std::time::Duration;

use dmacam_capture::{monotonic_ns, PixelFormat};
use smithay_client_toolkit::compositor::{CompositorHandler, FrameCallbackData};
use smithay_client_toolkit::reexports::csd_frame::DecorationsFrame;
use smithay_client_toolkit::shell::WaylandSurface;
use wayland_client::protocol::{wl_output, wl_surface};
use wayland_client::{Connection, Dispatch, QueueHandle};
use wayland_protocols::wp::presentation_time::client::wp_presentation_feedback::Kind;
use wayland_protocols::wp::presentation_time::client::{wp_presentation, wp_presentation_feedback};

use super::options::BufferMode;
use super::state::State;
use crate::formats::lookup;
use crate::trace::FrameTrace;

/// User data of wp_presentation.
pub(super) struct PresentationGlobal;
/// User data of each presentation feedback: what was committed.
struct FeedbackInfo {
    capture: Option<Duration>,
    trace: Option<Arc<FrameTrace>>,
}

impl State {
    pub(super) fn try_commit(&mut self, qh: &QueueHandle<State>) {
        if self.fatal.is_some() || !self.layout.configured || self.presentation.frame_cb_pending {
            return;
        }
        let Some(frame) = self.presentation.pending.take() else {
            return;
        };
        let size = (frame.dmabuf.width, frame.dmabuf.height);
        if size != self.layout.frame_size {
            self.layout.frame_size = size;
            self.layout.layout_dirty = true;
        }
        if self.layout.layout_dirty {
            self.apply_layout(qh);
        }
        let Some(info) = lookup(frame.dmabuf.fourcc) else {
            let known: Vec<String> = crate::formats::known_v4l2()
                .map(|f| f.to_string())
                .collect();
            self.frame_error(
                frame.dmabuf.fourcc,
                format!(
                    "the display stage knows no such format (it shows {})",
                    known.join(", ")
                ),
            );
            return;
        };
        // wl_shm buffers are XRGB8888 whatever the camera's format.
        let ycbcr = self.mode == BufferMode::Dmabuf
            && PixelFormat::lookup(frame.dmabuf.fourcc).is_some_and(|p| p.is_yuv());
        let attached = match self.mode {
            BufferMode::Dmabuf => self.attach_dmabuf(frame, &info, qh),
            BufferMode::Shm => self.attach_shm(frame, &info, qh),
        };
        if !attached {
            return;
        }
        self.representation
            .before_commit(&self.layout.video, ycbcr, qh);
        let (w, h) = self.layout.frame_size;
        self.layout.video.damage_buffer(0, 0, w as i32, h as i32);
        self.layout
            .video
            .frame(qh, FrameCallbackData(self.layout.video.clone()));
        self.presentation.frame_cb_pending = true;
        self.layout.video.commit();
        self.stats.committed += 1;
    }

    pub(super) fn request_feedback(
        &mut self,
        capture: Option<Duration>,
        trace: Option<Arc<FrameTrace>>,
        qh: &QueueHandle<State>,
    ) {
        if let Some(p) = &self.presentation.global {
            p.feedback(&self.layout.video, qh, FeedbackInfo { capture, trace });
            self.presentation.feedback_outstanding += 1;
        }
    }
}

impl CompositorHandler for State {
    fn scale_factor_changed(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        surface: &wl_surface::WlSurface,
        factor: i32,
    ) {
        // The video and the background are scaled by wp_viewporter; only our own frame is drawn at the
        // output's scale.
        if surface == self.layout.window.wl_surface() {
            if let Some(f) = self.decorations.frame.as_mut() {
                f.set_scaling_factor(f64::from(factor));
                self.draw_frame();
                surface.commit();
            }
        }
    }

    fn transform_changed(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_surface::WlSurface,
        _: wl_output::Transform,
    ) {
    }

    fn frame(
        &mut self,
        _: &Connection,
        qh: &QueueHandle<Self>,
        surface: &wl_surface::WlSurface,
        _: u32,
    ) {
        if *surface == self.layout.video {
            self.presentation.frame_cb_pending = false;
            self.try_commit(qh);
        }
    }

    fn surface_enter(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_surface::WlSurface,
        _: &wl_output::WlOutput,
    ) {
    }

    fn surface_leave(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_surface::WlSurface,
        _: &wl_output::WlOutput,
    ) {
    }
}

impl Dispatch<wp_presentation::WpPresentation, PresentationGlobal> for State {
    fn event(
        state: &mut Self,
        _: &wp_presentation::WpPresentation,
        event: wp_presentation::Event,
        _: &PresentationGlobal,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wp_presentation::Event::ClockId { clk_id } = event {
            state.caps.presentation_clock = Some(clk_id);
        }
    }
}

/// The names of the wp_presentation_feedback flags set in `kind`, as the protocol spells them.
fn presentation_flag_names(kind: Kind) -> Vec<&'static str> {
    [
        (Kind::Vsync, "vsync"),
        (Kind::HwClock, "hw_clock"),
        (Kind::HwCompletion, "hw_completion"),
        (Kind::ZeroCopy, "zero_copy"),
    ]
    .into_iter()
    .filter(|(k, _)| kind.contains(*k))
    .map(|(_, name)| name)
    .collect()
}

/// `clock` now minus CLOCK_MONOTONIC now, in nanoseconds, to move a monotonic timestamp onto `clock`.
fn clock_offset_ns(clock: u32) -> Option<i128> {
    use nix::time::{clock_gettime, ClockId};
    let ns = |t: nix::sys::time::TimeSpec| {
        i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
    };
    let other = clock_gettime(ClockId::from_raw(clock as nix::libc::clockid_t)).ok()?;
    let mono = clock_gettime(ClockId::CLOCK_MONOTONIC).ok()?;
    Some(ns(other) - ns(mono))
}

impl Dispatch<wp_presentation_feedback::WpPresentationFeedback, FeedbackInfo> for State {
    fn event(
        state: &mut Self,
        _: &wp_presentation_feedback::WpPresentationFeedback,
        event: wp_presentation_feedback::Event,
        info: &FeedbackInfo,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            wp_presentation_feedback::Event::Presented {
                tv_sec_hi,
                tv_sec_lo,
                tv_nsec,
                flags,
                ..
            } => {
                if let Some(t) = &info.trace {
                    let names =
                        presentation_flag_names(flags.into_result().unwrap_or(Kind::empty()));
                    t.update(|r| r.presentation_flags = names);
                }
                state.presentation.feedback_outstanding =
                    state.presentation.feedback_outstanding.saturating_sub(1);
                let secs = (u64::from(tv_sec_hi) << 32) | u64::from(tv_sec_lo);
                let when = Duration::new(secs, tv_nsec);
                let clock = state
                    .caps
                    .presentation_clock
                    .unwrap_or(nix::libc::CLOCK_MONOTONIC as u32);
                let latency = info.capture.and_then(|cap| {
                    let offset = if clock == nix::libc::CLOCK_MONOTONIC as u32 {
                        0
                    } else {
                        clock_offset_ns(clock)?
                    };
                    let cap_ns = cap.as_nanos() as i128 + offset;
                    let l = when.as_nanos() as i128 - cap_ns;
                    if l >= 0 {
                        return Some(Duration::from_nanos(l as u64));
                    }
                    // A compositor on a virtual output (Weston headless under emulation) may stamp the
                    // presentation with the refresh cycle's ideal start, before a frame captured just
                    // before it was latched: then the time the event arrived stands in, and is counted.
                    state.stats.stamped_before_capture += 1;
                    dmacam_capture::monotonic_now().checked_sub(cap)
                });
                // The rate is counted on the client's clock, when each event arrived: a virtual output's
                // stamps (Weston headless under emulation) keep to an ideal refresh grid whatever the real
                // pace, and gave 30 fps for 64 frames shown in 24 s.
                state
                    .stats
                    .record_presented(dmacam_capture::monotonic_now(), latency);
                if state.stats.presented == 1 {
                    // What a script waits for before it takes a screenshot (the demo does).
                    tracing::info!("first picture presented by the compositor");
                }
                if let Some(t) = &info.trace {
                    t.update(|r| r.latency_ns = latency.map(|l| l.as_nanos() as u64));
                    let offset = if clock == nix::libc::CLOCK_MONOTONIC as u32 {
                        Some(0)
                    } else {
                        clock_offset_ns(clock)
                    };
                    if let Some(off) = offset {
                        let mono = u64::try_from(when.as_nanos() as i128 - off).ok();
                        // A stamp before the commit (see above) cannot be when it was shown: the event's
                        // arrival stands in, as for the latency.
                        let arrived = monotonic_ns();
                        t.update(|r| {
                            r.presented_ns = match (mono, r.committed_ns) {
                                (Some(m), Some(c)) if m < c => Some(arrived),
                                (m, _) => m,
                            }
                        });
                    }
                }
            }
            wp_presentation_feedback::Event::Discarded => {
                state.presentation.feedback_outstanding =
                    state.presentation.feedback_outstanding.saturating_sub(1);
                state.stats.discarded += 1;
                if let Some(t) = &info.trace {
                    t.update(|r| r.discarded = true);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presentation_flags_are_named_as_the_protocol_spells_them() {
        assert!(presentation_flag_names(Kind::empty()).is_empty());
        assert_eq!(
            presentation_flag_names(Kind::Vsync | Kind::ZeroCopy),
            ["vsync", "zero_copy"]
        );
        assert_eq!(
            presentation_flag_names(Kind::all()),
            ["vsync", "hw_clock", "hw_completion", "zero_copy"]
        );
    }
}
