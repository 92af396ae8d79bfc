//! Client-side decorations under Weston's desktop shell, which offers no xdg-decoration: `dmacam view` draws
//! its own frame (sctk's fallback frame: title bar and borders in 0x242424, 0x3a3a3a when focused) around
//! the bars, and the frame's actions, fed by `--frame-actions` (the test-bed has no pointer), resize the
//! window, maximise it, make it fullscreen (a double click on the title bar) and close it.

use super::*;

/// The fallback frame's title bar (24) plus its top border (4), and a border's width.
const TITLE: u32 = 28;
const BORDER: u32 = 4;

/// Whether a screenshot pixel is the frame's colour (inactive or focused).
fn is_frame(p: [u8; 3]) -> bool {
    p[0] == p[1] && p[1] == p[2] && (p[0].abs_diff(0x24) <= 1 || p[0].abs_diff(0x3a) <= 1)
}

/// Where a window's frame is in a screenshot: its outer rectangle (x, y, w, h), found as the top-most row
/// with a long run of the frame's colour (the top border) and the left border's height below it.
fn find_frame(shot: &Shot) -> Option<(u32, u32, u32, u32)> {
    for y in 0..shot.h {
        let mut x = 0;
        while x < shot.w {
            if !is_frame(shot.at(x, y)) {
                x += 1;
                continue;
            }
            let start = x;
            while x < shot.w && is_frame(shot.at(x, y)) {
                x += 1;
            }
            if x - start >= 100 {
                let h = (y..shot.h)
                    .take_while(|&yy| is_frame(shot.at(start + 1, yy)))
                    .count() as u32;
                return Some((start, y, x - start, h));
            }
        }
    }
    None
}

/// What is wrong with the frame and the bars in it, expecting content of `content` size: nothing if the
/// frame is there at that size, its title bar and borders drawn, and the bars fill the content area.
fn frame_mismatches(
    shot: &Shot,
    content: (u32, u32),
    expect: &dyn Fn(usize) -> [u8; 3],
) -> Vec<String> {
    let Some((x, y, w, h)) = find_frame(shot) else {
        return vec!["no window frame in the screenshot".into()];
    };
    let mut bad = Vec::new();
    let want = (content.0 + 2 * BORDER, content.1 + TITLE + BORDER);
    if (w, h) != want {
        bad.push(format!(
            "the frame at ({x},{y}) is {w}x{h}, not {}x{}",
            want.0, want.1
        ));
        return bad;
    }
    // The title bar is a band of the frame's colour above the content (its middle has no buttons).
    for row in [y, y + TITLE / 2, y + TITLE - 1] {
        let p = shot.at(x + w / 2, row);
        if !is_frame(p) {
            bad.push(format!("title bar at ({},{row}) is {p:?}", x + w / 2));
        }
    }
    // The right and bottom borders.
    for (px, py) in [(x + w - 2, y + h / 2), (x + w / 2, y + h - 2)] {
        if !is_frame(shot.at(px, py)) {
            bad.push(format!("border at ({px},{py}) is {:?}", shot.at(px, py)));
        }
    }
    // The bars (16:9) fill the content area's height or width, centred, below the title bar, inside the
    // borders.
    let (vw, vh) = if content.0 * 9 >= content.1 * 16 {
        (content.1 * 16 / 9, content.1)
    } else {
        (content.0, content.0 * 9 / 16)
    };
    let (cx, cy) = (
        x + BORDER + (content.0 - vw) / 2,
        y + TITLE + (content.1 - vh) / 2,
    );
    for fy in [vh / 4, vh / 2, vh * 3 / 4] {
        for bar in 0..8 {
            let px = cx + (2 * bar as u32 + 1) * vw / 16;
            let got = shot.at(px, cy + fy);
            let want = expect(bar);
            if (0..3).any(|c| (i32::from(got[c]) - i32::from(want[c])).abs() > 12) {
                bad.push(format!(
                    "bar {bar} at ({px},{}): got {got:?}, want {want:?}",
                    cy + fy
                ));
            }
        }
    }
    bad
}

/// Screenshots until `check` finds nothing wrong (or [`dmacam_tests::SHOW_WITHIN_S`] pass, then fails with
/// what it found), while `child` runs.
fn await_shot(
    weston: &Weston,
    child: &mut std::process::Child,
    tag: &str,
    check: &dyn Fn(&Shot) -> Vec<String>,
) {
    let start = Instant::now();
    for n in 0.. {
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            child.try_wait().unwrap().is_none(),
            "{tag}: dmacam view exited early"
        );
        let shot = screenshot(weston, &format!("{tag}-{n}"), || {
            std::thread::sleep(Duration::from_millis(50))
        });
        let bad = check(&shot);
        if bad.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(dmacam_tests::SHOW_WITHIN_S),
            "{tag}: after {} screenshots: {}\n{}",
            n + 1,
            bad.join("\n"),
            weston.state()
        );
    }
}

/// The bars over the whole output, and no frame drawn.
fn fullscreen_mismatches(shot: &Shot, expect: &dyn Fn(usize) -> [u8; 3]) -> Vec<String> {
    let mut bad = bar_mismatches(shot, 12, expect);
    if let Some(f) = find_frame(shot) {
        bad.push(format!("a window frame is drawn at {f:?}"));
    }
    bad
}

/// No frame drawn, and a bar `bar_w` wide (±6: the scaling blends a few pixels at each edge) in the
/// screenshot's bottom row (bars 1 to 6: the first and last may be cut by the output's edge).
fn scaled_mismatches(shot: &Shot, bar_w: u32, expect: &dyn Fn(usize) -> [u8; 3]) -> Vec<String> {
    let mut bad = Vec::new();
    if let Some(f) = find_frame(shot) {
        bad.push(format!("a window frame is drawn at {f:?}"));
    }
    let y = shot.h - 2;
    let near = |p: [u8; 3], q: [u8; 3]| (0..3).all(|c| p[c].abs_diff(q[c]) <= 12);
    let mut runs = Vec::new();
    let mut x = 0;
    while x < shot.w {
        let p = shot.at(x, y);
        let start = x;
        while x < shot.w && near(shot.at(x, y), p) {
            x += 1;
        }
        runs.push((start, x - start, p));
    }
    let found = (1..7).any(|bar| {
        runs.iter()
            .any(|&(_, w, p)| near(p, expect(bar)) && w.abs_diff(bar_w) <= 6)
    });
    if !found {
        bad.push(format!(
            "no bar {bar_w} px wide in row {y}; runs (x, width, colour): {:?}",
            &runs[..runs.len().min(12)]
        ));
    }
    bad
}

/// `dmacam view` on vivid's YUYV bars under `weston`, with `extra` arguments, stats to `json`.
fn spawn_view(weston: &Weston, json: &Path, extra: &[&str]) -> std::process::Child {
    let mut cmd = dmacam();
    weston.env(&mut cmd);
    cmd.env("RUST_LOG", "info")
        .args([
            "view", "-d", VIVID, "--format", "YUYV", "--size", "640x360", "--fps", "5",
        ])
        .args(["--ctrl", "osd_text_mode=2", "--path", "passthrough"])
        .args(["--duration", "400", "--stats-json"])
        .arg(json)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dmacam view")
}

/// The kiosk shell makes the window fullscreen: the frame is made but hidden, the bars fill the output.
#[test]
fn view_draws_no_frame_when_fullscreen_under_the_kiosk_shell() {
    require_vm();
    let reference = reference_bars("YUYV", &vivid_reference("YUYV"));
    let expect = |bar: usize| reference[bar];
    let weston = Weston::start("wayland-6", &[]);
    let json = results_dir().join("view-decorations-kiosk.json");
    let mut child = spawn_view(&weston, &json, &[]);
    await_shot(&weston, &mut child, "decorations-kiosk", &|shot| {
        fullscreen_mismatches(shot, &expect)
    });
    dmacam_tests::signal(child.id(), libc::SIGINT);
    let out = await_exit(child, 30, "dmacam view does not stop on SIGINT");
    assert!(
        out.status.success(),
        "dmacam view failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn view_draws_its_own_frame_under_a_desktop_shell_whose_actions_resize_maximise_fullscreen_and_close(
) {
    require_vm();
    let reference = reference_bars("YUYV", &vivid_reference("YUYV"));
    let expect = |bar: usize| reference[bar];
    let weston = Weston::start_desktop("wayland-6", &[]);
    let dir = results_dir().join("view-decorations");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (resize_now, maximize_now, fullscreen_now, close_now) = (
        dir.join("resize-now"),
        dir.join("maximize-now"),
        dir.join("fullscreen-now"),
        dir.join("close-now"),
    );
    let json = dir.join("stats.json");
    // The whole window after the resize (frame included, as a configure carries it): 480x270 of content,
    // smaller than before so that it stays on the output wherever the shell placed the window.
    let (rw, rh) = (480 + 2 * BORDER, 270 + TITLE + BORDER);
    let actions = format!(
        "until:{},resize:{rw}x{rh},until:{},maximize,until:{},double-click,until:{},close",
        resize_now.display(),
        maximize_now.display(),
        fullscreen_now.display(),
        close_now.display()
    );
    let mut child = spawn_view(&weston, &json, &["--frame-actions", &actions]);

    // The frame around the bars at the camera's size: 640x360 of content.
    await_shot(&weston, &mut child, "decorations-640", &|shot| {
        frame_mismatches(shot, (640, 360), &expect)
    });
    // The frame's resize: the window and its content take the new size, the bars still fill it.
    std::fs::write(&resize_now, b"").unwrap();
    await_shot(&weston, &mut child, "decorations-480", &|shot| {
        frame_mismatches(shot, (480, 270), &expect)
    });
    // The frame's maximise button: the compositor's configure brings the output's size; the frame is
    // at the output's origin around 1272x688 of content, the bars pillarboxed in it.
    std::fs::write(&maximize_now, b"").unwrap();
    await_shot(&weston, &mut child, "decorations-maximized", &|shot| {
        let mut bad = frame_mismatches(shot, (OUT_W - 2 * BORDER, OUT_H - TITLE - BORDER), &expect);
        if bad.is_empty() && find_frame(shot).is_some_and(|f| (f.0, f.1) != (0, 0)) {
            bad.push(format!("the maximised frame is at {:?}", find_frame(shot)));
        }
        bad
    });
    // A double click on the title bar: the compositor makes the window fullscreen (a configure with the
    // output's size), the frame is hidden, the bars are scaled to the output's size. (Where: this Weston's
    // desktop shell leaves a fullscreen window where it was, so the bars are not checked at fixed places.)
    std::fs::write(&fullscreen_now, b"").unwrap();
    await_shot(&weston, &mut child, "decorations-fullscreen", &|shot| {
        scaled_mismatches(shot, OUT_W / 8, &expect)
    });
    // The frame's close button: dmacam stops, successfully, and says why.
    std::fs::write(&close_now, b"").unwrap();
    let out = await_exit(child, 60, "dmacam view does not stop at the frame's close");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dmacam view failed: {stderr}");
    for said in [
        "the compositor draws no window frame: drawing our own",
        "window content resized to 480x270",
        "window content resized to 1272x688",
        "title bar double-clicked: toggling fullscreen",
        "window content resized to 1280x720",
        "the window's close button was pressed: stopping",
    ] {
        assert!(stderr.contains(said), "no '{said}' in: {stderr}");
    }
    let s = read_summary(&json);
    assert_eq!(s["path"], "passthrough", "{s}");
    assert_eq!(s["cpu_bytes_copied_total"], 0, "{s}");
    weston.assert_shown(&s, 5, "decorations");
    assert!(weston.is_alive(), "weston died: {}", weston.state());
}
