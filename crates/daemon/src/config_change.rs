use edgesort_types::config::{Config, ConfigError};
use serde::Serialize;

/// Sections a running line takes on at once; the rest need a restart,
/// because the stages were built from them (camera, model, geometry, pins).
const LIVE_SECTIONS: [&str; 1] = ["rules"];

/// What became of a configuration sent to the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigApplied {
    /// Changed sections in force now.
    pub live: Vec<String>,
    /// Changed sections saved and in force from the next start.
    pub on_restart: Vec<String>,
}

/// Why a configuration was refused; the running one is untouched.
#[derive(Debug, thiserror::Error)]
pub enum ConfigRejected {
    /// It does not parse or validate; the message names the field.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The configuration file could not be read.
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        /// The configuration file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is valid but could not be saved.
    #[error("cannot save the configuration to {path}: {source}")]
    Save {
        /// The configuration file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The top-level sections in which `new` differs from `old`.
pub(crate) fn changed_sections(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("camera", old.camera != new.camera);
    check("model", old.model != new.model);
    check("belt", old.belt != new.belt);
    check("tracking", old.tracking != new.tracking);
    check("gpio", old.gpio != new.gpio);
    check("ejectors", old.ejectors != new.ejectors);
    check("rules", old.rules != new.rules);
    check("store", old.store != new.store);
    check("safety", old.safety != new.safety);
    check("calibration", old.calibration != new.calibration);
    check("engine", old.engine != new.engine);
    check("api", old.api != new.api);
    changed
}

/// Splits changed sections into those applied live and those on restart.
pub(crate) fn split(changed: &[&str]) -> ConfigApplied {
    let (live, on_restart): (Vec<_>, Vec<_>) = changed
        .iter()
        .map(|section| section.to_string())
        .partition(|section| LIVE_SECTIONS.contains(&section.as_str()));
    ConfigApplied { live, on_restart }
}
