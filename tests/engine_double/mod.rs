//! A stand-in for TensorRT in tests: builds "engines" that are checksummed
//! byte strings and loads them as a backend that answers with a fixed
//! scene. It lives under `tests/` and nothing in `crates/` can reach it.
//!
//! Like a real plan, a double plan refuses to load when truncated or
//! altered, so a cache that served a damaged file would be caught.

use std::path::Path;
use std::time::Duration;

use edgesort_engine::{
    BuildFailure, BuildJob, BuildOutput, BuildProgress, BuildTarget, EngineBuilder, sha256_hex,
};
use edgesort_infer::{Backend, InferError, ModelIo, TensorInfo};
use edgesort_types::config::Precision;

const MAGIC: &[u8] = b"EDGESORT-DOUBLE-PLAN/1\n";
const DIGEST_BYTES: usize = 64;
const CLASSES: usize = 5;
const STRIDES: [usize; 3] = [8, 16, 32];

/// What the double builds for and how it misbehaves.
pub struct DoubleBuilder {
    target: BuildTarget,
    /// Engines of these precisions load but see the wrong classes.
    pub disagreeing: Vec<Precision>,
    /// Builds of these precisions fail.
    pub unbuildable: Vec<Precision>,
    /// Builds asking for more workspace than this run out of memory.
    pub memory_bytes: Option<u64>,
    /// Engines never load (as after a driver mismatch).
    pub refuse_to_load: bool,
    /// How long a build takes, spread over ten progress steps.
    pub build_time: Duration,
    /// Size of a plan.
    pub plan_bytes: usize,
    /// Every build asked of it: precision and workspace.
    pub builds: Vec<(Precision, u64)>,
}

impl DoubleBuilder {
    pub fn new() -> Self {
        DoubleBuilder {
            target: BuildTarget {
                tensorrt: "10.3.0-double".into(),
                gpu: "Double GPU".into(),
                compute_capability: "8.7".into(),
                dla_cores: 0,
            },
            disagreeing: Vec::new(),
            unbuildable: Vec::new(),
            memory_bytes: None,
            refuse_to_load: false,
            build_time: Duration::ZERO,
            plan_bytes: 64 << 10,
            builds: Vec::new(),
        }
    }

    /// The same builder after a TensorRT upgrade.
    pub fn with_tensorrt(mut self, version: &str) -> Self {
        self.target.tensorrt = version.into();
        self
    }
}

impl EngineBuilder for DoubleBuilder {
    fn target(&self) -> &BuildTarget {
        &self.target
    }

    fn build(
        &mut self,
        job: &BuildJob<'_>,
        progress: &mut dyn FnMut(&BuildProgress),
    ) -> Result<BuildOutput, BuildFailure> {
        self.builds.push((job.precision, job.workspace_bytes));
        for step in 1..=10 {
            std::thread::sleep(self.build_time / 10);
            progress(&BuildProgress {
                phase: "Building engine".into(),
                step: Some((step, 10)),
            });
        }
        if self.unbuildable.contains(&job.precision) {
            return Err(BuildFailure {
                message: format!("double cannot build {}", job.precision),
                out_of_memory: false,
            });
        }
        if self
            .memory_bytes
            .is_some_and(|memory| job.workspace_bytes > memory)
        {
            return Err(BuildFailure {
                message: "Requested amount of GPU memory could not be allocated".into(),
                out_of_memory: true,
            });
        }
        Ok(BuildOutput {
            plan: encode_plan(job.precision, job.onnx, self.plan_bytes),
            timing_cache: format!("timing after {} builds", self.builds.len()).into_bytes(),
        })
    }

    fn load(&mut self, plan: &[u8], _dla_core: Option<u32>) -> Result<Box<dyn Backend>, String> {
        let precision = decode_plan(plan)?;
        if self.refuse_to_load {
            return Err("Serialization assertion failed: version mismatch".into());
        }
        let class_shift = if self.disagreeing.contains(&precision) {
            1
        } else {
            0
        };
        Ok(Box::new(SceneBackend::new(class_shift)))
    }
}

fn encode_plan(precision: Precision, onnx: &Path, bytes: usize) -> Vec<u8> {
    let mut plan = MAGIC.to_vec();
    plan.push(match precision {
        Precision::Int8 => b'8',
        Precision::Fp16 => b'h',
        Precision::Fp32 => b'f',
    });
    let seed = sha256_hex(onnx.to_string_lossy().as_bytes());
    plan.extend(seed.bytes().cycle().take(bytes));
    let digest = sha256_hex(&plan);
    plan.extend(digest.bytes());
    plan
}

/// The precision of a whole, unaltered double plan.
pub fn decode_plan(plan: &[u8]) -> Result<Precision, String> {
    if plan.len() < MAGIC.len() + 1 + DIGEST_BYTES || !plan.starts_with(MAGIC) {
        return Err(format!("not a plan ({} bytes)", plan.len()));
    }
    let (body, digest) = plan.split_at(plan.len() - DIGEST_BYTES);
    if sha256_hex(body).as_bytes() != digest {
        return Err("plan checksum mismatch: truncated or altered".into());
    }
    match body[MAGIC.len()] {
        b'8' => Ok(Precision::Int8),
        b'h' => Ok(Precision::Fp16),
        b'f' => Ok(Precision::Fp32),
        other => Err(format!("unknown precision byte {other}")),
    }
}

/// A YOLOv8-shaped backend that sees the same four parts in every image,
/// their classes shifted by `class_shift`.
pub struct SceneBackend {
    io: ModelIo,
    class_shift: usize,
    input: Vec<f32>,
    output: Vec<f32>,
    output_shape: Vec<usize>,
}

impl SceneBackend {
    pub fn new(class_shift: usize) -> Self {
        SceneBackend {
            io: ModelIo {
                model: "scene double".into(),
                inputs: vec![TensorInfo {
                    name: "images".into(),
                    shape: Some(vec![Some(1), Some(3), None, None]),
                }],
                outputs: vec![TensorInfo {
                    name: "output0".into(),
                    shape: Some(vec![Some(1), Some(4 + CLASSES), None]),
                }],
            },
            class_shift,
            input: Vec::new(),
            output: Vec::new(),
            output_shape: Vec::new(),
        }
    }
}

impl Backend for SceneBackend {
    fn io(&self) -> &ModelIo {
        &self.io
    }

    fn input_mut(&mut self, _name: &str, shape: &[usize]) -> Result<&mut [f32], InferError> {
        let (height, width) = (shape[2], shape[3]);
        let anchors = STRIDES
            .iter()
            .map(|stride| (height / stride) * (width / stride))
            .sum();
        self.output_shape = vec![1, 4 + CLASSES, anchors];
        self.input.resize(shape.iter().product(), 0.0);
        Ok(&mut self.input)
    }

    fn run(&mut self) -> Result<(), InferError> {
        let anchors = self.output_shape[2];
        self.output.clear();
        self.output.resize((4 + CLASSES) * anchors, 0.0);
        for part in 0..4 {
            let anchor = part * 7;
            let values = [80.0 + 120.0 * part as f32, 150.0, 48.0, 48.0];
            for (row, value) in values.into_iter().enumerate() {
                self.output[row * anchors + anchor] = value;
            }
            let class = (part + self.class_shift) % CLASSES;
            self.output[(4 + class) * anchors + anchor] = 0.9;
        }
        Ok(())
    }

    fn output(&self, _name: &str) -> Result<(&[f32], &[usize]), InferError> {
        Ok((&self.output, &self.output_shape))
    }
}

/// The bundled configuration with its data partition in `data_dir`, the
/// model at `model` (the double hashes it, nothing more), FP16 asked for
/// and two validation stills.
pub fn double_config(data_dir: &Path, model: &Path) -> edgesort_types::config::Config {
    // The repository root, from the root package or a crate's tests.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|folder| folder.join("board/edgesort.toml").is_file())
        .expect("inside the repository");
    let mut config = edgesort_types::config::Config::load(&repo.join("board/edgesort.toml"))
        .expect("bundled config loads");
    config.engine.data_dir = data_dir.to_owned();
    config.engine.precision = Precision::Fp16;
    config.engine.validation_count = 2;
    config.model.path = model.to_owned();
    config
}

/// Engine inputs for the scene double's model shape.
pub fn scene_inputs(
    config: &edgesort_types::config::Config,
    builder: &DoubleBuilder,
) -> edgesort_provision::Inputs {
    let detector = edgesort_infer::Detector::for_model(SceneBackend::new(0), &config.model)
        .expect("the scene double looks like YOLOv8");
    edgesort_provision::engine_inputs(
        config,
        (detector.input_shape(), "images".into()),
        builder.target(),
        "Double board",
        None,
        1 << 30,
    )
    .expect("engine inputs")
}

/// The scene double as the CPU reference, on two grey stills.
pub fn scene_reference<'a>(
    config: &'a edgesort_types::config::Config,
    inputs: &edgesort_provision::Inputs,
) -> edgesort_provision::ReferenceSource<'a> {
    let validation_input = inputs.validation_input;
    Box::new(move || {
        let frames = (0..2)
            .map(|sequence| {
                edgesort_types::Frame::from_rgb(
                    sequence,
                    Default::default(),
                    640,
                    360,
                    vec![100; 640 * 360 * 3],
                )
            })
            .collect();
        Ok(edgesort_engine::ReferenceDetections::compute(
            Box::new(SceneBackend::new(0)),
            frames,
            &config.model,
            validation_input,
            edgesort_provision::validation_thresholds(config),
        )?)
    })
}
