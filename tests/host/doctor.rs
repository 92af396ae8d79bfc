//! `dmacam doctor` run by an ordinary user on the host (uid 65534 with no groups through setpriv when the
//! tests run as root, as CI does; else the user running them): it reports what that user can open, by path,
//! and every node it cannot use gets a line saying why. (The host has no udmabuf or heaps, so the lines
//! here are the "does not exist" ones; the decisions for nodes that exist are unit tests of
//! app/src/cmd/doctor/access.rs.)

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// `dmacam doctor --json` and `dmacam doctor` as an ordinary user, and that user's uid.
fn doctor_as_user() -> (String, String, u32) {
    let dmacam = dmacam_tests::host::binary();
    let root = nix::unistd::geteuid().is_root();
    // As root: a link (or copy) of the binary that uid 65534 may run wherever the work tree is (a clone
    // under /root is not theirs), run through setpriv with no groups.
    let dir = std::env::temp_dir().join(format!("dmacam-doctor-{}", std::process::id()));
    let program = if root {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = dir.join("dmacam");
        let _ = std::fs::remove_file(&link);
        std::fs::hard_link(&dmacam, &link)
            .or_else(|_| std::fs::copy(&dmacam, &link).map(drop))
            .expect("link or copy dmacam");
        link
    } else {
        dmacam
    };
    let run = |args: &[&str]| {
        let mut cmd = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
            c.arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd
            .arg("doctor")
            .args(args)
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .expect("run dmacam doctor (setpriv is util-linux's)");
        assert!(
            out.status.success(),
            "doctor failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let (json, text) = (run(&["--json"]), run(&[]));
    let _ = std::fs::remove_dir_all(&dir);
    let uid = if root {
        65534
    } else {
        nix::unistd::geteuid().as_raw()
    };
    (json, text, uid)
}

#[test]
fn doctor_as_an_ordinary_user_says_what_it_can_open() {
    let (json, text, uid) = doctor_as_user();
    let report: serde_json::Value = serde_json::from_str(&json).expect("doctor --json is JSON");
    assert_eq!(report["euid"], uid);
    let access = report["access"].as_array().expect("an access list");
    for node in ["/dev/udmabuf", "/dev/dma_heap/system"] {
        assert!(
            access.iter().any(|a| a["path"] == node),
            "{node} is not checked: {access:?}"
        );
    }
    for a in access {
        let (path, line) = (a["path"].as_str().unwrap(), a["line"].as_str().unwrap());
        assert!(
            line.starts_with(&format!("{}: {path}", a["kind"].as_str().unwrap())),
            "{line}"
        );
        let exists = std::path::Path::new(path).exists();
        if a["usable"] == true {
            assert!(line.ends_with("yours (opens read-write)"), "{line}");
        } else if !exists {
            assert!(line.contains(" does not exist: "), "{line}");
        } else {
            assert!(
                line.contains("exists but"),
                "a node that exists and is not usable must say why: {line}"
            );
        }
    }
    for (key, path) in [
        ("udmabuf", "/dev/udmabuf"),
        ("dma_heap_system", "/dev/dma_heap/system"),
    ] {
        let usable = access
            .iter()
            .any(|a| a["path"] == path && a["usable"] == true);
        assert_eq!(report["allocators"][format!("{key}_usable")], usable);
    }
    assert!(
        text.contains(&format!("Access (as uid {uid}):")),
        "no Access section for uid {uid}:\n{text}"
    );
    for a in access.iter().filter(|a| a["usable"] != true) {
        let line = a["line"].as_str().unwrap();
        assert!(
            text.lines().any(|l| l.trim() == line),
            "the text does not say: {line}\n{text}"
        );
    }
}

/// `dmacam doctor` with `PIPEWIRE_REMOTE` set: one PipeWire line either way, and a report that still
/// succeeds when no daemon answers (dmacam works without PipeWire). A socket nobody listens on is "no
/// daemon reachable" with the reason and what to do; a listening socket (a plain connect is all doctor
/// tries) is "reachable".
#[test]
fn doctor_says_whether_a_pipewire_daemon_is_reachable() {
    let dir = std::env::temp_dir().join(format!("dmacam-doctor-pw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let doctor = |remote: &std::path::Path, args: &[&str]| {
        let out = dmacam_tests::host::dmacam()
            .arg("doctor")
            .args(args)
            .env("PIPEWIRE_REMOTE", remote)
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .expect("run dmacam doctor");
        assert!(
            out.status.success(),
            "doctor failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let missing = dir.join("pipewire-0");
    let text = doctor(&missing, &[]);
    let want = format!(
        "PipeWire: no daemon reachable at {} (No such file or directory (os error 2)); -d pipewire needs \
         one: start pipewire and wireplumber in the session (V4L2 devices and the pattern work without it)",
        missing.display()
    );
    assert!(text.lines().any(|l| l == want), "no '{want}' in:\n{text}");
    let report: serde_json::Value = serde_json::from_str(&doctor(&missing, &["--json"])).unwrap();
    assert_eq!(report["pipewire"]["reachable"], false, "{report}");
    assert_eq!(
        report["pipewire"]["socket"],
        missing.display().to_string(),
        "{report}"
    );

    let _listener = std::os::unix::net::UnixListener::bind(&missing).expect("bind a socket");
    let text = doctor(&missing, &[]);
    let want = format!(
        "PipeWire: daemon reachable at {} (-d pipewire[:NODE] can be used)",
        missing.display()
    );
    assert!(text.lines().any(|l| l == want), "no '{want}' in:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
