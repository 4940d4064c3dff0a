use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use edgesort_types::write_atomically;
use serde::{Deserialize, Serialize};

use crate::ProvisionError;

/// Transitions kept in the status file.
const HISTORY: usize = 20;

/// How often build progress is written out at most; a TensorRT build
/// reports many small steps and each write is an fsync.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// What a technician reads with `edgesort status`, kept in
/// `<data_dir>/provision/status.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// `calibrating`, `building`, `validating`, `active`, `blocked`, `failed`…
    pub state: String,
    /// A line of detail.
    pub detail: String,
    /// The engine key concerned.
    pub key: Option<String>,
    /// The latest builder phase, e.g. `Building engine 12/40`.
    pub progress: Option<String>,
    /// When this was written, RFC 3339.
    pub updated_at: String,
    /// Earlier states, oldest first.
    pub history: Vec<String>,
}

/// Hears every state change and progress line, e.g. to draw a progress bar.
pub type StatusObserver<'a> = Box<dyn FnMut(&str) + 'a>;

/// Writes the status file atomically as provisioning moves.
pub struct StatusFile<'a> {
    path: PathBuf,
    status: Status,
    last_progress: Option<Instant>,
    observer: Option<StatusObserver<'a>>,
}

impl<'a> StatusFile<'a> {
    /// Continues the status file at `path`, keeping its history.
    pub fn open(path: &Path) -> Self {
        StatusFile {
            path: path.to_owned(),
            status: read_status(path).unwrap_or_default(),
            last_progress: None,
            observer: None,
        }
    }

    /// Passes every state change and progress line to `observer` as well.
    pub fn observe(&mut self, observer: StatusObserver<'a>) {
        self.observer = Some(observer);
    }

    /// Records a new state.
    pub fn set(
        &mut self,
        state: &str,
        detail: &str,
        key: Option<&str>,
    ) -> Result<(), ProvisionError> {
        let now = now();
        if !self.status.state.is_empty() {
            self.status.history.push(format!(
                "{} {}: {}",
                self.status.updated_at, self.status.state, self.status.detail
            ));
            let excess = self.status.history.len().saturating_sub(HISTORY);
            self.status.history.drain(..excess);
        }
        self.status.state = state.to_owned();
        self.status.detail = detail.to_owned();
        self.status.key = key.map(str::to_owned);
        self.status.progress = None;
        self.status.updated_at = now;
        tracing::info!(state, detail, "provisioning");
        if let Some(observer) = &mut self.observer {
            observer(&format!("{state}: {detail}"));
        }
        self.write()
    }

    /// Records builder progress, at most once a second.
    pub fn progress(&mut self, line: String) -> Result<(), ProvisionError> {
        if let Some(observer) = &mut self.observer {
            observer(&line);
        }
        if self
            .last_progress
            .is_some_and(|last| last.elapsed() < PROGRESS_INTERVAL)
        {
            return Ok(());
        }
        self.last_progress = Some(Instant::now());
        self.status.progress = Some(line);
        self.status.updated_at = now();
        self.write()
    }

    fn write(&self) -> Result<(), ProvisionError> {
        let text = serde_json::to_vec_pretty(&self.status).expect("status serializes");
        write_atomically(&self.path, &text).map_err(|source| ProvisionError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Reads a status file; `None` when there is none or it cannot be read.
pub fn read_status(path: &Path) -> Option<Status> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
