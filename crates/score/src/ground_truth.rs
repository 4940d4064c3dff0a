use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a ground-truth file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The file could not be read.
    #[error("cannot read ground truth {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid `tracks.json`.
    #[error("cannot parse ground truth {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// A clip's `tracks.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct GroundTruth {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames per second.
    pub fps: f64,
    /// Number of frames.
    pub frames: u64,
    /// Belt motion, px per frame, positive left to right.
    pub speed_px_per_frame: f64,
    /// Class names by id.
    pub classes: Vec<String>,
    /// Every part.
    pub objects: Vec<GroundTruthPart>,
}

/// One physical part.
#[derive(Clone, Debug, Deserialize)]
pub struct GroundTruthPart {
    /// Part id.
    pub id: u64,
    /// Class name.
    pub cls: String,
    /// Centre y.
    pub y: f64,
    /// The frames on which it is visible.
    pub frames: Vec<GroundTruthFrame>,
}

/// A part on one frame.
#[derive(Clone, Debug, Deserialize)]
pub struct GroundTruthFrame {
    /// Frame index.
    pub frame: u64,
    /// Centre x (may lie outside the image).
    pub cx: f64,
    /// Visible box, clipped to the image: x1, y1, x2, y2.
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
}

impl GroundTruth {
    /// Reads a `tracks.json`.
    pub fn load(path: &Path) -> Result<Self, ScoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScoreError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ScoreError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Belt speed in px per second.
    pub fn speed_px_s(&self) -> f64 {
        self.speed_px_per_frame * self.fps
    }

    /// Whether the part's centre enters and leaves the image during the clip.
    pub fn crosses_whole_view(&self, part: &GroundTruthPart) -> bool {
        let (upstream, downstream) = if self.speed_px_per_frame >= 0.0 {
            (0.0, self.width as f64)
        } else {
            (self.width as f64, 0.0)
        };
        let sign = self.speed_px_per_frame.signum();
        let seen_before = part.frames.iter().any(|f| sign * (f.cx - upstream) <= 0.0);
        let seen_after = part
            .frames
            .iter()
            .any(|f| sign * (f.cx - downstream) >= 0.0);
        seen_before && seen_after
    }

    /// Seconds after the first frame at which the part's centre is at `x`.
    pub fn time_at_x(&self, part: &GroundTruthPart, x: f64) -> Option<f64> {
        let seen = part.frames.first()?;
        let frame = seen.frame as f64 + (x - seen.cx) / self.speed_px_per_frame;
        Some(frame / self.fps)
    }

    /// Mean offset of the visible box centre from the part's centre over the
    /// frames where the box is not clipped by the image edge: how far the
    /// part's nominal centre sits from the middle of what a camera sees.
    pub fn visible_center_offset(&self, part: &GroundTruthPart) -> Option<f64> {
        let width = self.width as f64;
        let offsets: Vec<f64> = part
            .frames
            .iter()
            .filter(|f| f.bbox[0] > 0.0 && f.bbox[2] < width - 1.0)
            .map(|f| (f.bbox[0] + f.bbox[2]) / 2.0 - f.cx)
            .collect();
        (!offsets.is_empty()).then(|| offsets.iter().sum::<f64>() / offsets.len() as f64)
    }
}
