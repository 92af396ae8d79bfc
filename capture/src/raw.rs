//! The raw ioctl layer (crate-private): one `nix` ioctl per V4L2 / dma-heap / udmabuf request, over the
//! kernel structures `v4l2r` generates from `videodev2.h`. Nothing above this module issues an ioctl.
//!
//! Every wrapper here is `unsafe` only in the sense nix makes it: the argument must be the right structure.
//! The safe functions take typed structures and an fd and retry on `EINTR`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
pub(crate) use v4l2r::bindings as b;

mod ffi {
    use super::b;
    nix::ioctl_readwrite!(enum_fmt, b'V', 2, b::v4l2_fmtdesc);
    nix::ioctl_readwrite!(g_fmt, b'V', 4, b::v4l2_format);
    nix::ioctl_readwrite!(s_fmt, b'V', 5, b::v4l2_format);
    nix::ioctl_readwrite!(reqbufs, b'V', 8, b::v4l2_requestbuffers);
    nix::ioctl_readwrite!(querybuf, b'V', 9, b::v4l2_buffer);
    nix::ioctl_readwrite!(qbuf, b'V', 15, b::v4l2_buffer);
    nix::ioctl_readwrite!(expbuf, b'V', 16, b::v4l2_exportbuffer);
    nix::ioctl_readwrite!(dqbuf, b'V', 17, b::v4l2_buffer);
    nix::ioctl_write_ptr!(streamon, b'V', 18, libc::c_int);
    nix::ioctl_write_ptr!(streamoff, b'V', 19, libc::c_int);
    nix::ioctl_readwrite!(g_parm, b'V', 21, b::v4l2_streamparm);
    nix::ioctl_readwrite!(s_parm, b'V', 22, b::v4l2_streamparm);
    nix::ioctl_readwrite!(g_ctrl, b'V', 27, b::v4l2_control);
    nix::ioctl_readwrite!(s_ctrl, b'V', 28, b::v4l2_control);
    nix::ioctl_readwrite!(querymenu, b'V', 37, b::v4l2_querymenu);
    nix::ioctl_readwrite!(enum_framesizes, b'V', 74, b::v4l2_frmsizeenum);
    nix::ioctl_readwrite!(enum_frameintervals, b'V', 75, b::v4l2_frmivalenum);
    nix::ioctl_readwrite!(query_ext_ctrl, b'V', 103, b::v4l2_query_ext_ctrl);

    /// `struct dma_heap_allocation_data` from `<linux/dma-heap.h>`.
    #[repr(C)]
    #[derive(Default)]
    pub struct DmaHeapAllocationData {
        pub len: u64,
        pub fd: u32,
        pub fd_flags: u32,
        pub heap_flags: u64,
    }
    nix::ioctl_readwrite!(dma_heap_alloc, b'H', 0, DmaHeapAllocationData);

    /// `struct udmabuf_create` from `<linux/udmabuf.h>`.
    #[repr(C)]
    pub struct UdmabufCreate {
        pub memfd: u32,
        pub flags: u32,
        pub offset: u64,
        pub size: u64,
    }
    nix::ioctl_write_ptr!(udmabuf_create, b'u', 0x42, UdmabufCreate);
}

pub(crate) use ffi::{DmaHeapAllocationData, UdmabufCreate};

/// `UDMABUF_FLAGS_CLOEXEC`.
pub(crate) const UDMABUF_FLAGS_CLOEXEC: u32 = 0x01;

/// Runs `f` until it does not fail with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

macro_rules! rw {
    ($(#[$m:meta])* $name:ident, $ffi:ident, $ty:ty) => {
        $(#[$m])*
        pub(crate) fn $name(fd: BorrowedFd<'_>, arg: &mut $ty) -> nix::Result<()> {
            retry(|| {
                // SAFETY: `arg` is a valid, exclusively borrowed instance of the structure this ioctl
                // takes, alive for the duration of the call; the kernel reads and writes only within it
                // (pointers inside it, if any, are set up by the caller as documented on the caller).
                unsafe { ffi::$ffi(fd.as_raw_fd(), arg) }
            })
            .map(|_| ())
        }
    };
}

rw!(enum_fmt, enum_fmt, b::v4l2_fmtdesc);
rw!(g_fmt, g_fmt, b::v4l2_format);
rw!(s_fmt, s_fmt, b::v4l2_format);
rw!(reqbufs, reqbufs, b::v4l2_requestbuffers);
rw!(g_parm, g_parm, b::v4l2_streamparm);
rw!(s_parm, s_parm, b::v4l2_streamparm);
rw!(g_ctrl, g_ctrl, b::v4l2_control);
rw!(s_ctrl, s_ctrl, b::v4l2_control);
rw!(querymenu, querymenu, b::v4l2_querymenu);
rw!(enum_framesizes, enum_framesizes, b::v4l2_frmsizeenum);
rw!(
    enum_frameintervals,
    enum_frameintervals,
    b::v4l2_frmivalenum
);
rw!(query_ext_ctrl, query_ext_ctrl, b::v4l2_query_ext_ctrl);

/// A `v4l2_buffer` plus its plane array, kept together so `m.planes` always points at live memory.
pub(crate) struct BufferArg {
    pub buf: b::v4l2_buffer,
    pub planes: Box<[b::v4l2_plane; 8]>,
    mplane: bool,
}

// SAFETY: the raw pointer inside `buf.m.planes` only ever points at `planes`, which this value owns.
unsafe impl Send for BufferArg {}

impl BufferArg {
    pub(crate) fn new(queue_type: u32, memory: u32, index: u32, mplane: bool) -> Self {
        let mut arg = BufferArg {
            buf: b::v4l2_buffer {
                type_: queue_type,
                memory,
                index,
                ..Default::default()
            },
            planes: Box::new([b::v4l2_plane::default(); 8]),
            mplane,
        };
        if mplane {
            arg.buf.length = 8;
        }
        arg
    }

    fn fix_pointer(&mut self) {
        if self.mplane {
            self.buf.m.planes = self.planes.as_mut_ptr();
        }
    }

    /// Whether the buffer uses the multi-planar API.
    pub(crate) fn mplane(&self) -> bool {
        self.mplane
    }
}

macro_rules! buf_ioctl {
    ($name:ident, $ffi:ident) => {
        pub(crate) fn $name(fd: BorrowedFd<'_>, arg: &mut BufferArg) -> nix::Result<()> {
            arg.fix_pointer();
            retry(|| {
                // SAFETY: `arg.buf` is a valid `v4l2_buffer`; for the multi-planar API `m.planes` points at
                // `arg.planes` (8 entries, `length` at most 8), which lives as long as `arg` is borrowed.
                unsafe { ffi::$ffi(fd.as_raw_fd(), &mut arg.buf) }
            })
            .map(|_| ())
        }
    };
}

buf_ioctl!(querybuf, querybuf);
buf_ioctl!(qbuf, qbuf);
buf_ioctl!(dqbuf, dqbuf);

/// `VIDIOC_EXPBUF` of one plane; returns the new dma-buf fd.
pub(crate) fn expbuf(
    fd: BorrowedFd<'_>,
    queue_type: u32,
    index: u32,
    plane: u32,
    flags: u32,
) -> nix::Result<OwnedFd> {
    let mut arg = b::v4l2_exportbuffer {
        type_: queue_type,
        index,
        plane,
        flags,
        ..Default::default()
    };
    retry(|| {
        // SAFETY: `arg` is a valid `v4l2_exportbuffer` for the duration of the call.
        unsafe { ffi::expbuf(fd.as_raw_fd(), &mut arg) }
    })?;
    // SAFETY: on success the kernel installed a new fd in `arg.fd` that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(arg.fd) })
}

pub(crate) fn streamon(fd: BorrowedFd<'_>, queue_type: u32) -> nix::Result<()> {
    let t = queue_type as libc::c_int;
    retry(|| {
        // SAFETY: VIDIOC_STREAMON reads one int, which `t` is.
        unsafe { ffi::streamon(fd.as_raw_fd(), &t) }
    })
    .map(|_| ())
}

pub(crate) fn streamoff(fd: BorrowedFd<'_>, queue_type: u32) -> nix::Result<()> {
    let t = queue_type as libc::c_int;
    retry(|| {
        // SAFETY: VIDIOC_STREAMOFF reads one int, which `t` is.
        unsafe { ffi::streamoff(fd.as_raw_fd(), &t) }
    })
    .map(|_| ())
}

/// `DMA_HEAP_IOCTL_ALLOC`: a new dma-buf of `len` bytes, CLOEXEC and read-write.
pub(crate) fn dma_heap_alloc(heap: BorrowedFd<'_>, len: u64) -> nix::Result<OwnedFd> {
    let mut arg = DmaHeapAllocationData {
        len,
        fd_flags: (libc::O_RDWR | libc::O_CLOEXEC) as u32,
        ..Default::default()
    };
    retry(|| {
        // SAFETY: `arg` is a valid `dma_heap_allocation_data` for the duration of the call.
        unsafe { ffi::dma_heap_alloc(heap.as_raw_fd(), &mut arg) }
    })?;
    // SAFETY: on success the kernel installed a new fd in `arg.fd` that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(arg.fd as i32) })
}

/// `UDMABUF_CREATE` over `memfd[offset..offset+size]`; returns the new dma-buf fd (CLOEXEC).
pub(crate) fn udmabuf_create(
    dev: BorrowedFd<'_>,
    memfd: BorrowedFd<'_>,
    size: u64,
) -> nix::Result<OwnedFd> {
    let arg = UdmabufCreate {
        memfd: memfd.as_raw_fd() as u32,
        flags: UDMABUF_FLAGS_CLOEXEC,
        offset: 0,
        size,
    };
    let fd = retry(|| {
        // SAFETY: `arg` is a valid `udmabuf_create` for the duration of the call.
        unsafe { ffi::udmabuf_create(dev.as_raw_fd(), &arg) }
    })?;
    // SAFETY: on success the ioctl's return value is a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A C string field (NUL-terminated within the array) as text.
pub(crate) fn cstr<T: Copy + Into<i16>>(chars: &[T]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|&c| c.into() as u8)
        .take_while(|&c| c != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
