//! The camera's handoff to the detector: newest-frame-wins for a live line,
//! lossless for deterministic replays.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use edgesort_types::Frame;

/// A decoded frame and how long decoding took.
#[derive(Debug)]
pub struct CapturedFrame {
    /// The frame.
    pub frame: Frame,
    /// Time spent decoding or converting it.
    pub decode: Duration,
}

#[derive(Default)]
struct Slot {
    frame: Option<CapturedFrame>,
    closed: bool,
}

/// A one-frame mailbox: a new frame replaces one not yet taken.
#[derive(Default)]
pub struct LatestFrame {
    slot: Mutex<Slot>,
    ready: Condvar,
    replaced: AtomicU64,
}

/// The camera's end of the handoff.
pub enum FrameSender {
    /// Into a one-frame slot.
    Latest(Arc<LatestFrame>),
    /// Into a short queue.
    Lossless(Sender<CapturedFrame>),
}

/// The pipeline's end of the handoff.
pub enum FrameReceiver {
    /// From a one-frame slot.
    Latest(Arc<LatestFrame>),
    /// From a short queue.
    Lossless(Receiver<CapturedFrame>),
}

/// Newest frame wins; a frame not yet taken is dropped and counted.
pub fn latest_frame() -> (FrameSender, FrameReceiver) {
    let shared = Arc::new(LatestFrame::default());
    (
        FrameSender::Latest(shared.clone()),
        FrameReceiver::Latest(shared),
    )
}

/// Every frame is delivered; the camera waits when two are queued.
pub fn lossless() -> (FrameSender, FrameReceiver) {
    let (sender, receiver) = crossbeam_channel::bounded(2);
    (
        FrameSender::Lossless(sender),
        FrameReceiver::Lossless(receiver),
    )
}

impl FrameSender {
    /// Hands a frame over; false when the receiver is gone.
    pub fn send(&self, frame: CapturedFrame) -> bool {
        match self {
            FrameSender::Latest(shared) => {
                let mut slot = shared.slot.lock().expect("frame slot poisoned");
                if slot.frame.replace(frame).is_some() {
                    shared.replaced.fetch_add(1, Ordering::Relaxed);
                }
                shared.ready.notify_one();
                !slot.closed
            }
            FrameSender::Lossless(sender) => sender.send(frame).is_ok(),
        }
    }

    /// The camera has stopped: the receiver gets what is left, then `None`.
    /// Dropping the sender does the same.
    pub fn close(&self) {
        if let FrameSender::Latest(shared) = self {
            shared.slot.lock().expect("frame slot poisoned").closed = true;
            shared.ready.notify_all();
        }
    }
}

impl Drop for FrameSender {
    fn drop(&mut self) {
        self.close();
    }
}

impl FrameReceiver {
    /// The next frame, waiting for it; `None` once the camera has stopped
    /// and every frame has been taken.
    pub fn recv(&self) -> Option<CapturedFrame> {
        match self {
            FrameReceiver::Latest(shared) => {
                let mut slot = shared.slot.lock().expect("frame slot poisoned");
                loop {
                    if let Some(frame) = slot.frame.take() {
                        return Some(frame);
                    }
                    if slot.closed {
                        return None;
                    }
                    slot = shared.ready.wait(slot).expect("frame slot poisoned");
                }
            }
            FrameReceiver::Lossless(receiver) => receiver.recv().ok(),
        }
    }

    /// Frames replaced before the pipeline could take them.
    pub fn dropped(&self) -> u64 {
        match self {
            FrameReceiver::Latest(shared) => shared.replaced.load(Ordering::Relaxed),
            FrameReceiver::Lossless(_) => 0,
        }
    }
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        if let FrameReceiver::Latest(shared) = self {
            shared.slot.lock().expect("frame slot poisoned").closed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use edgesort_types::Timestamp;

    use super::*;

    fn frame(sequence: u64) -> CapturedFrame {
        CapturedFrame {
            frame: Frame::from_rgb(sequence, Timestamp::from_nanos(sequence), 1, 1, vec![0; 3]),
            decode: Duration::ZERO,
        }
    }

    #[test]
    fn the_newest_frame_wins_and_drops_are_counted() {
        let (sender, receiver) = latest_frame();
        for sequence in 0..5 {
            assert!(sender.send(frame(sequence)));
        }
        assert_eq!(receiver.recv().unwrap().frame.sequence, 4);
        assert_eq!(receiver.dropped(), 4);
        sender.send(frame(5));
        drop(sender);
        assert_eq!(receiver.recv().unwrap().frame.sequence, 5);
        assert!(receiver.recv().is_none());
    }

    #[test]
    fn lossless_delivers_everything_in_order() {
        let (sender, receiver) = lossless();
        let camera = std::thread::spawn(move || {
            for sequence in 0..20 {
                assert!(sender.send(frame(sequence)));
            }
        });
        let received: Vec<u64> = std::iter::from_fn(|| receiver.recv())
            .map(|f| f.frame.sequence)
            .collect();
        camera.join().unwrap();
        assert_eq!(received, (0..20).collect::<Vec<_>>());
        assert_eq!(receiver.dropped(), 0);
    }
}
