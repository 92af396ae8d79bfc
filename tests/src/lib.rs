//! Helpers shared by dmacam's integration tests, above all the VM suite (`tests/suite/`), which runs inside
//! the test-bed VM (`tests/vm/suite`) against real vivid, vkms, udmabuf, DMA-BUF heaps, lavapipe and Weston.

pub mod bad_input;
pub mod host;
pub mod picture;
mod pipewire;
pub mod stop;

pub use pipewire::PipeWire;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Panics (fails the test) unless running inside the test-bed VM. VM tests never pass silently on a host.
pub fn require_vm() {
    assert_eq!(
        std::env::var("DMACAM_VM").as_deref(),
        Ok("1"),
        "this test needs the real kernel of the test-bed VM; run it with tests/vm/suite"
    );
}

/// The work tree as seen from the current machine (`/src` inside the VM).
pub fn src_dir() -> PathBuf {
    std::env::var_os("DMACAM_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// Where a test may leave files for the host to read (`/results` in the VM, copied to target/vm/results/).
pub fn results_dir() -> PathBuf {
    let dir = if Path::new("/results").is_dir() {
        PathBuf::from("/results")
    } else {
        std::env::temp_dir().join("dmacam-results")
    };
    std::fs::create_dir_all(&dir).expect("create results dir");
    dir
}

/// Sends signal `sig` (`libc::SIGINT`...) to process `pid`; a process already gone is not an error.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a plain pid and signal number touches no memory of this process.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// A command for the `dmacam` binary on PATH (the test-bed puts the freshly built one there).
pub fn dmacam() -> Command {
    Command::new("dmacam")
}

/// On the host: the `dmacam` binary, built (or found up to date) in this target directory.
pub fn built_dmacam() -> Command {
    host::dmacam()
}

/// Runs a command to completion, capturing its output; panics if it cannot be started, or if it runs longer
/// than 300 s (with what each of its threads waits for in the kernel: a hang fails the test, it does not
/// stall the whole VM suite).
pub fn run(cmd: &mut Command) -> Output {
    run_with_deadline(cmd, Duration::from_secs(300)).unwrap_or_else(|hang| panic!("{hang}"))
}

/// What the threads of process `pid` wait for in the kernel (wchan and stack), for hang reports.
pub fn kernel_stacks(pid: u32) -> String {
    let mut out = String::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.filter_map(|e| e.ok()) {
            let p = t.path();
            let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
            out += &format!(
                "thread {} ({}) in {}:\n{}",
                t.file_name().to_string_lossy(),
                read("comm").trim(),
                read("wchan"),
                read("stack")
            );
        }
    }
    out
}

/// Writes the evidence of a hang to `results/hangs/LABEL-N.txt` and returns its path: every task's state,
/// wchan and kernel stack, the kernel's blocked-task report (sysrq w) with its last messages, and gdb's
/// user-space stacks of every dmacam thread (as tests/vm/guest/each-test does when a whole test overruns).
/// Every command it runs is bounded; outside the VM it writes what it can read.
pub fn hang_evidence(label: &str) -> PathBuf {
    use std::fmt::Write as _;
    let dir = results_dir().join("hangs");
    let _ = std::fs::create_dir_all(&dir);
    let safe: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect();
    let path = (0..)
        .map(|n| dir.join(format!("{safe}-{n}.txt")))
        .find(|p| !p.exists())
        .expect("a free file name");
    let mut out = format!("== {label}\n== kernel stacks of every task\n");
    let mut dmacams = Vec::new();
    for proc_entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "dmacam" {
            dmacams.push(pid);
        }
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(") ")
                    .map(|(_, r)| r.chars().next().unwrap_or('?'))
            })
            .unwrap_or('?');
        let _ = writeln!(out, "-- process {pid} ({}) state {state}", comm.trim());
        out += &kernel_stacks(pid);
    }
    let bounded = |cmd: &mut Command| {
        run_with_deadline_quiet(cmd, Duration::from_secs(60))
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_else(|e| e)
    };
    let _ = std::fs::write("/proc/sysrq-trigger", "w");
    out += "== the kernel's blocked tasks (sysrq w) and its last messages\n";
    let dmesg = bounded(&mut Command::new("dmesg"));
    let lines: Vec<&str> = dmesg.lines().collect();
    out += &lines[lines.len().saturating_sub(300)..].join("\n");
    for pid in dmacams {
        let _ = writeln!(out, "\n== user-space stacks of dmacam {pid}");
        out += &bounded(Command::new("gdb").args([
            "-q",
            "-batch",
            "-p",
            &pid.to_string(),
            "-ex",
            "thread apply all bt 30",
        ]));
    }
    let _ = std::fs::write(&path, out);
    path
}

/// [`run_with_deadline`] without collecting hang evidence (for the evidence's own commands).
fn run_with_deadline_quiet(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    run_bounded(cmd, limit, false)
}

/// Runs a command to completion within `limit`, capturing its output. On overrun the command is killed and
/// the error describes where it was stuck.
pub fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    run_bounded(cmd, limit, true)
}

fn run_bounded(cmd: &mut Command, limit: Duration, evidence: bool) -> Result<Output, String> {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let stacks = kernel_stacks(child.id());
            let all = if evidence {
                format!(
                    "every task's stacks: {}\n",
                    hang_evidence(&format!("{:?}", cmd.get_program())).display()
                )
            } else {
                String::new()
            };
            // A process stuck in the kernel may not die: its pipes would then never close, so its output is
            // read only if it did.
            let stderr = if kill_and_reap(&mut child).is_some() {
                String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned()
            } else {
                "(not read: the process did not die within 10 s of SIGKILL)".to_owned()
            };
            return Err(format!(
                "{cmd:?} did not finish within {limit:?}; {all}it was stuck in:\n{stacks}stderr:\n{stderr}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Runs a command, asserting success; returns its stdout as text.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How long a test waits for the compositor to present dmacam's frames. Weston (GL on llvmpipe) under TCG
/// presents nothing for its first seconds, longer when the machine is loaded (a fixed 20 s was seen to end with
/// 68 frames submitted and none shown): tests wait on Weston's presentation feedback (`view --until-shown`),
/// bounded by this, not on the clock.
pub const SHOW_WITHIN_S: u64 = 90;

/// `dmacam view` arguments that run it until the compositor has presented `n` of its frames, or for
/// [`SHOW_WITHIN_S`] seconds if it does not (then [`Weston::assert_shown`] fails with Weston's state).
pub fn until_shown(n: u64) -> [String; 4] {
    [
        "--until-shown".to_owned(),
        n.to_string(),
        "--duration".to_owned(),
        SHOW_WITHIN_S.to_string(),
    ]
}

/// A headless Weston started for one test (GL renderer, the test-bed's stable configuration); killed on drop.
pub struct Weston {
    pid: i32,
    pub display: String,
    pub runtime_dir: PathBuf,
    started: Instant,
}

impl Weston {
    /// Starts Weston on socket `name` with `extra` arguments (e.g. `--renderer=pixman` for a compositor
    /// without linux-dmabuf).
    pub fn start(name: &str, extra: &[&str]) -> Weston {
        Weston::start_shell(name, "kiosk", extra)
    }

    /// Starts Weston with its desktop shell (floating windows that draw their own frame, as on a desktop;
    /// no panel, no animations, background 0x203040) instead of the kiosk shell.
    pub fn start_desktop(name: &str, extra: &[&str]) -> Weston {
        Weston::start_shell(name, "desktop", extra)
    }

    fn start_shell(name: &str, shell: &str, extra: &[&str]) -> Weston {
        let runtime_dir = PathBuf::from(
            std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/run/user/0".to_owned()),
        );
        let script = src_dir().join("tests/vm/guest/weston-start");
        Weston::start_with(Command::new(&script), name, shell, extra, runtime_dir)
    }

    /// Starts the kiosk Weston through `wrapper` (e.g. `setpriv ... --` to run it as another user, whose
    /// `runtime_dir` it uses); `wrapper` gets the start script as its last argument.
    pub fn start_as(mut wrapper: Command, name: &str, runtime_dir: &Path) -> Weston {
        wrapper.arg(src_dir().join("tests/vm/guest/weston-start"));
        Weston::start_with(wrapper, name, "kiosk", &[], runtime_dir.to_path_buf())
    }

    fn start_with(
        mut cmd: Command,
        name: &str,
        shell: &str,
        extra: &[&str],
        runtime_dir: PathBuf,
    ) -> Weston {
        let out = run(cmd
            .arg(name)
            .args(extra)
            .env("WESTON_SHELL", shell)
            .env("XDG_RUNTIME_DIR", &runtime_dir));
        assert!(
            out.status.success(),
            "weston did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid: i32 = std::fs::read_to_string(runtime_dir.join("weston.pid"))
            .expect("weston.pid")
            .trim()
            .parse()
            .expect("weston pid");
        Weston {
            pid,
            display: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            runtime_dir,
            started: Instant::now(),
        }
    }

    /// CPU seconds Weston has used (all its threads, llvmpipe's included), if it is still there.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // After the command name (which may hold spaces): state, then utime and stime are the 12th and 13th.
        let rest: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
        let ticks: u64 = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Some(ticks as f64 / hz)
    }

    /// Weston's state for a failure message: alive or not, its CPU since it started, its log's last lines.
    pub fn state(&self) -> String {
        let wall = self.started.elapsed().as_secs_f64();
        let cpu = match self.cpu_seconds() {
            Some(c) => format!(
                "{c:.1} s of CPU in {wall:.0} s ({:.0}% of one core)",
                c / wall * 100.0
            ),
            None => "not running".to_owned(),
        };
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "weston (pid {}): {cpu}; the last lines of its log:\n{}",
            self.pid,
            tail.join("\n")
        )
    }

    /// Fails, with Weston's state, unless the statistics `stats` (`view --stats-json`) say the compositor
    /// presented at least `n` frames.
    pub fn assert_shown(&self, stats: &serde_json::Value, n: u64, what: &str) {
        let shown = stats["frames_shown"].as_u64().unwrap_or(0);
        assert!(
            shown >= n,
            "{what}: the compositor presented {shown} of dmacam's frames within {SHOW_WITHIN_S} s, not \
             {n}; dmacam's statistics: {stats}\n{}",
            self.state()
        );
    }

    /// Sets `WAYLAND_DISPLAY` and `XDG_RUNTIME_DIR` on `cmd` so it talks to this compositor.
    pub fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("WAYLAND_DISPLAY", &self.display)
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the compositor process is still running (a crash under a client is a test failure).
    pub fn is_alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    }

    /// Weston's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.runtime_dir.join("weston.log")).unwrap_or_default()
    }
}

impl Drop for Weston {
    /// Stops Weston and waits until it has exited: a Weston still shutting down would unlink the socket of
    /// the next test's Weston of the same name. SIGKILL (which removes nothing) after 15 s.
    fn drop(&mut self) {
        let pid = self.pid as u32;
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.is_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.is_alive() {
            signal(pid, libc::SIGKILL);
            // Bounded: a compositor stuck in the kernel would otherwise hang the suite.
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.is_alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if self.is_alive() {
                eprintln!(
                    "weston (pid {}) did not die within 10 s of SIGKILL:\n{}",
                    self.pid,
                    kernel_stacks(self.pid as u32)
                );
            }
        }
    }
}

/// Waits for a child with a deadline; kills it and panics if it overruns, with where it was stuck.
pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let stacks = kernel_stacks(child.id());
            let all = hang_evidence("child");
            kill_and_reap(child);
            panic!(
                "child did not finish within {limit:?}; every task's stacks: {}\nit was stuck in:\n{stacks}",
                all.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILL, then waits up to 10 s for the child to go: a process in an uninterruptible kernel wait does not
/// die, and waiting for it without a bound would hang the whole suite (until the VM's own timeout) instead of
/// failing one test. `None` if it is still there.
pub fn kill_and_reap(child: &mut Child) -> Option<std::process::ExitStatus> {
    let _ = child.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sets V4L2 controls (`v4l2-ctl -c` syntax) on each of its nodes when dropped: for a test that changes
/// vivid's controls, which persist on the device, to leave them as later tests expect, pass or fail.
pub struct SetOnDrop {
    nodes: &'static [&'static str],
    controls: &'static str,
}

impl SetOnDrop {
    pub fn new(nodes: &'static [&'static str], controls: &'static str) -> SetOnDrop {
        SetOnDrop { nodes, controls }
    }
}

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        for node in self.nodes {
            let _ = run_with_deadline(
                Command::new("v4l2-ctl").args(["-d", node, "-c", self.controls]),
                Duration::from_secs(30),
            );
        }
    }
}

/// Number of open fds of process `pid` (`/proc/PID/fd`).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Turns transparent huge pages off for this process and for every process it starts from now on
/// (`PR_SET_THP_DISABLE`, inherited over fork and kept over execve), so that resident memory counts only pages
/// the program touched. The test-bed kernel runs THP `always` with khugepaged's `max_ptes_none` 511: every
/// ~10 s khugepaged collapses partly used 2 MiB ranges of anonymous memory (glibc's malloc arenas above all)
/// into huge pages, filling in the untouched 4 KiB pages, so RSS steps up at wall-clock times that have
/// nothing to do with what the program does (the evidence is in tests/suite/render.rs).
pub fn disable_transparent_huge_pages() {
    // SAFETY: prctl with integer arguments only; it changes no memory of this process.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    assert_eq!(
        r,
        0,
        "PR_SET_THP_DISABLE: {}",
        std::io::Error::last_os_error()
    );
}

/// A `kB` field (`Rss:`, `AnonHugePages:`...) of /proc/self/smaps_rollup, which walks the page tables: exact,
/// unlike VmRSS in /proc/self/status, whose per-CPU counters may lag by a few hundred KiB.
pub fn smaps_rollup_kib(field: &str) -> u64 {
    let text =
        std::fs::read_to_string("/proc/self/smaps_rollup").expect("read /proc/self/smaps_rollup");
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/smaps_rollup:\n{text}"))
}

/// Bytes malloc has handed out and not had back (glibc `mallinfo2`, every arena): grows with a heap leak
/// even when the leaked blocks come from memory that was already resident (freed earlier, still mapped).
pub fn malloc_in_use() -> u64 {
    // SAFETY: a plain query of glibc's allocator statistics.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as u64
}

/// Waits until the file `log` (a child's stderr) contains `needle`; panics with the log if `child` exits or
/// `limit` passes first.
pub fn wait_for_line(child: &mut Child, log: &Path, needle: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        let exited = child.try_wait().ok().flatten();
        assert!(
            exited.is_none() && start.elapsed() < limit,
            "no '{needle}' in {} ({}):\n{text}",
            log.display(),
            exited.map_or("timed out".to_owned(), |s| format!("exited: {s}"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks the `pixel (X, Y): RGBA [R, G, B, A]` lines the render example (`convert_frame`) prints for a
/// frame of the pattern source `width` pixels wide: one per colour bar, each within 8 levels of its bar.
pub fn assert_example_bars(stdout: &str, width: u32, what: &str) {
    let mut bars = 0;
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("pixel (") else {
            continue;
        };
        let x: u32 = rest.split(',').next().unwrap().parse().unwrap();
        let rgba = rest
            .split_once("RGBA [")
            .unwrap()
            .1
            .split(']')
            .next()
            .unwrap();
        let rgb: Vec<u8> = rgba.split(", ").map(|c| c.parse().unwrap()).collect();
        let want = dmacam_capture::colour::bar_rgb(x, width);
        let off = (0..3).map(|c| rgb[c].abs_diff(want[c])).max().unwrap();
        assert!(
            off <= 8,
            "{what}: x {x}: {rgb:?}, the bar is {want:?}:\n{stdout}"
        );
        bars += 1;
    }
    assert_eq!(bars, 8, "{what}: one pixel per bar:\n{stdout}");
}

/// Asserts that a pattern run's `--stats-json` summary counts exactly one CPU write per frame, the pattern's
/// own painting, and no copy after it: the copied total is what the source wrote, and that is not nothing.
pub fn assert_only_the_pattern_wrote(s: &serde_json::Value) {
    let w = &s["source_write"];
    assert_eq!(w["what"], "the pattern", "{s}");
    let written = w["cpu_bytes_written"].as_u64().unwrap_or(0);
    assert!(written > 0 && w["frames"].as_u64().unwrap_or(0) > 0, "{s}");
    assert_eq!(
        s["cpu_bytes_copied_total"], written,
        "a copy after the pattern's own write: {s}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command past its deadline is killed and fails with where it was stuck and every task's stacks.
    #[test]
    fn a_command_past_its_deadline_leaves_the_evidence() {
        let start = Instant::now();
        let err = run_with_deadline(Command::new("sleep").arg("30"), Duration::from_millis(500))
            .expect_err("sleep 30 cannot finish in 0.5 s");
        assert!(start.elapsed() < Duration::from_secs(25), "{err}");
        assert!(err.contains("did not finish within"), "{err}");
        let path = err
            .split("every task's stacks: ")
            .nth(1)
            .and_then(|r| r.lines().next())
            .unwrap_or_else(|| panic!("no evidence file named: {err}"));
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("== kernel stacks of every task"), "{text}");
        assert!(
            text.contains("(sleep)"),
            "the sleeping command is listed: {text}"
        );
        let _ = std::fs::remove_file(path);
    }
}
