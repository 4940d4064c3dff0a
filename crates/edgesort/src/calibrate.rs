use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use edgesort_calibrate::{
    Method, Settings, calibrate_folder, first_frames, layer_sensitivity, peak_rss_mib,
    tensor_ranges, trt8_version, write_atomically, write_cache,
};
use edgesort_eval::{Dataset, EVALUATION_PARAMS, Evaluation, Protocol, evaluate};
use edgesort_infer::Detector;
use edgesort_infer_tract::TractBackend;
use edgesort_types::config::Config;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::BUNDLED_CONFIG;

#[derive(clap::Args)]
pub struct CalibrateArgs {
    /// FP32 ONNX model to quantize; defaults to the configuration's model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Folder of calibration images (*.jpg), frames like the line's camera sees.
    #[arg(long)]
    pub images: PathBuf,
    /// How activation ranges are chosen [default: the configuration's].
    #[arg(long, value_enum)]
    pub method: Option<MethodArg>,
    /// The percentile method's percentage [default: the configuration's].
    #[arg(long)]
    pub percentile: Option<f64>,
    /// Use at most this many images.
    #[arg(long)]
    pub max_images: Option<usize>,
    /// Fewer usable images than this is an error [default: the configuration's].
    #[arg(long)]
    pub min_images: Option<usize>,
    /// A Conv node to keep in float (repeatable), besides the box/class
    /// decode and the configuration's `float_nodes`.
    #[arg(long = "float-node")]
    pub float_nodes: Vec<String>,
    /// Ignore the configuration's `float_nodes`: start from the decode alone.
    #[arg(long)]
    pub only_decode_in_float: bool,
    /// Validation set in YOLO format: compare the Q/DQ model's accuracy with
    /// the FP32 model's.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Largest mAP50-95 drop, in points, the accuracy gate accepts
    /// [default: the configuration's].
    #[arg(long)]
    pub max_drop: Option<f64>,
    /// Configuration giving the class names and the model's input size.
    #[arg(long, default_value = BUNDLED_CONFIG)]
    pub config: PathBuf,
    /// Inference threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Where to write the Q/DQ model. The JSON report goes beside it
    /// (`.report.json`), and so does TensorRT 8.x's calibration cache
    /// (`.calibration.cache`).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum MethodArg {
    Entropy,
    Percentile,
    Max,
}

/// The TensorRT 8.x release whose cache header we write: JetPack 6.0's.
const CACHE_TRT_VERSION: (u32, u32, u32) = (8, 6, 2);

#[derive(Serialize)]
struct Accuracy {
    map50: f64,
    map50_95: f64,
}

impl From<&Evaluation> for Accuracy {
    fn from(evaluation: &Evaluation) -> Self {
        Accuracy {
            map50: evaluation.map50,
            map50_95: evaluation.map50_95,
        }
    }
}

/// Calibration images the per-layer sensitivity runs on: enough to cover
/// the classes, few enough for each of the ~60 single-layer models.
const SENSITIVITY_FRAMES: usize = 8;
/// How many of the most sensitive layers the gate floats, in turn.
const WIDENING_STEPS: [usize; 5] = [1, 2, 4, 8, 16];

#[derive(Serialize)]
struct Attempt {
    float_convs: Vec<String>,
    qdq: Accuracy,
    drop_points: f64,
    passed: bool,
}

/// What the accuracy gate settled on.
#[derive(Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// INT8 with the configured float set.
    Int8,
    /// INT8 after floating the most sensitive layers.
    Int8Widened,
    /// No float set up to the widest tried kept the accuracy: build the
    /// engine in FP16; no Q/DQ model is written.
    Fp16,
}

#[derive(Serialize)]
struct Gate {
    val: PathBuf,
    fp32: Accuracy,
    max_drop_points: f64,
    attempts: Vec<Attempt>,
    outcome: Outcome,
}

pub fn run_calibrate_command(args: CalibrateArgs) -> Result<()> {
    let config = Config::load(&args.config)?;
    let model = args.model.clone().unwrap_or(config.model.path.clone());
    let classes = &config.model.classes;
    // Loading it as a detector refuses non-YOLO models before any work.
    let detector = Detector::new(
        TractBackend::load(&model)?,
        classes.len(),
        config.model.input_size,
        EVALUATION_PARAMS,
    )?;
    let input_shape = detector.input_shape();
    drop(detector);
    let defaults = &config.calibration;
    let percentile = args.percentile.unwrap_or(defaults.percentile);
    let method = match args.method {
        Some(MethodArg::Entropy) => Method::Entropy,
        Some(MethodArg::Percentile) => Method::Percentile(percentile),
        Some(MethodArg::Max) => Method::Max,
        None => match Method::configured(defaults) {
            Method::Percentile(_) => Method::Percentile(percentile),
            method => method,
        },
    };
    let max_drop = args.max_drop.unwrap_or(defaults.max_drop_points);
    let mut float_nodes = if args.only_decode_in_float {
        Vec::new()
    } else {
        defaults.float_nodes.clone()
    };
    float_nodes.extend(args.float_nodes.iter().cloned());
    let settings = Settings {
        method,
        max_images: args.max_images,
        min_images: args.min_images.unwrap_or(defaults.min_images),
        float_nodes,
        float_decode: true,
        threads: args.threads,
    };
    let progress = bar("calibrating")?;
    let mut calibration =
        calibrate_folder(&model, input_shape, &args.images, &settings, |done, all| {
            progress.set_length(all as u64);
            progress.set_position(done as u64);
        })?;
    progress.finish_and_clear();
    let cache_path = beside(&args.out, "calibration.cache");
    let calibration_seconds = calibration.seconds;
    let calibration_peak_rss_mib = peak_rss_mib();

    let mut sensitivity = Vec::new();
    let gate = match &args.val {
        Some(val) => {
            let dataset = Dataset::open(val, classes.len())?;
            let fp32 = evaluate_model(&model, &dataset, classes, &config, args.threads)?;
            let scratch = tempfile::tempdir().context("scratch folder for candidate models")?;
            let candidate = scratch.path().join("candidate.qdq.onnx");
            let mut attempts = Vec::new();
            let try_float = |calibration: &edgesort_calibrate::FolderCalibration,
                             attempts: &mut Vec<Attempt>|
             -> Result<bool> {
                write_atomically(&candidate, &calibration.qdq_bytes())?;
                let qdq = evaluate_model(&candidate, &dataset, classes, &config, args.threads)?;
                let drop_points = (fp32.map50_95 - qdq.map50_95) * 100.0;
                let passed = drop_points <= max_drop;
                attempts.push(Attempt {
                    float_convs: calibration.plan.float_convs.clone(),
                    qdq: Accuracy::from(&qdq),
                    drop_points,
                    passed,
                });
                Ok(passed)
            };
            let mut outcome = Outcome::Int8;
            if !try_float(&calibration, &mut attempts)? {
                let frames = first_frames(&args.images, SENSITIVITY_FRAMES)?;
                let progress = bar("measuring per-layer sensitivity")?;
                sensitivity = layer_sensitivity(
                    &model,
                    &calibration.model,
                    &calibration.plan,
                    &calibration.ranges.measured,
                    &frames,
                    input_shape,
                    args.threads,
                    |done, all| {
                        progress.set_length(all as u64);
                        progress.set_position(done as u64);
                    },
                )?;
                progress.finish_and_clear();
                outcome = Outcome::Fp16;
                for count in WIDENING_STEPS {
                    let extra: Vec<String> = sensitivity
                        .iter()
                        .take(count)
                        .map(|layer| layer.conv.clone())
                        .collect();
                    let widened = calibration.with_float(&extra);
                    if try_float(&widened, &mut attempts)? {
                        calibration = widened;
                        outcome = Outcome::Int8Widened;
                        break;
                    }
                }
            }
            Some(Gate {
                val: val.clone(),
                fp32: Accuracy::from(&fp32),
                max_drop_points: max_drop,
                attempts,
                outcome,
            })
        }
        None => None,
    };
    let outcome = gate.as_ref().map_or(Outcome::Int8, |gate| gate.outcome);
    if outcome != Outcome::Fp16 {
        write_atomically(&args.out, &calibration.qdq_bytes())?;
        let (major, minor, patch) = CACHE_TRT_VERSION;
        write_atomically(
            &cache_path,
            write_cache(
                trt8_version(major, minor, patch),
                &calibration.ranges.shared,
            )
            .as_bytes(),
        )?;
    }
    let report = serde_json::json!({
        "model": model,
        "out": args.out,
        "calibration_cache": cache_path,
        "images": args.images,
        "images_used": calibration.images_used,
        "images_skipped": calibration.images_skipped.iter().map(|(path, reason)| serde_json::json!({"image": path, "reason": reason})).collect::<Vec<_>>(),
        "method": method,
        "quantized_convs": calibration.plan.quantized_convs.len(),
        "float_convs": calibration.plan.float_convs,
        "tensors": tensor_ranges(&calibration.plan, &calibration.ranges),
        "calibration_seconds": calibration_seconds,
        "calibration_peak_rss_mib": calibration_peak_rss_mib,
        "accuracy_gate": gate,
        "sensitivity": sensitivity,
        "outcome": outcome,
    });
    let report_path = beside(&args.out, "report.json");
    write_atomically(
        &report_path,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    println!(
        "{}: {} Conv layers in INT8, {} in float, {} tensors with Q/DQ; {} images ({} skipped) in {:.1} s, peak memory {}",
        args.out.display(),
        calibration.plan.quantized_convs.len(),
        calibration.plan.float_convs.len(),
        calibration.plan.tensors.len(),
        calibration.images_used,
        calibration.images_skipped.len(),
        calibration_seconds,
        calibration_peak_rss_mib.map_or("unknown".into(), |mib| format!("{mib:.0} MiB")),
    );
    if let Some(gate) = &gate {
        println!(
            "accuracy on {}: FP32 mAP50-95 {:.4} (mAP50 {:.4}), limit {:.2} points",
            gate.val.display(),
            gate.fp32.map50_95,
            gate.fp32.map50,
            gate.max_drop_points
        );
        for attempt in &gate.attempts {
            println!(
                "  {} Conv in float: Q/DQ mAP50-95 {:.4} (mAP50 {:.4}), drop {:.2} points: {}",
                attempt.float_convs.len(),
                attempt.qdq.map50_95,
                attempt.qdq.map50,
                attempt.drop_points,
                if attempt.passed { "passed" } else { "failed" }
            );
        }
    }
    match outcome {
        Outcome::Int8 | Outcome::Int8Widened => {
            println!("wrote {} and {}", args.out.display(), cache_path.display())
        }
        Outcome::Fp16 => println!(
            "no float set kept the accuracy: build this model in FP16 ({} not written)",
            args.out.display()
        ),
    }
    println!("report: {}", report_path.display());
    Ok(())
}

fn bar(message: &str) -> Result<ProgressBar> {
    let progress = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images, {eta} left")
            .context("progress template")?,
    );
    progress.set_message(message.to_owned());
    Ok(progress)
}

fn evaluate_model(
    model: &Path,
    dataset: &Dataset,
    classes: &[String],
    config: &Config,
    threads: usize,
) -> Result<Evaluation> {
    let mut detector = Detector::new(
        TractBackend::load(model)?.with_threads(threads),
        classes.len(),
        config.model.input_size,
        EVALUATION_PARAMS,
    )?;
    let progress = bar(&format!("evaluating {}", model.display()))?;
    progress.set_length(dataset.images.len() as u64);
    let evaluation = evaluate(
        &mut detector,
        dataset,
        classes,
        0.25,
        Protocol::Ultralytics,
        |done| progress.set_position(done as u64),
    )?;
    progress.finish_and_clear();
    Ok(evaluation)
}

/// `model.qdq.onnx` → `model.qdq.<suffix>`.
fn beside(out: &Path, suffix: &str) -> PathBuf {
    out.with_extension(suffix)
}
