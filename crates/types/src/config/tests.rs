use super::*;
use crate::CaptureFormat;

pub(crate) const EXAMPLE: &str = r#"
    [camera]
    replay = "clip"
    fps = 60.0
    width = 640
    height = 360

    [model]
    path = "model.onnx"
    classes = ["bolt", "nut"]

    [belt]
    speed_mm_s = 210.0
    mm_per_px = 0.5
    direction = "left_to_right"

    [gpio]
    board = "pins/orin-nano-devkit.toml"

    [[ejectors]]
    lane = "bolts"
    pin = 29
    distance_mm = 250.0
    pulse_ms = 20

    [rules]
    default_lane = "recirculate"
    confidence_floor = 0.5
    [[rules.class]]
    class = "bolt"
    lane = "bolts"
    [[rules.class]]
    class = "nut"
    lane = "recirculate"

    [store]
    path = "events.sqlite"
"#;

fn error_for(edit: impl Fn(&mut Config)) -> String {
    let mut config = Config::parse(EXAMPLE).expect("example parses");
    edit(&mut config);
    config
        .validate()
        .expect_err("edit must be refused")
        .to_string()
}

#[test]
fn example_parses_with_defaults() {
    let config = Config::parse(EXAMPLE).unwrap();
    assert_eq!(config.tracking, TrackingConfig::default());
    assert_eq!(config.reference_line_px(), 320.0);
    assert_eq!(config.belt_velocity_px_s(), 420.0);
    assert!(config.rules.classes.iter().all(|rule| rule.enabled));
}

#[test]
fn errors_name_the_field() {
    assert!(error_for(|c| c.ejectors[0].pulse_ms = 400).contains("ejectors[0].pulse_ms"));
    assert!(error_for(|c| c.ejectors[0].distance_mm = 100.0).contains("ejectors[0].distance_mm"));
    assert!(error_for(|c| c.belt.speed_mm_s = -1.0).contains("belt.speed_mm_s"));
    assert!(error_for(|c| c.camera.fps = f64::NAN).contains("camera.fps"));
    assert!(
        error_for(|c| c.rules.classes[0].class = "gear".into()).contains("rules.class[0].class")
    );
    assert!(
        error_for(|c| c.rules.classes[0].lane = "nowhere".into()).contains("rules.class[0].lane")
    );
    assert!(error_for(|c| c.model.input_size = 600).contains("model.input_size"));
    assert!(error_for(|c| c.safety.max_pulse_ms = 5000).contains("safety.max_pulse_ms"));
    assert!(error_for(|c| c.engine.min_recall = 1.5).contains("engine.min_recall"));
    assert!(error_for(|c| c.engine.max_extra = f64::NAN).contains("engine.max_extra"));
    assert!(error_for(|c| c.engine.keep_engines = 0).contains("engine.keep_engines"));
    assert!(error_for(|c| c.engine.workspace_mib = Some(0)).contains("engine.workspace_mib"));
    assert!(
        error_for(|c| {
            let mut second = c.ejectors[0].clone();
            second.lane = "nuts".into();
            c.ejectors.push(second);
        })
        .contains("ejectors[1].pin")
    );
}

#[test]
fn store_retention_defaults_and_limits() {
    let config = Config::parse(EXAMPLE).unwrap();
    assert_eq!(config.store.max_age_days, 90);
    assert_eq!(config.store.max_mb, 512);
    assert_eq!(config.store.max_age(), Duration::from_secs(90 * 24 * 3600));
    assert_eq!(config.store.max_bytes(), 512 * 1024 * 1024);

    let error = error_for(|c| c.store.max_mb = 15);
    assert!(error.contains("store.max_mb"), "{error}");
    let error = error_for(|c| c.store.max_age_days = 0);
    assert!(error.contains("store.max_age_days"), "{error}");
    let mut config = Config::parse(EXAMPLE).unwrap();
    config.store.max_mb = MIN_STORE_MB;
    config.store.max_age_days = 1;
    config.validate().unwrap();

    let written = Config::parse(&EXAMPLE.replace(
        "path = \"events.sqlite\"",
        "path = \"events.sqlite\"\nmax_age_days = 7\nmax_mb = 64",
    ))
    .unwrap();
    assert_eq!((written.store.max_age_days, written.store.max_mb), (7, 64));
}

#[test]
fn parse_errors_name_the_key() {
    let unknown = Config::parse(&EXAMPLE.replace("pulse_ms = 20", "pulse_ms = 20\npulse = 3"))
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("pulse"), "{unknown}");
    let wrong_type = Config::parse(&EXAMPLE.replace("fps = 60.0", "fps = \"fast\""))
        .unwrap_err()
        .to_string();
    assert!(wrong_type.contains("fps"), "{wrong_type}");
}

#[test]
fn relative_paths_resolve_against_the_file() {
    let dir = std::env::temp_dir().join(format!("edgesort-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("edgesort.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    std::fs::create_dir_all(dir.join("pins")).unwrap();
    std::fs::copy(
        bundled_board_folder().join("orin-nano-devkit.toml"),
        dir.join("pins/orin-nano-devkit.toml"),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.model.path, dir.join("model.onnx"));
    assert_eq!(config.gpio.map.pin(29).unwrap().line, 105);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn bundled_board_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../board/pins")
}

fn with_nano_map() -> Config {
    let mut config = Config::parse(EXAMPLE).unwrap();
    config.gpio.board = bundled_board_folder().join("orin-nano-devkit.toml");
    config.gpio.map = BoardMap::load(&config.gpio.board).unwrap();
    config.validate_pins().unwrap();
    config
}

#[test]
fn pins_must_be_on_the_board_and_drive_one_thing() {
    let mut config = with_nano_map();
    config.ejectors[0].pin = 8;
    let error = config.validate_pins().unwrap_err().to_string();
    assert!(
        error.contains("ejectors[0].pin: pin 8 is not a GPIO"),
        "{error}"
    );
    assert!(error.contains("7, 11, 12"), "{error}");

    let mut config = with_nano_map();
    config.gpio.estop = Some(EstopConfig {
        pin: 29,
        active: ActiveLevel::Low,
        debounce_ms: 20,
        remote_reset: false,
    });
    let error = config.validate_pins().unwrap_err().to_string();
    assert!(
        error.contains(
            "gpio.estop.pin: pin 29 (tegra234-gpio line 105) is already used by ejectors[0].pin"
        ),
        "{error}"
    );

    // A corrected map that puts two header pins on one line.
    let mut config = with_nano_map();
    let mut second = config.ejectors[0].clone();
    second.lane = "nuts".into();
    second.pin = 31;
    config.ejectors.push(second);
    config
        .gpio
        .map
        .pins
        .iter_mut()
        .find(|m| m.pin == 31)
        .unwrap()
        .line = 105;
    let error = config.validate_pins().unwrap_err().to_string();
    assert!(error.contains("ejectors[1].pin: pin 31"), "{error}");
}

#[test]
fn safety_limits_are_checked() {
    assert!(error_for(|c| c.safety.max_duty_percent = 0.0).contains("safety.max_duty_percent"));
    assert!(
        error_for(|c| c.ejectors[0].max_duty_percent = Some(120.0))
            .contains("ejectors[0].max_duty_percent")
    );
    assert!(error_for(|c| c.safety.min_gap_ms = 500).contains("safety.min_gap_ms"));
    assert!(error_for(|c| c.gpio.realtime_priority = 120).contains("gpio.realtime_priority"));
    assert!(
        error_for(|c| {
            c.gpio.encoder = Some(EncoderConfig {
                pin: 33,
                mm_per_count: 0.0,
                silent_ms: 1000,
            })
        })
        .contains("gpio.encoder.mm_per_count")
    );
    assert!(
        error_for(|c| {
            c.gpio.encoder = Some(EncoderConfig {
                pin: 33,
                mm_per_count: 0.5,
                silent_ms: 10,
            })
        })
        .contains("gpio.encoder.silent_ms")
    );
    assert!(
        error_for(|c| {
            c.gpio.estop = None;
            c.gpio.reset = Some(ResetConfig {
                pin: 33,
                active: ActiveLevel::High,
            })
        })
        .contains("gpio.reset: a reset button needs an e-stop")
    );
}

#[test]
fn a_v4l2_camera_is_configured_by_device_formats_and_controls() {
    let live = EXAMPLE.replace(
        "replay = \"clip\"",
        "device = \"/dev/v4l/by-id/usb-cam-video-index0\"\n    formats = [\"mjpg\", \"YUYV\"]\n    \
         controls = { exposure_us = 800, gain = 16 }",
    );
    let config = Config::parse(&live).unwrap();
    let camera = &config.camera;
    assert_eq!(camera.replay, None);
    assert_eq!(
        camera.formats,
        [
            CaptureFormat::Mjpeg,
            CaptureFormat::Raw(crate::PixelFormat::Yuyv)
        ]
    );
    assert_eq!((camera.buffers, camera.stall_ms), (4, 1000));
    assert_eq!(
        camera.controls,
        CameraControls {
            exposure_us: Some(800),
            gain: Some(16),
            ..CameraControls::default()
        }
    );
    // Left out, every format edgesort reads is acceptable, raw ones first.
    let replay = Config::parse(EXAMPLE).unwrap();
    assert_eq!(replay.camera.formats, CaptureFormat::ALL);
}

#[test]
fn camera_mistakes_name_the_field() {
    let unknown = Config::parse(&EXAMPLE.replace("fps = 60.0", "fps = 60.0\nformats = [\"H264\"]"))
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("unknown camera format \"H264\"; edgesort reads YUYV, NV12"),
        "{unknown}"
    );
    assert_eq!(
        error_for(|config| config.camera.replay = None),
        "invalid config: camera: names neither a device (e.g. device = \"/dev/video0\") nor a \
         replay folder"
    );
    assert_eq!(
        error_for(|config| config.camera.buffers = 1),
        "invalid config: camera.buffers: 1 is outside 2..=32"
    );
    assert!(error_for(|config| config.camera.formats.clear()).contains("camera.formats"));
    assert!(error_for(|config| config.camera.stall_ms = 10).contains("camera.stall_ms"));
}

/// The configuration the .deb installs as /etc/edgesort/line/edgesort.toml: it
/// must load as the box loads it, and read its model and stills through the
/// update slot, or every update fails its health check.
#[test]
fn box_config_loads_and_reads_the_model_through_the_update_slot() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../board/edgesort-box.toml");
    // The pin map as the package installs it, read from the source tree.
    let text = std::fs::read_to_string(&path).unwrap();
    let pins = "\"/etc/edgesort/pins/";
    assert!(
        text.contains(pins),
        "the box config names its pin map elsewhere"
    );
    let board = path.with_file_name("pins");
    let text = text.replace(pins, &format!("\"{}/", board.display()));
    let config = Config::from_file_text(&text, &path).unwrap();
    let system_path = path.with_file_name("system.toml");
    let text = std::fs::read_to_string(&system_path).unwrap();
    let system = SystemConfig::from_file_text(&text, Path::new(SYSTEM_CONFIG_PATH)).unwrap();
    assert_eq!(system.data_dir, config.engine.data_dir);
    let slot = system.ota.dir.join("current");
    assert_eq!(slot, Path::new("/var/lib/edgesort/ota/current"));
    assert!(config.model.path.starts_with(slot.join("model")));
    let stills = slot.join("calibration");
    assert!(config.engine.calibration_images.starts_with(&stills));
    assert!(config.engine.validation_images.starts_with(&stills));
    let camera = config.camera.device.as_deref();
    assert_eq!(camera, Some(Path::new("/dev/video0")));
    assert_eq!(config.camera.replay, None);
    // Open to the plant network, so over HTTPS, with the box's own
    // certificate on its data partition.
    assert!(!config.api.bind.ip().is_loopback());
    assert!(config.api.tls.enabled);
    assert_eq!(
        config.api.tls.certificate(&config.engine.data_dir),
        ApiCertificate::SelfSigned {
            cert: PathBuf::from("/var/lib/edgesort/api-cert.pem"),
            key: PathBuf::from("/var/lib/edgesort/api-key.pem"),
        }
    );
}
