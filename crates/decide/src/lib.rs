//! Sorting decisions: which lane a finished track goes to, and when to fire.
//!
//! [`Decider`] applies the configured rules to a [`ClosedTrack`]: a class that
//! is enabled and whose voted confidence reaches the floor goes to its lane;
//! everything else goes to the default lane. If the lane has an ejector, the
//! fire time is the moment the track's fitted centre reaches the ejector,
//! `distance_mm` downstream of the camera reference line.
//!
//! Pure logic: closed tracks in, [`Decision`]s out.
#![deny(missing_docs)]

use std::time::Duration;

use edgesort_track::ClosedTrack;
use edgesort_types::config::Config;
use edgesort_types::{ClassId, Timestamp};

/// Why a part went to its lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The class's rule sent it there.
    Rule,
    /// The voted confidence was below the floor.
    BelowFloor,
    /// The class's rule is disabled.
    ClassDisabled,
    /// No rule names the class.
    NoRule,
}

impl Reason {
    /// A short lower-case name for logs and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rule => "rule",
            Reason::BelowFloor => "below_floor",
            Reason::ClassDisabled => "class_disabled",
            Reason::NoRule => "no_rule",
        }
    }
}

/// When and how long to pulse one ejector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FirePlan {
    /// Index of the ejector in the configuration.
    pub ejector: usize,
    /// When the part's centre reaches the ejector at the nominal belt speed.
    pub fire_at: Timestamp,
    /// When the part was last seen...
    pub seen_at: Timestamp,
    /// ...and how far along the belt it then was from the ejector. The
    /// ejectors plan by this distance, so a belt that changes speed moves
    /// the pulse with the part.
    pub distance_mm: f64,
    /// The ejector's position as an image column (far outside the image).
    pub ejector_x_px: f64,
    /// Pulse length.
    pub pulse: Duration,
}

/// The fate of one part.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The track, i.e. the part.
    pub part_id: u64,
    /// Voted class.
    pub class: ClassId,
    /// Voted confidence.
    pub confidence: f32,
    /// Index of the lane in [`Decider::lanes`].
    pub lane: usize,
    /// Why this lane.
    pub reason: Reason,
    /// The pulse to fire, when the lane has an ejector.
    pub fire: Option<FirePlan>,
}

#[derive(Clone, Debug)]
struct Ejector {
    index: usize,
    x_px: f64,
    pulse: Duration,
}

/// Downstream direction and scale of the image.
#[derive(Clone, Copy, Debug)]
struct BeltScale {
    sign: f64,
    mm_per_px: f64,
}

#[derive(Clone, Copy, Debug)]
struct ClassRoute {
    lane: usize,
    enabled: bool,
}

/// Applies the sorting rules of one configuration.
#[derive(Clone, Debug)]
pub struct Decider {
    lanes: Vec<String>,
    ejectors: Vec<Option<Ejector>>,
    routes: Vec<Option<ClassRoute>>,
    default_lane: usize,
    confidence_floor: f32,
    scale: BeltScale,
}

impl Decider {
    /// Builds the lane table from a validated configuration. Lanes are the
    /// ejectors' lanes in order, then the default lane if it has no ejector.
    pub fn new(config: &Config) -> Self {
        let reference = config.reference_line_px();
        let sign = config.belt.direction.sign();
        let mut lanes: Vec<String> = Vec::new();
        let mut ejectors = Vec::new();
        for (index, ejector) in config.ejectors.iter().enumerate() {
            lanes.push(ejector.lane.clone());
            ejectors.push(Some(Ejector {
                index,
                x_px: reference + sign * ejector.distance_mm / config.belt.mm_per_px,
                pulse: Duration::from_millis(ejector.pulse_ms.into()),
            }));
        }
        let lane_index =
            |lanes: &mut Vec<String>, ejectors: &mut Vec<Option<Ejector>>, name: &str| {
                lanes
                    .iter()
                    .position(|lane| lane == name)
                    .unwrap_or_else(|| {
                        lanes.push(name.to_owned());
                        ejectors.push(None);
                        lanes.len() - 1
                    })
            };
        let default_lane = lane_index(&mut lanes, &mut ejectors, &config.rules.default_lane);
        let routes = config
            .model
            .classes
            .iter()
            .map(|class| {
                config
                    .rules
                    .classes
                    .iter()
                    .find(|rule| &rule.class == class)
                    .map(|rule| ClassRoute {
                        lane: lane_index(&mut lanes, &mut ejectors, &rule.lane),
                        enabled: rule.enabled,
                    })
            })
            .collect();
        Decider {
            lanes,
            ejectors,
            routes,
            default_lane,
            confidence_floor: config.rules.confidence_floor,
            scale: BeltScale {
                sign,
                mm_per_px: config.belt.mm_per_px,
            },
        }
    }

    /// Lane names, indexed by [`Decision::lane`].
    pub fn lanes(&self) -> &[String] {
        &self.lanes
    }

    /// The lane a part of `class` voted with `confidence` goes to, and why.
    pub fn route(&self, class: ClassId, confidence: f32) -> (usize, Reason) {
        let route = self.routes.get(class.0 as usize).copied().flatten();
        match route {
            None => (self.default_lane, Reason::NoRule),
            Some(route) if !route.enabled => (self.default_lane, Reason::ClassDisabled),
            Some(_) if confidence < self.confidence_floor => {
                (self.default_lane, Reason::BelowFloor)
            }
            Some(route) => (route.lane, Reason::Rule),
        }
    }

    /// Where `track`'s part goes and when to fire.
    pub fn decide(&self, track: &ClosedTrack) -> Decision {
        let (lane, reason) = self.route(track.class, track.confidence);
        let fire = self.ejectors[lane].as_ref().and_then(|ejector| {
            Some(FirePlan {
                ejector: ejector.index,
                fire_at: track.time_at_x(ejector.x_px)?,
                seen_at: track.last_seen,
                distance_mm: self.scale.sign
                    * (ejector.x_px - track.center_x)
                    * self.scale.mm_per_px,
                ejector_x_px: ejector.x_px,
                pulse: ejector.pulse,
            })
        });
        Decision {
            part_id: track.id,
            class: track.class,
            confidence: track.confidence,
            lane,
            reason,
            fire,
        }
    }
}

#[cfg(test)]
mod tests {
    use edgesort_track::CloseReason;

    use super::*;

    /// The bundled example configuration: bolts, nuts, washers, springs
    /// and reject lanes at 250, 320, 390, 460 and 530 mm, 0.5 mm/px,
    /// 210 mm/s, default lane "recirculate".
    fn bundled() -> Config {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../board/edgesort.toml");
        Config::load(&path).expect("bundled config loads")
    }

    fn track(class: u16, confidence: f32) -> ClosedTrack {
        ClosedTrack {
            id: 7,
            class: ClassId(class),
            confidence,
            hits: 40,
            first_seen: Timestamp::ZERO,
            last_seen: Timestamp::from_secs_f64(1.0),
            center_x: 320.0,
            center_y: 100.0,
            velocity_px_s: 420.0,
            reason: CloseReason::LeftView,
        }
    }

    #[test]
    fn rules_pick_lanes_and_fire_times() {
        let decider = Decider::new(&bundled());
        assert_eq!(
            decider.lanes(),
            [
                "bolts",
                "nuts",
                "washers",
                "springs",
                "reject",
                "recirculate"
            ]
        );

        let bolt = decider.decide(&track(0, 0.9));
        assert_eq!((bolt.lane, bolt.reason), (0, Reason::Rule));
        let plan = bolt.fire.unwrap();
        // 250 mm at 0.5 mm/px is 500 px past the reference line, 500/420 s at 420 px/s.
        assert_eq!(plan.fire_at, Timestamp::from_secs_f64(1.0 + 500.0 / 420.0));
        assert_eq!((plan.ejector, plan.pulse), (0, Duration::from_millis(20)));
        assert_eq!(plan.ejector_x_px, 820.0);
        // 500 px downstream of the part's centre at 0.5 mm/px.
        assert_eq!(
            (plan.seen_at, plan.distance_mm),
            (Timestamp::from_secs_f64(1.0), 250.0)
        );

        let spring = decider.decide(&track(3, 0.9));
        assert_eq!(
            spring.fire.unwrap().fire_at,
            Timestamp::from_secs_f64(1.0 + 920.0 / 420.0)
        );
    }

    #[test]
    fn unsure_disabled_and_unruled_classes_go_to_the_default_lane() {
        let mut config = bundled();
        config.rules.classes[2].enabled = false;
        config.rules.classes.retain(|rule| rule.class != "spring");
        let decider = Decider::new(&config);
        let default_lane = decider
            .lanes()
            .iter()
            .position(|lane| lane == "recirculate")
            .unwrap();
        for (class, confidence, reason) in [
            (0, 0.49, Reason::BelowFloor),
            (2, 0.9, Reason::ClassDisabled),
            (3, 0.9, Reason::NoRule),
        ] {
            let decision = decider.decide(&track(class, confidence));
            assert_eq!((decision.lane, decision.reason), (default_lane, reason));
            assert!(decision.fire.is_none());
        }
    }
}
