use edgesort_engine::EngineKey;
use edgesort_types::config::Precision;
use serde::Serialize;

/// Quarantines of one key after which provisioning stops rebuilding it: an
/// engine that fails to load twice in a row will fail a third time.
pub const MAX_QUARANTINES: usize = 2;

/// The state of the cache entry for the current key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryFacts {
    /// Nothing built yet.
    Missing,
    /// Present but not to be used (damaged file, manifest mismatch).
    Damaged(String),
    /// Built at `precision`.
    Stored {
        /// The precision built.
        precision: Precision,
        /// The validation outcome so far.
        validation: ValidationFacts,
        /// Why higher precisions were given up.
        fallback: Vec<String>,
    },
}

/// Validation state of a stored engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidationFacts {
    /// Not yet checked (e.g. the power went out right after the build).
    Pending,
    /// Agrees with the CPU reference.
    Passed,
    /// Disagrees; the verdict says how.
    Rejected(String),
}

/// What is on disk and on the box, read afresh before every step. The next
/// step is a function of these alone, so a power cut anywhere resumes at
/// the right step: every step's effect is one atomic write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The key the box needs now.
    pub key: EngineKey,
    /// The precision configured.
    pub requested: Precision,
    /// The calibrated Q/DQ model for this key exists.
    pub int8_model_ready: bool,
    /// The cache entry for `key`.
    pub entry: EntryFacts,
    /// Times `key`'s engine went to quarantine.
    pub quarantined: usize,
    /// The key of the engine in service, from the provisioned stamp.
    pub active: Option<EngineKey>,
    /// Why every precision failed to build for `key`, once that happened.
    pub build_failed: Option<String>,
}

/// One provisioning step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Calibrate INT8 on the box's stills and write the Q/DQ model.
    Calibrate,
    /// Build an engine at `precision` and store it unvalidated.
    Build {
        /// The precision to build.
        precision: Precision,
        /// Why higher precisions were given up, carried into the manifest.
        fallback: Vec<String>,
    },
    /// Check the stored engine against the CPU reference.
    Validate,
    /// Move a damaged engine aside so it is rebuilt.
    Quarantine {
        /// Why.
        reason: String,
    },
    /// Put the validated engine in service: write the provisioned stamp.
    Activate,
    /// Nothing to do: the engine in service matches the box.
    Done,
    /// Tried everything; a technician must look.
    Failed {
        /// Why.
        reason: String,
    },
}

/// The next step for `facts`.
pub fn next_step(facts: &Facts) -> Step {
    if facts.active.as_ref() == Some(&facts.key)
        && matches!(
            facts.entry,
            EntryFacts::Stored {
                validation: ValidationFacts::Passed,
                ..
            }
        )
    {
        return Step::Done;
    }
    match &facts.entry {
        EntryFacts::Damaged(reason) => Step::Quarantine {
            reason: reason.clone(),
        },
        EntryFacts::Missing if facts.quarantined >= MAX_QUARANTINES => Step::Failed {
            reason: format!(
                "the engine for key {} failed to load {} times; see the engine cache's quarantine folder",
                facts.key, facts.quarantined
            ),
        },
        EntryFacts::Missing => match &facts.build_failed {
            Some(reason) => Step::Failed {
                reason: reason.clone(),
            },
            None => build(facts, facts.requested, Vec::new()),
        },
        EntryFacts::Stored {
            validation: ValidationFacts::Pending,
            ..
        } => Step::Validate,
        EntryFacts::Stored {
            validation: ValidationFacts::Passed,
            ..
        } => Step::Activate,
        EntryFacts::Stored {
            precision,
            validation: ValidationFacts::Rejected(verdict),
            fallback,
        } => {
            let mut fallback = fallback.clone();
            fallback.push(format!("{precision} rejected: {verdict}"));
            match next_precision(facts.requested, *precision) {
                Some(lower) => build(facts, lower, fallback),
                None => Step::Failed {
                    reason: format!("no precision passed validation: {}", fallback.join("; ")),
                },
            }
        }
    }
}

fn build(facts: &Facts, precision: Precision, fallback: Vec<String>) -> Step {
    if precision == Precision::Int8 && !facts.int8_model_ready {
        Step::Calibrate
    } else {
        Step::Build {
            precision,
            fallback,
        }
    }
}

/// The precision after `failed` in `requested`'s fallback chain.
pub fn next_precision(requested: Precision, failed: Precision) -> Option<Precision> {
    let chain = requested.fallback_chain();
    let at = chain.iter().position(|&p| p == failed)?;
    chain.get(at + 1).copied()
}

/// Every step from `facts` to the end, assuming each one succeeds: what
/// `--dry-run` shows.
pub fn steps_ahead(facts: &Facts) -> Vec<Step> {
    let mut facts = facts.clone();
    let mut steps = Vec::new();
    loop {
        let step = next_step(&facts);
        steps.push(step.clone());
        match step {
            Step::Done | Step::Failed { .. } => return steps,
            Step::Calibrate => facts.int8_model_ready = true,
            Step::Build {
                precision,
                fallback,
            } => {
                facts.entry = EntryFacts::Stored {
                    precision,
                    validation: ValidationFacts::Pending,
                    fallback,
                }
            }
            Step::Validate => {
                if let EntryFacts::Stored { validation, .. } = &mut facts.entry {
                    *validation = ValidationFacts::Passed;
                }
            }
            Step::Quarantine { .. } => {
                facts.quarantined += 1;
                facts.entry = EntryFacts::Missing;
            }
            Step::Activate => facts.active = Some(facts.key.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(digit: char) -> EngineKey {
        EngineKey::parse(&digit.to_string().repeat(32)).unwrap()
    }

    fn fresh_box() -> Facts {
        Facts {
            key: key('a'),
            requested: Precision::Int8,
            int8_model_ready: false,
            entry: EntryFacts::Missing,
            quarantined: 0,
            active: None,
            build_failed: None,
        }
    }

    fn stored(precision: Precision, validation: ValidationFacts) -> EntryFacts {
        EntryFacts::Stored {
            precision,
            validation,
            fallback: Vec::new(),
        }
    }

    #[test]
    fn first_boot_calibrates_builds_validates_and_activates() {
        assert_eq!(
            steps_ahead(&fresh_box()),
            [
                Step::Calibrate,
                Step::Build {
                    precision: Precision::Int8,
                    fallback: vec![]
                },
                Step::Validate,
                Step::Activate,
                Step::Done
            ]
        );
    }

    #[test]
    fn each_transition() {
        let mut facts = fresh_box();
        assert_eq!(next_step(&facts), Step::Calibrate);
        facts.int8_model_ready = true;
        assert!(matches!(
            next_step(&facts),
            Step::Build {
                precision: Precision::Int8,
                ..
            }
        ));
        facts.entry = stored(Precision::Int8, ValidationFacts::Pending);
        assert_eq!(next_step(&facts), Step::Validate);
        facts.entry = stored(Precision::Int8, ValidationFacts::Passed);
        assert_eq!(next_step(&facts), Step::Activate);
        facts.active = Some(key('a'));
        assert_eq!(next_step(&facts), Step::Done);
    }

    #[test]
    fn a_rejected_engine_falls_back_with_its_reason() {
        let mut facts = fresh_box();
        facts.int8_model_ready = true;
        facts.entry = stored(
            Precision::Int8,
            ValidationFacts::Rejected("recall 0.80".into()),
        );
        let Step::Build {
            precision,
            fallback,
        } = next_step(&facts)
        else {
            panic!("expected a build, got {:?}", next_step(&facts));
        };
        assert_eq!(precision, Precision::Fp16);
        assert_eq!(fallback, ["int8 rejected: recall 0.80"]);

        facts.entry = EntryFacts::Stored {
            precision: Precision::Fp16,
            validation: ValidationFacts::Rejected("recall 0.90".into()),
            fallback,
        };
        let Step::Build {
            precision,
            fallback,
        } = next_step(&facts)
        else {
            panic!("expected a build");
        };
        assert_eq!(precision, Precision::Fp32);
        assert_eq!(fallback.len(), 2);

        facts.entry = EntryFacts::Stored {
            precision: Precision::Fp32,
            validation: ValidationFacts::Rejected("recall 0.10".into()),
            fallback,
        };
        let Step::Failed { reason } = next_step(&facts) else {
            panic!("expected failure");
        };
        assert!(
            reason.contains("int8 rejected") && reason.contains("fp32 rejected"),
            "{reason}"
        );
    }

    #[test]
    fn a_damaged_engine_is_quarantined_then_rebuilt_but_not_forever() {
        let mut facts = fresh_box();
        facts.int8_model_ready = true;
        facts.entry = EntryFacts::Damaged("sha mismatch".into());
        assert_eq!(
            next_step(&facts),
            Step::Quarantine {
                reason: "sha mismatch".into()
            }
        );
        facts.entry = EntryFacts::Missing;
        facts.quarantined = 1;
        assert!(matches!(next_step(&facts), Step::Build { .. }));
        facts.quarantined = MAX_QUARANTINES;
        assert!(matches!(next_step(&facts), Step::Failed { .. }));
    }

    #[test]
    fn a_key_change_after_an_update_reprovisions_and_keeps_serving_meanwhile() {
        let mut facts = fresh_box();
        facts.int8_model_ready = true;
        facts.active = Some(key('b'));
        facts.entry = EntryFacts::Missing;
        let steps = steps_ahead(&facts);
        assert!(matches!(steps[0], Step::Build { .. }), "{steps:?}");
        assert_eq!(steps[steps.len() - 2..], [Step::Activate, Step::Done]);
    }

    #[test]
    fn a_build_that_failed_at_every_precision_stays_failed() {
        let mut facts = fresh_box();
        facts.int8_model_ready = true;
        facts.build_failed = Some("fp32: parser error".into());
        assert_eq!(
            steps_ahead(&facts),
            [Step::Failed {
                reason: "fp32: parser error".into()
            }]
        );
    }

    #[test]
    fn fp16_asked_for_never_calibrates() {
        let mut facts = fresh_box();
        facts.requested = Precision::Fp16;
        assert!(matches!(
            steps_ahead(&facts)[0],
            Step::Build {
                precision: Precision::Fp16,
                ..
            }
        ));
    }
}
