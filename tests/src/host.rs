use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cargo build --quiet KIND NAME` (`--bin dmacam`, `--example capture_frames`) in the work tree and
/// returns the target directory's `debug/` folder.
fn cargo_build(kind: &str, name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", kind, name])
        .current_dir(root())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build {kind} {name} failed");
    target.join("debug")
}

/// The `dmacam` binary, built (or found up to date) once per test process in this target directory.
pub fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| cargo_build("--bin", "dmacam").join("dmacam"))
        .clone()
}

/// A `dmacam` command.
pub fn dmacam() -> Command {
    Command::new(binary())
}

/// A command for the library crates' example `name` (`capture_frames`, `convert_frame`, ...), built (or
/// found up to date) in this target directory.
pub fn example(name: &str) -> Command {
    Command::new(cargo_build("--example", name).join("examples").join(name))
}

/// A fresh, empty scratch directory for test `name` of `suite`, removed when the test passes (kept for a
/// look when it fails).
pub fn scratch(suite: &str, name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("dmacam-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// See [`scratch`].
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
