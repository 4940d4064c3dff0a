//! The edgesort configuration file.
//!
//! One TOML file describes the camera, the model, the belt, the ejectors and the
//! sorting rules. [`Config::load`] parses it, resolves relative paths against the
//! file's own folder and validates it; every error names the field it concerns,
//! e.g. `ejectors[1].pulse_ms: 400 ms is longer than safety.max_pulse_ms (100 ms)`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::board::{BoardMap, LineAddress};

mod api;
mod camera;
mod gpio;
mod ota;
mod system;

pub use api::{
    ApiCertificate, ApiConfig, ApiTlsConfig, SELF_SIGNED_CERT_FILE, SELF_SIGNED_KEY_FILE,
};
pub use camera::{CameraConfig, CameraControls};
pub use gpio::{ActiveLevel, EncoderConfig, EstopConfig, GpioConfig, ResetConfig};
pub use ota::OtaConfig;
pub use system::{SYSTEM_CONFIG_PATH, SystemConfig};

/// No ejector valve needs a pulse this long; a longer one means a typo that
/// would hold an air jet open.
pub const HARD_MAX_PULSE_MS: u32 = 1000;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has a field of the wrong type or an unknown field.
    #[error("cannot parse config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the field and line.
        source: Box<toml::de::Error>,
    },
    /// A configuration or settings file is not a plain file, or cannot be
    /// opened without following a link.
    #[error("cannot open {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What was found there.
        #[source]
        source: Box<crate::BeneathError>,
    },
    /// A settings file root acts on could be written by someone other than
    /// root.
    #[error("refusing {path}: it {reason}")]
    Untrusted {
        /// The file.
        path: PathBuf,
        /// Who could have written it.
        reason: String,
    },
    /// A field holds a value that cannot work.
    #[error("invalid config: {field}: {reason}")]
    Invalid {
        /// Path of the field, e.g. `ejectors[1].pulse_ms`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where frames come from.
    pub camera: CameraConfig,
    /// The detector.
    pub model: ModelConfig,
    /// Belt speed and geometry.
    pub belt: BeltConfig,
    /// How detections become tracks.
    #[serde(default)]
    pub tracking: TrackingConfig,
    /// The board's pin map and the GPIO inputs.
    pub gpio: GpioConfig,
    /// One entry per ejector.
    pub ejectors: Vec<EjectorConfig>,
    /// Which class goes to which lane.
    pub rules: RulesConfig,
    /// Event database.
    pub store: StoreConfig,
    /// Limits that protect the machine.
    #[serde(default)]
    pub safety: SafetyConfig,
    /// How the box quantizes its model to INT8 on first boot.
    #[serde(default)]
    pub calibration: CalibrationConfig,
    /// How the box builds, checks and keeps its TensorRT engine.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The local HTTP API and status page.
    #[serde(default)]
    pub api: ApiConfig,
    /// An `[ota]` section left from before root's update settings moved to
    /// `system.toml` ([`SystemConfig`]). Nothing reads it: it is kept so
    /// that an `edgesort.toml` edited on a box before then still loads, and
    /// the daemon warns about it. `PUT /config` may not change it.
    #[serde(default, rename = "ota", skip_serializing_if = "Option::is_none")]
    pub ignored_ota: Option<toml::Table>,
}

/// The detector model.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// ONNX file.
    pub path: PathBuf,
    /// Class names in the model's output order.
    pub classes: Vec<String>,
    /// Detections scoring below this are dropped before tracking.
    #[serde(default = "default_confidence")]
    pub confidence: f32,
    /// Non-maximum suppression IoU threshold.
    #[serde(default = "default_iou")]
    pub iou: f32,
    /// The model's input size along the frame's long side, a multiple of 32.
    #[serde(default = "default_input_size")]
    pub input_size: u32,
}

/// Which way parts travel across the image.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BeltDirection {
    /// Parts enter at x = 0 and leave at x = width.
    LeftToRight,
    /// Parts enter at x = width and leave at x = 0.
    RightToLeft,
}

impl BeltDirection {
    /// +1 when x grows downstream, -1 otherwise.
    pub fn sign(self) -> f64 {
        match self {
            BeltDirection::LeftToRight => 1.0,
            BeltDirection::RightToLeft => -1.0,
        }
    }
}

/// The belt's speed and how the camera sees it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BeltConfig {
    /// Belt speed.
    pub speed_mm_s: f64,
    /// Millimetres of belt per image pixel at the belt surface.
    pub mm_per_px: f64,
    /// Direction of travel in the image.
    pub direction: BeltDirection,
    /// Image column of the camera reference line from which ejector distances
    /// are measured; the image centre when absent.
    #[serde(default)]
    pub reference_line_px: Option<f64>,
}

/// Tracking parameters; the defaults suit belts moving up to ~40 px per frame.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingConfig {
    /// How far (px) a detection may sit from where the belt motion predicts
    /// a track to be and still belong to it.
    pub gate_px: f64,
    /// A track not seen for this long inside the field of view is closed.
    pub max_unseen_ms: f64,
    /// Tracks seen in fewer frames are discarded as noise.
    pub min_hits: u32,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            gate_px: 24.0,
            max_unseen_ms: 200.0,
            min_hits: 3,
        }
    }
}

/// One ejector (air nozzle or flap) downstream of the camera.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EjectorConfig {
    /// The lane this ejector sends parts to.
    pub lane: String,
    /// Header pin that drives it, a pin of the board map (`gpio.board`).
    pub pin: u32,
    /// Distance downstream of the camera reference line, in mm.
    pub distance_mm: f64,
    /// Pulse length.
    pub pulse_ms: u32,
    /// This valve's duty-cycle limit, when it differs from
    /// `safety.max_duty_percent`.
    #[serde(default)]
    pub max_duty_percent: Option<f64>,
}

/// Sorting rules.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Lane for parts no rule ejects: low confidence, disabled or unlisted
    /// classes. It may have no ejector (the end of the belt).
    pub default_lane: String,
    /// Parts whose class confidence is below this go to the default lane.
    pub confidence_floor: f32,
    /// One rule per class.
    #[serde(rename = "class")]
    pub classes: Vec<ClassRule>,
}

/// Where one class goes.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassRule {
    /// Class name, one of `model.classes`.
    pub class: String,
    /// Lane for this class.
    pub lane: String,
    /// When false the class goes to the default lane.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// The event database.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite file.
    pub path: PathBuf,
    /// Parts older than this many days are deleted.
    #[serde(default = "default_max_age_days")]
    pub max_age_days: u32,
    /// The database and its write-ahead log together stay under this many
    /// MiB: the oldest parts go first, whatever their age.
    #[serde(default = "default_max_mb")]
    pub max_mb: u32,
}

/// Below this the write-ahead log alone (about 4 MiB between checkpoints)
/// would take most of the budget, and retention would delete nearly every
/// part it runs on.
pub const MIN_STORE_MB: u32 = 16;

impl StoreConfig {
    /// How old a part may grow before retention deletes it.
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(u64::from(self.max_age_days) * 24 * 3600)
    }

    /// The size on disk retention keeps the database under, in bytes.
    pub fn max_bytes(&self) -> u64 {
        u64::from(self.max_mb) * 1024 * 1024
    }
}

/// Limits that keep the ejectors safe.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SafetyConfig {
    /// No pulse may be longer than this.
    pub max_pulse_ms: u32,
    /// When no frame has been processed for this long, outputs go low and
    /// pending pulses are dropped.
    pub stall_timeout_ms: u32,
    /// Pulses on one ejector closer than this are merged into one, because a
    /// valve cannot close and reopen in less.
    pub min_gap_ms: u32,
    /// No valve is open for more than this share of any second.
    pub max_duty_percent: f64,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            max_pulse_ms: 100,
            stall_timeout_ms: 500,
            min_gap_ms: 10,
            max_duty_percent: 50.0,
        }
    }
}

/// How activation ranges are chosen during INT8 calibration.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CalibrationMethod {
    /// Minimum KL divergence (TensorRT's EntropyCalibration2).
    Entropy,
    /// The `percentile` of magnitudes.
    Percentile,
    /// The largest magnitude.
    Max,
}

/// INT8 calibration settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CalibrationConfig {
    /// How activation ranges are chosen.
    pub method: CalibrationMethod,
    /// The percentile method's percentage.
    pub percentile: f64,
    /// Conv nodes kept in float besides the box/class decode, as the
    /// per-layer sensitivity of this model found them.
    pub float_nodes: Vec<String>,
    /// Largest mAP50-95 drop (points) the accuracy gate accepts.
    pub max_drop_points: f64,
    /// Fewer usable calibration images than this is an error.
    pub min_images: usize,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        CalibrationConfig {
            method: CalibrationMethod::Max,
            percentile: 99.99,
            float_nodes: Vec::new(),
            max_drop_points: 1.0,
            min_images: 32,
        }
    }
}

/// Numeric precision of a TensorRT engine.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// INT8 from the Q/DQ model the box calibrates for itself.
    Int8,
    /// Half precision.
    Fp16,
    /// Full precision.
    Fp32,
}

impl Precision {
    /// The precisions tried, in order, when this one is asked for: a build
    /// that fails or disagrees with the CPU reference falls back to the next.
    pub fn fallback_chain(self) -> &'static [Precision] {
        match self {
            Precision::Int8 => &[Precision::Int8, Precision::Fp16, Precision::Fp32],
            Precision::Fp16 => &[Precision::Fp16, Precision::Fp32],
            Precision::Fp32 => &[Precision::Fp32],
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Precision::Int8 => "int8",
            Precision::Fp16 => "fp16",
            Precision::Fp32 => "fp32",
        })
    }
}

/// Whether the engine runs on a deep-learning accelerator.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DlaUse {
    /// DLA core 0 with GPU fallback where the board has DLA (AGX Orin, Orin
    /// NX); the GPU alone elsewhere (Orin Nano).
    Auto,
    /// The GPU alone.
    Off,
}

/// Which inference backend serves the line.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// The provisioned TensorRT engine once every check passes (its record,
    /// bytes, GPU, TensorRT, model and I/O); otherwise the CPU, with the
    /// `engine_fallback` alarm naming the check that failed.
    #[default]
    Auto,
    /// The provisioned TensorRT engine or nothing: the line refuses to
    /// start, naming the reason.
    Tensorrt,
    /// tract on the CPU, whatever is provisioned.
    Cpu,
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Tensorrt => "tensorrt",
            BackendChoice::Cpu => "cpu",
        })
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(BackendChoice::Auto),
            "tensorrt" | "gpu" => Ok(BackendChoice::Tensorrt),
            "cpu" => Ok(BackendChoice::Cpu),
            other => Err(format!(
                "unknown backend {other:?}: auto, tensorrt (or gpu) or cpu"
            )),
        }
    }
}

/// TensorRT engine settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Which backend serves the line; see [`BackendChoice`].
    pub backend: BackendChoice,
    /// The precision asked for; see [`Precision::fallback_chain`].
    pub precision: Precision,
    /// The data partition: engine cache, timing cache, calibrated model and
    /// provisioning state live here so that an A/B update keeps them.
    pub data_dir: PathBuf,
    /// Stills the box calibrates INT8 on.
    pub calibration_images: PathBuf,
    /// Stills every new engine is checked on against the CPU reference.
    pub validation_images: PathBuf,
    /// How many of `validation_images` are used.
    pub validation_count: usize,
    /// Share of the reference's detections the engine must find (same class,
    /// IoU at least `validation_iou`).
    pub min_recall: f64,
    /// Largest share of the engine's detections the reference does not have.
    pub max_extra: f64,
    /// IoU at which an engine box matches a reference box.
    pub validation_iou: f32,
    /// DLA use.
    pub dla: DlaUse,
    /// Builder workspace limit; chosen from the board's free memory when
    /// left out.
    pub workspace_mib: Option<u64>,
    /// Engines kept in the cache, the active one included, so that rolling
    /// an update back finds its engine still built.
    pub keep_engines: usize,
    /// Replay each frame's GPU work (letterbox, engine, decode and NMS) as
    /// one captured CUDA graph; validation replays the engine alone so.
    pub cuda_graph: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            backend: BackendChoice::Auto,
            precision: Precision::Int8,
            data_dir: PathBuf::from("/var/lib/edgesort"),
            calibration_images: PathBuf::from("/usr/share/edgesort/calibration/images"),
            validation_images: PathBuf::from("/usr/share/edgesort/calibration/images"),
            validation_count: 16,
            min_recall: 0.95,
            max_extra: 0.05,
            validation_iou: 0.5,
            dla: DlaUse::Auto,
            workspace_mib: None,
            keep_engines: 3,
            cuda_graph: true,
        }
    }
}

fn default_confidence() -> f32 {
    0.25
}
fn default_iou() -> f32 {
    0.45
}
fn default_input_size() -> u32 {
    640
}
fn default_true() -> bool {
    true
}
fn default_max_age_days() -> u32 {
    90
}
fn default_max_mb() -> u32 {
    512
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn require_duty(field: &str, value: f64) -> Result<(), ConfigError> {
    if value > 0.0 && value <= 100.0 {
        Ok(())
    } else {
        Err(invalid(field, format!("{value}% is outside (0, 100]")))
    }
}

fn require_positive(field: &str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be a positive number, got {value}"),
        ))
    }
}

/// Opens the configuration or settings file at `path` without following a
/// link in its last component and without blocking on a FIFO.
fn open_config_file(path: &Path) -> Result<std::fs::File, ConfigError> {
    crate::open_regular_file(path).map_err(|error| match error {
        crate::BeneathError::Open { source, .. } => ConfigError::Read {
            path: path.to_owned(),
            source,
        },
        refused => ConfigError::Open {
            path: path.to_owned(),
            source: Box::new(refused),
        },
    })
}

/// The text of `file`, the file at `path`, up to [`MAX_CONFIG_BYTES`].
fn read_config_text(file: &std::fs::File, path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES)
        .read_to_string(&mut text)
        .map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
    Ok(text)
}

impl ConfigError {
    /// Whether the file was simply absent.
    pub fn is_not_found(&self) -> bool {
        match self {
            ConfigError::Read { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// Larger than any configuration or settings file; a bigger one is not read
/// into memory.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Config {
    /// Reads, parses and validates `path`; relative paths inside it are
    /// resolved against the file's folder. The file must be a plain file,
    /// not a link: root's tools read the line's configuration from a
    /// folder the daemon writes (`/etc/edgesort/line`), where a link could
    /// make them read, and quote in an error, a file only root may read.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_config_text(&open_config_file(path)?, path)?;
        Config::from_file_text(&text, path)
    }

    /// What [`Config::load`] makes of `text` as the contents of `path`:
    /// a new configuration is checked this way before it replaces the file.
    pub fn from_file_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::parse(text).map_err(|source| match source {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        config.gpio.map = BoardMap::load(&config.gpio.board)?;
        config.validate_pins()?;
        Ok(config)
    }

    /// Parses and validates TOML text; paths stay as written. The pins are
    /// checked against the board map only by [`Config::load`], which reads it.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(replay) = &mut self.camera.replay
            && replay.is_relative()
        {
            *replay = base.join(&*replay);
        }
        for path in [
            &mut self.model.path,
            &mut self.store.path,
            &mut self.engine.data_dir,
            &mut self.engine.calibration_images,
            &mut self.engine.validation_images,
            &mut self.gpio.board,
        ] {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        let tls = &mut self.api.tls;
        let tls_files = [&mut tls.cert_file, &mut tls.key_file]
            .into_iter()
            .flatten();
        for path in [&mut self.api.token_file, &mut self.api.read_token_file]
            .into_iter()
            .chain(tls_files)
        {
            if path.is_relative() {
                *path = self.engine.data_dir.join(&*path);
            }
        }
    }

    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let camera = &self.camera;
        if camera.device.is_none() && camera.replay.is_none() {
            return Err(invalid(
                "camera",
                "names neither a device (e.g. device = \"/dev/video0\") nor a replay folder",
            ));
        }
        if camera.formats.is_empty() {
            return Err(invalid("camera.formats", "lists no format"));
        }
        if !(2..=32).contains(&camera.buffers) {
            return Err(invalid(
                "camera.buffers",
                format!("{} is outside 2..=32", camera.buffers),
            ));
        }
        if camera.stall_ms < 100 {
            return Err(invalid(
                "camera.stall_ms",
                format!(
                    "{} ms would call a camera between two frames stalled",
                    camera.stall_ms
                ),
            ));
        }
        require_positive("camera.fps", camera.fps)?;
        if camera.width == 0 || camera.height == 0 {
            return Err(invalid(
                "camera.width",
                format!("frame size {}x{} is empty", camera.width, camera.height),
            ));
        }

        let model = &self.model;
        if model.classes.is_empty() {
            return Err(invalid("model.classes", "lists no class"));
        }
        if !(model.confidence > 0.0 && model.confidence <= 1.0) {
            return Err(invalid("model.confidence", "must lie in (0, 1]"));
        }
        if !(model.iou > 0.0 && model.iou <= 1.0) {
            return Err(invalid("model.iou", "must lie in (0, 1]"));
        }
        if model.input_size == 0 || !model.input_size.is_multiple_of(32) {
            return Err(invalid(
                "model.input_size",
                format!("{} is not a positive multiple of 32", model.input_size),
            ));
        }

        let belt = &self.belt;
        require_positive("belt.speed_mm_s", belt.speed_mm_s)?;
        require_positive("belt.mm_per_px", belt.mm_per_px)?;
        if let Some(line) = belt.reference_line_px
            && !(line.is_finite() && (0.0..=camera.width as f64).contains(&line))
        {
            return Err(invalid(
                "belt.reference_line_px",
                format!("{line} lies outside the image (0..{})", camera.width),
            ));
        }

        let tracking = &self.tracking;
        require_positive("tracking.gate_px", tracking.gate_px)?;
        require_positive("tracking.max_unseen_ms", tracking.max_unseen_ms)?;
        if tracking.min_hits == 0 {
            return Err(invalid("tracking.min_hits", "must be at least 1"));
        }

        let safety = &self.safety;
        if safety.max_pulse_ms == 0 || safety.max_pulse_ms > HARD_MAX_PULSE_MS {
            return Err(invalid(
                "safety.max_pulse_ms",
                format!("must lie in 1..={HARD_MAX_PULSE_MS} ms"),
            ));
        }
        if safety.stall_timeout_ms == 0 {
            return Err(invalid("safety.stall_timeout_ms", "must be at least 1 ms"));
        }
        if safety.min_gap_ms > safety.max_pulse_ms {
            return Err(invalid(
                "safety.min_gap_ms",
                format!(
                    "{} ms is longer than safety.max_pulse_ms ({} ms)",
                    safety.min_gap_ms, safety.max_pulse_ms
                ),
            ));
        }
        require_duty("safety.max_duty_percent", safety.max_duty_percent)?;

        let gpio = &self.gpio;
        if gpio.realtime_priority > 99 {
            return Err(invalid(
                "gpio.realtime_priority",
                "must lie in 0..=99 (0: no real-time scheduling)",
            ));
        }
        if gpio.spin_us > 5000 {
            return Err(invalid("gpio.spin_us", "must be at most 5000 µs"));
        }
        if let Some(estop) = &gpio.estop
            && estop.debounce_ms > 10_000
        {
            return Err(invalid(
                "gpio.estop.debounce_ms",
                "must be at most 10000 ms",
            ));
        }
        if gpio.reset.is_some() && gpio.estop.is_none() {
            return Err(invalid(
                "gpio.reset",
                "a reset button needs an e-stop to reset ([gpio.estop])",
            ));
        }
        if let Some(encoder) = &gpio.encoder {
            require_positive("gpio.encoder.mm_per_count", encoder.mm_per_count)?;
            if !(50..=60_000).contains(&encoder.silent_ms) {
                return Err(invalid(
                    "gpio.encoder.silent_ms",
                    "must lie in 50..=60000 ms",
                ));
            }
        }

        let calibration = &self.calibration;
        if !(calibration.percentile > 0.0 && calibration.percentile <= 100.0) {
            return Err(invalid("calibration.percentile", "must lie in (0, 100]"));
        }
        if calibration.max_drop_points.is_nan() || calibration.max_drop_points < 0.0 {
            return Err(invalid("calibration.max_drop_points", "must be 0 or more"));
        }
        if calibration.min_images == 0 {
            return Err(invalid("calibration.min_images", "must be at least 1"));
        }

        let engine = &self.engine;
        if engine.validation_count == 0 {
            return Err(invalid("engine.validation_count", "must be at least 1"));
        }
        if !(engine.min_recall > 0.0 && engine.min_recall <= 1.0) {
            return Err(invalid("engine.min_recall", "must lie in (0, 1]"));
        }
        if !(0.0..1.0).contains(&engine.max_extra) {
            return Err(invalid("engine.max_extra", "must lie in [0, 1)"));
        }
        if !(engine.validation_iou > 0.0 && engine.validation_iou < 1.0) {
            return Err(invalid("engine.validation_iou", "must lie in (0, 1)"));
        }
        if engine.workspace_mib == Some(0) {
            return Err(invalid("engine.workspace_mib", "must be at least 1 MiB"));
        }
        if engine.keep_engines == 0 {
            return Err(invalid(
                "engine.keep_engines",
                "must be at least 1 (the active engine)",
            ));
        }

        let store = &self.store;
        if store.max_age_days == 0 {
            return Err(invalid("store.max_age_days", "must be at least 1 day"));
        }
        if store.max_mb < MIN_STORE_MB {
            return Err(invalid(
                "store.max_mb",
                format!(
                    "{} MiB is below the minimum of {MIN_STORE_MB} MiB",
                    store.max_mb
                ),
            ));
        }

        self.api.validate()?;
        self.validate_ejectors()?;
        self.validate_rules()
    }

    fn validate_ejectors(&self) -> Result<(), ConfigError> {
        if self.ejectors.is_empty() {
            return Err(invalid("ejectors", "lists no ejector"));
        }
        let field_of_view_exit_mm = self.field_of_view_exit_px() * self.belt.mm_per_px;
        let mut lanes = HashSet::new();
        let mut pins = HashSet::new();
        for (index, ejector) in self.ejectors.iter().enumerate() {
            let field = |name: &str| format!("ejectors[{index}].{name}");
            if ejector.lane.is_empty() {
                return Err(invalid(field("lane"), "is empty"));
            }
            if !lanes.insert(ejector.lane.as_str()) {
                return Err(invalid(
                    field("lane"),
                    format!("lane {:?} has two ejectors", ejector.lane),
                ));
            }
            if !pins.insert(ejector.pin) {
                return Err(invalid(
                    field("pin"),
                    format!("pin {} drives two ejectors", ejector.pin),
                ));
            }
            require_positive(&field("distance_mm"), ejector.distance_mm)?;
            if ejector.distance_mm <= field_of_view_exit_mm {
                return Err(invalid(
                    field("distance_mm"),
                    format!(
                        "{} mm is inside the camera's field of view, which ends {:.1} mm \
                         downstream of the reference line; a part is decided only once it has left it",
                        ejector.distance_mm, field_of_view_exit_mm
                    ),
                ));
            }
            if let Some(duty) = ejector.max_duty_percent {
                require_duty(&field("max_duty_percent"), duty)?;
            }
            if ejector.pulse_ms == 0 || ejector.pulse_ms > self.safety.max_pulse_ms {
                return Err(invalid(
                    field("pulse_ms"),
                    format!(
                        "{} ms is outside 1..={} ms (safety.max_pulse_ms)",
                        ejector.pulse_ms, self.safety.max_pulse_ms
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks every configured pin against the loaded board map: it must be
    /// on the header, and no line may serve two purposes.
    pub fn validate_pins(&self) -> Result<(), ConfigError> {
        let map = &self.gpio.map;
        let mut users: Vec<(String, LineAddress)> = Vec::new();
        let inputs = [
            self.gpio
                .estop
                .as_ref()
                .map(|estop| ("gpio.estop.pin".to_string(), estop.pin)),
            self.gpio
                .reset
                .as_ref()
                .map(|reset| ("gpio.reset.pin".to_string(), reset.pin)),
            self.gpio
                .encoder
                .as_ref()
                .map(|encoder| ("gpio.encoder.pin".to_string(), encoder.pin)),
        ];
        let ejectors = self
            .ejectors
            .iter()
            .enumerate()
            .map(|(index, ejector)| Some((format!("ejectors[{index}].pin"), ejector.pin)));
        for (field, pin) in ejectors.chain(inputs).flatten() {
            let Some(mapping) = map.pin(pin) else {
                return Err(invalid(
                    field,
                    format!(
                        "pin {pin} is not a GPIO of the board map {} ({}); its GPIO pins are {}",
                        self.gpio.board.display(),
                        map.name,
                        map.pin_list()
                    ),
                ));
            };
            let address = mapping.address();
            if let Some((other, _)) = users.iter().find(|(_, used)| *used == address) {
                return Err(invalid(
                    field,
                    format!("pin {pin} ({address}) is already used by {other}"),
                ));
            }
            users.push((field, address));
        }
        Ok(())
    }

    fn validate_rules(&self) -> Result<(), ConfigError> {
        let rules = &self.rules;
        if rules.default_lane.is_empty() {
            return Err(invalid("rules.default_lane", "is empty"));
        }
        if !(0.0..=1.0).contains(&rules.confidence_floor) {
            return Err(invalid("rules.confidence_floor", "must lie in [0, 1]"));
        }
        let mut seen = HashSet::new();
        for (index, rule) in rules.classes.iter().enumerate() {
            let field = |name: &str| format!("rules.class[{index}].{name}");
            if !self.model.classes.contains(&rule.class) {
                return Err(invalid(
                    field("class"),
                    format!(
                        "{:?} is not a model class (model.classes = {:?})",
                        rule.class, self.model.classes
                    ),
                ));
            }
            if !seen.insert(rule.class.as_str()) {
                return Err(invalid(
                    field("class"),
                    format!("{:?} has two rules", rule.class),
                ));
            }
            if rule.lane != rules.default_lane && self.ejector(&rule.lane).is_none() {
                return Err(invalid(
                    field("lane"),
                    format!(
                        "lane {:?} has no ejector and is not the default lane",
                        rule.lane
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The ejector for `lane`, if the lane has one.
    pub fn ejector(&self, lane: &str) -> Option<&EjectorConfig> {
        self.ejectors.iter().find(|ejector| ejector.lane == lane)
    }

    /// Image column of the reference line.
    pub fn reference_line_px(&self) -> f64 {
        self.belt
            .reference_line_px
            .unwrap_or(self.camera.width as f64 / 2.0)
    }

    /// Distance in pixels from the reference line to the downstream image edge.
    pub fn field_of_view_exit_px(&self) -> f64 {
        match self.belt.direction {
            BeltDirection::LeftToRight => self.camera.width as f64 - self.reference_line_px(),
            BeltDirection::RightToLeft => self.reference_line_px(),
        }
    }

    /// Belt speed in image pixels per second, signed by direction.
    pub fn belt_velocity_px_s(&self) -> f64 {
        self.belt.direction.sign() * self.belt.speed_mm_s / self.belt.mm_per_px
    }

    /// The stall timeout as a duration.
    pub fn stall_timeout(&self) -> Duration {
        Duration::from_millis(self.safety.stall_timeout_ms.into())
    }
}

#[cfg(test)]
mod tests;
