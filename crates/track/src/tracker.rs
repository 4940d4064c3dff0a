use std::time::Duration;

use edgesort_types::config::Config;
use edgesort_types::{BoundingBox, ClassId, Detection, Timestamp};

/// Detections of different classes overlapping this much in one frame are
/// one object the detector could not make up its mind about.
const SAME_OBJECT_IOU: f32 = 0.7;

/// Tracking parameters, in image pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackerParams {
    /// Belt velocity along x, px/s; negative when parts move right to left.
    pub velocity_px_s: f64,
    /// Frame width.
    pub frame_width: f64,
    /// Frame height.
    pub frame_height: f64,
    /// Largest distance (px) between prediction and detection for a match.
    pub gate_px: f64,
    /// A track unseen this long is closed.
    pub max_unseen: Duration,
    /// Tracks with fewer matched frames are dropped as noise.
    pub min_hits: u32,
    /// Number of classes the detector knows.
    pub classes: usize,
}

impl TrackerParams {
    /// The parameters a validated configuration gives.
    pub fn from_config(config: &Config) -> Self {
        TrackerParams {
            velocity_px_s: config.belt_velocity_px_s(),
            frame_width: config.camera.width.into(),
            frame_height: config.camera.height.into(),
            gate_px: config.tracking.gate_px,
            max_unseen: Duration::from_secs_f64(config.tracking.max_unseen_ms / 1e3),
            min_hits: config.tracking.min_hits,
            classes: config.model.classes.len(),
        }
    }
}

/// Why a track ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The part has moved out of the field of view downstream.
    LeftView,
    /// The part was not detected for longer than `max_unseen`.
    Lost,
    /// The stream ended while the part was in view.
    StreamEnded,
}

/// A finished track: one physical part.
#[derive(Clone, Debug, PartialEq)]
pub struct ClosedTrack {
    /// Track id, unique within one tracker.
    pub id: u64,
    /// Class with the largest sum of confidences.
    pub class: ClassId,
    /// That sum divided by the number of matched frames: high only when the
    /// detector agreed on the class and was sure of it.
    pub confidence: f32,
    /// Matched frames.
    pub hits: u32,
    /// First and last matched frame.
    pub first_seen: Timestamp,
    /// Last matched frame.
    pub last_seen: Timestamp,
    /// Fitted centre x at `last_seen`, from all frames where the part was
    /// wholly in view (or all frames, if it never was).
    pub center_x: f64,
    /// Mean centre y.
    pub center_y: f64,
    /// Belt velocity the fit used, px/s.
    pub velocity_px_s: f64,
    /// Why the track ended.
    pub reason: CloseReason,
}

impl ClosedTrack {
    /// When the part's centre is at image column `x` (which may lie far
    /// outside the image, e.g. at an ejector); `None` if that was before the
    /// clock's origin or the belt is not moving.
    pub fn time_at_x(&self, x: f64) -> Option<Timestamp> {
        if self.velocity_px_s == 0.0 {
            return None;
        }
        let seconds = self.last_seen.as_secs_f64() + (x - self.center_x) / self.velocity_px_s;
        (seconds >= 0.0).then(|| Timestamp::from_secs_f64(seconds))
    }
}

/// An open track as the tracker sees it now.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackView {
    /// Track id; the part id once it closes.
    pub id: u64,
    /// Box at its last match.
    pub bbox: BoundingBox,
    /// When it was last matched.
    pub last_seen: Timestamp,
    /// Class leading the vote.
    pub class: ClassId,
    /// Its votes per matched frame.
    pub confidence: f32,
    /// Matched frames.
    pub hits: u32,
}

/// Running least-squares fit of `x = offset + v·t` with `v` known.
#[derive(Clone, Copy, Debug, Default)]
struct PositionFit {
    samples: f64,
    offset_sum: f64,
}

impl PositionFit {
    fn add(&mut self, x: f64, seconds_since_origin: f64, velocity: f64) {
        self.samples += 1.0;
        self.offset_sum += x - velocity * seconds_since_origin;
    }

    fn offset(&self) -> Option<f64> {
        (self.samples > 0.0).then(|| self.offset_sum / self.samples)
    }
}

/// One object in one frame: the best box, and the best score per class of
/// every detection that was the same object.
#[derive(Clone, Debug)]
struct Observation {
    bbox: BoundingBox,
    class_scores: Vec<f32>,
}

#[derive(Clone, Debug)]
struct Track {
    id: u64,
    last_box: BoundingBox,
    last_seen: Timestamp,
    first_seen: Timestamp,
    hits: u32,
    votes: Vec<f64>,
    sum_y: f64,
    whole_fit: PositionFit,
    any_fit: PositionFit,
}

impl Track {
    /// Where the box is expected at `time`. Edges that touched the image border
    /// stay there (the part's true edge is hidden beyond it); the others move
    /// with the belt. This keeps prediction right while a part slides in or out.
    fn predict(&self, time: Timestamp, params: &TrackerParams) -> BoundingBox {
        let shift =
            (params.velocity_px_s * time.saturating_since(self.last_seen).as_secs_f64()) as f32;
        let width = params.frame_width as f32;
        let moved = |edge: f32| {
            if edge <= 0.5 || edge >= width - 0.5 {
                edge
            } else {
                (edge + shift).clamp(0.0, width)
            }
        };
        BoundingBox {
            x1: moved(self.last_box.x1),
            x2: moved(self.last_box.x2),
            ..self.last_box
        }
    }

    /// The box's trailing edge has passed the downstream border.
    fn has_left_view(&self, time: Timestamp, params: &TrackerParams) -> bool {
        let shift = params.velocity_px_s * time.saturating_since(self.last_seen).as_secs_f64();
        if params.velocity_px_s > 0.0 {
            self.last_box.x1 as f64 + shift >= params.frame_width
        } else {
            self.last_box.x2 as f64 + shift <= 0.0
        }
    }

    fn observe(
        &mut self,
        observation: &Observation,
        time: Timestamp,
        origin: Timestamp,
        params: &TrackerParams,
    ) {
        let bbox = observation.bbox;
        let seconds = time.saturating_since(origin).as_secs_f64();
        let center = bbox.center_x() as f64;
        let whole = bbox.x1 > 0.5 && (bbox.x2 as f64) < params.frame_width - 0.5;
        if whole {
            self.whole_fit.add(center, seconds, params.velocity_px_s);
        }
        self.any_fit.add(center, seconds, params.velocity_px_s);
        for (votes, &score) in self.votes.iter_mut().zip(&observation.class_scores) {
            *votes += score as f64;
        }
        self.sum_y += bbox.center_y() as f64;
        self.hits += 1;
        self.last_box = bbox;
        self.last_seen = time;
    }

    /// The class with the largest sum of confidences, and that sum.
    fn leading_class(&self) -> (usize, f64) {
        self.votes
            .iter()
            .enumerate()
            .fold((0, f64::MIN), |best, (class, &votes)| {
                if votes > best.1 { (class, votes) } else { best }
            })
    }

    fn close(&self, reason: CloseReason, origin: Timestamp, params: &TrackerParams) -> ClosedTrack {
        let (best, votes) = self.leading_class();
        let offset = self
            .whole_fit
            .offset()
            .or(self.any_fit.offset())
            .unwrap_or(self.last_box.center_x() as f64);
        let seconds = self.last_seen.saturating_since(origin).as_secs_f64();
        ClosedTrack {
            id: self.id,
            class: ClassId(best as u16),
            confidence: (votes / self.hits as f64) as f32,
            hits: self.hits,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            center_x: offset + params.velocity_px_s * seconds,
            center_y: self.sum_y / self.hits as f64,
            velocity_px_s: params.velocity_px_s,
            reason,
        }
    }
}

/// Follows parts along the belt, frame by frame.
#[derive(Debug)]
pub struct Tracker {
    params: TrackerParams,
    tracks: Vec<Track>,
    next_id: u64,
    origin: Option<Timestamp>,
    pairs: Vec<(f32, usize, usize)>,
    observations: Vec<Observation>,
}

impl Tracker {
    /// A tracker with no track open.
    pub fn new(params: TrackerParams) -> Self {
        Tracker {
            params,
            tracks: Vec::new(),
            next_id: 1,
            origin: None,
            pairs: Vec::new(),
            observations: Vec::new(),
        }
    }

    /// Number of tracks open.
    pub fn open_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// The open tracks as last seen, with the class leading the vote so far:
    /// what a technician's live view draws.
    pub fn open_views(&self) -> Vec<TrackView> {
        self.tracks
            .iter()
            .map(|track| {
                let (class, votes) = track.leading_class();
                TrackView {
                    id: track.id,
                    bbox: track.last_box,
                    last_seen: track.last_seen,
                    class: ClassId(class as u16),
                    confidence: (votes / f64::from(track.hits.max(1))) as f32,
                    hits: track.hits,
                }
            })
            .collect()
    }

    /// Feeds the detections of the frame captured at `time` (frames must come
    /// in time order; dropped frames are fine) and returns the tracks that
    /// closed, oldest id first.
    pub fn update(&mut self, time: Timestamp, detections: &[Detection]) -> Vec<ClosedTrack> {
        let origin = *self.origin.get_or_insert(time);
        merge_same_objects(detections, self.params.classes, &mut self.observations);
        let params = &self.params;
        let detections = &self.observations;

        self.pairs.clear();
        for (track_index, track) in self.tracks.iter().enumerate() {
            let predicted = track.predict(time, params);
            for (detection_index, detection) in detections.iter().enumerate() {
                let dx = (detection.bbox.center_x() - predicted.center_x()) as f64;
                let dy = (detection.bbox.center_y() - predicted.center_y()) as f64;
                if dx.abs() <= params.gate_px && dy.abs() <= params.gate_px {
                    self.pairs
                        .push(((dx * dx + dy * dy) as f32, track_index, detection_index));
                }
            }
        }
        self.pairs
            .sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));

        let mut track_matched = vec![false; self.tracks.len()];
        let mut detection_matched = vec![false; detections.len()];
        for &(_, track_index, detection_index) in &self.pairs {
            if track_matched[track_index] || detection_matched[detection_index] {
                continue;
            }
            track_matched[track_index] = true;
            detection_matched[detection_index] = true;
            self.tracks[track_index].observe(&detections[detection_index], time, origin, params);
        }

        let mut closed = Vec::new();
        let mut index = 0;
        self.tracks.retain(|track| {
            let matched = track_matched[index];
            index += 1;
            let reason = if matched {
                None
            } else if track.has_left_view(time, params) {
                Some(CloseReason::LeftView)
            } else if time.saturating_since(track.last_seen) > params.max_unseen {
                Some(CloseReason::Lost)
            } else {
                None
            };
            match reason {
                Some(reason) => {
                    if track.hits >= params.min_hits {
                        closed.push(track.close(reason, origin, params));
                    }
                    false
                }
                None => true,
            }
        });

        for (detection, _) in detections
            .iter()
            .zip(&detection_matched)
            .filter(|(_, matched)| !**matched)
        {
            let mut track = Track {
                id: self.next_id,
                last_box: detection.bbox,
                last_seen: time,
                first_seen: time,
                hits: 0,
                votes: vec![0.0; self.params.classes],
                sum_y: 0.0,
                whole_fit: PositionFit::default(),
                any_fit: PositionFit::default(),
            };
            track.observe(detection, time, origin, params);
            self.tracks.push(track);
            self.next_id += 1;
        }
        closed
    }

    /// Closes every open track, e.g. at the end of a replay.
    pub fn finish(&mut self) -> Vec<ClosedTrack> {
        let origin = self.origin.unwrap_or_default();
        let params = &self.params;
        self.tracks
            .drain(..)
            .filter(|track| track.hits >= params.min_hits)
            .map(|track| track.close(CloseReason::StreamEnded, origin, params))
            .collect()
    }
}

/// Folds detections of one object under different classes (class-aware NMS
/// keeps them apart) into one observation, so that one part never starts two
/// tracks and its class is settled by the vote.
fn merge_same_objects(
    detections: &[Detection],
    classes: usize,
    observations: &mut Vec<Observation>,
) {
    observations.clear();
    let mut order: Vec<&Detection> = detections.iter().collect();
    order.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    for detection in order {
        let class = detection.class.0 as usize;
        if class >= classes {
            continue;
        }
        match observations
            .iter_mut()
            .find(|observation| observation.bbox.iou(&detection.bbox) >= SAME_OBJECT_IOU)
        {
            Some(observation) => {
                observation.class_scores[class] =
                    observation.class_scores[class].max(detection.confidence);
            }
            None => {
                let mut class_scores = vec![0.0; classes];
                class_scores[class] = detection.confidence;
                observations.push(Observation {
                    bbox: detection.bbox,
                    class_scores,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FPS: f64 = 60.0;

    fn params() -> TrackerParams {
        TrackerParams {
            velocity_px_s: 420.0,
            frame_width: 640.0,
            frame_height: 360.0,
            gate_px: 24.0,
            max_unseen: Duration::from_millis(200),
            min_hits: 3,
            classes: 3,
        }
    }

    fn at(frame: u64) -> Timestamp {
        Timestamp::from_secs_f64(frame as f64 / FPS)
    }

    /// A part of width `width` whose centre is at `cx`, clipped to the image.
    fn part(cx: f64, cy: f64, width: f64, class: u16, confidence: f32) -> Option<Detection> {
        let x1 = (cx - width / 2.0).max(0.0);
        let x2 = (cx + width / 2.0).min(640.0);
        (x2 > x1 + 2.0).then_some(Detection {
            bbox: BoundingBox {
                x1: x1 as f32,
                y1: (cy - 10.0) as f32,
                x2: x2 as f32,
                y2: (cy + 10.0) as f32,
            },
            class: ClassId(class),
            confidence,
        })
    }

    fn run(
        tracker: &mut Tracker,
        frames: u64,
        parts: &[(f64, f64, f64, u16)],
        skip: impl Fn(u64) -> bool,
    ) -> Vec<ClosedTrack> {
        let mut closed = Vec::new();
        for frame in 0..frames {
            if skip(frame) {
                continue;
            }
            let detections: Vec<_> = parts
                .iter()
                .filter_map(|&(start_x, cy, width, class)| {
                    part(start_x + 7.0 * frame as f64, cy, width, class, 0.9)
                })
                .collect();
            closed.extend(tracker.update(at(frame), &detections));
        }
        closed.extend(tracker.finish());
        closed
    }

    #[test]
    fn one_track_per_part_crossing_the_view() {
        let mut tracker = Tracker::new(params());
        let closed = run(
            &mut tracker,
            140,
            &[(-30.0, 100.0, 40.0, 1), (-200.0, 104.0, 30.0, 2)],
            |_| false,
        );
        assert_eq!(closed.len(), 2, "{closed:?}");
        assert!(
            closed
                .iter()
                .all(|track| track.reason == CloseReason::LeftView)
        );
        assert_eq!(closed[0].class, ClassId(1));
        assert!((closed[0].confidence - 0.9).abs() < 1e-6);
        // The first part's centre reaches x = 320 at frame 50.
        let crossing = closed[0].time_at_x(320.0).unwrap();
        assert!(
            (crossing.as_secs_f64() - 50.0 / FPS).abs() < 1e-6,
            "{crossing:?}"
        );
    }

    #[test]
    fn dropped_frames_do_not_split_tracks() {
        let mut tracker = Tracker::new(params());
        let closed = run(&mut tracker, 140, &[(-30.0, 100.0, 40.0, 0)], |frame| {
            frame % 6 != 0
        });
        assert_eq!(closed.len(), 1, "{closed:?}");
        let crossing = closed[0].time_at_x(320.0).unwrap();
        assert!((crossing.as_secs_f64() - 50.0 / FPS).abs() < 1e-6);
    }

    #[test]
    fn the_class_vote_weighs_confidence() {
        let mut tracker = Tracker::new(params());
        let mut closed = Vec::new();
        for frame in 0..10 {
            let (class, confidence) = if frame < 6 { (0, 0.3) } else { (1, 0.9) };
            let detection =
                part(100.0 + 7.0 * frame as f64, 100.0, 30.0, class, confidence).unwrap();
            closed.extend(tracker.update(at(frame), &[detection]));
        }
        closed.extend(tracker.finish());
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].class, ClassId(1));
        assert_eq!(closed[0].reason, CloseReason::StreamEnded);
        assert!(
            (closed[0].confidence - 0.36).abs() < 1e-6,
            "{}",
            closed[0].confidence
        );
    }

    #[test]
    fn a_lost_part_closes_after_max_unseen() {
        let mut tracker = Tracker::new(params());
        for frame in 0..5 {
            assert!(
                tracker
                    .update(
                        at(frame),
                        &[part(100.0 + 7.0 * frame as f64, 100.0, 30.0, 0, 0.9).unwrap()]
                    )
                    .is_empty()
            );
        }
        assert!(tracker.update(at(10), &[]).is_empty());
        let closed = tracker.update(at(20), &[]);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].reason, CloseReason::Lost);
    }

    #[test]
    fn brief_noise_is_not_a_part() {
        let mut tracker = Tracker::new(params());
        tracker.update(at(0), &[part(300.0, 100.0, 30.0, 0, 0.9).unwrap()]);
        assert!(tracker.update(at(30), &[]).is_empty());
        assert_eq!(tracker.open_tracks(), 0);
    }

    #[test]
    fn one_object_under_two_classes_is_one_track() {
        let mut tracker = Tracker::new(params());
        let mut closed = Vec::new();
        for frame in 0..140 {
            let cx = -30.0 + 7.0 * frame as f64;
            let detections: Vec<_> = [(1, 0.6), (2, 0.4)]
                .into_iter()
                .filter_map(|(class, confidence)| part(cx, 100.0, 40.0, class, confidence))
                .collect();
            closed.extend(tracker.update(at(frame), &detections));
        }
        closed.extend(tracker.finish());
        assert_eq!(closed.len(), 1, "{closed:?}");
        assert_eq!(closed[0].class, ClassId(1));
        assert!((closed[0].confidence - 0.6).abs() < 1e-6);
    }

    proptest! {
        #[test]
        fn separated_parts_each_get_exactly_one_track(
            lanes in prop::sample::subsequence((0u8..8).collect::<Vec<_>>(), 1..6),
            shapes in prop::collection::vec((20.0f64..60.0, 0u16..3), 6),
            drop_every in 1u64..5,
        ) {
            // Parts ride distinct lanes across the belt, staggered along it.
            let parts: Vec<_> = lanes
                .iter()
                .zip(&shapes)
                .enumerate()
                .map(|(index, (&lane, &(width, class)))| (-40.0 - 60.0 * index as f64, 30.0 + 40.0 * lane as f64, width, class))
                .collect();
            let mut tracker = Tracker::new(params());
            let closed = run(&mut tracker, 200, &parts, |frame| frame % drop_every != 0);
            prop_assert_eq!(closed.len(), parts.len());
            for track in &closed {
                let source = parts.iter().find(|p| (p.1 - track.center_y).abs() < 1.0).unwrap();
                prop_assert_eq!(track.class, ClassId(source.3));
                let expected = (320.0 - source.0) / 7.0 / FPS;
                prop_assert!((track.time_at_x(320.0).unwrap().as_secs_f64() - expected).abs() < 1e-6);
            }
        }
    }
}
