use std::path::{Path, PathBuf};

use edgesort_types::{Frame, Timestamp};

use crate::{CaptureError, decode_jpeg_rgb};

/// A recorded clip played back as a camera.
#[derive(Debug)]
pub struct ReplaySource {
    frames: Vec<PathBuf>,
    next: usize,
    fps: f64,
    start: Timestamp,
    width: u32,
    height: u32,
}

/// The frames of a clip folder: `clip/frames/*.jpg`, or `clip/*.jpg` when it
/// has no `frames/`, in name order.
pub fn clip_frames(clip: &Path) -> Result<Vec<PathBuf>, CaptureError> {
    let frames = clip.join("frames");
    list_jpegs(if frames.is_dir() { &frames } else { clip })
}

/// The `*.jpg` / `*.jpeg` files of `folder` in name order; an error if there
/// are none.
pub fn list_jpegs(folder: &Path) -> Result<Vec<PathBuf>, CaptureError> {
    let list_error = |source| CaptureError::ListFrames {
        path: folder.to_owned(),
        source,
    };
    let mut jpegs = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(list_error)? {
        let path = entry.map_err(list_error)?.path();
        let is_jpeg = path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| ext.eq_ignore_ascii_case("jpg") || ext.eq_ignore_ascii_case("jpeg"));
        if is_jpeg {
            jpegs.push(path);
        }
    }
    if jpegs.is_empty() {
        return Err(CaptureError::EmptyClip {
            path: folder.to_owned(),
        });
    }
    jpegs.sort();
    Ok(jpegs)
}

/// The frame size of a clip: that of its first decodable frame.
pub fn probe_frame_size(clip: &Path) -> Result<(u32, u32), CaptureError> {
    let mut source = ReplaySource::open(clip, 1.0, 0, 0, Timestamp::ZERO)?;
    let mut first_error = None;
    while let Some(result) = source.next_frame() {
        match result {
            Err(CaptureError::FrameSize {
                actual_width,
                actual_height,
                ..
            }) => return Ok((actual_width, actual_height)),
            Err(error) => {
                first_error.get_or_insert(error);
            }
            Ok(frame) => return Ok((frame.width, frame.height)),
        }
    }
    Err(first_error.expect("an opened clip has at least one frame"))
}

impl ReplaySource {
    /// Opens `clip`, which holds `frames/*.jpg` (or the JPEGs themselves), as a
    /// `width`x`height` camera running at `fps`, its first frame stamped `start`.
    pub fn open(
        clip: &Path,
        fps: f64,
        width: u32,
        height: u32,
        start: Timestamp,
    ) -> Result<Self, CaptureError> {
        let frames = clip_frames(clip)?;
        Ok(ReplaySource {
            frames,
            next: 0,
            fps,
            start,
            width,
            height,
        })
    }

    /// Number of frames in the clip.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the clip has no frame; never true for an opened clip.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The nominal capture time of frame `sequence`.
    pub fn timestamp_of(&self, sequence: u64) -> Timestamp {
        Timestamp::from_nanos(
            self.start.as_nanos() + (sequence as f64 * 1e9 / self.fps).round() as u64,
        )
    }

    /// Passes over the frames a live camera would already have replaced by
    /// `now`: the next frame is then the newest one due. Returns how many
    /// were passed over. A replay paced in real time calls this before each
    /// frame, so that a machine slower than the clip's rate stamps frames
    /// when it shows them, as a camera does, instead of falling ever further
    /// behind the clock.
    pub fn skip_to(&mut self, now: Timestamp) -> usize {
        let mut skipped = 0;
        while self.next + 1 < self.frames.len() && self.timestamp_of(self.next as u64 + 1) <= now {
            self.next += 1;
            skipped += 1;
        }
        skipped
    }

    /// The next frame, `None` at the end of the clip, or the error that made
    /// this frame unusable (the next call moves on to the following frame).
    pub fn next_frame(&mut self) -> Option<Result<Frame, CaptureError>> {
        let path = self.frames.get(self.next)?;
        let sequence = self.next as u64;
        self.next += 1;
        Some(self.load(path, sequence))
    }

    fn load(&self, path: &Path, sequence: u64) -> Result<Frame, CaptureError> {
        let bytes = std::fs::read(path).map_err(|source| CaptureError::ReadFrame {
            path: path.to_owned(),
            source,
        })?;
        let (width, height, rgb) =
            decode_jpeg_rgb(&bytes).map_err(|reason| CaptureError::DecodeFrame {
                path: path.to_owned(),
                reason,
            })?;
        if (width, height) != (self.width, self.height) {
            return Err(CaptureError::FrameSize {
                path: path.to_owned(),
                actual_width: width,
                actual_height: height,
                width: self.width,
                height: self.height,
            });
        }
        Ok(Frame::from_rgb(
            sequence,
            self.timestamp_of(sequence),
            width,
            height,
            rgb,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_clip() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/demo_clip")
    }

    fn copy_frames(count: usize, into: &Path) -> Vec<PathBuf> {
        let mut source = ReplaySource::open(&demo_clip(), 60.0, 640, 360, Timestamp::ZERO).unwrap();
        source.frames.truncate(count);
        source
            .frames
            .iter()
            .map(|path| {
                let target = into.join(path.file_name().unwrap());
                std::fs::copy(path, &target).unwrap();
                target
            })
            .collect()
    }

    #[test]
    fn frames_are_stamped_on_the_nominal_grid() {
        let mut source =
            ReplaySource::open(&demo_clip(), 60.0, 640, 360, Timestamp::from_nanos(5)).unwrap();
        assert_eq!(source.len(), 240);
        let first = source.next_frame().unwrap().unwrap();
        let second = source.next_frame().unwrap().unwrap();
        assert_eq!((first.sequence, second.sequence), (0, 1));
        assert_eq!(first.captured_at, Timestamp::from_nanos(5));
        assert_eq!(second.captured_at, Timestamp::from_nanos(5 + 16_666_667));
        assert_eq!(first.rgb().len(), 640 * 360 * 3);
    }

    #[test]
    fn a_late_reader_skips_to_the_newest_frame_due() {
        let mut source = ReplaySource::open(&demo_clip(), 10.0, 640, 360, Timestamp::ZERO).unwrap();
        assert_eq!(source.skip_to(Timestamp::from_nanos(50_000_000)), 0);
        // 0.35 s in: frames 0..=3 are due, 3 is the newest.
        assert_eq!(source.skip_to(Timestamp::from_nanos(350_000_000)), 3);
        assert_eq!(source.next_frame().unwrap().unwrap().sequence, 3);
        // Far past the end: the last frame is still shown, not skipped.
        assert_eq!(
            source.skip_to(Timestamp::from_nanos(1_000_000_000_000)),
            235
        );
        assert_eq!(source.next_frame().unwrap().unwrap().sequence, 239);
        assert!(source.next_frame().is_none());
    }

    #[test]
    fn corrupt_and_truncated_frames_are_errors_that_do_not_stop_the_clip() {
        let dir = tempfile::tempdir().unwrap();
        let frames = copy_frames(4, dir.path());
        let whole = std::fs::read(&frames[1]).unwrap();
        std::fs::write(&frames[1], &whole[..whole.len() / 3]).unwrap();
        std::fs::write(&frames[2], b"not a jpeg at all").unwrap();

        let mut source = ReplaySource::open(dir.path(), 60.0, 640, 360, Timestamp::ZERO).unwrap();
        let results: Vec<_> = std::iter::from_fn(|| source.next_frame()).collect();
        assert_eq!(results.len(), 4);
        assert!(results[0].is_ok());
        for (index, result) in results.iter().enumerate().skip(1).take(2) {
            let error = result.as_ref().unwrap_err();
            assert!(
                matches!(error, CaptureError::DecodeFrame { .. }),
                "frame {index}: {error}"
            );
            assert!(
                error
                    .to_string()
                    .contains(&frames[index].display().to_string())
            );
        }
        assert_eq!(results[3].as_ref().unwrap().sequence, 3);
    }

    #[test]
    fn wrong_size_frames_are_refused() {
        let mut source =
            ReplaySource::open(&demo_clip(), 60.0, 1280, 720, Timestamp::ZERO).unwrap();
        let error = source.next_frame().unwrap().unwrap_err();
        assert!(error.to_string().contains("640x360"), "{error}");
    }

    #[test]
    fn probing_finds_the_size_of_the_first_good_frame() {
        let dir = tempfile::tempdir().unwrap();
        let frames = copy_frames(2, dir.path());
        std::fs::write(&frames[0], b"garbage").unwrap();
        assert_eq!(probe_frame_size(dir.path()).unwrap(), (640, 360));
    }

    #[test]
    fn an_empty_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = ReplaySource::open(dir.path(), 60.0, 640, 360, Timestamp::ZERO).unwrap_err();
        assert!(matches!(error, CaptureError::EmptyClip { .. }));
    }
}
