//! V4L2 streaming into memory the detector lends (`V4L2_MEMORY_USERPTR`):
//! each driver buffer is a buffer of a [`FramePool`] (pinned memory the
//! GPU maps, on a Jetson), so the driver writes each frame where the
//! letterbox kernel reads it and nobody copies it.
//!
//! A dequeued buffer leaves with its frame, and a fresh one from the pool
//! takes its place in the driver's queue. When the pool has none free, the
//! frame is lent as the driver's own until the next call, as with mmap
//! buffers, and its buffer goes back in the queue then.

use std::os::raw::{c_ulong, c_void};
use std::sync::Arc;
use std::time::Duration;

use edgesort_types::{FrameLayout, FramePool, PixelBuffer};
use v4l::buffer::Type;
use v4l::device::Handle;
use v4l::memory::Memory;
use v4l::v4l_sys::{v4l2_buffer, v4l2_buffer__bindgen_ty_1, v4l2_requestbuffers};
use v4l::v4l2;

/// A frame as [`UserStream::next`] dequeued it.
pub(crate) struct Dequeued<'a> {
    /// Where the bytes are.
    pub(crate) bytes: DequeuedBytes<'a>,
    /// Bytes the driver wrote.
    pub(crate) used: usize,
    /// The driver's buffer metadata.
    pub(crate) sequence: u32,
    pub(crate) flags: u32,
    pub(crate) timestamp: libc::timeval,
}

/// Where a dequeued frame's bytes are.
pub(crate) enum DequeuedBytes<'a> {
    /// In a lent buffer that leaves with the frame.
    Taken(Box<dyn PixelBuffer>),
    /// In a buffer the stream keeps (no replacement was free), until the
    /// next call.
    Kept(&'a [u8]),
}

/// A streaming capture queue over pool buffers.
pub(crate) struct UserStream {
    handle: Arc<Handle>,
    pool: Arc<dyn FramePool>,
    layout: FrameLayout,
    /// The buffer at each driver index, while the driver holds it.
    queued: Vec<Option<Box<dyn PixelBuffer>>>,
    /// A dequeued buffer lent as the driver's own, to queue again.
    kept: Option<(usize, Box<dyn PixelBuffer>)>,
}

/// Why user-pointer streaming could not start: the failed step and the
/// driver's answer.
#[derive(Debug)]
pub(crate) struct UserPtrRefused {
    pub(crate) step: &'static str,
    pub(crate) source: std::io::Error,
}

impl std::fmt::Display for UserPtrRefused {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.step, self.source)
    }
}

fn refused(step: &'static str) -> impl Fn(std::io::Error) -> UserPtrRefused {
    move |source| UserPtrRefused { step, source }
}

/// # Safety
///
/// `argument` must be the structure `request` reads and writes.
unsafe fn ioctl<T>(
    handle: &Handle,
    request: v4l2::vidioc::_IOC_TYPE,
    argument: &mut T,
) -> std::io::Result<()> {
    // SAFETY: the caller's promise.
    unsafe { v4l2::ioctl(handle.fd(), request, argument as *mut T as *mut c_void) }
}

fn capture_type() -> u32 {
    Type::VideoCapture as u32
}

impl UserStream {
    /// Asks the driver for `count` user-pointer buffers, queues a pool
    /// buffer in each and starts streaming. The camera must have no other
    /// buffers (its mmap stream closed).
    pub(crate) fn start(
        handle: Arc<Handle>,
        pool: Arc<dyn FramePool>,
        layout: FrameLayout,
        count: u32,
    ) -> Result<UserStream, UserPtrRefused> {
        let mut request = v4l2_requestbuffers {
            count,
            type_: capture_type(),
            memory: Memory::UserPtr as u32,
            // SAFETY: plain data; zero is every other field's default.
            ..unsafe { std::mem::zeroed() }
        };
        // SAFETY: VIDIOC_REQBUFS takes a v4l2_requestbuffers.
        unsafe { ioctl(&handle, v4l2::vidioc::VIDIOC_REQBUFS, &mut request) }
            .map_err(refused("VIDIOC_REQBUFS (USERPTR)"))?;
        let mut stream = UserStream {
            handle,
            pool,
            layout,
            queued: (0..request.count).map(|_| None).collect(),
            kept: None,
        };
        for index in 0..stream.queued.len() {
            let buffer = stream.pool.take(layout).ok_or_else(|| UserPtrRefused {
                step: "taking a buffer from the detector's pool",
                source: std::io::Error::other(format!(
                    "the pool lent {index} of the {} buffers the driver streams through",
                    stream.queued.len()
                )),
            })?;
            stream
                .queue(index, buffer)
                .map_err(refused("VIDIOC_QBUF (USERPTR)"))?;
        }
        let mut kind = capture_type();
        // SAFETY: VIDIOC_STREAMON takes the buffer type.
        unsafe { ioctl(&stream.handle, v4l2::vidioc::VIDIOC_STREAMON, &mut kind) }
            .map_err(refused("VIDIOC_STREAMON"))?;
        Ok(stream)
    }

    /// Lends buffers of `pool` from now on; buffers of the old pool leave
    /// the queue as their frames do.
    pub(crate) fn set_pool(&mut self, pool: Arc<dyn FramePool>) {
        self.pool = pool;
    }

    fn queue(&mut self, index: usize, mut buffer: Box<dyn PixelBuffer>) -> std::io::Result<()> {
        let bytes = buffer.bytes_mut();
        let mut request = v4l2_buffer {
            index: index as u32,
            type_: capture_type(),
            memory: Memory::UserPtr as u32,
            m: v4l2_buffer__bindgen_ty_1 {
                userptr: bytes.as_mut_ptr() as c_ulong,
            },
            length: bytes.len() as u32,
            // SAFETY: plain data; zero is every other field's default.
            ..unsafe { std::mem::zeroed() }
        };
        // SAFETY: VIDIOC_QBUF takes a v4l2_buffer; the memory it names stays
        // allocated (held in `queued`) until the driver gives it back or the
        // stream is off.
        unsafe { ioctl(&self.handle, v4l2::vidioc::VIDIOC_QBUF, &mut request) }?;
        self.queued[index] = Some(buffer);
        Ok(())
    }

    /// The next frame, waiting at most `timeout`.
    pub(crate) fn next(&mut self, timeout: Duration) -> std::io::Result<Dequeued<'_>> {
        if let Some((index, buffer)) = self.kept.take() {
            self.queue(index, buffer)?;
        }
        let millis = i32::try_from(timeout.as_millis())
            .unwrap_or(i32::MAX)
            .max(1);
        if self.handle.poll(libc::POLLIN, millis)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "VIDIOC_DQBUF",
            ));
        }
        let mut request = v4l2_buffer {
            type_: capture_type(),
            memory: Memory::UserPtr as u32,
            // SAFETY: plain data; zero is every other field's default.
            ..unsafe { std::mem::zeroed() }
        };
        // SAFETY: VIDIOC_DQBUF takes a v4l2_buffer.
        unsafe { ioctl(&self.handle, v4l2::vidioc::VIDIOC_DQBUF, &mut request) }?;
        let index = request.index as usize;
        let buffer = self
            .queued
            .get_mut(index)
            .and_then(Option::take)
            .ok_or_else(|| {
                std::io::Error::other(format!("the driver returned buffer {index}, not queued"))
            })?;
        let used = match request.bytesused as usize {
            0 => buffer.bytes().len(),
            used => used.min(buffer.bytes().len()),
        };
        let bytes = match self.pool.take(self.layout) {
            Some(fresh) => {
                self.queue(index, fresh)?;
                DequeuedBytes::Taken(buffer)
            }
            None => {
                let (_, kept) = self.kept.insert((index, buffer));
                DequeuedBytes::Kept(kept.bytes())
            }
        };
        Ok(Dequeued {
            bytes,
            used,
            sequence: request.sequence,
            flags: request.flags,
            timestamp: libc::timeval {
                tv_sec: request.timestamp.tv_sec,
                tv_usec: request.timestamp.tv_usec,
            },
        })
    }
}

impl Drop for UserStream {
    fn drop(&mut self) {
        let mut kind = capture_type();
        // SAFETY: VIDIOC_STREAMOFF takes the buffer type.
        let off = unsafe { ioctl(&self.handle, v4l2::vidioc::VIDIOC_STREAMOFF, &mut kind) };
        if let Err(error) = off {
            // The driver may still write into the queued buffers: they must
            // never be reused, so they are leaked, not freed.
            tracing::warn!(%error, "VIDIOC_STREAMOFF failed; the camera's lent buffers are left to it");
            for buffer in self.queued.drain(..).flatten() {
                std::mem::forget(buffer);
            }
            return;
        }
        let mut release = v4l2_requestbuffers {
            count: 0,
            type_: capture_type(),
            memory: Memory::UserPtr as u32,
            // SAFETY: plain data.
            ..unsafe { std::mem::zeroed() }
        };
        // SAFETY: VIDIOC_REQBUFS takes a v4l2_requestbuffers. After
        // STREAMOFF the driver holds no buffer; this frees its bookkeeping.
        let _ = unsafe { ioctl(&self.handle, v4l2::vidioc::VIDIOC_REQBUFS, &mut release) };
    }
}
