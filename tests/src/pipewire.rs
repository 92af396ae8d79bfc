//! The test-bed's PipeWire for one test: a D-Bus session bus, the daemon and WirePlumber.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{results_dir, run, run_ok, run_with_deadline, src_dir};

/// The test-bed's PipeWire, started for one test by tests/vm/guest/pipewire-start: a D-Bus session bus, the
/// `pipewire` daemon and the WirePlumber session manager, as root in `XDG_RUNTIME_DIR` (/run/user/0 in the
/// VM). Started means the daemon's socket is up and WirePlumber has made the v4l2 Video/Source node of
/// /dev/video0 (or of each device given to [`PipeWire::start_for`]). Dropping it stops all three; if the test
/// is failing, their logs are left in `results/pipewire/`.
pub struct PipeWire {
    runtime_dir: PathBuf,
    env: Vec<(String, String)>,
}

impl PipeWire {
    /// Starts PipeWire and waits for vivid's /dev/video0 node; panics with the daemons' logs if either does
    /// not come up within 60 s.
    pub fn start() -> PipeWire {
        PipeWire::start_for(&["/dev/video0"])
    }

    /// Starts PipeWire and waits for a v4l2 Video/Source node of each of `devices` (single-planar capture
    /// nodes only: PipeWire's v4l2 plugin makes no node of a multi-planar one).
    pub fn start_for(devices: &[&str]) -> PipeWire {
        let runtime_dir = PathBuf::from(
            std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/run/user/0".to_owned()),
        );
        let script = src_dir().join("tests/vm/guest/pipewire-start");
        let out = run(Command::new(&script)
            .args(devices)
            .env("XDG_RUNTIME_DIR", &runtime_dir));
        if !out.status.success() {
            let kept = keep_pipewire_logs(&runtime_dir);
            panic!(
                "PipeWire did not start ({}); its logs are in {}:\n{}",
                out.status,
                kept.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        PipeWire { runtime_dir, env }
    }

    /// The environment a PipeWire client needs: `XDG_RUNTIME_DIR`, `DBUS_SESSION_BUS_ADDRESS` and
    /// `PIPEWIRE_REMOTE`.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Sets [`PipeWire::env`] on `cmd`.
    pub fn apply_env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
    }

    /// Everything the daemon knows now (`pw-dump`: an array of objects with `id`, `type` and `info.props`).
    pub fn dump(&self) -> serde_json::Value {
        let out = run_ok(self.apply_env(&mut Command::new("pw-dump")));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("pw-dump is not JSON ({e}):\n{out}"))
    }

    /// The nodes of [`PipeWire::dump`] with their properties: `(id, info.props)`.
    pub fn nodes(&self) -> Vec<(u32, serde_json::Value)> {
        self.dump()
            .as_array()
            .map(|objects| {
                objects
                    .iter()
                    .filter(|o| o["type"] == "PipeWire:Interface:Node")
                    .filter_map(|o| Some((o["id"].as_u64()? as u32, o["info"]["props"].clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The id and `node.name` of the v4l2 Video/Source node whose `api.v4l2.path` is `dev` (`/dev/video0`).
    pub fn node_for(&self, dev: &str) -> Option<(u32, String)> {
        self.nodes().into_iter().find_map(|(id, props)| {
            (props["api.v4l2.path"] == dev && props["media.class"] == "Video/Source")
                .then(|| Some((id, props["node.name"].as_str()?.to_owned())))
                .flatten()
        })
    }

    /// The last lines of the daemons' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["pipewire", "wireplumber"] {
            let log = std::fs::read_to_string(self.runtime_dir.join(format!("{name}.log")))
                .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            out += &format!(
                "--- {name}.log (last 40 lines)\n{}\n",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
        out
    }
}

/// Copies the PipeWire daemons' logs into `results/pipewire/`; returns that directory.
fn keep_pipewire_logs(runtime_dir: &Path) -> PathBuf {
    let dir = results_dir().join("pipewire");
    let _ = std::fs::create_dir_all(&dir);
    for name in ["dbus.log", "pipewire.log", "wireplumber.log"] {
        let _ = std::fs::copy(runtime_dir.join(name), dir.join(name));
    }
    dir
}

impl Drop for PipeWire {
    /// Stops WirePlumber, PipeWire and the bus (bounded: SIGKILL after 5 s each); keeps the logs of a failing
    /// test.
    fn drop(&mut self) {
        let script = src_dir().join("tests/vm/guest/pipewire-start");
        if let Err(e) = run_with_deadline(
            Command::new(&script)
                .arg("stop")
                .env("XDG_RUNTIME_DIR", &self.runtime_dir),
            Duration::from_secs(60),
        ) {
            eprintln!("stopping PipeWire: {e}");
        }
        if std::thread::panicking() {
            let kept = keep_pipewire_logs(&self.runtime_dir);
            eprintln!("PipeWire's logs are in {}", kept.display());
        }
    }
}
