use std::path::PathBuf;

use anyhow::{Context, Result};
use edgesort_eval::{Dataset, EVALUATION_PARAMS, Evaluation, Protocol, evaluate};
use edgesort_infer::Detector;
use edgesort_infer_tract::TractBackend;
use edgesort_types::config::Config;
use indicatif::{ProgressBar, ProgressStyle};

use crate::BUNDLED_CONFIG;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Dataset folder in YOLO format: images/*.jpg and labels/*.txt.
    #[arg(long)]
    pub data: PathBuf,
    /// ONNX model to evaluate; defaults to the configuration's model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Configuration giving the class names and the model's input size.
    #[arg(long, default_value = BUNDLED_CONFIG)]
    pub config: PathBuf,
    /// Confidence at which precision and recall are counted (the mAP figures
    /// use every detection down to 0.001).
    #[arg(long, default_value_t = 0.25)]
    pub report_confidence: f32,
    /// Feed a dynamic model this input size, WIDTHxHEIGHT (e.g. 640x640 to
    /// compare with a square export); by default frames get the runtime's
    /// stride-aligned rectangle.
    #[arg(long, value_parser = parse_size)]
    pub input: Option<(u32, u32)>,
    /// Whose matching and AP rules to follow: `ultralytics` (the figures
    /// quoted for YOLO models) or `coco` (pycocotools).
    #[arg(long, value_enum, default_value_t = ProtocolArg::Ultralytics)]
    pub protocol: ProtocolArg,
    /// Inference threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ProtocolArg {
    Ultralytics,
    Coco,
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (width, height) = text
        .split_once('x')
        .ok_or_else(|| format!("{text:?} is not WIDTHxHEIGHT"))?;
    let number = |part: &str| {
        part.parse::<u32>()
            .ok()
            .filter(|&n| n > 0 && n % 32 == 0)
            .ok_or_else(|| format!("{part:?} is not a positive multiple of 32"))
    };
    Ok((number(width)?, number(height)?))
}

pub fn run_eval_command(args: EvalArgs) -> Result<()> {
    let config = Config::load(&args.config)?;
    let model = args.model.unwrap_or(config.model.path.clone());
    let classes = &config.model.classes;
    let dataset = Dataset::open(&args.data, classes.len())?;
    let backend = TractBackend::load(&model)?.with_threads(args.threads);
    let mut detector = Detector::new(
        backend,
        classes.len(),
        config.model.input_size,
        EVALUATION_PARAMS,
    )?;
    if let Some((width, height)) = args.input {
        detector = detector.with_fixed_input(width, height)?;
    }
    let progress = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(dataset.images.len() as u64).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images, {eta} left")
                .context("progress template")?,
        )
    };
    progress.set_message(format!("evaluating {}", model.display()));
    let evaluation = evaluate(
        &mut detector,
        &dataset,
        classes,
        args.report_confidence,
        match args.protocol {
            ProtocolArg::Ultralytics => Protocol::Ultralytics,
            ProtocolArg::Coco => Protocol::Coco,
        },
        |done| progress.set_position(done as u64),
    )?;
    progress.finish_and_clear();
    if args.json {
        let per_class = evaluation
            .per_class
            .iter()
            .map(|class| Ok((class.class.clone(), serde_json::to_value(class)?)))
            .collect::<Result<serde_json::Map<_, _>>>()?;
        let document = serde_json::json!({
            "model": model,
            "data": args.data,
            "map50": evaluation.map50,
            "map50_95": evaluation.map50_95,
            "precision": evaluation.precision,
            "recall": evaluation.recall,
            "report_confidence": evaluation.report_confidence,
            "protocol": evaluation.protocol,
            "images": evaluation.images,
            "instances": evaluation.instances,
            "per_class": per_class,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print_table(&evaluation, &model, &args.data);
    }
    Ok(())
}

fn print_table(evaluation: &Evaluation, model: &std::path::Path, data: &std::path::Path) {
    println!(
        "{} on {}: {} images, {} objects",
        model.display(),
        data.display(),
        evaluation.images,
        evaluation.instances
    );
    println!(
        "{:<10} {:>9} {:>10} {:>9} {:>8} {:>7} {:>9}",
        "class", "objects", "detections", "precision", "recall", "AP50", "AP50-95"
    );
    let show = |value: Option<f64>| value.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
    for class in &evaluation.per_class {
        println!(
            "{:<10} {:>9} {:>10} {:>9} {:>8} {:>7} {:>9}",
            class.class,
            class.instances,
            class.detections,
            show(class.precision),
            show(class.recall),
            show(class.ap50),
            show(class.ap50_95)
        );
    }
    println!(
        "{:<10} {:>9} {:>10} {:>9.3} {:>8.3} {:>7.3} {:>9.3}",
        "all",
        evaluation.instances,
        evaluation
            .per_class
            .iter()
            .map(|c| c.detections)
            .sum::<usize>(),
        evaluation.precision,
        evaluation.recall,
        evaluation.map50,
        evaluation.map50_95
    );
    println!(
        "precision and recall at confidence {}; AP over IoU 0.50:0.05:0.95 at 101 recall points, {:?} rules",
        evaluation.report_confidence, evaluation.protocol
    );
}
