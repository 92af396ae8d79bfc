//! What the running Wayland compositor offers (its globals), without creating any surface.

use thiserror::Error;
use wayland_client::globals::{registry_queue_init, GlobalListContents};
use wayland_client::protocol::wl_registry;
use wayland_client::{Connection, Dispatch, QueueHandle};

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("no Wayland display: {0} (is WAYLAND_DISPLAY set and the compositor running?)")]
    Connect(#[from] wayland_client::ConnectError),
    #[error("cannot read the Wayland registry: {0}")]
    Registry(#[from] wayland_client::globals::GlobalError),
}

/// The compositor's globals that matter to dmacam, with their versions.
#[derive(Debug, Clone, Default)]
pub struct WaylandReport {
    /// Every global: (interface, version).
    pub globals: Vec<(String, u32)>,
}

impl WaylandReport {
    /// The advertised version of `interface`, if the compositor has it.
    pub fn version_of(&self, interface: &str) -> Option<u32> {
        self.globals
            .iter()
            .find(|(name, _)| name == interface)
            .map(|&(_, v)| v)
    }
}

struct Probe;

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for Probe {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

/// Connects to the compositor named by the environment (`WAYLAND_DISPLAY`) and lists its globals.
pub fn probe_wayland() -> Result<WaylandReport, ProbeError> {
    let conn = Connection::connect_to_env()?;
    let (globals, _queue) = registry_queue_init::<Probe>(&conn)?;
    let mut report = WaylandReport::default();
    globals.contents().with_list(|list| {
        for g in list {
            report.globals.push((g.interface.clone(), g.version));
        }
    });
    report.globals.sort();
    Ok(report)
}
