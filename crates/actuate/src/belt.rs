use std::collections::VecDeque;

use edgesort_types::Timestamp;

/// Encoder edges kept for looking up where the belt was at a past time:
/// frames are decided at most a few hundred milliseconds after capture.
const EDGE_HISTORY: usize = 4096;

/// Edges whose span gives the speed estimate; more smooths the jitter of a
/// mechanical encoder, fewer follows speed changes sooner.
const SPEED_WINDOW: usize = 4;

/// With no edge for this long the belt counts as stopped, and pulses wait.
const STOPPED_AFTER_NS: u64 = 500_000_000;

/// Where the belt is: the distance it has travelled, in mm, on the same clock
/// as frames and pulses. Parts are planned by distance, so a belt that slows
/// down delays its pulses by exactly as much as it delays the parts.
#[derive(Clone, Debug)]
pub enum BeltMotion {
    /// The belt runs at the configured speed.
    Constant {
        /// Belt speed.
        mm_per_s: f64,
    },
    /// An encoder on a GPIO input reports travel.
    Encoder(Odometer),
}

/// Belt travel from encoder edge timestamps.
#[derive(Clone, Debug)]
pub struct Odometer {
    mm_per_count: f64,
    /// Count of the oldest edge in `edges`.
    first_count: u64,
    edges: VecDeque<Timestamp>,
}

impl Odometer {
    /// An encoder that has seen no edge yet, `mm_per_count` of travel per edge.
    pub fn new(mm_per_count: f64) -> Self {
        Odometer {
            mm_per_count,
            first_count: 0,
            edges: VecDeque::new(),
        }
    }

    /// Records an edge. Edges out of time order are ignored.
    pub fn record(&mut self, at: Timestamp) {
        if self.edges.back().is_some_and(|last| at <= *last) {
            return;
        }
        if self.edges.len() == EDGE_HISTORY {
            self.edges.pop_front();
            self.first_count += 1;
        }
        self.edges.push_back(at);
    }

    /// Edges recorded since start.
    pub fn edges_seen(&self) -> u64 {
        self.first_count + self.edges.len() as u64
    }

    /// The newest edge.
    pub fn last_edge(&self) -> Option<Timestamp> {
        self.edges.back().copied()
    }

    fn last(&self) -> Option<(Timestamp, f64)> {
        let last = *self.edges.back()?;
        let count = self.first_count + self.edges.len() as u64 - 1;
        Some((last, count as f64 * self.mm_per_count))
    }

    /// Speed at `now`, mm/ns: the recent edges' rate, but never more than one
    /// count over the time since the last edge, so a belt that slows down is
    /// noticed before its next edge arrives.
    fn speed_at(&self, now: Timestamp) -> f64 {
        let Some((last, _)) = self.last() else {
            return 0.0;
        };
        let since_last = now.as_nanos().saturating_sub(last.as_nanos());
        if self.edges.len() < 2 || since_last >= STOPPED_AFTER_NS {
            return 0.0;
        }
        let span = (self.edges.len() - 1).min(SPEED_WINDOW);
        let first = self.edges[self.edges.len() - 1 - span];
        let recent = span as f64 * self.mm_per_count / (last.as_nanos() - first.as_nanos()) as f64;
        if since_last == 0 {
            recent
        } else {
            recent.min(self.mm_per_count / since_last as f64)
        }
    }

    fn position_at(&self, time: Timestamp) -> f64 {
        let Some((last, last_mm)) = self.last() else {
            return 0.0;
        };
        if time >= last {
            let ahead = self.speed_at(time) * (time.as_nanos() - last.as_nanos()) as f64;
            return last_mm + ahead.min(self.mm_per_count);
        }
        // Between two recorded edges: interpolate.
        let after = self.edges.partition_point(|edge| *edge <= time);
        if after == 0 {
            return self.first_count as f64 * self.mm_per_count;
        }
        let (before_at, after_at) = (self.edges[after - 1], self.edges[after]);
        let fraction = (time.as_nanos() - before_at.as_nanos()) as f64
            / (after_at.as_nanos() - before_at.as_nanos()) as f64;
        (self.first_count + after as u64 - 1) as f64 * self.mm_per_count
            + fraction * self.mm_per_count
    }

    fn time_at(&self, position_mm: f64, now: Timestamp) -> Option<Timestamp> {
        let here = self.position_at(now);
        if position_mm <= here {
            // Already reached: when, as near as the history tells.
            let count = (position_mm / self.mm_per_count).floor().max(0.0) as u64;
            let index = count.saturating_sub(self.first_count) as usize;
            return Some(self.edges.get(index).copied().unwrap_or(now).min(now));
        }
        let speed = self.speed_at(now);
        if speed <= 0.0 {
            return None;
        }
        let nanos = ((position_mm - here) / speed).ceil();
        Some(now.saturating_add(std::time::Duration::from_nanos(nanos as u64)))
    }
}

impl BeltMotion {
    /// Belt travel at `time`, which may be in the past.
    pub fn position_at(&self, time: Timestamp) -> f64 {
        match self {
            BeltMotion::Constant { mm_per_s } => time.as_secs_f64() * mm_per_s,
            BeltMotion::Encoder(odometer) => odometer.position_at(time),
        }
    }

    /// When the belt reaches `position_mm`, as predicted at `now`; a time at
    /// or before `now` if it already has. `None` while the belt is stopped.
    pub fn time_at(&self, position_mm: f64, now: Timestamp) -> Option<Timestamp> {
        match self {
            BeltMotion::Constant { mm_per_s } => {
                Some(Timestamp::from_secs_f64(position_mm / mm_per_s))
            }
            BeltMotion::Encoder(odometer) => odometer.time_at(position_mm, now),
        }
    }

    /// Records an encoder edge; a belt without an encoder ignores it.
    pub fn record_edge(&mut self, at: Timestamp) {
        if let BeltMotion::Encoder(odometer) = self {
            odometer.record(at);
        }
    }

    /// Whether an encoder drives it.
    pub fn has_encoder(&self) -> bool {
        matches!(self, BeltMotion::Encoder(_))
    }

    /// Encoder edges recorded since start (0 without an encoder).
    pub fn edges_seen(&self) -> u64 {
        match self {
            BeltMotion::Constant { .. } => 0,
            BeltMotion::Encoder(odometer) => odometer.edges_seen(),
        }
    }

    /// The newest encoder edge.
    pub fn last_edge(&self) -> Option<Timestamp> {
        match self {
            BeltMotion::Constant { .. } => None,
            BeltMotion::Encoder(odometer) => odometer.last_edge(),
        }
    }

    /// Speed at `now`, mm/s.
    pub fn speed_mm_s(&self, now: Timestamp) -> f64 {
        match self {
            BeltMotion::Constant { mm_per_s } => *mm_per_s,
            BeltMotion::Encoder(odometer) => odometer.speed_at(now) * 1e9,
        }
    }
}

/// The `encoder_silent` rule: the camera saw parts move along the belt at a
/// moment when the encoder had given no edge for `after` (or none at all
/// since it was first watched that long before). A belt that has really
/// stopped shows no moving parts, so its pulses wait instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SilentEncoder {
    /// How long the encoder may stay quiet while parts move.
    pub after: std::time::Duration,
}

impl SilentEncoder {
    /// Whether the encoder counts as silent: parts moved at `last_motion`,
    /// at least `after` past its last edge (or past `watched_since` when it
    /// has given none). An edge after that motion ends the silence.
    pub fn is_silent(
        &self,
        watched_since: Timestamp,
        last_edge: Option<Timestamp>,
        last_motion: Option<Timestamp>,
    ) -> bool {
        let quiet_since = last_edge.unwrap_or(watched_since);
        last_motion.is_some_and(|motion| motion.saturating_since(quiet_since) >= self.after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn at_ms(ms: f64) -> Timestamp {
        Timestamp::from_nanos((ms * MS as f64) as u64)
    }

    /// An encoder 0.5 mm/count on a belt at 200 mm/s: an edge every 2.5 ms.
    fn running(edges: u64) -> Odometer {
        let mut odometer = Odometer::new(0.5);
        for count in 0..edges {
            odometer.record(at_ms(count as f64 * 2.5));
        }
        odometer
    }

    #[test]
    fn encoder_positions_interpolate_and_extrapolate() {
        let belt = BeltMotion::Encoder(running(101));
        assert!((belt.position_at(at_ms(100.0)) - 20.0).abs() < 1e-9);
        assert!((belt.position_at(at_ms(101.25)) - 20.25).abs() < 1e-9);
        // One ms after the last edge (250 ms, 50 mm), at 200 mm/s.
        assert!((belt.position_at(at_ms(251.0)) - 50.2).abs() < 1e-9);
        assert!((belt.speed_mm_s(at_ms(250.0)) - 200.0).abs() < 1e-6);
        let due = belt.time_at(60.0, at_ms(250.0)).unwrap();
        assert!(due.as_nanos().abs_diff(300 * MS) < 10, "{due:?}");
    }

    #[test]
    fn a_late_edge_slows_the_estimate_before_it_arrives() {
        let belt = BeltMotion::Encoder(running(101));
        // 5 ms after the last edge the next one is 2.5 ms overdue: the belt
        // can have moved at most one count, so its speed is at most 100 mm/s.
        assert!((belt.speed_mm_s(at_ms(255.0)) - 100.0).abs() < 1e-6);
        assert!((belt.position_at(at_ms(260.0)) - 50.5).abs() < 1e-9);
        assert_eq!(belt.time_at(60.0, at_ms(800.0)), None, "stopped belt");
    }

    #[test]
    fn an_encoder_is_silent_only_when_parts_move_without_its_edges() {
        let rule = SilentEncoder {
            after: std::time::Duration::from_millis(500),
        };
        let start = at_ms(1000.0);
        // Nothing seen moving: a stopped belt, not a silent encoder.
        assert!(!rule.is_silent(start, None, None));
        assert!(!rule.is_silent(start, Some(at_ms(1100.0)), None));
        // Parts moving while edges come.
        assert!(!rule.is_silent(start, Some(at_ms(1900.0)), Some(at_ms(2000.0))));
        // Parts moving 600 ms after the last edge.
        assert!(rule.is_silent(start, Some(at_ms(1400.0)), Some(at_ms(2000.0))));
        // No edge ever: silent once parts move 500 ms after watching began.
        assert!(!rule.is_silent(start, None, Some(at_ms(1400.0))));
        assert!(rule.is_silent(start, None, Some(at_ms(1500.0))));
        // An edge after the motion ends the silence.
        assert!(!rule.is_silent(start, Some(at_ms(2001.0)), Some(at_ms(2000.0))));
    }

    #[test]
    fn constant_speed_maps_distance_to_time() {
        let belt = BeltMotion::Constant { mm_per_s: 250.0 };
        assert_eq!(belt.position_at(at_ms(1000.0)), 250.0);
        assert_eq!(belt.time_at(500.0, Timestamp::ZERO), Some(at_ms(2000.0)));
    }
}
