//! Frames in flight: a conversion submitted and not yet waited for ([`Pending`]), and how its owner learns
//! that it is done without blocking. Where the driver exports fences as sync_files (`SYNC_FD`), each
//! submission's fence is exported at once and the owner polls that sync_file ([`Pending::completion_fd`]:
//! `sync-file`); else a waiter thread waits for each submission's fence in turn and then signals an eventfd
//! the owner polls with its other fds ([`Renderer::completion_fd`]: `waiter-thread`). The owner's loop never
//! blocks in `vkWaitForFences`; the camera buffer a frame reads is given back only after its [`Pending`] is
//! done.
//!
//! A fence is touched by one thread at a time: the waiter waits for it, and only once the waiter has said
//! so does the owner reset it (in [`Renderer::finish`], or when a [`Pending`] is dropped unfinished).
//!
//! [`Renderer::completion_fd`]: super::Renderer::completion_fd
//! [`Renderer::finish`]: super::Renderer::finish

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use ash::vk;
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::output::OutputSlot;
use super::pipeline::Shared;
use super::submit::{reset_fence, wait_fence, FENCE_TIMEOUT_NS};
use crate::RenderError;

/// What the waiter found for one submission.
#[derive(Default)]
pub(super) struct Done {
    result: Mutex<Option<Result<(), RenderError>>>,
    cv: Condvar,
}

impl Done {
    fn set(&self, r: Result<(), RenderError>) {
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        self.cv.notify_all();
    }

    fn is_set(&self) -> bool {
        self.result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Blocks until the waiter has said; returns what it found.
    fn wait(&self) -> Result<(), RenderError> {
        let mut r = self.result.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = r.take() {
                return r;
            }
            r = self.cv.wait(r).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// One submission for the waiter.
struct Job {
    fence: vk::Fence,
    seq: u64,
    done: Arc<Done>,
}

/// The waiter thread and the eventfd it signals (one count per finished submission).
pub(super) struct Waiter {
    efd: Arc<EventFd>,
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Waiter {
    pub(super) fn start(shared: Arc<Shared>) -> Result<Waiter, RenderError> {
        let efd =
            EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(|e| {
                RenderError::Os {
                    what: "eventfd for GPU completions",
                    source: e.into(),
                }
            })?;
        let efd = Arc::new(efd);
        let (tx, rx) = channel::<Job>();
        let signal = efd.clone();
        let thread = std::thread::Builder::new()
            .name("dmacam-gpu-wait".into())
            .spawn(move || {
                for job in rx {
                    let r = wait_fence(&shared, job.fence, job.seq);
                    job.done.set(r);
                    // A full counter (2^64 - 2 completions) cannot happen; a failed write is only logged.
                    if let Err(e) = signal.write(1) {
                        tracing::warn!("GPU completion eventfd: {e}");
                    }
                }
            })
            .map_err(|e| RenderError::Os {
                what: "the GPU waiter thread",
                source: e,
            })?;
        Ok(Waiter {
            efd,
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// The fd that is readable while finished submissions have not been [`Waiter::clear`]ed.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }

    /// Takes the readable state off the fd.
    pub(super) fn clear(&self) {
        let _ = self.efd.read();
    }

    /// Hands a submitted fence to the waiter.
    pub(super) fn watch(&self, fence: vk::Fence, seq: u64) -> Arc<Done> {
        let done = Arc::new(Done::default());
        let job = Job {
            fence,
            seq,
            done: done.clone(),
        };
        if let Some(Err(e)) = self.jobs.as_ref().map(|tx| tx.send(job)) {
            // The thread is gone (it cannot panic short of a bug): say so rather than hang the owner.
            e.0.done.set(Err(RenderError::Os {
                what: "the GPU waiter thread",
                source: std::io::Error::other("it has stopped"),
            }));
        }
        done
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has waited for every job it was given.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a [`Pending`] learns that the GPU is done.
pub(super) enum Completion {
    /// The waiter thread waits for the fence and says so.
    Waiter(Arc<Done>),
    /// The fence's completion exported as a sync_file (the fence itself was reset by the export); readable
    /// once the GPU is done.
    SyncFile(OwnedFd),
    /// The driver exported no sync_file, the submission being done already: an eventfd, readable at once,
    /// stands in.
    Signalled(OwnedFd),
}

impl Completion {
    /// Whether it has signalled already (a sync_file or its stand-in; the waiter's word otherwise).
    pub(super) fn signalled(&self) -> bool {
        match self {
            Completion::Waiter(d) => d.is_set(),
            Completion::SyncFile(fd) | Completion::Signalled(fd) => {
                readable(fd.as_fd(), 0).unwrap_or(true)
            }
        }
    }
}

/// Exports the fence of a frame just submitted as a sync_file. A driver may give no fd (-1) for work
/// already done: then an eventfd that is readable at once stands in, so there is always an fd to poll.
pub(super) fn export_sync_file(
    shared: &Shared,
    fence: vk::Fence,
) -> Result<Completion, RenderError> {
    let ext = shared.gpu.fence_fd.as_ref().ok_or(RenderError::Vk {
        what: "vkGetFenceFdKHR",
        source: vk::Result::ERROR_FEATURE_NOT_PRESENT,
    })?;
    let info = vk::FenceGetFdInfoKHR::default()
        .fence(fence)
        .handle_type(vk::ExternalFenceHandleTypeFlags::SYNC_FD);
    // SAFETY: the fence is live, was created exportable as SYNC_FD (`fence_fd` is only set then) and has a
    // signal operation pending from the submission just made; no other thread uses it.
    let fd = unsafe { ext.get_fence_fd(&info) }.map_err(|source| RenderError::Vk {
        what: "vkGetFenceFdKHR",
        source,
    })?;
    if fd >= 0 {
        // SAFETY: on success the driver gave us a new sync_file fd that nothing else owns.
        return Ok(Completion::SyncFile(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    tracing::debug!("the driver exported no sync_file (-1): the submission is already done");
    let efd =
        EventFd::from_value_and_flags(1, EfdFlags::EFD_CLOEXEC).map_err(|e| RenderError::Os {
            what: "eventfd for a finished GPU submission",
            source: e.into(),
        })?;
    Ok(Completion::Signalled(efd.into()))
}

/// Whether `fd` is readable within `timeout_ms` (0: now).
fn readable(fd: BorrowedFd<'_>, timeout_ms: u16) -> Result<bool, RenderError> {
    let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
    dmacam_capture::fence::poll_signalled(fd, timeout).map_err(|source| RenderError::Os {
        what: "poll on a GPU sync_file",
        source,
    })
}

/// Waits up to [`FENCE_TIMEOUT_NS`] for the sync_file of frame `seq`.
fn wait_sync_file(fd: BorrowedFd<'_>, seq: u64) -> Result<(), RenderError> {
    let ms = FENCE_TIMEOUT_NS / 1_000_000;
    let start = std::time::Instant::now();
    while !readable(fd, 1000)? {
        if start.elapsed().as_millis() as u64 >= ms {
            return Err(RenderError::Timeout { seq, ms });
        }
    }
    Ok(())
}

/// A conversion on the GPU. [`super::Renderer::finish`] turns it into the [`super::OutputFrame`] once
/// [`Pending::is_done`]; dropped unfinished, it waits for the GPU before its output buffer is reused.
pub struct Pending {
    pub(super) slot: Option<Arc<OutputSlot>>,
    pub(super) shared: Arc<Shared>,
    pub(super) seq: u64,
    pub(super) done: Completion,
}

impl Pending {
    /// Whether the GPU has finished (its sync_file is readable, or the waiter has said); never blocks.
    pub fn is_done(&self) -> bool {
        // A failed poll says "done": completing it then reports the error.
        self.done.signalled()
    }

    /// The sync_file the driver exported for this conversion: a consumer that waits on it itself (an
    /// acquire fence for a compositor, KMS's IN_FENCE_FD) can take the output before the GPU is done
    /// ([`super::Renderer::output_in_flight`]). `None` where the driver exports none, or the conversion was
    /// done before it could.
    pub fn sync_file(&self) -> Option<BorrowedFd<'_>> {
        match &self.done {
            Completion::SyncFile(fd) => Some(fd.as_fd()),
            _ => None,
        }
    }

    /// The sync_file that becomes readable when this conversion is done, where the driver exported one;
    /// `None`: [`super::Renderer::completion_fd`] (the waiter thread's eventfd) says instead.
    pub fn completion_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.done {
            Completion::Waiter(_) => None,
            Completion::SyncFile(fd) | Completion::Signalled(fd) => Some(fd.as_fd()),
        }
    }

    /// Whether the driver had finished the conversion by the time its fence was exported (it gave no
    /// sync_file): there is nothing for anyone to wait for.
    pub fn done_at_export(&self) -> bool {
        matches!(self.done, Completion::Signalled(_))
    }

    /// How this conversion's completion reaches its owner: `sync-file` or `waiter-thread`.
    pub fn completion(&self) -> &'static str {
        match &self.done {
            Completion::Waiter(_) => "waiter-thread",
            Completion::SyncFile(_) | Completion::Signalled(_) => "sync-file",
        }
    }

    /// The renderer's frame sequence number of this conversion.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Waits (if need be) for the waiter's word, resets the fence for the slot's next use and gives the
    /// slot back.
    pub(super) fn complete(&mut self) -> Result<Arc<OutputSlot>, RenderError> {
        let slot = self.slot.take().expect("a pending frame completes once");
        let r = match &self.done {
            Completion::Waiter(d) => {
                let r = d.wait();
                reset_fence(&self.shared, slot.fence)?;
                r
            }
            // The export reset the fence already.
            Completion::SyncFile(fd) | Completion::Signalled(fd) => {
                wait_sync_file(fd.as_fd(), self.seq)
            }
        };
        match r {
            Ok(()) => Ok(slot),
            Err(e) => {
                slot.holds.fetch_sub(1, Ordering::AcqRel);
                Err(e)
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.slot.is_some() {
            if let Ok(slot) = self.complete() {
                slot.holds.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("seq", &self.seq)
            .field("done", &self.is_done())
            .finish()
    }
}
