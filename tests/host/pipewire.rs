//! PipeWire on the host (Debian 12's PipeWire 0.3.65, no session manager): a private `pipewire` daemon,
//! `dmacam serve -d pattern --pipewire` publishing the pattern's memfd buffers as a node, and a second dmacam
//! (`dump -d pipewire:NODE`) taking them: the pixels are the pattern's, the buffers memfds (said, no copy),
//! and dmacam links the named node itself. Plus the daemon-less error line. The same on vivid with dma-bufs,
//! GStreamer peers and PipeWire 1.4 is in the VM suite (`tests/suite/pipewire*.rs`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dmacam_tests::host::{dmacam, scratch};
use dmacam_tests::{kill_and_reap, wait_with_deadline};

/// Bytes of one pattern frame at the default YUYV 640x360.
const FRAME: usize = 640 * 360 * 2;

/// Children killed (and reaped) when dropped.
struct Reap(Vec<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            kill_and_reap(c);
        }
    }
}

/// A `pipewire` daemon in `dir` (its own XDG_RUNTIME_DIR); `None` when the host has no pipewire binary.
fn daemon(dir: &Path) -> Option<Child> {
    let log = std::fs::File::create(dir.join("pipewire.log")).unwrap();
    let child = Command::new("pipewire")
        .env("XDG_RUNTIME_DIR", dir)
        .env_remove("PIPEWIRE_REMOTE")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .ok()?;
    let start = Instant::now();
    while !dir.join("pipewire-0").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "pipewire did not listen within 20 s:\n{}",
            std::fs::read_to_string(dir.join("pipewire.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(child)
}

fn in_session<'a>(cmd: &'a mut Command, dir: &Path) -> &'a mut Command {
    cmd.env("XDG_RUNTIME_DIR", dir)
        .env_remove("PIPEWIRE_REMOTE")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
}

#[test]
fn serve_pipewire_hands_the_pattern_to_a_pipewire_consumer() {
    let dir = scratch("pipewire", "serve");
    let Some(pw) = daemon(&dir) else {
        panic!("no `pipewire` binary on this host: tests/setup installs it");
    };
    let mut kids = Reap(vec![pw]);
    let serve_log = dir.join("serve.log");
    let log = std::fs::File::create(&serve_log).unwrap();
    kids.0.push(
        in_session(&mut dmacam(), &dir)
            .args([
                "serve",
                "-d",
                "pattern",
                "--pipewire",
                "--pipewire-name",
                "dmacam-host-test",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn dmacam serve --pipewire"),
    );
    let start = Instant::now();
    while !std::fs::read_to_string(&serve_log)
        .unwrap_or_default()
        .contains("as PipeWire node")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve did not publish its node:\n{}",
            std::fs::read_to_string(&serve_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = dir.join("taken.raw");
    let mut dump = in_session(&mut dmacam(), &dir)
        .args([
            "dump",
            "-d",
            "pipewire:dmacam-host-test",
            "--frames",
            "10",
            "-o",
        ])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_deadline(&mut dump, Duration::from_secs(60));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut dump.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "dump -d pipewire: {status}\n{err}");
    let taken = std::fs::read(&out).unwrap();
    assert_eq!(taken.len(), 10 * FRAME, "{err}");

    // The pattern itself, dumped straight: the colour bars (the top rows) are the same bytes.
    let direct = dir.join("direct.raw");
    let o = dmacam()
        .args(["dump", "-d", "pattern", "--frames", "1", "-o"])
        .arg(&direct)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let direct = std::fs::read(&direct).unwrap();
    let rows = 640 * 2 * 100;
    for (i, f) in taken.chunks(FRAME).enumerate() {
        assert!(
            f[..rows] == direct[..rows],
            "frame {i}: the bars differ from the pattern's"
        );
    }
    // Its buffers are memfds here (no udmabuf on this host): taken as they are, and said.
    let vlog = in_session(&mut dmacam(), &dir)
        .args([
            "dump",
            "-v",
            "-d",
            "pipewire:dmacam-host-test",
            "--frames",
            "1",
            "-o",
        ])
        .arg(dir.join("one.raw"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&vlog.stderr);
    assert!(vlog.status.success(), "{said}");
    assert!(said.contains("buffers of memfd"), "{said}");

    kids.0.truncate(2);
    let serve = &mut kids.0[1];
    dmacam_tests::signal(serve.id(), libc::SIGINT);
    let status = wait_with_deadline(serve, Duration::from_secs(20));
    let report = std::fs::read_to_string(&serve_log).unwrap();
    assert!(status.success(), "serve after SIGINT: {status}\n{report}");
    assert!(
        report.contains("0 copied by the CPU") && !report.contains(" 0 frames published"),
        "{report}"
    );
}

#[test]
fn no_pipewire_daemon_is_one_line() {
    let dir = scratch("pipewire", "nodaemon");
    for args in [
        &["dump", "-d", "pipewire", "-o", "x.raw"][..],
        &["serve", "-d", "pattern", "--pipewire"][..],
    ] {
        let out = in_session(&mut dmacam(), &dir)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("no PipeWire daemon at"), "{args:?}: {err}");
        assert!(!dir.join("x.raw").exists());
    }
}
