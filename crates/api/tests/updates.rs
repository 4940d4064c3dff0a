//! Issue 10: an update package uploaded to the daemon is verified whole
//! before it is queued for the installer; a bad one is refused with its
//! reason and leaves nothing behind.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Line, write_config};
use edgesort_ota::{OtaDir, PackInfo, SigningKeyFile, TrustedKey, TrustedKeys};
use semver::Version;

/// A box configuration whose trusted keys are `key`'s.
fn configure(dir: &Path, key: &SigningKeyFile) -> std::path::PathBuf {
    let keys = TrustedKeys {
        keys: vec![TrustedKey {
            id: key.id.clone(),
            public_key: key.public_key_hex().unwrap(),
            expires: "2099-01-01T00:00:00Z".into(),
        }],
    };
    let keys_path = dir.join("ota-keys.toml");
    std::fs::write(&keys_path, toml::to_string(&keys).unwrap()).unwrap();
    let config = write_config(dir, false);
    // Where the test line looks for them (tests/common).
    assert_eq!(config.with_file_name("ota-keys.toml"), keys_path);
    config
}

/// A signed package of new configuration defaults.
fn package(dir: &Path, key: Option<&SigningKeyFile>) -> Vec<u8> {
    let source = dir.join("release");
    std::fs::create_dir_all(source.join("config")).unwrap();
    std::fs::write(source.join("config/defaults.toml"), "# release 1.1.0\n").unwrap();
    let out = dir.join("edgesort-1.1.0.esu");
    edgesort_ota::pack(
        &source,
        PackInfo {
            version: Version::new(1, 1, 0),
            min_version: Version::new(1, 0, 0),
            boards: vec!["orin-nano".into()],
            notes: String::new(),
            created: std::time::SystemTime::now(),
            revokes: Vec::new(),
        },
        &out,
    )
    .unwrap();
    if let Some(key) = key {
        edgesort_ota::sign(&out, key).unwrap();
    }
    std::fs::read(out).unwrap()
}

fn upload(line: &Line, token: &str, body: &[u8]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut response = agent
        .post(format!("{}/ota/packages", line.base))
        .header("Authorization", &format!("Bearer {token}"))
        .send(body)
        .unwrap();
    let code = response.status().as_u16();
    (code, response.body_mut().read_to_string().unwrap())
}

fn files_under(folder: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            names.extend(files_under(&entry.path()));
        } else {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names
}

#[test]
fn an_uploaded_package_is_verified_then_queued_and_a_bad_one_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKeyFile::generate("release").unwrap();
    let line = Line::start(&configure(dir.path(), &key));
    let ota = OtaDir::unchecked(&line.config.engine.data_dir.join("ota"));
    let signed = package(dir.path(), Some(&key));

    // A payload byte changed: refused by name, nothing kept.
    let mut tampered = signed.clone();
    let at = tampered
        .windows(b"# release".len())
        .rposition(|window| window == b"# release")
        .unwrap();
    tampered[at] = b';';
    let (code, body) = upload(&line, &line.token, &tampered);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("config/defaults.toml was tampered with"),
        "{body}"
    );
    // Cut short: truncated.
    let (code, body) = upload(&line, &line.token, &signed[..signed.len() / 2]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("truncated"), "{body}");
    // Signed by nobody the box trusts.
    let stranger = SigningKeyFile::generate("stranger").unwrap();
    let (code, body) = upload(&line, &line.token, &package(dir.path(), Some(&stranger)));
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("stranger, which this box does not trust"),
        "{body}"
    );
    assert_eq!(files_under(&ota.incoming()), Vec::<String>::new());

    // The good one: accepted and queued, once verified.
    let (code, body) = upload(&line, &line.token, &signed);
    assert_eq!(code, 202, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["version"], "1.1.0");
    assert_eq!(answer["signer"], "release");
    let queued = ota.queued().unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(std::fs::read(&queued[0]).unwrap(), signed);
    assert_eq!(files_under(&ota.incoming()).len(), 1);

    let audit = line.daemon.with_store(|store| store.audit_log(10).unwrap());
    let uploads: Vec<_> = audit
        .iter()
        .filter(|entry| entry.action == "ota.upload")
        .collect();
    assert_eq!(uploads.len(), 4, "{audit:?}");
    assert!(uploads.iter().any(|entry| {
        entry
            .detail
            .contains("version 1.1.0 signed by release queued")
    }));
    assert!(
        uploads
            .iter()
            .any(|entry| entry.detail.contains("refused: the package is truncated"))
    );
    line.stop();
}
