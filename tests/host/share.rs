//! Camera sharing on the host: `dmacam serve -d pattern` (memfd buffers here) with `--from` consumers and with
//! hand-made clients that break the protocol. What it shows: consumers of one server get the same frames; a
//! garbage, oversized, wrong-version or fd-carrying message, a release of a frame not held and a consumer
//! that stops releasing are each dropped with a reason while the server keeps serving; a consumer killed
//! mid-stream costs nothing; 100 connect/disconnect cycles leave the server's fd count unchanged; another uid
//! is refused by the socket's mode and, past it, by SO_PEERCRED. And the protocol decoder survives a million
//! generated inputs. The same server on vivid, with a viewer, is in the VM suite (`tests/suite/share.rs`).

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dmacam_capture::share::wire::{self, EndCode, Message, HEADER, MAX_MESSAGE, VERSION};
use dmacam_tests::host::{dmacam, scratch};
use dmacam_tests::{fd_count, wait_for_line, wait_with_deadline};
use nix::sys::socket::{
    self, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};

/// Bytes of one pattern frame at the default YUYV 640x360.
const FRAME: u64 = 640 * 360 * 2;

/// A running `dmacam serve -d pattern`, its stderr collected to a file; killed on drop.
struct Serve {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &Path, extra: &[&str]) -> Serve {
        let socket = dir.join("cam.sock");
        let log = dir.join("serve.log");
        let mut child = dmacam()
            .args(["serve", "-d", "pattern", "--socket"])
            .arg(&socket)
            .args(extra)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn dmacam serve");
        // Listening once it says so (a stale socket file may exist before).
        wait_for_line(&mut child, &log, "dmacam serve: ", Duration::from_secs(20));
        Serve { child, socket, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGINT, then its exit status and log.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let status = wait_with_deadline(&mut self.child, Duration::from_secs(10));
        (status, self.log())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hand-made client: a raw `SOCK_SEQPACKET` connection.
struct Raw(OwnedFd);

impl Raw {
    fn connect(path: &Path) -> Raw {
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        socket::connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).expect("connect");
        Raw(fd)
    }

    fn send(&self, bytes: &[u8], fds: &[i32]) {
        let cmsg = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
        socket::sendmsg::<UnixAddr>(
            self.0.as_raw_fd(),
            &[std::io::IoSlice::new(bytes)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .expect("send");
    }

    /// The next message within 10 s (its received fds closed), or `None` when the server closed the socket.
    fn recv(&self) -> Option<Message> {
        let mut p = [nix::poll::PollFd::new(
            self.0.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut p, nix::poll::PollTimeout::from(10_000u16)).unwrap();
        assert!(n > 0, "the server said nothing for 10 s");
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg = nix::cmsg_space!([i32; 8]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = socket::recvmsg::<UnixAddr>(
            self.0.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .expect("recv");
        for c in msg.cmsgs() {
            if let socket::ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    nix::unistd::close(fd).unwrap();
                }
            }
        }
        let n = msg.bytes;
        if n == 0 {
            return None;
        }
        Some(wire::decode(&buf[..n]).expect("the server sends valid messages"))
    }

    /// Says hello and reads the stream description and every buffer; returns the buffer count.
    fn handshake(&self) -> u32 {
        self.send(&wire::encode(&Message::Hello), &[]);
        let Some(Message::Stream(desc)) = self.recv() else {
            panic!("no stream description");
        };
        for i in 0..desc.buffers {
            match self.recv() {
                Some(Message::Buffer { index, .. }) => assert_eq!(index, i),
                other => panic!("expected buffer {i}, got {other:?}"),
            }
        }
        desc.buffers
    }

    /// Reads until the server's end message and the close; returns the end's code and reason.
    fn ended(&self) -> (EndCode, String) {
        loop {
            match self.recv() {
                Some(Message::End { code, reason }) => {
                    assert!(self.recv().is_none(), "the socket stays open after the end");
                    return (code, reason);
                }
                Some(Message::Ready { .. }) | Some(Message::Buffer { .. }) => continue,
                Some(Message::Stream(_)) => continue,
                other => panic!("expected an end message, got {other:?}"),
            }
        }
    }
}

fn dump_from(socket: &Path, frames: u32, out: &Path) -> std::process::Output {
    dmacam()
        .args(["dump", "--from"])
        .arg(socket)
        .args(["--frames", &frames.to_string(), "-o"])
        .arg(out)
        .output()
        .expect("run dmacam dump")
}

/// A consumer whose server ends the stream (here after 10 frames, as when it is stopped or drops the
/// consumer) keeps the frames it wrote, says how many, and exits non-zero: like a camera unplugged.
#[test]
fn a_dump_whose_server_ends_keeps_its_frames() {
    let dir = scratch("share", "ended");
    let serve = Serve::start(&dir, &["--wait-clients", "1", "--frames", "10"]);
    let out = dir.join("kept.raw");
    let o = dump_from(&serve.socket, 50, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let n: u64 = err
        .split("the ")
        .last()
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in: {err}"));
    assert!(
        (1..=10).contains(&n) && err.contains("(of 50) are in"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&out).unwrap().len(), n * FRAME, "{err}");
    let (status, log) = serve.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn consumers_of_one_server_get_the_same_frames() {
    let dir = scratch("share", "same");
    let serve = Serve::start(&dir, &["--wait-clients", "2", "--frames", "20"]);
    let (a, b) = (dir.join("a.raw"), dir.join("b.raw"));
    let socket = serve.socket.clone();
    let t = std::thread::spawn({
        let (socket, a) = (socket.clone(), a.clone());
        move || dump_from(&socket, 20, &a)
    });
    let out_b = dump_from(&socket, 20, &b);
    let out_a = t.join().unwrap();
    for out in [&out_a, &out_b] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (da, db) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(da.len() as u64, 20 * FRAME);
    assert!(da == db, "the two consumers wrote different bytes");
    // Real frames, not zeros: the bars' first pixel (white, Y 235) and a moving element (frames differ).
    assert_eq!(da[0], 235, "first luma sample");
    assert!(
        da[..FRAME as usize] != da[FRAME as usize..2 * FRAME as usize],
        "consecutive frames are identical"
    );
    let mut serve = serve;
    let status = wait_with_deadline(&mut serve.child, Duration::from_secs(20));
    let log = serve.log();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("20 frames served (0 with no consumer); 2 consumers"),
        "{log}"
    );
    assert!(!socket.exists(), "the socket file is removed at exit");
}

#[test]
fn misbehaving_consumers_are_dropped_and_the_server_keeps_serving() {
    let dir = scratch("share", "abuse");
    let serve = Serve::start(&dir, &["--max-hold", "1"]);
    let path = serve.socket.clone();
    let expect_end = |raw: &Raw, code: EndCode, why: &str| {
        let (c, reason) = raw.ended();
        assert_eq!(c, code, "{reason}");
        assert!(reason.contains(why), "'{reason}' should say '{why}'");
    };

    // Garbage.
    let raw = Raw::connect(&path);
    raw.send(b"GET / HTTP/1.0\r\n\r\n", &[]);
    expect_end(&raw, EndCode::Protocol, "malformed message");
    // An oversized message.
    let raw = Raw::connect(&path);
    raw.send(&vec![7u8; MAX_MESSAGE * 2], &[]);
    expect_end(&raw, EndCode::Protocol, "above the size");
    // A length field that lies.
    let raw = Raw::connect(&path);
    let mut hello = wire::encode(&Message::Hello);
    hello[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    raw.send(&hello, &[]);
    expect_end(&raw, EndCode::Protocol, "header says");
    // Another protocol version.
    let raw = Raw::connect(&path);
    let mut hello = wire::encode(&Message::Hello);
    hello[0..2].copy_from_slice(&(VERSION + 8).to_le_bytes());
    raw.send(&hello, &[]);
    expect_end(&raw, EndCode::Protocol, "protocol version 9");
    // fds out of place: a consumer never sends fds. The server closes them (checked below by its fd count).
    let raw = Raw::connect(&path);
    let (r, w) = nix::unistd::pipe().unwrap();
    raw.send(
        &wire::encode(&Message::Hello),
        &[r.as_raw_fd(), w.as_raw_fd()],
    );
    expect_end(&raw, EndCode::Protocol, "sent 2 fds");
    // A release of a frame it does not hold.
    let raw = Raw::connect(&path);
    raw.handshake();
    raw.send(
        &wire::encode(&Message::Release {
            index: 0,
            sequence: u32::MAX,
        }),
        &[],
    );
    expect_end(&raw, EndCode::Protocol, "does not hold");
    // A second hello.
    let raw = Raw::connect(&path);
    raw.handshake();
    raw.send(&wire::encode(&Message::Hello), &[]);
    expect_end(&raw, EndCode::Protocol, "hello message while streaming");
    // A consumer that takes frames and never releases them: dropped after --max-hold (1 s).
    let raw = Raw::connect(&path);
    raw.handshake();
    let t0 = Instant::now();
    expect_end(&raw, EndCode::TooSlow, "longer than 1s");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    // A consumer killed mid-stream (SIGKILL): the server and another consumer carry on.
    let mut victim = dmacam()
        .args(["dump", "--from"])
        .arg(&path)
        .args(["--frames", "100000", "-o"])
        .arg(dir.join("victim.raw"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = dir.join("survivor.raw");
    let survivor = std::thread::spawn({
        let (path, out) = (path.clone(), out.clone());
        move || dump_from(&path, 30, &out)
    });
    std::thread::sleep(Duration::from_millis(300));
    victim.kill().unwrap();
    victim.wait().unwrap();
    let o = survivor.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 30 * FRAME);

    // 100 connect/disconnect cycles (with the handshake, which passes every buffer's fd) leave the server's
    // fd count as it was.
    let pid = serve.child.id();
    let before = fd_count(pid);
    for i in 0..100 {
        let raw = Raw::connect(&path);
        if i % 2 == 0 {
            raw.handshake();
        }
    }
    // The server notices the last hang-ups within its poll period.
    let start = Instant::now();
    while fd_count(pid) != before && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        fd_count(pid),
        before,
        "fds leaked by connect/disconnect cycles"
    );

    // Still serving after all of that.
    let o = dump_from(&path, 5, &dir.join("after.raw"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let (status, log) = serve.stop();
    assert!(status.success(), "{log}");
    for why in [
        "dropped: sent a malformed message",
        "dropped: sent a message above the size",
        "dropped: sent 2 fds",
        "dropped: held buffer",
    ] {
        assert!(log.contains(why), "no '{why}' in the server log:\n{log}");
    }
}

#[test]
fn bad_consumer_input_is_one_line() {
    let dir = scratch("share", "badinput");
    let missing = dir.join("nobody-serves-here.sock");
    let out = dir.join("x.raw");
    let o = dump_from(&missing, 1, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot connect to") && err.contains("is `dmacam serve --socket"),
        "{err}"
    );
    assert!(!out.exists(), "no output file for a failed start");

    let serve = Serve::start(&dir, &[]);
    let o = dmacam()
        .args(["dump", "--from"])
        .arg(&serve.socket)
        .args(["--format", "NV12", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("serves YUYV 640x360 at 30 fps"), "{err}");
    assert!(!out.exists());
    let o = dmacam()
        .args(["check", "--from"])
        .arg(&serve.socket)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("run `dmacam check` on the device"), "{err}");
    // A second server on the same socket is refused; a stale socket file (no listener) is replaced.
    let o = dmacam()
        .args(["serve", "-d", "pattern", "--socket"])
        .arg(&serve.socket)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("is in use by another server"), "{err}");
    drop(serve);
    let stale = dir.join("cam.sock");
    assert!(stale.exists(), "a killed server leaves its socket file");
    let serve = Serve::start(&dir, &["--frames", "3"]);
    let o = dump_from(&serve.socket, 1, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn other_uids_are_refused() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test switches to uid 65534 with setpriv: run the host tests as root, as CI does"
    );
    let dir = scratch("share", "uid");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A copy of the binary that uid 65534 can run wherever the target directory is.
    let bin = dir.join("dmacam");
    std::fs::copy(dmacam_tests::host::binary(), &bin).unwrap();
    let serve = Serve::start(&dir, &[]);
    let mode = std::fs::metadata(&serve.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "socket mode");
    let as_nobody = || {
        let mut out = String::new();
        let mut child = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&bin)
            .args(["dump", "--from"])
            .arg(&serve.socket)
            .arg("-o")
            .arg(std::env::temp_dir().join("dmacam-share-nobody.raw"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        (wait_with_deadline(&mut child, Duration::from_secs(20)), out)
    };
    // The socket's mode keeps it out.
    let (status, err) = as_nobody();
    assert!(!status.success());
    assert!(err.contains("Permission denied"), "{err}");
    // Past the mode (as if someone chmod'ed the socket), SO_PEERCRED keeps it out.
    std::fs::set_permissions(&serve.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (status, err) = as_nobody();
    assert!(!status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("the server refused this consumer: uid 65534 is not the server's uid 0"),
        "{err}"
    );
    let (status, log) = serve.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("refused: uid 65534"), "{log}");
}

/// The decoder on generated input: mutations of every valid message (bit flips, byte changes, cuts,
/// extensions, lying length fields) and random datagrams. It must never panic, and whatever it accepts must
/// encode back to exactly the same bytes (the encoding is canonical, so nothing unchecked slips through).
/// `DMACAM_FUZZ_ITERATIONS` sets the count (default 1,000,000).
#[test]
fn decoder_survives_a_million_generated_inputs() {
    let n: u64 = std::env::var("DMACAM_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let seeds: Vec<Vec<u8>> = [
        Message::Hello,
        Message::Release {
            index: 1,
            sequence: 2,
        },
        Message::Stream(wire::StreamDesc {
            fourcc: u32::from_le_bytes(*b"NM12"),
            width: 640,
            height: 360,
            mplane: true,
            colorspace: 1,
            ycbcr_enc: 1,
            quantization: 2,
            interval: (1, 30),
            modifier: 0,
            planes: vec![(640, 230400), (640, 115200)],
            buffers: 8,
            memory: wire::Memory::Exported,
            source: "/dev/video1".into(),
        }),
        Message::Buffer {
            index: 3,
            lengths: vec![1 << 20, 1 << 19],
        },
        Message::Ready {
            index: 3,
            sequence: 99,
            timestamp_ns: 1 << 40,
            flags: 0x2000,
            field: 1,
            bytesused: vec![100, 200],
            data_offset: vec![0, 16],
        },
        Message::End {
            code: EndCode::TooSlow,
            reason: "held buffer 1".into(),
        },
    ]
    .iter()
    .map(wire::encode)
    .collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut accepted, mut refused) = (0u64, 0u64);
    for _ in 0..n {
        let r = next();
        let mut data = seeds[(r % seeds.len() as u64) as usize].clone();
        match (r >> 8) % 6 {
            0 => {
                let bit = (next() % (data.len() as u64 * 8)) as usize;
                data[bit / 8] ^= 1 << (bit % 8);
            }
            1 => {
                let at = (next() % data.len() as u64) as usize;
                data[at] = next() as u8;
            }
            2 => data.truncate((next() % data.len() as u64) as usize),
            3 => {
                let extra = (next() % 64) as usize;
                data.extend((0..extra).map(|_| next() as u8));
                if next() % 2 == 0 && data.len() >= HEADER {
                    let body = (data.len() - HEADER) as u32;
                    data[4..8].copy_from_slice(&body.to_le_bytes());
                }
            }
            4 => {
                // A plausible header over random bytes.
                let len = (next() % 80) as usize;
                data = Vec::with_capacity(HEADER + len);
                data.extend_from_slice(&VERSION.to_le_bytes());
                data.extend_from_slice(&((next() % 24) as u16).to_le_bytes());
                data.extend_from_slice(&(len as u32).to_le_bytes());
                data.extend((0..len).map(|_| next() as u8));
            }
            _ => {
                let len = (next() % (MAX_MESSAGE as u64 + 16)) as usize;
                data = (0..len).map(|_| next() as u8).collect();
            }
        }
        match wire::decode(&data) {
            Ok(m) => {
                accepted += 1;
                assert_eq!(wire::encode(&m), data, "accepted a non-canonical {m:?}");
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!("{n} inputs: {accepted} accepted (all canonical), {refused} refused");
    assert!(
        accepted > 0 && refused > 0,
        "the generator exercises both outcomes"
    );
}
