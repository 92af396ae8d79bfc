//! Explicit synchronization with the compositor (zwp_linux_explicit_synchronization_v1) where it offers the
//! protocol: a picture handed over while its producer (the GPU) is still writing it is committed with its
//! acquire fence, so the compositor waits for the GPU rather than the viewer waiting on the CPU; each such
//! commit asks for its own release (zwp_linux_buffer_release_v1), and the fence the compositor releases the
//! buffer with goes back to the producer ([`crate::Fences::release`]), which writes the buffer again only
//! once it has signalled. The picture's holder is kept until that per-commit release; `wl_buffer.release`
//! (still sent) then only marks the wl_buffer idle.
//!
//! Where the compositor does not offer the protocol, an application attaches the fence to the dma-buf
//! instead (implicit sync) or hands pictures over finished; see ARCHITECTURE.md, "Fences to the display".

use std::any::Any;
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::Arc;

use dmacam_capture::fence::ReleaseFence;
use wayland_client::backend::ObjectId;
use wayland_client::globals::GlobalList;
use wayland_client::protocol::wl_surface;
use wayland_client::{delegate_noop, Connection, Dispatch, Proxy, QueueHandle};
use wayland_protocols::wp::linux_explicit_synchronization::zv1::client::{
    zwp_linux_buffer_release_v1 as release, zwp_linux_explicit_synchronization_v1 as manager,
    zwp_linux_surface_synchronization_v1 as surface_sync,
};

use super::options::Picture;
use super::state::State;

/// The video surface's synchronization object (when the compositor offers the protocol) and the holders of
/// the pictures committed with an acquire fence, until their release.
#[derive(Default)]
pub(super) struct ExplicitSync {
    surface: Option<surface_sync::ZwpLinuxSurfaceSynchronizationV1>,
    waiting: HashMap<ObjectId, Waiting>,
}

/// A picture committed with an acquire fence, until the compositor releases it.
struct Waiting {
    _holder: Option<Box<dyn Any + Send>>,
    release: Option<Arc<ReleaseFence>>,
}

impl ExplicitSync {
    /// Binds the global (if offered) and makes `video`'s synchronization object.
    pub(super) fn bind(
        globals: &GlobalList,
        video: &wl_surface::WlSurface,
        qh: &QueueHandle<State>,
    ) -> ExplicitSync {
        let surface = globals
            .bind::<manager::ZwpLinuxExplicitSynchronizationV1, _, _>(qh, 1..=2, ())
            .ok()
            .map(|m| m.get_synchronization(video, qh, ()));
        ExplicitSync {
            surface,
            waiting: HashMap::new(),
        }
    }

    /// Whether acquire fences go to the compositor.
    pub(super) fn offered(&self) -> bool {
        self.surface.is_some()
    }

    /// Lets every picture waiting for its release go now (their producer is going away).
    pub(super) fn release_all(&mut self) {
        self.waiting.clear();
    }

    /// For a picture about to be committed: gives its acquire fence to the compositor and asks for this
    /// commit's release, taking its holder until then. Returns whether it did (false: no fence, or no
    /// protocol; the caller keeps the holder with the wl_buffer).
    pub(super) fn commit(&mut self, frame: &mut Picture, qh: &QueueHandle<State>) -> bool {
        let (Some(sync), Some(fence)) = (&self.surface, &frame.fences.acquire) else {
            return false;
        };
        sync.set_acquire_fence(fence.as_fd());
        let rel = sync.get_release(qh, ());
        self.waiting.insert(
            rel.id(),
            Waiting {
                _holder: frame.holder.take(),
                release: frame.fences.release.clone(),
            },
        );
        if let Some(t) = &frame.trace {
            t.update(|r| r.sync = Some("explicit"));
        }
        true
    }
}

// Neither sends events.
delegate_noop!(State: manager::ZwpLinuxExplicitSynchronizationV1);
delegate_noop!(State: surface_sync::ZwpLinuxSurfaceSynchronizationV1);

impl Dispatch<release::ZwpLinuxBufferReleaseV1, ()> for State {
    fn event(
        state: &mut Self,
        proxy: &release::ZwpLinuxBufferReleaseV1,
        event: release::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        // The object is destroyed by the compositor after its one event.
        let Some(w) = state.explicit.waiting.remove(&proxy.id()) else {
            return;
        };
        match event {
            release::Event::FencedRelease { fence } => match &w.release {
                // The producer writes the buffer again only once the compositor's fence has signalled;
                // the holder goes now.
                Some(r) => r.set(fence),
                None => tracing::debug!("a fenced release for a picture with no release slot"),
            },
            release::Event::ImmediateRelease => {}
            _ => {}
        }
    }
}
