use edgesort_types::config::{Config, ConfigError};
use serde::Serialize;

/// Sections a running line takes on at once; the rest need a restart,
/// because the stages were built from them (camera, model, geometry, pins).
const LIVE_SECTIONS: [&str; 1] = ["rules"];

/// Sections `PUT /config` may change: what a technician tunes on a running
/// line (rules, ejectors, tracking, safety limits within their validated
/// bounds, store retention). The rest decides what the box touches (camera,
/// pins, model, data folders, the API itself) and is changed on the box.
const EDITABLE_SECTIONS: [&str; 5] = ["rules", "ejectors", "tracking", "safety", "store"];

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
    /// It changes what the API may not change; nothing was saved.
    #[error(
        "the API may change only [{}]; this configuration also changes {}: edit those on the box",
        EDITABLE_SECTIONS.join("], ["),
        .fields.join(", ")
    )]
    NotEditable {
        /// The sections (or fields) it would have changed.
        fields: Vec<String>,
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
    check("ota", old.ignored_ota != new.ignored_ota);
    changed
}

/// Refuses `new` when it differs from `saved` outside the sections the API
/// may change; `store.path` is not retention and stays too.
pub(crate) fn check_editable(saved: &Config, new: &Config) -> Result<(), ConfigRejected> {
    let mut fields: Vec<String> = changed_sections(saved, new)
        .into_iter()
        .filter(|section| !EDITABLE_SECTIONS.contains(section))
        .map(String::from)
        .collect();
    if saved.store.path != new.store.path {
        fields.push("store.path".into());
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(ConfigRejected::NotEditable { fields })
    }
}

/// One field that changed, for the audit log.
#[derive(Debug, PartialEq, Serialize)]
pub(crate) struct FieldChange {
    /// Its path, e.g. `ejectors[1].pulse_ms`.
    pub field: String,
    /// Its value before; null where it was absent.
    pub before: serde_json::Value,
    /// Its value after; null where it is gone.
    pub after: serde_json::Value,
}

/// Every field in which `new` differs from `old`.
pub(crate) fn field_changes(old: &Config, new: &Config) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    match (serde_json::to_value(old), serde_json::to_value(new)) {
        (Ok(old), Ok(new)) => diff(String::new(), &old, &new, &mut changes),
        (Err(error), _) | (_, Err(error)) => changes.push(FieldChange {
            field: String::new(),
            before: serde_json::Value::Null,
            after: serde_json::Value::String(format!("cannot compare: {error}")),
        }),
    }
    changes
}

fn diff(
    path: String,
    old: &serde_json::Value,
    new: &serde_json::Value,
    changes: &mut Vec<FieldChange>,
) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(before), Value::Object(after)) => {
            let keys = before
                .keys()
                .chain(after.keys().filter(|key| !before.contains_key(*key)));
            for key in keys {
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let absent = Value::Null;
                let old = before.get(key).unwrap_or(&absent);
                let new = after.get(key).unwrap_or(&absent);
                diff(field, old, new, changes);
            }
        }
        (Value::Array(before), Value::Array(after)) if before.len() == after.len() => {
            for (index, (old, new)) in before.iter().zip(after).enumerate() {
                diff(format!("{path}[{index}]"), old, new, changes);
            }
        }
        _ if old != new => changes.push(FieldChange {
            field: path,
            before: old.clone(),
            after: new.clone(),
        }),
        _ => {}
    }
}

/// Splits changed sections into those applied live and those on restart.
pub(crate) fn split(changed: &[&str]) -> ConfigApplied {
    let (live, on_restart): (Vec<_>, Vec<_>) = changed
        .iter()
        .map(|section| section.to_string())
        .partition(|section| LIVE_SECTIONS.contains(&section.as_str()));
    ConfigApplied { live, on_restart }
}
