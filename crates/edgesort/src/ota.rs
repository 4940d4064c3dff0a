//! `edgesort ota`: signed update packages. The release side makes keys,
//! packs and signs; the box side verifies, installs into the inactive
//! slot, switches, judges the new slot's health and commits or rolls back.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use edgesort_engine::EngineBuilder;
use edgesort_infer_tensorrt::TensorRtBuilder;
use edgesort_ota::{
    CommandLine, DaemonHealth, EnginePreparer, Event, HealthCriteria, Installer, OtaDir, Outcome,
    PackInfo, SigningKeyFile, SlotManifest, SlotName, Trust, TrustedKey, TrustedKeys,
    VerifiedPackage, at_low_priority,
};
use edgesort_provision::{
    SystemFiles, engine_inputs, model_input, prepare_engine, probe, tract_reference, workspace_for,
};
use edgesort_tls::Fingerprint;
use edgesort_types::config::{Config, SYSTEM_CONFIG_PATH, SystemConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::BUNDLED_CONFIG;
use crate::client::{ApiArgs, Client};

#[derive(clap::Subcommand)]
pub enum OtaCommand {
    /// Release side: make a signing key, print its line for the image's
    /// trusted-keys file. The key file never goes onto a box.
    Keygen {
        /// The key's name, as boxes will know it.
        #[arg(long)]
        id: String,
        /// When boxes stop accepting it (RFC 3339), for the printed line.
        #[arg(long)]
        expires: String,
        /// Where to write the private key (created 0600; must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Release side: pack the files under a folder laid out as a slot
    /// (bin/ model/ calibration/ config/ board/ os/) into a package.
    Pack {
        /// The folder.
        #[arg(long)]
        from: PathBuf,
        /// The version it installs.
        #[arg(long)]
        version: semver::Version,
        /// The oldest installed version it may go onto.
        #[arg(long)]
        min_version: semver::Version,
        /// Boards it is for (orin-nano, orin-nx, agx-orin); repeat.
        #[arg(long = "board", required = true)]
        boards: Vec<String>,
        /// Release notes.
        #[arg(long, default_value = "")]
        notes: String,
        /// A signing key to revoke, by id; repeat. A box that verifies the
        /// package refuses the key's signatures from then on, and the
        /// package must be signed by a key it does not revoke.
        #[arg(long = "revoke", value_name = "KEY_ID")]
        revokes: Vec<String>,
        /// The package file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Release side: sign a package's manifest (again, to add a key during
    /// a rotation).
    Sign {
        /// The package.
        package: PathBuf,
        /// The private key file from `keygen`.
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a package's signature and every payload, writing nothing.
    Verify {
        /// The package.
        package: PathBuf,
        #[command(flatten)]
        box_args: BoxArgs,
    },
    /// Install a package (a file, or an http(s) URL) into the inactive
    /// slot, switch to it, and keep it only if the line is healthy on it.
    Install {
        /// The package file or URL.
        source: String,
        /// Install a version not newer than the committed one; the reason
        /// is kept in the history.
        #[arg(long, value_name = "REASON")]
        force: Option<String>,
        #[command(flatten)]
        box_args: BoxArgs,
    },
    /// Install the packages uploaded through the daemon's API, oldest
    /// first (run by edgesort-ota-install.path when one is queued). Each is
    /// removed once installed or refused; the history keeps the outcome.
    InstallQueued {
        #[command(flatten)]
        box_args: BoxArgs,
    },
    /// The slots, the committed version, a trial in progress, the history.
    Status {
        /// Also re-read every file of both slots against its record.
        #[arg(long)]
        verify: bool,
        /// As JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        box_args: BoxArgs,
    },
    /// Go back to the previous slot, health-checked like an install.
    Rollback {
        /// Why; kept in the history.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        box_args: BoxArgs,
    },
    /// Run before the daemon starts (the unit's ExecStartPre): finish or
    /// undo whatever an interrupted update left, and on first boot make
    /// slot a from the image's files.
    Recover {
        /// The image's application files, laid out as a slot, for the
        /// first boot.
        #[arg(long)]
        factory: Option<PathBuf>,
        /// The image's version, for the first boot.
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        factory_version: semver::Version,
        #[command(flatten)]
        box_args: BoxArgs,
    },
}

/// The box's settings: root's (`system.toml`: the slots, keys and
/// commands) and the line's (`edgesort.toml`: the model and engine to
/// prepare, where the daemon listens).
#[derive(clap::Args, Clone)]
pub struct BoxArgs {
    /// The line's configuration: the model and engine settings an update
    /// prepares, and the daemon's `[api]`.
    #[arg(long, default_value = BUNDLED_CONFIG)]
    config: PathBuf,
    /// Root's settings (`[ota]`, `data_dir`); refused unless root (or the
    /// user running this) owns it and nobody else may write it.
    #[arg(long, default_value = SYSTEM_CONFIG_PATH)]
    system: PathBuf,
    /// The trusted keys instead of `ota.trusted_keys`.
    #[arg(long)]
    keys: Option<PathBuf>,
}

/// What [`BoxArgs::load`] found and opened.
struct BoxSettings {
    /// The line's configuration, its data folder replaced by root's.
    config: Config,
    config_path: PathBuf,
    system: SystemConfig,
    ota: OtaDir,
    keys: PathBuf,
}

impl BoxArgs {
    /// Root's settings and the trusted keys' file.
    fn load_system(&self) -> Result<(SystemConfig, PathBuf)> {
        let system = SystemConfig::load(&self.system)
            .with_context(|| format!("loading {}", self.system.display()))?;
        let keys = self
            .keys
            .clone()
            .unwrap_or_else(|| system.ota.trusted_keys.clone());
        Ok((system, keys))
    }

    /// Every setting, and the update folder opened as root's tools must
    /// open it: checked to be root's alone and held open, so the daemon's
    /// user cannot swap it for its own while root works in it.
    fn load(&self) -> Result<BoxSettings> {
        let (system, keys) = self.load_system()?;
        let mut config = Config::load(&self.config)
            .with_context(|| format!("loading {}", self.config.display()))?;
        // The daemon may rewrite edgesort.toml: what root writes (engines
        // for a new slot) goes where root's file says.
        config.engine.data_dir = system.data_dir.clone();
        let ota = OtaDir::open_as_owner(&system.ota.dir)?;
        Ok(BoxSettings {
            config,
            config_path: self.config.clone(),
            system,
            ota,
            keys,
        })
    }
}

pub fn run_ota_command(command: OtaCommand) -> Result<()> {
    match command {
        OtaCommand::Keygen { id, expires, out } => keygen(&id, &expires, &out),
        OtaCommand::Pack {
            from,
            version,
            min_version,
            boards,
            notes,
            revokes,
            out,
        } => {
            let manifest = edgesort_ota::pack(
                &from,
                PackInfo {
                    version,
                    min_version,
                    boards,
                    notes,
                    created: SystemTime::now(),
                    revokes,
                },
                &out,
            )?;
            println!(
                "Packed {} payloads ({} bytes) as version {} made {} into {} (unsigned: run `edgesort ota sign`).",
                manifest.payloads.len(),
                manifest.payload_bytes(),
                manifest.version,
                manifest.created,
                out.display()
            );
            if !manifest.revokes.is_empty() {
                println!(
                    "It revokes {}: sign it with a key it does not revoke.",
                    manifest.revokes.join(", ")
                );
            }
            Ok(())
        }
        OtaCommand::Sign { package, key } => {
            let key = SigningKeyFile::load(&key)?;
            edgesort_ota::sign(&package, &key)?;
            println!("Signed {} with key {}.", package.display(), key.id);
            Ok(())
        }
        OtaCommand::Verify { package, box_args } => {
            let (system, keys) = box_args.load_system()?;
            let keys = TrustedKeys::load(&keys)?;
            // Judged as this box would judge it: by its revoked keys and
            // trusted time, once it has an update folder (opened as root's
            // tools open it, never created here: verify writes nothing).
            let trust = if system.ota.dir.exists() {
                OtaDir::open_as_owner(&system.ota.dir)?.trust(SystemTime::now())?
            } else {
                Trust::clock(SystemTime::now())
            };
            let verified = VerifiedPackage::open(&package, &keys, &trust)?;
            verified.check_payloads()?;
            let manifest = &verified.manifest;
            println!(
                "Version {} (onto {} or newer) for {}, made {}, signed by {}: {} payloads, every sha256 matches.",
                manifest.version,
                manifest.min_version,
                manifest.boards.join(", "),
                manifest.created,
                verified.signer,
                manifest.payloads.len()
            );
            if !manifest.revokes.is_empty() {
                println!("Revokes keys: {}", manifest.revokes.join(", "));
            }
            for payload in &manifest.payloads {
                println!(
                    "  {:<40} {:>12} bytes  {:?}",
                    payload.path, payload.size, payload.kind
                );
            }
            Ok(())
        }
        OtaCommand::Install {
            source,
            force,
            box_args,
        } => install(&source, force.as_deref(), &box_args),
        OtaCommand::InstallQueued { box_args } => install_queued(&box_args),
        OtaCommand::Status {
            verify,
            json,
            box_args,
        } => status(verify, json, &box_args),
        OtaCommand::Rollback { reason, box_args } => {
            let settings = box_args.load()?;
            let keys = TrustedKeys::load(&settings.keys).unwrap_or_default();
            let outcome =
                with_installer(&settings, &keys, |installer| installer.rollback(&reason))?;
            report(outcome)
        }
        OtaCommand::Recover {
            factory,
            factory_version,
            box_args,
        } => recover(factory.as_deref(), factory_version, &box_args),
    }
}

fn keygen(id: &str, expires: &str, out: &Path) -> Result<()> {
    humantime::parse_rfc3339(expires)
        .with_context(|| format!("--expires {expires:?} is not an RFC 3339 time"))?;
    let key = SigningKeyFile::generate(id)?;
    let text = toml::to_string(&key).context("writing the key")?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("creating {} (it must not exist)", out.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", out.display()))?;
    let trusted = TrustedKeys {
        keys: vec![TrustedKey {
            id: id.to_owned(),
            public_key: key.public_key_hex()?,
            expires: expires.to_owned(),
        }],
    };
    println!(
        "# Private key in {} (keep it off the boxes).\n# Add this to the image's trusted keys:\n{}",
        out.display(),
        toml::to_string(&trusted).context("writing the trusted key")?
    );
    Ok(())
}

fn install(source: &str, force: Option<&str>, box_args: &BoxArgs) -> Result<()> {
    let settings = box_args.load()?;
    let keys = TrustedKeys::load(&settings.keys)?;
    let downloaded = source.starts_with("http://") || source.starts_with("https://");
    let ota = &settings.ota;
    let outcome = if downloaded {
        let (package, file) = download(source, ota)?;
        let outcome = with_installer(&settings, &keys, |installer| {
            installer.install_file(file, &package, force)
        });
        // Installed or refused, the data partition does not keep it.
        if let Err(error) = ota.discard_download(&package) {
            eprintln!("{error:#}");
        }
        outcome
    } else {
        with_installer(&settings, &keys, |installer| {
            installer.install(Path::new(source), force)
        })
    };
    report(outcome?)
}

fn install_queued(box_args: &BoxArgs) -> Result<()> {
    let settings = box_args.load()?;
    let keys = TrustedKeys::load(&settings.keys)?;
    let done = settings.ota.install_queued(&keys, |file, package| {
        println!("Installing {}", package.display());
        with_installer(&settings, &keys, |installer| {
            installer.install_file(file, package, None)
        })
    })?;
    let mut failures = 0;
    for (package, outcome) in done {
        let failed = outcome
            .map_err(|error| error.context(format!("{} refused", package.display())))
            .and_then(report);
        if let Err(error) = failed {
            eprintln!("{error:#}");
            failures += 1;
        }
    }
    if failures > 0 {
        bail!("{failures} queued package(s) were not installed; `edgesort ota status` has why");
    }
    Ok(())
}

fn report(outcome: Outcome) -> Result<()> {
    match outcome {
        Outcome::Committed { version, slot } => {
            println!("Version {version} runs from slot {slot} and is committed.");
            Ok(())
        }
        Outcome::RolledBack { version, reason } => {
            bail!("version {version} was rolled back: {reason}")
        }
    }
}

/// Runs `work` with an installer wired to this box: the service manager
/// restarts the line, the daemon's API reports its health, TensorRT (when
/// the box has it) builds engines at low priority.
fn with_installer(
    settings: &BoxSettings,
    keys: &TrustedKeys,
    work: impl FnOnce(&mut Installer) -> Result<Outcome, edgesort_ota::OtaError>,
) -> Result<Outcome> {
    let BoxSettings {
        config,
        config_path,
        system,
        ota,
        ..
    } = settings;
    let facts = probe(&SystemFiles::default());
    let board = match (&system.ota.board, &facts.board) {
        (Some(board), _) => board.clone(),
        (None, Some(model)) => {
            board_id(model).with_context(|| format!("which board is {model:?}? set ota.board"))?
        }
        (None, None) => bail!("this is not a Jetson and ota.board is not set"),
    };
    let data_dir = system.data_dir.clone();
    let token_file = config.api.token_file.clone();
    let cert_file = config
        .api
        .tls
        .enabled
        .then(|| config.api.tls.certificate(&data_dir).cert().to_owned());
    let config_path = config_path.clone();
    let mut line = CommandLine {
        restart: system.ota.restart_command.clone(),
        probe: move || -> Result<DaemonHealth, String> {
            // Root reads the daemon's token and certificate only from root's
            // data folder, and never through a link the daemon planted.
            let token =
                read_daemon_token(&data_dir, &token_file).map_err(|error| format!("{error:#}"))?;
            let fingerprint = cert_file
                .as_deref()
                .map(|cert_file| read_daemon_certificate(&data_dir, cert_file))
                .transpose()
                .map_err(|error| format!("{error:#}"))?;
            let api = ApiArgs {
                config: config_path.clone(),
                url: None,
                token: Some(token),
                fingerprint,
            };
            let client = Client::new(&api).map_err(|error| format!("{error:#}"))?;
            let status = client
                .get_json("/status")
                .map_err(|error| format!("{error:#}"))?;
            serde_json::from_value(status).map_err(|error| format!("/status: {error}"))
        },
    };
    let mut engine = BoxEngines {
        config: config.clone(),
        ota: ota.clone(),
    };
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let shown = bar.clone();
    let mut progress = move |event: &Event| {
        let line = describe(event);
        tracing::info!("{line}");
        shown.println(&line);
        shown.set_message(line);
    };
    let mut installer = Installer {
        ota,
        keys,
        board,
        criteria: HealthCriteria {
            deadline: Duration::from_secs(system.ota.health_deadline_s),
            min_frames: system.ota.health_min_frames,
            max_restarts: system.ota.health_max_restarts,
            poll: Duration::from_millis(500),
        },
        reserve_bytes: system
            .ota
            .reserve_bytes()
            .context("ota.reserve_mib is more bytes than a u64 counts")?,
        os_update_command: system.ota.os_update_command.clone(),
        line: &mut line,
        engine: &mut engine,
        progress: &mut progress,
    };
    let outcome = work(&mut installer);
    bar.finish_and_clear();
    Ok(outcome?)
}

/// The daemon's API token, as root may read it: the file named by
/// `api.token_file`, looked up in root's data folder whatever folder the
/// line's configuration names, opened only if it is a regular file there.
fn read_daemon_token(data_dir: &Path, token_file: &Path) -> Result<String> {
    let path = in_data_dir(data_dir, token_file, "api.token_file")?;
    let mut text = String::new();
    edgesort_types::open_regular_file(&path)
        .map_err(std::io::Error::other)
        .and_then(|file| file.take(4096).read_to_string(&mut text))
        .with_context(|| {
            format!(
                "reading the daemon's API token from {} (a regular file in data_dir)",
                path.display()
            )
        })?;
    Ok(text.trim().to_owned())
}

/// The fingerprint root pins the daemon's certificate by: that of the
/// certificate file `[api.tls]` names, looked up in root's data folder as
/// the token is, opened only if it is a regular file there. A plant
/// certificate kept outside the data folder is not found here, and the
/// health check fails; docs/daemon.md says to keep it there.
fn read_daemon_certificate(data_dir: &Path, cert_file: &Path) -> Result<Fingerprint> {
    let path = in_data_dir(data_dir, cert_file, "the API certificate")?;
    Fingerprint::of_pem_file(&path).with_context(|| {
        format!(
            "pinning the daemon's certificate {} (a regular file in data_dir)",
            path.display()
        )
    })
}

/// The file `file` names, by its name alone, in `data_dir`.
fn in_data_dir(data_dir: &Path, file: &Path, what: &str) -> Result<PathBuf> {
    let name = file
        .file_name()
        .with_context(|| format!("{what} {} names no file", file.display()))?;
    Ok(data_dir.join(name))
}

fn describe(event: &Event) -> String {
    match event {
        Event::Verified { version, signer } => {
            format!("verified version {version}, signed by {signer}")
        }
        Event::Staged { slot, files } => {
            format!("staged {files} files into slot {slot}, checked on disk")
        }
        Event::EngineBuilding => {
            "the model changed: preparing its engine while the line keeps sorting".into()
        }
        Event::EngineReady(detail) => format!("engine ready: {detail}"),
        Event::OsHandedOff(payload) => format!("handed {payload} to the OS updater"),
        Event::Switched(slot) => format!("switched to slot {slot}"),
        Event::Restarted => "the daemon restarted; checking its health".into(),
        Event::Waiting(why) => format!("waiting: {why}"),
        Event::Committed(version) => format!("version {version} is healthy and committed"),
        Event::RolledBack(reason) => format!("rolled back: {reason}"),
    }
}

/// The update's engine, built by this box's TensorRT at low priority.
struct BoxEngines {
    config: Config,
    ota: OtaDir,
}

impl EnginePreparer for BoxEngines {
    fn prepare(&mut self, slot: &Path, _manifest: &SlotManifest) -> Result<String, String> {
        let facts = probe(&SystemFiles::default());
        let (gpu, tensorrt) = match facts.build_target() {
            Ok(target) => target,
            Err(why) => {
                return Ok(format!(
                    "nothing to build: {why}; the line runs the new model on the CPU backend"
                ));
            }
        };
        let config = slot_config(&self.config, &self.ota, slot);
        let workspace = config
            .engine
            .workspace_mib
            .map_or_else(|| workspace_for(facts.memory), |mib| mib << 20);
        let board = facts.board.clone().unwrap_or_default();
        at_low_priority(|| {
            let log = Arc::new(|severity, message: &str| {
                tracing::info!(target: "tensorrt", ?severity, "{message}");
            });
            let library = tensorrt_sys::TensorRt::load(log).map_err(|error| error.to_string())?;
            let mut builder = TensorRtBuilder::new(library, &gpu.name, &gpu.compute_capability)
                .map_err(|error| error.to_string())?
                .with_cuda_graph(config.engine.cuda_graph);
            let target = builder.target().clone();
            let model = model_input(&config).map_err(|error| format!("{error:#}"))?;
            let inputs = engine_inputs(
                &config,
                model,
                &target,
                &board,
                facts.l4t.as_deref(),
                workspace,
            )
            .map_err(|error| format!("{error:#}"))?;
            let reference_inputs = inputs.clone();
            let reference = Box::new(|| tract_reference(&config, &reference_inputs));
            prepare_engine(&config, &mut builder, inputs, reference)
                .map_err(|error| format!("{error:#}"))?
                .map(|key| {
                    format!(
                        "engine {key} built and validated with TensorRT {} ({})",
                        tensorrt.version, target.gpu
                    )
                })
        })
    }
}

/// The configuration as it will be once `slot` is current: paths through
/// the `current` link point into the slot.
fn slot_config(config: &Config, ota: &OtaDir, slot: &Path) -> Config {
    let mut config = config.clone();
    for path in [
        &mut config.model.path,
        &mut config.engine.calibration_images,
        &mut config.engine.validation_images,
    ] {
        *path = ota.through_slot(path, slot);
    }
    config
}

/// The board name a package lists, from the device tree's model string.
fn board_id(model: &str) -> Option<String> {
    let model = model.to_ascii_lowercase();
    let id = if model.contains("orin nano") {
        "orin-nano"
    } else if model.contains("orin nx") {
        "orin-nx"
    } else if model.contains("agx orin") {
        "agx-orin"
    } else {
        return None;
    };
    Some(id.to_owned())
}

/// Downloads a package into the OTA folder (a partial file, created new and
/// never through a link, renamed when complete), so it is on the box before
/// anything is switched.
fn download(url: &str, ota: &OtaDir) -> Result<(PathBuf, std::fs::File)> {
    let name = url
        .rsplit('/')
        .next()
        .filter(|name| !name.is_empty() && !name.starts_with('.') && !name.contains(['\\', '\0']))
        .unwrap_or("package.esu");
    let mut response = ureq::get(url)
        .call()
        .with_context(|| format!("downloading {url}"))?;
    let downloaded = ota
        .receive_download(name, &mut response.body_mut().as_reader())
        .with_context(|| format!("downloading {url}"))?;
    Ok(downloaded)
}

fn status(verify: bool, json: bool, box_args: &BoxArgs) -> Result<()> {
    let ota = box_args.load()?.ota;
    let Some(state) = ota.state()? else {
        bail!(edgesort_ota::OtaError::NotInitialized);
    };
    let mut slots = serde_json::Map::new();
    for slot in [SlotName::A, SlotName::B] {
        let record = match if verify {
            ota.verify_slot(slot)
        } else {
            ota.slot_manifest(slot)
        } {
            Ok(manifest) => serde_json::json!({
                "version": manifest.version.to_string(),
                "package": manifest.package,
                "staged_at": manifest.staged_at,
                "files": manifest.files.len(),
                "verified": verify,
            }),
            Err(error) => serde_json::json!({ "error": error.to_string() }),
        };
        slots.insert(slot.to_string(), record);
    }
    let current = ota.current_slot().map(|slot| slot.to_string());
    if json {
        let value = serde_json::json!({
            "state": state,
            "current": current,
            "slots": slots,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "Committed: version {} in slot {}",
        state.committed.version, state.committed.slot
    );
    println!(
        "Floor:     version {} (the highest ever committed; below it needs --force)",
        state.floor
    );
    if let Some(trusted_time) = &state.trusted_time {
        println!(
            "Trusted:   {trusted_time} (the newest package's signing time; key expiry is judged no earlier)"
        );
    }
    if !state.revoked_keys.is_empty() {
        let revoked: Vec<&str> = state.revoked_keys.iter().map(String::as_str).collect();
        println!("Revoked:   {}", revoked.join(", "));
    }
    if let Some(trial) = &state.trial {
        println!(
            "On trial:  version {} in slot {}, switched at {} by installer pid {}",
            trial.installed.version, trial.installed.slot, trial.switched_at, trial.installer_pid
        );
    }
    println!("Current:   {}", current.as_deref().unwrap_or("(no link)"));
    for (slot, record) in &slots {
        println!("Slot {slot}:    {record}");
    }
    println!("History:");
    for entry in state.history.iter().rev().take(10) {
        println!(
            "  {} {:<12} {} {}",
            entry.at, entry.event, entry.version, entry.detail
        );
    }
    Ok(())
}

fn recover(
    factory: Option<&Path>,
    factory_version: semver::Version,
    box_args: &BoxArgs,
) -> Result<()> {
    let ota = box_args.load()?.ota;
    let Some(lock) = ota.try_lock()? else {
        println!("An update is in progress; its installer will finish or undo it.");
        return Ok(());
    };
    if ota.state()?.is_none() {
        let factory = factory.context(
            "the OTA folder has no committed slot yet: pass --factory with the image's files",
        )?;
        let state = ota.init(&lock, factory, factory_version)?;
        println!(
            "Made slot {} from {} as version {}.",
            state.committed.slot,
            factory.display(),
            state.committed.version
        );
    }
    let recovery = ota.recover(&lock)?;
    for repair in &recovery.repairs {
        println!("{repair}");
    }
    println!(
        "Committed: version {} in slot {}.",
        recovery.state.committed.version, recovery.state.committed.slot
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use edgesort_tls::ServerTls;
    use edgesort_types::config::ApiCertificate;

    use super::*;

    /// Issue 23: root pins the certificate in its own data folder, by the
    /// file's name alone, and never through a link.
    #[test]
    fn root_pins_the_certificate_in_its_data_folder_and_refuses_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let served = ServerTls::load_or_create(&ApiCertificate::SelfSigned {
            cert: data.join("api-cert.pem"),
            key: data.join("api-key.pem"),
        })
        .unwrap();
        let named = Path::new("/elsewhere/api-cert.pem");
        let pinned = read_daemon_certificate(&data, named).unwrap();
        assert_eq!(pinned, served.fingerprint());

        std::fs::rename(data.join("api-cert.pem"), dir.path().join("real.pem")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real.pem"), data.join("api-cert.pem")).unwrap();
        let error = format!("{:#}", read_daemon_certificate(&data, named).unwrap_err());
        assert!(
            error.contains("api-cert.pem") && error.contains("symbolic link"),
            "{error}"
        );
    }
}
