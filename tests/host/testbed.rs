//! The test-bed's contract, checked from the host: `tests/vm/run` returns the command's exit status, brings
//! `/results` back, and turns a hang into a clear failure. Boots the real VM (about 20 s a boot).

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn vm_run(args: &[&str]) -> Output {
    Command::new(root().join("tests/vm/run"))
        .arg("--no-build")
        .args(args)
        .output()
        .expect("run tests/vm/run")
}

fn results_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("vm/results")
}

#[test]
fn testbed_contract() {
    // Exit status and /results round trip, in one boot.
    let out = vm_run(&[
        "--",
        "sh",
        "-c",
        "cat /sys/class/video4linux/video0/name > /results/video0-name; exit 7",
    ]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "the command's exit status must come back\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = std::fs::read_to_string(results_dir().join("video0-name"))
        .expect("a file written to /results appears in target/vm/results");
    assert_eq!(name.trim(), "vivid-000-vid-cap");

    // A hang becomes one clear line and a non-zero exit, never a pass.
    let out = vm_run(&["--timeout", "3", "--", "sleep", "600"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a timed-out run must fail");
    assert!(err.contains("did not finish within 3 s"), "stderr: {err}");

    // Bad usage fails before booting anything.
    let out = vm_run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no command given"));
    let out = vm_run(&["--timeout", "soon", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("whole number of seconds"));
}
