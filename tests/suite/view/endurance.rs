//! `view` over time and under faults: the compositor killed mid-stream, a thousand frames with constant fds and RSS.

use super::*;

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn view_compositor_killed_exits_within_2s() {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    let mut child = cmd
        .args([
            "view",
            "-d",
            VIVID,
            "--size",
            "640x360",
            "--fps",
            "30",
            "--duration",
            "120",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dmacam view");
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        child.try_wait().unwrap().is_none(),
        "dmacam view exited early"
    );
    let fds = fd_count(child.id());
    assert!(fds > 3, "fd count of the running viewer: {fds}");
    dmacam_tests::signal(weston.pid() as u32, libc::SIGKILL);
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "dmacam view hangs after the compositor died"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = killed.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        !status.success(),
        "exit status after the compositor died: {status}"
    );
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} to exit after the compositor died"
    );
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("dmacam view: path"))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].contains("compositor") && lines[0].contains("went away"),
        "{err}"
    );
}

#[test]
fn view_1000_frames_constant_fds_and_rss() {
    require_vm();
    let weston = Weston::start("wayland-5", &[]);
    let json = results_dir().join("view-1000.json");
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    let mut child = cmd
        .args([
            "view", "-d", VIVID, "--format", "YUYV", "--size", "640x360", "--fps", "120",
        ])
        .args(["--frames", "1000", "--stats-json"])
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dmacam view");
    let pid = child.id();
    let start = Instant::now();
    let mut samples: Vec<(Duration, usize, u64)> = Vec::new();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "1000 frames take more than 180 s"
        );
        let (f, r) = (fd_count(pid), rss_kb(pid));
        if f > 0 && r > 0 {
            samples.push((start.elapsed(), f, r));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = read_summary(&json);
    assert_eq!(s["path"], "passthrough", "{s}");
    // Steady state: from the first third of the run on, fds must not change and RSS must not grow. The
    // last sample may catch the process tearing down (fds closing before it exits), so it is left out.
    samples.pop();
    let steady: Vec<_> = samples.iter().skip(samples.len() / 3).collect();
    assert!(steady.len() >= 4, "too few samples: {samples:?}");
    let (_, fd0, rss0) = *steady[0];
    for (t, f, r) in &steady {
        assert_eq!(*f, fd0, "fd count changed at {t:?}: {samples:?}");
        assert!(
            *r <= rss0 + 2048,
            "RSS grew from {rss0} kB to {r} kB at {t:?}: {samples:?}"
        );
    }
    eprintln!("1000 frames: {s}\nsamples (t, fds, rss kB): {samples:?}");
}
