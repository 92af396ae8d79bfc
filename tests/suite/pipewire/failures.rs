//! dmacam's PipeWire input when things go wrong: no daemon, a node that does not exist, a format the node
//! does not offer, and a node or a whole daemon that goes away mid-dump. Each is one line on stderr, an exit
//! status that says failure, within seconds, and no output file left behind (rows 57-62 of
//! tests/BAD-INPUT.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dmacam_tests::{
    dmacam, require_vm, results_dir, run_with_deadline, wait_for_line, wait_with_deadline, PipeWire,
};

use super::{dmacam_in, message_lines, vivid_node, KillOnDrop, SP};

fn fresh_dir(name: &str) -> PathBuf {
    let d = results_dir().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn entries(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs `cmd` (bounded by `limit`), which must fail with exit status 1 and exactly one line on stderr;
/// returns that line and how long it took.
fn one_line_failure(cmd: &mut Command, limit: Duration, what: &str) -> (String, Duration) {
    let start = Instant::now();
    let out = run_with_deadline(cmd, limit).unwrap_or_else(|hang| panic!("{what}: {hang}"));
    let took = start.elapsed();
    let lines = message_lines(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit {}; stderr:\n{}",
        out.status,
        lines.join("\n")
    );
    assert!(
        lines.len() == 1 && lines[0].starts_with("dmacam: ") && !lines[0].contains("panicked"),
        "{what}: not one line:\n{}",
        lines.join("\n")
    );
    (lines[0].clone(), took)
}

/// No daemon: with XDG_RUNTIME_DIR an empty directory, or PIPEWIRE_REMOTE a socket that does not exist,
/// dmacam says in one line that there is no PipeWire daemon and where it looked; it writes no file.
#[test]
fn pipewire_without_a_daemon_is_one_line() {
    require_vm();
    let dir = fresh_dir("pipewire-no-daemon");
    let empty = dir.join("runtime");
    std::fs::create_dir(&empty).unwrap();
    let out = dir.join("x.raw");
    let dump = |env: &[(&str, &Path)]| {
        let mut cmd = dmacam();
        cmd.args(["dump", "-d", "pipewire:/dev/video0", "--frames", "1", "-o"])
            .arg(&out)
            .env_remove("PIPEWIRE_REMOTE")
            .env_remove("PIPEWIRE_RUNTIME_DIR")
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    };
    let (line, took) = one_line_failure(
        &mut dump(&[("XDG_RUNTIME_DIR", &empty)]),
        Duration::from_secs(60),
        "an empty XDG_RUNTIME_DIR",
    );
    assert_eq!(
        line,
        format!(
            "dmacam: pipewire:/dev/video0: no PipeWire daemon at {}/pipewire-0 (start pipewire and \
             wireplumber in this session, or check XDG_RUNTIME_DIR / PIPEWIRE_REMOTE)",
            empty.display()
        )
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let missing = Path::new("/nonexistent/pipewire-0");
    let (line, _) = one_line_failure(
        &mut dump(&[("XDG_RUNTIME_DIR", &empty), ("PIPEWIRE_REMOTE", missing)]),
        Duration::from_secs(60),
        "PIPEWIRE_REMOTE at a missing socket",
    );
    assert_eq!(
        line,
        "dmacam: pipewire:/dev/video0: no PipeWire daemon at /nonexistent/pipewire-0 (start pipewire and \
         wireplumber in this session, or check XDG_RUNTIME_DIR / PIPEWIRE_REMOTE)"
    );
    assert_eq!(entries(&dir), ["runtime"], "no output file");
}

/// A node that does not exist: one line naming it and listing the video sources there are (vivid's, by id
/// and name); a format the node does not offer: one line within seconds. No file either time.
#[test]
fn pipewire_unknown_node_or_format_is_one_line() {
    require_vm();
    let pw = PipeWire::start();
    let (id, name) = vivid_node(&pw);
    let dir = fresh_dir("pipewire-bad-input");
    let out = dir.join("x.raw");
    let (line, _) = one_line_failure(
        dmacam_in(&pw)
            .args(["dump", "-d", "pipewire:nosuchcam", "--frames", "1", "-o"])
            .arg(&out),
        Duration::from_secs(60),
        "an unknown node",
    );
    assert!(
        line.starts_with(
            "dmacam: pipewire:nosuchcam: PipeWire has no video source node 'nosuchcam'; video sources: "
        ) && line.contains(&format!("{id} ({name})")),
        "{line}"
    );
    // VYUY: a format dmacam takes (it has a PipeWire twin) that vivid's node does not offer (its SPA v4l2
    // plugin has no VYUY); 123x45: a size vivid has not.
    for (what, format, size) in [
        ("a format the node does not offer", "VYUY", "640x360"),
        ("a size the node does not offer", "YUYV", "123x45"),
    ] {
        let (line, took) = one_line_failure(
            dmacam_in(&pw)
                .args(["dump", "-d", &format!("pipewire:{SP}"), "--fps", "30"])
                .args(["--format", format, "--size", size, "--frames", "1", "-o"])
                .arg(&out),
            Duration::from_secs(60),
            what,
        );
        eprintln!("{what} ({took:?}): {line}");
        assert!(
            line.starts_with("dmacam: pipewire:/dev/video0: ") && took < Duration::from_secs(15),
            "{what}: {line} ({took:?})"
        );
    }
    assert_eq!(entries(&dir), Vec::<String>::new(), "no output file");
}

/// Starts `dump -d pipewire:/dev/video0` for far more frames than it will get, and waits until it streams.
fn endless_dump(pw: &PipeWire, out: &Path, log: &Path) -> KillOnDrop {
    let err = std::fs::File::create(log).unwrap();
    let mut child = KillOnDrop(
        dmacam_in(pw)
            .args(["dump", "-d", &format!("pipewire:{SP}"), "--fps", "30"])
            .args([
                "--format", "YUYV", "--size", "640x360", "--frames", "100000",
            ])
            .arg("-o")
            .arg(out)
            .env("RUST_LOG", "dmacam_capture=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("run dmacam"),
    );
    wait_for_line(
        &mut child.0,
        log,
        "PipeWire agreed",
        Duration::from_secs(60),
    );
    // A few frames in.
    std::thread::sleep(Duration::from_secs(2));
    child
}

/// The end of a dump whose source went away: exit status 1 within 10 s, one line that says what happened,
/// and no output file (a dump that fails leaves nothing; its temporary is gone too).
fn assert_ended_cleanly(mut child: KillOnDrop, log: &Path, dir: &Path, what: &str, says: &[&str]) {
    let start = Instant::now();
    let status = wait_with_deadline(&mut child.0, Duration::from_secs(30));
    let took = start.elapsed();
    let stderr = std::fs::read(log).unwrap();
    let lines = message_lines(&stderr);
    eprintln!("{what}: {status} after {took:?}: {lines:?}");
    assert_eq!(status.code(), Some(1), "{what}: {status}: {lines:?}");
    assert!(took < Duration::from_secs(10), "{what}: took {took:?}");
    assert!(
        lines.len() == 1 && says.iter().any(|s| lines[0].contains(s)),
        "{what}: expected one line saying one of {says:?}:\n{}",
        lines.join("\n")
    );
    assert_eq!(
        entries(dir),
        ["dmacam.log"],
        "{what}: a file was left behind"
    );
}

/// vivid's node destroyed mid-dump (`pw-cli destroy`): dmacam ends at once, in one line, with no file.
#[test]
fn pipewire_node_destroyed_mid_dump_ends_in_one_line() {
    require_vm();
    let pw = PipeWire::start();
    let (id, _) = vivid_node(&pw);
    let dir = fresh_dir("pipewire-node-gone");
    let log = dir.join("dmacam.log");
    let child = endless_dump(&pw, &dir.join("x.raw"), &log);
    let destroyed = run_with_deadline(
        pw.apply_env(Command::new("pw-cli").args(["destroy", &id.to_string()])),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|hang| panic!("{hang}"));
    assert!(
        destroyed.status.success(),
        "pw-cli destroy {id}: {}{}",
        String::from_utf8_lossy(&destroyed.stdout),
        String::from_utf8_lossy(&destroyed.stderr)
    );
    assert_ended_cleanly(
        child,
        &log,
        &dir,
        "node destroyed",
        &["went away mid-stream"],
    );
}

/// The PipeWire daemon killed mid-dump: dmacam ends at once, in one line, with no file.
#[test]
fn pipewire_daemon_killed_mid_dump_ends_in_one_line() {
    require_vm();
    let pw = PipeWire::start();
    let dir = fresh_dir("pipewire-daemon-gone");
    let log = dir.join("dmacam.log");
    let child = endless_dump(&pw, &dir.join("x.raw"), &log);
    // The daemon this test started (tests/vm/guest/pipewire-start keeps its pid).
    let runtime = pw
        .env()
        .iter()
        .find(|(k, _)| k == "XDG_RUNTIME_DIR")
        .map(|(_, v)| PathBuf::from(v))
        .expect("XDG_RUNTIME_DIR in PipeWire's environment");
    let pid: i32 = std::fs::read_to_string(runtime.join("pipewire.pid"))
        .expect("pipewire.pid")
        .trim()
        .parse()
        .expect("a pid");
    dmacam_tests::signal(pid as u32, libc::SIGKILL);
    assert_ended_cleanly(
        child,
        &log,
        &dir,
        "daemon killed",
        &["went away", "stream failed", "daemon"],
    );
}
