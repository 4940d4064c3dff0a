use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use edgesort_store::{RetentionPolicy, Store, StoreWrite};

use crate::stage::{Shared, StageBody, StageName, lock};

/// Rows per SQLite transaction at most.
const BATCH: usize = 256;

/// How often retention runs; it also runs at start.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Writes the line's rows in batches, off the hot path. A batch that fails
/// is kept for the restarted stage, which reopens the database: rows are
/// never dropped.
pub(crate) fn store_stage(
    shared: Arc<Shared>,
    path: PathBuf,
    run_id: i64,
    first: Store,
    incoming: Receiver<StoreWrite>,
    policy: RetentionPolicy,
) -> StageBody {
    let mut opened = Some(first);
    let unwritten: Arc<Mutex<Vec<StoreWrite>>> = Arc::default();
    Box::new(move || {
        let mut store = match opened.take() {
            Some(store) => store,
            None => {
                let mut store = Store::open(&path).map_err(|error| error.to_string())?;
                store.resume_run(run_id);
                store
            }
        };
        let mut retained_at = None::<Instant>;
        let mut batch = std::mem::take(&mut *lock(&unwritten));
        loop {
            shared.check_fault(StageName::Store);
            if retained_at.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
                retained_at = Some(Instant::now());
                match store.enforce_retention(&policy) {
                    Ok(report) if report.deleted_parts > 0 => {
                        tracing::info!(?report, "retention deleted old parts")
                    }
                    Ok(_) => {}
                    Err(error) => tracing::error!(%error, "retention failed"),
                }
            }
            if batch.is_empty() {
                match incoming.recv_timeout(RETENTION_EVERY) {
                    Ok(write) => batch.push(write),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
            }
            batch.extend(incoming.try_iter().take(BATCH.saturating_sub(batch.len())));
            if let Err(error) = store.write_batch(&batch) {
                let message = error.to_string();
                *lock(&unwritten) = batch;
                return Err(message);
            }
            shared.board().writes_committed += batch.len() as u64;
            batch.clear();
        }
    })
}
