//! `edgesort ota` as the release team and a technician use it: a key, a
//! package packed, signed and verified; a tampered one refused with exit
//! code 3; a box initialised from its image files, a bad package refused
//! without touching it, and a queued upload that is refused recorded in the
//! history.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn edgesort(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgesort"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "{}", text(&output));
    text(&output)
}

/// A box's line configuration and root's system file, with its data
/// partition and trusted keys in `dir`.
fn box_config(dir: &Path, keys: &Path) -> (PathBuf, PathBuf) {
    let repo = repo();
    let config = std::fs::read_to_string(repo.join("board/edgesort.toml"))
        .unwrap()
        .replace("\"../", &format!("\"{}/", repo.display()))
        .replace("\"pins/", &format!("\"{}/board/pins/", repo.display()))
        .replace("/var/lib/edgesort", &dir.join("data").display().to_string());
    let path = dir.join("edgesort.toml");
    std::fs::write(&path, config).unwrap();
    let system = std::fs::read_to_string(repo.join("board/system.toml"))
        .unwrap()
        .replace("/var/lib/edgesort", &dir.join("data").display().to_string())
        .replace(
            "/usr/share/edgesort/ota-keys.toml",
            &keys.display().to_string(),
        )
        .replace("[ota]\n", "[ota]\nboard = \"orin-nano\"\n");
    let system_path = dir.join("system.toml");
    std::fs::write(&system_path, system).unwrap();
    (path, system_path)
}

/// Serves `body` to one HTTP GET on a loopback port; returns its URL.
fn serve_once(body: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/releases/edgesort-1.1.0.esu",
        listener.local_addr().unwrap()
    );
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while request.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(&body).unwrap();
    });
    url
}

#[test]
fn a_release_is_keyed_packed_signed_verified_and_a_bad_one_refused_without_touching_the_box() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let arg = |path: &Path| path.to_str().unwrap().to_owned();

    // The release team's key; the printed stanza is the image's trusted keys.
    let stanza = ok(edgesort(&[
        "ota",
        "keygen",
        "--id",
        "release-2026",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--out",
        &arg(&path("release.key")),
    ]));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(path("release.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    std::fs::write(path("ota-keys.toml"), &stanza).unwrap();
    let (config, system) = box_config(dir.path(), &path("ota-keys.toml"));
    let (config, system) = (arg(&config), arg(&system));

    // Release 1.1.0: new configuration defaults.
    std::fs::create_dir_all(path("release/config")).unwrap();
    std::fs::write(path("release/config/defaults.toml"), "# 1.1.0\n").unwrap();
    let package = arg(&path("edgesort-1.1.0.esu"));
    ok(edgesort(&[
        "ota",
        "pack",
        "--from",
        &arg(&path("release")),
        "--version",
        "1.1.0",
        "--min-version",
        "1.0.0",
        "--board",
        "orin-nano",
        "--out",
        &package,
    ]));
    let unsigned = edgesort(&[
        "ota", "verify", &package, "--config", &config, "--system", &system,
    ]);
    assert_eq!(unsigned.status.code(), Some(3), "{}", text(&unsigned));
    assert!(
        text(&unsigned).contains("not signed"),
        "{}",
        text(&unsigned)
    );
    ok(edgesort(&[
        "ota",
        "sign",
        &package,
        "--key",
        &arg(&path("release.key")),
    ]));
    let verified = ok(edgesort(&[
        "ota", "verify", &package, "--config", &config, "--system", &system,
    ]));
    assert!(
        verified.contains("Version 1.1.0") && verified.contains("signed by release-2026"),
        "{verified}"
    );

    // A byte of the payload changed.
    let mut bytes = std::fs::read(&package).unwrap();
    let at = bytes
        .windows(7)
        .rposition(|window| window == b"# 1.1.0")
        .unwrap();
    bytes[at] = b';';
    std::fs::write(path("tampered.esu"), &bytes).unwrap();
    let tampered = edgesort(&[
        "ota",
        "verify",
        &arg(&path("tampered.esu")),
        "--config",
        &config,
        "--system",
        &system,
    ]);
    assert_eq!(tampered.status.code(), Some(3));
    assert!(
        text(&tampered).contains("payload config/defaults.toml was tampered with"),
        "{}",
        text(&tampered)
    );

    // The box's first start makes slot a from its image files.
    std::fs::create_dir_all(path("factory/model")).unwrap();
    std::fs::copy(
        repo().join("models/sorter_yolov8n_dynamic.onnx"),
        path("factory/model/detector.onnx"),
    )
    .unwrap();
    let recovered = ok(edgesort(&[
        "ota",
        "recover",
        "--config",
        &config,
        "--system",
        &system,
        "--factory",
        &arg(&path("factory")),
        "--factory-version",
        "1.0.0",
    ]));
    assert!(recovered.contains("Made slot a"), "{recovered}");
    let state_file = path("data/ota/state.json");
    let state_before = std::fs::read(&state_file).unwrap();

    // The tampered package is refused by the installer too, before any
    // restart (ota.restart_command would fail the test: it is systemctl).
    let refused = edgesort(&[
        "ota",
        "install",
        &arg(&path("tampered.esu")),
        "--config",
        &config,
        "--system",
        &system,
    ]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    assert!(text(&refused).contains("tampered"), "{}", text(&refused));
    assert_eq!(std::fs::read(&state_file).unwrap(), state_before);

    // From a URL: downloaded onto the data partition, refused the same way,
    // and not kept.
    let url = serve_once(std::fs::read(path("tampered.esu")).unwrap());
    let refused = edgesort(&[
        "ota", "install", &url, "--config", &config, "--system", &system,
    ]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    assert!(text(&refused).contains("tampered"), "{}", text(&refused));
    assert_eq!(
        std::fs::read_dir(path("data/ota/incoming"))
            .unwrap()
            .count(),
        0,
        "the download was kept"
    );
    assert_eq!(std::fs::read(&state_file).unwrap(), state_before);

    // Queued by an upload, then refused: the history says so.
    std::fs::create_dir_all(path("data/ota/incoming/queued")).unwrap();
    std::fs::copy(
        path("tampered.esu"),
        path("data/ota/incoming/queued/edgesort-1.1.0.esu"),
    )
    .unwrap();
    let queued = edgesort(&[
        "ota",
        "install-queued",
        "--config",
        &config,
        "--system",
        &system,
    ]);
    assert!(!queued.status.success());
    assert!(
        text(&queued).contains("1 queued package(s) were not installed"),
        "{}",
        text(&queued)
    );
    assert_eq!(
        std::fs::read_dir(path("data/ota/incoming/queued"))
            .unwrap()
            .count(),
        0
    );
    let status: serde_json::Value = serde_json::from_str(&ok(edgesort(&[
        "ota", "status", "--json", "--verify", "--config", &config, "--system", &system,
    ])))
    .unwrap();
    assert_eq!(status["state"]["committed"]["slot"], "a");
    assert_eq!(status["state"]["committed"]["version"], "1.0.0");
    assert_eq!(status["current"], "a");
    assert_eq!(status["slots"]["a"]["verified"], true);
    let last = status["state"]["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["event"], "refused");
    assert!(
        last["detail"].as_str().unwrap().contains("tampered"),
        "{last}"
    );
}

#[test]
fn issue_23_a_release_can_revoke_a_key_and_is_signed_by_one_it_does_not_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let arg = |path: &Path| path.to_str().unwrap().to_owned();
    let mut stanzas = String::new();
    for id in ["leaked", "current"] {
        stanzas.push_str(&ok(edgesort(&[
            "ota",
            "keygen",
            "--id",
            id,
            "--expires",
            "2099-01-01T00:00:00Z",
            "--out",
            &arg(&path(&format!("{id}.key"))),
        ])));
    }
    std::fs::write(path("ota-keys.toml"), &stanzas).unwrap();
    let (config, system) = box_config(dir.path(), &path("ota-keys.toml"));
    let (config, system) = (arg(&config), arg(&system));
    std::fs::create_dir_all(path("release/config")).unwrap();
    std::fs::write(path("release/config/defaults.toml"), "# 1.1.0\n").unwrap();
    let package = arg(&path("edgesort-1.1.0.esu"));

    let packed = ok(edgesort(&[
        "ota",
        "pack",
        "--from",
        &arg(&path("release")),
        "--version",
        "1.1.0",
        "--min-version",
        "1.0.0",
        "--board",
        "orin-nano",
        "--revoke",
        "leaked",
        "--out",
        &package,
    ]));

    assert!(packed.contains("It revokes leaked"), "{packed}");
    let by_revoked = edgesort(&["ota", "sign", &package, "--key", &arg(&path("leaked.key"))]);
    assert_eq!(by_revoked.status.code(), Some(3), "{}", text(&by_revoked));
    assert!(
        text(&by_revoked).contains("the package revokes key leaked"),
        "{}",
        text(&by_revoked)
    );
    ok(edgesort(&[
        "ota",
        "sign",
        &package,
        "--key",
        &arg(&path("current.key")),
    ]));
    let verified = ok(edgesort(&[
        "ota", "verify", &package, "--config", &config, "--system", &system,
    ]));
    assert!(
        verified.contains("signed by current") && verified.contains("Revokes keys: leaked"),
        "{verified}"
    );
}

/// Runs `script` with `sh -c` as the daemon's stand-in: uid and gid 65534
/// (nobody), no supplementary groups, no capabilities. Its output.
fn as_daemon_user(script: &str) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap()
}

/// Issue 23, acceptance 2: a box laid out as the .deb lays it out (the data
/// partition the daemon's, the update slots, `/etc/edgesort` and
/// `system.toml` root's, the line's configuration in `line/`, the daemon's), the daemon's user
/// trying each escalation, and root's tools refusing each. Needs root to
/// hand files to another uid: CI runs it as root (`.ci/run`).
#[test]
#[ignore = "needs root (setpriv to uid 65534); .ci/run runs it as root with --ignored"]
fn issue_23_the_daemon_user_cannot_steer_what_root_runs_or_touches() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        std::fs::metadata(dir.path()).unwrap().uid(),
        0,
        "run as root: this test hands files to uid 65534"
    );
    // Everyone may pass through the scratch folder, as through / and /etc.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = |name: &str| dir.path().join(name);
    let arg = |path: &Path| path.to_str().unwrap().to_owned();
    let chown = |path: &Path, uid: u32, gid: u32| {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    };

    // /etc/edgesort: root:root 0755 with system.toml root:root 0644; the
    // line's configuration in line/, the daemon's own folder.
    std::fs::create_dir_all(path("etc")).unwrap();
    let stanza = ok(edgesort(&[
        "ota",
        "keygen",
        "--id",
        "release",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--out",
        &arg(&path("release.key")),
    ]));
    std::fs::write(path("ota-keys.toml"), stanza).unwrap();
    let (config, system) = box_config(&path("etc"), &path("ota-keys.toml"));
    std::fs::set_permissions(path("etc"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(path("etc/line")).unwrap();
    let config = {
        let line = path("etc/line/edgesort.toml");
        std::fs::rename(&config, &line).unwrap();
        chown(&path("etc/line"), 65534, 65534);
        chown(&line, 65534, 65534);
        line
    };
    // /var/lib/edgesort: the daemon's; its ota/ root's, made by recover.
    std::fs::create_dir_all(path("etc/data")).unwrap();
    std::fs::create_dir_all(path("factory/model")).unwrap();
    std::fs::write(path("factory/model/detector.onnx"), b"onnx").unwrap();
    let (config, system) = (arg(&config), arg(&system));
    ok(edgesort(&[
        "ota",
        "recover",
        "--config",
        &config,
        "--system",
        &system,
        "--factory",
        &arg(&path("factory")),
    ]));
    chown(&path("etc/data"), 65534, 65534);
    let data = path("etc/data");
    let ota = data.join("ota");
    std::fs::create_dir_all(ota.join("incoming/queued")).unwrap();
    for folder in [ota.join("incoming"), ota.join("incoming/queued")] {
        chown(&folder, 65534, 65534);
    }
    // What an escalation would overwrite: a file only root may write.
    let target = path("root-only");
    std::fs::write(&target, b"root's bytes").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let root = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", &config, "--system", &system]);
        edgesort(&all)
    };

    // 1. Write root's settings: the file is root's and 0644.
    let tried = as_daemon_user(&format!("echo 'restart_command = [\"sh\"]' >> {system}"));
    assert!(!tried.status.success(), "the daemon wrote {system}");
    let tried = as_daemon_user(&format!("chmod 0666 {system}"));
    assert!(!tried.status.success(), "the daemon chmodded {system}");

    // 2. Replace them: /etc/edgesort is root's, so neither a rename into it
    //    nor a new file there works, while the daemon's own folder takes
    //    its saves.
    let tried = as_daemon_user(&format!(
        "cat {system} > {dir}/line/planted.toml && mv -f {dir}/line/planted.toml {system}",
        dir = arg(&path("etc"))
    ));
    assert!(!tried.status.success(), "the daemon replaced {system}");
    assert_eq!(std::fs::metadata(&system).unwrap().uid(), 0);
    let tried = as_daemon_user(&format!(
        "cp {config} {config}.new && mv -f {config}.new {config}"
    ));
    assert!(tried.status.success(), "{}", text(&tried));
    //    And a settings file that is not root's (an administrator's copy
    //    handed to the daemon's user) is refused by root's tools.
    chown(Path::new(&system), 65534, 65534);
    let refused = root(&["ota", "status"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("is owned by uid 65534, not by root"),
        "{}",
        text(&refused)
    );
    // Root puts its own back.
    let (_, restored) = box_config(&path("etc"), &path("ota-keys.toml"));
    chown(&restored, 0, 0);
    ok(root(&["ota", "status"]));

    // 3. A FIFO in the queue: skipped with an error naming it, within a
    //    second, and removed.
    let tried = as_daemon_user(&format!("mkfifo {}/incoming/queued/a.esu", arg(&ota)));
    assert!(tried.status.success(), "{}", text(&tried));
    let started = std::time::Instant::now();
    let queued = root(&["ota", "install-queued"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert!(!queued.status.success());
    assert!(text(&queued).contains("a.esu"), "{}", text(&queued));
    assert_eq!(
        std::fs::read_dir(ota.join("incoming/queued"))
            .unwrap()
            .count(),
        0
    );

    // 4. Swap root's update folder for one of its own with a planted lock
    //    and slots that lead to root's file: the daemon owns the data
    //    partition, so it can. Root's tools refuse the folder, by its
    //    owner, before they look inside; the file is untouched.
    let tried = as_daemon_user(&format!(
        "mv {ota} {ota}.root && mkdir -m 0755 {ota} && ln -s {target} {ota}/lock && ln -s {dir} {ota}/slots",
        ota = arg(&ota),
        target = arg(&target),
        dir = arg(dir.path())
    ));
    assert!(tried.status.success(), "{}", text(&tried));
    for command in ["recover", "status", "install-queued"] {
        let refused = root(&["ota", command]);
        assert!(!refused.status.success(), "{command}: {}", text(&refused));
        assert!(
            text(&refused).contains(&format!(
                "refusing {}: owned by uid 65534 (mode 0755), not by root (uid 0)",
                arg(&ota)
            )),
            "{command}: {}",
            text(&refused)
        );
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"root's bytes");

    // 5. Or put a link to root's own folder in its place, to pass the owner
    //    check and steer root by swapping the link later: refused as a link.
    let tried = as_daemon_user(&format!(
        "rm -r {ota} && ln -s {ota}.root {ota}",
        ota = arg(&ota)
    ));
    assert!(tried.status.success(), "{}", text(&tried));
    let refused = root(&["ota", "recover"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains(&format!("{} is a symbolic link", arg(&ota))),
        "{}",
        text(&refused)
    );

    // Root puts its own back, and its tools work in it again.
    std::fs::remove_file(&ota).unwrap();
    std::fs::rename(data.join("ota.root"), &ota).unwrap();
    let recovered = ok(root(&["ota", "recover"]));
    assert!(recovered.contains("Committed: version"), "{recovered}");

    // 6. Inside root's folder, a part that must be root's but is another
    //    user's (as a tree chowned by hand would be) is refused, not used.
    for part in ["state.json", "slots/a"] {
        chown(&ota.join(part), 65534, 65534);
        let refused = root(&["ota", "recover"]);
        assert!(!refused.status.success(), "{part}: {}", text(&refused));
        assert!(
            text(&refused).contains(&format!(
                "refusing {}: owned by uid 65534",
                arg(&ota.join(part))
            )),
            "{part}: {}",
            text(&refused)
        );
        chown(&ota.join(part), 0, 0);
    }
    ok(root(&["ota", "status"]));
    assert_eq!(std::fs::read(&target).unwrap(), b"root's bytes");
}
