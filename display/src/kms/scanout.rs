//! The page-flip state machine that shows frames on one CRTC.
//!
//! ```text
//!   submit(frame) ──► [flip in flight?] ─ no ─► commit ──► queued ──(page-flip event)──► active
//!                           │ yes                                                      │
//!                           ▼                                                          ▼
//!                        pending (a newer frame replaces it: counted as a drop)   the previous active frame
//!                           │                                                      is dropped: its buffer
//!                           └── committed by the page-flip event handler ──►       returns to the producer
//! ```
//!
//! At most one commit is in flight (`queued`). A frame that arrives meanwhile waits in `pending`; only the
//! newest waits. When the flip completes, the frame it replaced on screen (`active`) is released — never
//! earlier, since the display controller reads it until that moment — and the pending one is committed.
//!
//! When the scanout is finished (or dropped, e.g. after Ctrl-C) the configuration found at start is restored
//! before any framebuffer is removed, so the display ends up as it was.
//!
//! When the producer goes away (a camera unplugged), [`Scanout::release_frames`] hands every frame back while
//! the last picture stays on screen: its framebuffer alone is kept (the kernel holds the memory through the
//! imported GEM handles) until a flip of the next producer's first frame has replaced it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dmacam_capture::colour::Colorimetry;
use dmacam_capture::{Dmabuf, Fourcc};
use drm::control::{AtomicCommitFlags, Device as _, Event};

use super::card::Card;
use super::colour::{self, PlaneColour};
use super::commit::{self, OutputProps, Request, Saved};
use super::error::KmsError;
pub use super::frame::ScanoutFrame;
use super::frame::IN_FENCE_FD;
use super::import::{Framebuffer, ImportCache, ImportCounts};
use super::output::{mode_name, Output, OutputRequest, Placement};
use super::poll::wait_readable;
use super::stats::{KmsStats, KmsSummary};
use super::writeback::{self, WritebackImage};
use crate::formats::drm_format_for;
use dmacam_capture::{monotonic_now, monotonic_ns};

/// The inodes of the distinct dma-bufs behind `d`'s planes (what the framebuffer was imported from).
fn inodes(d: &Dmabuf) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for p in &d.planes {
        if let Ok(st) = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&p.fd)) {
            if !out.contains(&st.st_ino) {
                out.push(st.st_ino);
            }
        }
    }
    out
}

/// A frame on (or on its way to) the screen, with the framebuffer showing it.
#[derive(Debug)]
struct Shown<F> {
    frame: F,
    fb: Arc<Framebuffer>,
    /// When it was committed (CLOCK_MONOTONIC ns).
    committed_ns: u64,
}

/// The state of the flip pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanoutState {
    /// Nothing committed yet.
    Idle,
    /// A frame is on screen and no flip is in flight.
    Showing,
    /// A flip is in flight.
    Flipping,
    /// A flip is in flight and a newer frame waits for it.
    FlippingWithPending,
}

/// Shows frames on one CRTC, paced by page-flip events. See the [module docs](self).
pub struct Scanout<F: ScanoutFrame> {
    card: Arc<Card>,
    output: Output,
    props: OutputProps,
    saved: Saved,
    cache: ImportCache,
    placement: Option<Placement>,
    /// The plane's COLOR_ENCODING and COLOR_RANGE values, set with the modeset (see
    /// [`Scanout::set_colorimetry`]).
    colour: Option<[(&'static str, u64); 2]>,
    /// Our MODE_ID blob, destroyed at the end.
    mode_blob: Option<u64>,
    active: Option<Shown<F>>,
    queued: Option<Shown<F>>,
    pending: Option<F>,
    /// On screen with its frame already handed back (see [`Scanout::release_frames`]).
    retained: Option<Arc<Framebuffer>>,
    stats: KmsStats,
    restored: bool,
}

impl<F: ScanoutFrame> std::fmt::Debug for Scanout<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanout")
            .field("card", &self.card.path())
            .field("output", &self.output)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl<F: ScanoutFrame> Scanout<F> {
    /// Chooses the output on `card` for frames of V4L2 format `format` and snapshots the current
    /// configuration. Nothing changes on screen until the first [`Scanout::submit`].
    pub fn new(card: Arc<Card>, req: &OutputRequest, format: Fourcc) -> Result<Self, KmsError> {
        let drm = drm_format_for(format).ok_or_else(|| KmsError::UnknownFormat {
            path: card.path().to_path_buf(),
            format: format.to_string(),
        })?;
        let output = Output::select(&card, req, drm)?;
        let props = OutputProps::read(&card, &output)?;
        let saved = Saved::take(&card, &output)?;
        Ok(Scanout {
            cache: ImportCache::new(card.clone()),
            card,
            output,
            props,
            saved,
            placement: None,
            colour: None,
            mode_blob: None,
            active: None,
            queued: None,
            pending: None,
            retained: None,
            stats: KmsStats::default(),
            restored: false,
        })
    }

    /// The chosen output.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Tells the plane what the frames' Y'CbCr means (`None`: R'G'B' frames) through its COLOR_ENCODING and
    /// COLOR_RANGE properties where it has them; they are set with the modeset, so call this before the first
    /// [`Scanout::submit`]. Returns what the plane is told, or why it cannot be and whether the colours will
    /// be off.
    pub fn set_colorimetry(&mut self, c: Option<Colorimetry>) -> PlaneColour {
        let (told, values) = colour::for_plane(c, &self.props.plane, self.card.info().atomic);
        self.colour = values;
        told
    }

    /// The card.
    pub fn card(&self) -> &Arc<Card> {
        &self.card
    }

    /// Where frames go on the mode (known after the first submit).
    pub fn placement(&self) -> Option<Placement> {
        self.placement
    }

    /// The DRM fd to poll for page-flip events (readable → call [`Scanout::dispatch`]).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.card.as_fd()
    }

    /// The state of the flip pipeline.
    pub fn state(&self) -> ScanoutState {
        match (&self.active, &self.queued, &self.pending) {
            (_, Some(_), Some(_)) => ScanoutState::FlippingWithPending,
            (_, Some(_), None) => ScanoutState::Flipping,
            (Some(_), None, _) => ScanoutState::Showing,
            (None, None, _) => ScanoutState::Idle,
        }
    }

    /// How many frames the scanout holds now (active + queued + pending): the producer needs more buffers
    /// than this to keep capturing.
    pub fn held(&self) -> usize {
        usize::from(self.active.is_some())
            + usize::from(self.queued.is_some())
            + usize::from(self.pending.is_some())
    }

    /// The counters so far.
    pub fn stats(&self) -> &KmsStats {
        &self.stats
    }

    /// Import and framebuffer counts.
    pub fn import_counts(&self) -> ImportCounts {
        self.cache.counts()
    }

    /// Hands a frame over: committed now if no flip is in flight, otherwise kept as the pending frame
    /// (replacing, and so dropping, an older pending one).
    pub fn submit(&mut self, frame: F) -> Result<(), KmsError> {
        self.stats.record_submitted(frame.sequence());
        if self.queued.is_some() {
            if let Some(old) = self.pending.replace(frame) {
                self.stats.replaced += 1;
                if let Some(t) = old.trace() {
                    t.update(|r| r.replaced = true);
                }
                drop(old);
            }
            return Ok(());
        }
        self.commit(frame)
    }

    /// Commits `frame`: the first time with a modeset, then as a flip. Afterwards it is `queued` (or, for the
    /// legacy modeset, which completes synchronously, `active`).
    fn commit(&mut self, frame: F) -> Result<(), KmsError> {
        let fb = self.cache.framebuffer(frame.dmabuf())?;
        let committed_ns = monotonic_ns();
        if let Some(t) = frame.trace() {
            let inodes = inodes(frame.dmabuf());
            t.update(|r| {
                r.kind = Some("kms");
                r.kms_fb = Some(fb.id().into());
                r.inodes = inodes;
                r.committed_ns = Some(committed_ns);
            });
        }
        let path = self.card.path().to_path_buf();
        let atomic = self.card.info().atomic;
        // A frame still being written: an atomic flip waits for its fence in the kernel (IN_FENCE_FD); any
        // other commit only once the CPU has waited for it.
        let in_fence = frame
            .acquire_fence()
            .filter(|_| atomic && self.props.plane.handle(IN_FENCE_FD).is_some())
            .map(|f| f.as_raw_fd());
        let sync = match in_fence {
            Some(_) => Some("explicit"),
            None => frame.wait_acquire().then_some("cpu-wait"),
        };
        if let (Some(t), Some(sync)) = (frame.trace(), sync) {
            t.update(|r| r.sync = Some(sync));
        }
        match (self.placement, atomic) {
            (Some(placement), true) => {
                let mut req = Request::new(&self.card);
                req.plane(
                    self.output.plane,
                    &self.props.plane,
                    self.output.crtc,
                    Some(fb.id()),
                    &placement,
                )?;
                self.set_in_fence(&mut req, in_fence)?;
                req.commit(AtomicCommitFlags::NONBLOCK | AtomicCommitFlags::PAGE_FLIP_EVENT)
                    .map_err(|source| KmsError::Commit {
                        path,
                        what: "page flip",
                        source,
                    })?;
            }
            (Some(_), false) => {
                commit::legacy_flip(&self.card, self.output.crtc, fb.id()).map_err(|source| {
                    KmsError::Commit {
                        path,
                        what: "page flip (PAGE_FLIP)",
                        source,
                    }
                })?;
            }
            (None, true) => self.atomic_modeset(&fb, in_fence)?,
            (None, false) => {
                self.legacy_modeset(&fb)?;
                self.stats.committed += 1;
                // SETCRTC completes synchronously and has no event time: counted, not timed.
                self.stats.shown += 1;
                let old = self.active.replace(Shown {
                    frame,
                    fb,
                    committed_ns,
                });
                drop(old);
                return Ok(());
            }
        }
        self.stats.committed += 1;
        self.queued = Some(Shown {
            frame,
            fb,
            committed_ns,
        });
        Ok(())
    }

    /// The first atomic commit: mode, connector, plane; the placement is the first candidate the driver
    /// accepts in a test commit.
    /// Makes the commit `req` wait for `fence` (a sync_file's fd), if any.
    fn set_in_fence(&self, req: &mut Request<'_>, fence: Option<RawFd>) -> Result<(), KmsError> {
        match fence {
            // The property is a signed range: the fd's value, sign-extended.
            Some(fd) => req.set(
                self.output.plane,
                &self.props.plane,
                IN_FENCE_FD,
                i64::from(fd) as u64,
            ),
            None => Ok(()),
        }
    }

    fn atomic_modeset(&mut self, fb: &Framebuffer, fence: Option<RawFd>) -> Result<(), KmsError> {
        let path = self.card.path().to_path_buf();
        let blob: u64 = self
            .card
            .create_property_blob(&self.output.mode)
            .map_err(|e| KmsError::ioctl(&path, "DRM_IOCTL_MODE_CREATEPROPBLOB", e))?
            .into();
        self.mode_blob = Some(blob);
        let mode = self.output.mode_size();
        let candidates = Placement::candidates(fb.size(), mode);
        let mut last_err = None;
        for placement in candidates {
            let req = self.modeset_request(blob, fb, &placement)?;
            match req.commit(AtomicCommitFlags::ALLOW_MODESET | AtomicCommitFlags::TEST_ONLY) {
                Ok(()) => {
                    let mut req = self.modeset_request(blob, fb, &placement)?;
                    self.set_in_fence(&mut req, fence)?;
                    req.commit(
                        AtomicCommitFlags::ALLOW_MODESET
                            | AtomicCommitFlags::NONBLOCK
                            | AtomicCommitFlags::PAGE_FLIP_EVENT,
                    )
                    .map_err(|source| KmsError::Commit {
                        path: path.clone(),
                        what: "modeset",
                        source,
                    })?;
                    tracing::info!(
                        card = %path.display(),
                        connector = %self.output.connector_name,
                        mode = %self.output.mode_name(),
                        plane = self.output.plane_kind.as_str(),
                        placement = %placement,
                        "modeset (atomic)"
                    );
                    self.placement = Some(placement);
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(placement = %placement, "test commit rejected: {e}");
                    last_err = Some((placement, e));
                }
            }
        }
        let (w, h) = fb.size();
        let why = match last_err {
            Some((p, e)) if p.scales() || (w, h) != mode => format!(
                "the driver rejected every placement ({e}); its plane cannot scale or position this frame — \
                 pick --mode {w}x{h} if the connector offers it, or let the GPU path scale"
            ),
            Some((_, e)) => format!("the driver rejected the configuration: {e}"),
            None => "no placement to try".to_owned(),
        };
        Err(KmsError::Placement {
            path,
            frame_w: w,
            frame_h: h,
            mode_w: mode.0,
            mode_h: mode.1,
            why,
        })
    }

    fn modeset_request(
        &self,
        blob: u64,
        fb: &Framebuffer,
        placement: &Placement,
    ) -> Result<Request<'_>, KmsError> {
        let out = &self.output;
        let mut req = Request::new(&self.card);
        req.set(out.crtc, &self.props.crtc, "MODE_ID", blob)?;
        req.set(out.crtc, &self.props.crtc, "ACTIVE", 1)?;
        req.set(
            out.connector,
            &self.props.connector,
            "CRTC_ID",
            u64::from(u32::from(out.crtc)),
        )?;
        for (c, props) in self.saved.other_connectors(out.crtc, out.connector) {
            req.set(c, &props, "CRTC_ID", 0)?;
        }
        for (p, props) in self.saved.busy_planes(out.crtc, out.plane) {
            req.plane(p, &props, out.crtc, None, placement)?;
        }
        req.plane(
            out.plane,
            &self.props.plane,
            out.crtc,
            Some(fb.id()),
            placement,
        )?;
        for (name, value) in self.colour.iter().flatten() {
            req.set(out.plane, &self.props.plane, name, *value)?;
        }
        Ok(req)
    }

    /// Checks before streaming that frames of `width`x`height` can be shown at all, where that is known
    /// without a frame: legacy modesetting needs the frame to cover the mode. (Atomic placement is tested with
    /// the first frame's framebuffer.)
    pub fn check_frame_size(&self, width: u32, height: u32) -> Result<(), KmsError> {
        let (mw, mh) = self.output.mode_size();
        if !self.card.info().atomic && (width < mw || height < mh) {
            return Err(KmsError::Placement {
                path: self.card.path().to_path_buf(),
                frame_w: width,
                frame_h: height,
                mode_w: mw,
                mode_h: mh,
                why: "legacy modesetting shows a framebuffer only at least as large as the mode; pick \
                      --mode with the frame size or use a driver with atomic modesetting"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// The legacy modeset (SETCRTC): the frame must cover the mode; a larger one is shown from its centre.
    fn legacy_modeset(&mut self, fb: &Framebuffer) -> Result<(), KmsError> {
        let path = self.card.path().to_path_buf();
        let (w, h) = fb.size();
        let (mw, mh) = self.output.mode_size();
        self.check_frame_size(w, h)?;
        let placement = Placement {
            src: ((w - mw) / 2, (h - mh) / 2, mw, mh),
            dst: (0, 0, mw, mh),
        };
        self.card
            .set_crtc(
                self.output.crtc,
                Some(fb.id()),
                (placement.src.0, placement.src.1),
                &[self.output.connector],
                Some(self.output.mode),
            )
            .map_err(|source| KmsError::Commit {
                path: path.clone(),
                what: "modeset (SETCRTC)",
                source,
            })?;
        tracing::info!(
            card = %path.display(),
            connector = %self.output.connector_name,
            mode = %self.output.mode_name(),
            placement = %placement,
            "modeset (legacy)"
        );
        self.placement = Some(placement);
        Ok(())
    }

    /// Reads the DRM events that are ready (call when [`Scanout::fd`] is readable) and advances the state
    /// machine. Returns the number of completed flips.
    pub fn dispatch(&mut self) -> Result<usize, KmsError> {
        let events = self
            .card
            .receive_events()
            .map_err(|e| KmsError::ioctl(self.card.path(), "reading DRM events", e))?;
        let mut flips = 0;
        for event in events {
            if let Event::PageFlip(e) = event {
                if e.crtc == self.output.crtc {
                    self.flip_done(e.duration)?;
                    flips += 1;
                }
            }
        }
        Ok(flips)
    }

    /// Waits up to `timeout` for DRM events and handles them (for loops with nothing else to poll).
    /// Returns the number of completed flips.
    pub fn wait_events(&mut self, timeout: Duration) -> Result<usize, KmsError> {
        if wait_readable(self.card.as_fd(), timeout)? {
            return self.dispatch();
        }
        Ok(0)
    }

    /// A flip completed at `when`: the queued frame is now on screen, the one it replaced goes back to its
    /// producer, and the pending frame (if any) is committed.
    fn flip_done(&mut self, when: Duration) -> Result<(), KmsError> {
        let Some(now_showing) = self.queued.take() else {
            tracing::debug!("page-flip event with nothing queued");
            return Ok(());
        };
        // Latency: capture timestamp to the flip's event timestamp. Virtual drivers (vkms under emulation)
        // stamp a flip with the ideal vblank time, which can precede a frame captured just before the late
        // vblank handler latched it; then the time the event was received stands in, and is counted.
        let captured = now_showing.frame.capture_time();
        let latency = match captured {
            Some(c) if self.card.info().monotonic_timestamps && when >= c => Some(when - c),
            Some(c) => {
                self.stats.flip_stamped_before_capture += 1;
                monotonic_now().checked_sub(c)
            }
            None => None,
        };
        tracing::trace!(
            flip = ?when,
            captured = ?now_showing.frame.capture_time(),
            sequence = ?now_showing.frame.sequence(),
            "flip completed"
        );
        self.stats.record_shown(when, latency);
        if let Some(t) = now_showing.frame.trace() {
            // The event's time, unless it precedes the commit (see above): then its arrival.
            let stamp = when.as_nanos() as u64;
            let at = if self.card.info().monotonic_timestamps && stamp >= now_showing.committed_ns {
                stamp
            } else {
                monotonic_ns()
            };
            t.update(|r| {
                r.presented_ns = Some(at);
                r.latency_ns = latency.map(|l| l.as_nanos() as u64);
            });
        }
        // The replaced frame is released only now that the controller no longer reads it.
        let replaced = self.active.replace(now_showing);
        drop(replaced);
        self.retained = None;
        if let Some(next) = self.pending.take() {
            self.commit(next)?;
        }
        Ok(())
    }

    /// Waits up to `timeout` for the flip in flight (and any pending frame's flip) to complete.
    pub fn wait_idle(&mut self, timeout: Duration) -> Result<(), KmsError> {
        let deadline = Instant::now() + timeout;
        while self.queued.is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(KmsError::FlipTimeout {
                    path: self.card.path().to_path_buf(),
                    ms: timeout.as_millis() as u64,
                });
            }
            self.wait_events(left)?;
        }
        Ok(())
    }

    /// Hands every frame back to its producer (which is going away) while the last one stays on screen: the
    /// pending frame is dropped, the flip in flight (if any) completes within `timeout`, and of the frame on
    /// screen only its framebuffer is kept, until the next submitted frame's flip replaces it. Imports and
    /// framebuffers of the old producer's buffers are let go too. Streaming resumes with
    /// [`Scanout::submit`] as before (a flip: the mode stays set).
    pub fn release_frames(&mut self, timeout: Duration) -> Result<(), KmsError> {
        if let Some(dropped) = self.pending.take() {
            self.stats.replaced += 1;
            if let Some(t) = dropped.trace() {
                t.update(|r| r.replaced = true);
            }
        }
        self.wait_idle(timeout)?;
        if let Some(shown) = self.active.take() {
            self.retained = Some(shown.fb);
        }
        self.cache.clear();
        Ok(())
    }

    /// Captures what the CRTC composes now through the card's writeback connector (atomic drivers with one,
    /// such as vkms). Waits for any flip in flight first.
    pub fn capture_writeback(&mut self, timeout: Duration) -> Result<WritebackImage, KmsError> {
        self.wait_idle(timeout)?;
        let on_screen = self
            .active
            .as_ref()
            .map(|a| &a.fb)
            .or(self.retained.as_ref());
        let (Some(fb), Some(placement)) = (on_screen, self.placement) else {
            return Err(KmsError::Writeback {
                path: self.card.path().to_path_buf(),
                why: "nothing is on screen yet".to_owned(),
            });
        };
        writeback::capture(
            &self.card,
            &self.output,
            &self.props,
            fb.id(),
            &placement,
            timeout,
        )
    }

    /// The summary of the run.
    pub fn summary(&self) -> KmsSummary {
        let counts = self.cache.counts();
        let s = &self.stats;
        KmsSummary {
            path: "passthrough (PRIME import of the producer's dma-buf, no copy)".to_owned(),
            card: self.card.path().display().to_string(),
            connector: self.output.connector_name.clone(),
            mode: mode_name(&self.output.mode),
            plane: format!("{} {}", self.output.plane_kind.as_str(), self.output.format),
            placement: self
                .placement
                .map(|p| p.to_string())
                .unwrap_or_else(|| "none".to_owned()),
            atomic: self.card.info().atomic,
            frames_submitted: s.submitted,
            frames_committed: s.committed,
            frames_shown: s.shown,
            drops: s.replaced + s.sequence_gaps,
            replaced: s.replaced,
            sequence_gaps: s.sequence_gaps,
            fps: s.fps(),
            latency_ms_p50: s.latency_percentile_ms(50.0),
            latency_ms_p95: s.latency_percentile_ms(95.0),
            latency_ms_p99: s.latency_percentile_ms(99.0),
            latency_samples: s.latency_samples(),
            flips_stamped_before_capture: s.flip_stamped_before_capture,
            cpu_bytes_copied_per_frame: if s.committed == 0 {
                0.0
            } else {
                s.cpu_bytes_copied as f64 / s.committed as f64
            },
            cpu_bytes_copied_total: s.cpu_bytes_copied,
            prime_imports: counts.prime_imports,
            framebuffers_added: counts.framebuffers_added,
            decode: None,
            source_write: None,
            intake: None,
        }
    }

    /// Waits for the flip in flight, restores the configuration found at start and releases every frame and
    /// framebuffer. Returns the summary.
    pub fn finish(mut self) -> Result<KmsSummary, KmsError> {
        let waited = self.wait_idle(Duration::from_secs(2));
        let summary = self.summary();
        let restored = self.restore();
        waited?;
        restored?;
        Ok(summary)
    }

    /// Restores the saved configuration (once), then releases frames, framebuffers and imports.
    fn restore(&mut self) -> Result<(), KmsError> {
        if self.restored {
            return Ok(());
        }
        self.restored = true;
        let mut result = Ok(());
        if self.placement.is_some() {
            if let Err(e) = self.saved.restore(&self.card, &self.output) {
                tracing::warn!("{e}; turning the CRTC off instead");
                if let Err(e2) = commit::disable(&self.card, &self.output, &self.props) {
                    tracing::warn!("{e2}");
                }
                result = Err(e);
            } else {
                tracing::debug!(card = %self.card.path().display(), "previous configuration restored");
            }
        }
        // Nothing of ours is on screen any more: release in order frames -> framebuffers -> GEM handles.
        self.pending = None;
        self.queued = None;
        self.active = None;
        self.retained = None;
        self.cache.clear();
        if let Some(blob) = self.mode_blob.take() {
            if let Err(e) = self.card.destroy_property_blob(blob) {
                tracing::debug!("destroying the mode blob: {e}");
            }
        }
        result
    }
}

impl<F: ScanoutFrame> Drop for Scanout<F> {
    fn drop(&mut self) {
        if !self.restored {
            // A blocking commit waits for one in flight, so restoring right away is safe.
            if let Err(e) = self.restore() {
                tracing::warn!("{e}");
            }
        }
    }
}
