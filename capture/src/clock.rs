//! CLOCK_MONOTONIC: the clock V4L2 stamps buffers with, and so the one every stage measures against
//! (capture time, commit, presentation, page flip).

use std::time::Duration;

/// CLOCK_MONOTONIC now.
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.max(0) as u32)
}

/// CLOCK_MONOTONIC now, in nanoseconds.
pub fn monotonic_ns() -> u64 {
    monotonic_now().as_nanos() as u64
}
