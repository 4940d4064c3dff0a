//! `POST /ota/packages`: an update package streamed to the data partition,
//! one upload at a time, refused before its body is read when it would not
//! leave the OTA reserve free, and cut off when the free space falls under
//! the reserve while it arrives.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use edgesort_ota::{MAX_PACKAGE_BYTES, OtaError, TrustedKeys};
use http_body_util::BodyExt;
use serde_json::json;

use crate::{Api, blocking, error_response};

/// While an upload arrives, the free space is measured again after every
/// this many bytes.
const RECHECK_EVERY: u64 = 4 << 20;

/// Free bytes for an unprivileged user on the file system that holds
/// `folder`, or its nearest existing parent.
fn free_bytes(folder: &Path) -> std::io::Result<u64> {
    let mut at = folder;
    loop {
        match rustix::fs::statvfs(at) {
            Ok(stat) => return Ok(stat.f_bavail.saturating_mul(stat.f_frsize)),
            Err(rustix::io::Errno::NOENT) if at.parent().is_some() => {
                at = at.parent().unwrap_or(at);
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// A partial upload, deleted unless kept: whatever ends the upload early
/// (a refusal, the client going away, the upload deadline dropping the
/// call) leaves nothing behind.
struct Partial(Option<PathBuf>);

impl Partial {
    fn keep(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Receives an update package. It streams to the data partition (never
/// whole into memory), is verified whole (signature, then every payload)
/// and queued for the installer, which runs outside the daemon's sandbox
/// because it restarts the daemon. A bad package is deleted and the answer
/// names what is wrong with it.
pub(crate) async fn upload_package(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Held until the answer: a second upload meanwhile is refused at once.
    let Ok(_one_at_a_time) = api.uploading.clone().try_acquire_owned() else {
        return error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "another update package is being uploaded: one at a time",
        );
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let Some(declared) = declared else {
        return error_response(
            StatusCode::LENGTH_REQUIRED,
            "an upload must declare its size (Content-Length)",
        );
    };
    if declared > MAX_PACKAGE_BYTES {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "a package may have at most {MAX_PACKAGE_BYTES} bytes, this one declares {declared}"
            ),
        );
    }
    let reserve = api.updates.reserve_bytes;
    let incoming = api.updates.ota.incoming();
    match free_bytes(&incoming) {
        Ok(free)
            if declared
                .checked_add(reserve)
                .is_some_and(|needed| needed <= free) => {}
        Ok(free) => {
            return error_response(
                StatusCode::INSUFFICIENT_STORAGE,
                &format!(
                    "the package's {declared} bytes and the {reserve} bytes the data partition must keep free (ota.reserve_mib) need more than the {free} bytes free at {}",
                    incoming.display()
                ),
            );
        }
        Err(error) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!(
                    "measuring the free space at {}: {error}",
                    incoming.display()
                ),
            );
        }
    }

    let ota = api.updates.ota.clone();
    let (path, file) = match blocking(move || ota.receive()).await {
        Ok(Ok(received)) => received,
        Ok(Err(error)) => {
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string());
        }
        Err(response) => return response,
    };
    let partial = Partial(Some(path));
    if let Some((code, message)) = receive(body, file, &incoming, reserve).await {
        return error_response(code, &message);
    }
    let path = partial.keep();

    let updates = api.updates.clone();
    let daemon = api.daemon.clone();
    let actor = format!("api {peer}");
    let queued = blocking(move || {
        let keys = TrustedKeys::load(&updates.trusted_keys).inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })?;
        let queued = updates.ota.enqueue(&path, &keys);
        let detail = match &queued {
            Ok((file, package)) => format!(
                "version {} signed by {} queued as {}",
                package.manifest.version,
                package.signer,
                file.display()
            ),
            Err(error) => format!("refused: {error}"),
        };
        daemon.with_store(|store| {
            if let Err(error) = store.audit(&actor, "ota.upload", &detail) {
                tracing::warn!(%error, "the upload was not audited");
            }
        });
        queued
    })
    .await;
    match queued {
        Ok(Ok((file, package))) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "queued": file,
                "version": package.manifest.version.to_string(),
                "signer": package.signer,
                "payloads": package.manifest.payloads.len(),
                "next": "the installer takes it from the queue; follow it with `edgesort ota status`",
            })),
        )
            .into_response(),
        Ok(Err(error @ OtaError::Io { .. })) => {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string())
        }
        Ok(Err(error)) => error_response(StatusCode::BAD_REQUEST, &error.to_string()),
        Err(response) => response,
    }
}

/// Streams `body` into `file`; why it was refused, if it was.
async fn receive(
    mut body: Body,
    file: std::fs::File,
    incoming: &Path,
    reserve: u64,
) -> Option<(StatusCode, String)> {
    let (chunks, mut to_write) = tokio::sync::mpsc::channel::<Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut file = file;
        while let Some(chunk) = to_write.blocking_recv() {
            file.write_all(&chunk)?;
        }
        file.sync_all()
    });
    let mut received = 0u64;
    let mut checked_at = 0u64;
    let refused = loop {
        match body.frame().await {
            None => break None,
            Some(Err(error)) => {
                break Some((
                    StatusCode::BAD_REQUEST,
                    format!("the upload broke off after {received} bytes: {error}"),
                ));
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                received += data.len() as u64;
                if received > MAX_PACKAGE_BYTES {
                    break Some((
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("a package may have at most {MAX_PACKAGE_BYTES} bytes"),
                    ));
                }
                if received - checked_at >= RECHECK_EVERY {
                    checked_at = received;
                    if let Ok(free) = free_bytes(incoming)
                        && free < reserve
                    {
                        break Some((
                            StatusCode::INSUFFICIENT_STORAGE,
                            format!(
                                "the data partition fell under its reserve of {reserve} bytes (ota.reserve_mib) after {received} bytes of the upload: {free} bytes free"
                            ),
                        ));
                    }
                }
                if chunks.send(data).await.is_err() {
                    break Some((
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "writing the upload failed".into(),
                    ));
                }
            }
        }
    };
    drop(chunks);
    let written = writer.await;
    refused.or_else(|| match written {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some((
            StatusCode::INSUFFICIENT_STORAGE,
            format!("storing the upload failed: {error}"),
        )),
        Err(error) => Some((StatusCode::INTERNAL_SERVER_ERROR, error.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_measured_at_the_nearest_existing_folder() {
        let dir = tempfile::tempdir().unwrap();
        let there = free_bytes(dir.path()).unwrap();
        let below = free_bytes(&dir.path().join("ota/incoming")).unwrap();
        assert!(there > 0);
        // The same file system, measured twice; other writers may move it a little.
        assert!(there.abs_diff(below) < 1 << 30, "{there} vs {below}");
        assert!(!dir.path().join("ota").exists());
    }

    #[test]
    fn a_partial_upload_is_deleted_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dropped = dir.path().join("dropped.partial");
        let kept = dir.path().join("kept.partial");
        std::fs::write(&dropped, b"half").unwrap();
        std::fs::write(&kept, b"whole").unwrap();
        drop(Partial(Some(dropped.clone())));
        assert_eq!(Partial(Some(kept.clone())).keep(), kept);
        assert!(!dropped.exists());
        assert!(kept.exists());
    }
}
