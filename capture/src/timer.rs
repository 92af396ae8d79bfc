//! A CLOCK_MONOTONIC timerfd (crate-private FFI layer): the pollable frame clock of the pattern source.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::clock::monotonic_now;

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    }
}

/// A non-blocking, close-on-exec periodic timer on CLOCK_MONOTONIC; readable (POLLIN) once it expired.
#[derive(Debug)]
pub(crate) struct Timer {
    fd: OwnedFd,
}

impl Timer {
    pub fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create with valid clock and flags; it returns a new fd or -1.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: timerfd_create returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Timer { fd })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    fn set(&self, first: Duration, period: Duration, absolute: bool) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: timespec(period),
            it_value: timespec(first),
        };
        let flags = if absolute { libc::TFD_TIMER_ABSTIME } else { 0 };
        // SAFETY: `spec` is a valid itimerspec; a null old-value pointer is allowed.
        let r = unsafe {
            libc::timerfd_settime(self.fd.as_raw_fd(), flags, &spec, std::ptr::null_mut())
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Arms the timer to expire now and then every `period`; returns "now", the time of expiry 0.
    pub fn start(&self, period: Duration) -> io::Result<Duration> {
        let t0 = monotonic_now().max(Duration::from_nanos(1));
        self.set(t0, period, true)?;
        Ok(t0)
    }

    /// Disarms the timer.
    pub fn stop(&self) -> io::Result<()> {
        self.set(Duration::ZERO, Duration::ZERO, false)
    }

    /// Expirations since the last read (0 if none yet).
    pub fn expirations(&self) -> io::Result<u64> {
        let mut n = 0u64;
        loop {
            // SAFETY: reads 8 bytes into `n`, which is 8 bytes long and writable.
            let r = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut n as *mut u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
            if r == 8 {
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(0),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            }
        }
    }

    /// Waits up to `timeout` for the timer to become readable; returns whether it is.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(r > 0)
    }
}
