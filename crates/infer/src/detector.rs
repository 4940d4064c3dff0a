use std::sync::Arc;
use std::time::{Duration, Instant};

use edgesort_types::config::ModelConfig;
use edgesort_types::{Detection, Frame, FramePool};

use crate::{
    Backend, Candidate, DecodeParams, InferError, InputShape, Letterbox, ModelIo, Resampler,
    decode_yolo, non_max_suppression,
};

/// YOLOv8 heads sit at these downsampling factors; the anchor count follows.
const STRIDES: [usize; 3] = [8, 16, 32];

/// Time spent in each step of one [`Detector::detect`] call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DetectorTimes {
    /// Letterbox and normalise into the input tensor.
    pub preprocess: Duration,
    /// The backend's run.
    pub inference: Duration,
    /// Decode and NMS.
    pub postprocess: Duration,
}

/// Anything that finds the parts in a frame: the CPU pipeline over a
/// [`Backend`] ([`Detector`]), or the GPU one (`edgesort-infer-cuda`'s
/// `GpuDetector`), as the line drives it.
pub trait Detect: Send {
    /// Detections in `frame`, in frame pixels, best first, with the time
    /// each step took.
    fn detect(&mut self, frame: &Frame) -> Result<(Vec<Detection>, DetectorTimes), InferError>;

    /// Frame buffers this detector reads in place, for the camera to fill
    /// in its own layout ([`edgesort_types::Pixels::Camera`]); `None` where
    /// it wants packed RGB (the CPU path).
    fn frame_pool(&self) -> Option<Arc<dyn FramePool>> {
        None
    }
}

impl<B: Backend> Detect for Detector<B> {
    fn detect(&mut self, frame: &Frame) -> Result<(Vec<Detection>, DetectorTimes), InferError> {
        Detector::detect(self, frame)
    }
}

impl<D: Detect + ?Sized> Detect for Box<D> {
    fn detect(&mut self, frame: &Frame) -> Result<(Vec<Detection>, DetectorTimes), InferError> {
        (**self).detect(frame)
    }

    fn frame_pool(&self) -> Option<Arc<dyn FramePool>> {
        (**self).frame_pool()
    }
}

/// A YOLOv8 detector over any [`Backend`].
pub struct Detector<B> {
    backend: B,
    input_name: String,
    output_name: String,
    classes: usize,
    input_shape: InputShape,
    params: DecodeParams,
    resampler: Option<Resampler>,
    candidates: Vec<Candidate>,
}

impl<B: Backend> Detector<B> {
    /// Wraps `backend`, checking that its model looks like a YOLOv8 detector
    /// for `classes` classes. `input_size` is the long side frames are scaled
    /// to when the model accepts any size.
    pub fn new(
        backend: B,
        classes: usize,
        input_size: u32,
        params: DecodeParams,
    ) -> Result<Self, InferError> {
        let YoloIo {
            input,
            output,
            input_shape,
        } = yolo_io(backend.io(), classes, input_size)?;
        Ok(Detector {
            input_name: input,
            output_name: output,
            backend,
            classes,
            input_shape,
            params,
            resampler: None,
            candidates: Vec::new(),
        })
    }

    /// Wraps `backend` with the classes and thresholds of `[model]` in the
    /// configuration.
    pub fn for_model(backend: B, model: &ModelConfig) -> Result<Self, InferError> {
        Detector::new(
            backend,
            model.classes.len(),
            model.input_size,
            DecodeParams::for_model(model),
        )
    }

    /// Makes a dynamic model take exactly `width x height` (e.g. a square
    /// 640x640 to compare with figures measured on a fixed-size export). A
    /// fixed-size model accepts only its own size.
    pub fn with_fixed_input(mut self, width: u32, height: u32) -> Result<Self, InferError> {
        if let InputShape::Fixed {
            width: fixed_width,
            height: fixed_height,
        } = self.input_shape
            && (fixed_width, fixed_height) != (width, height)
        {
            return Err(InferError::NotYolo {
                model: self.backend.io().model.clone(),
                reason: format!(
                    "its input is fixed at {fixed_width}x{fixed_height}, not {width}x{height}"
                ),
            });
        }
        self.input_shape = InputShape::Fixed { width, height };
        self.resampler = None;
        Ok(self)
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The raw model output of the last [`Detector::detect`], with its shape,
    /// for instruments that replay decoding on recorded outputs.
    pub fn last_output(&self) -> Result<(&[f32], &[usize]), InferError> {
        self.backend.output(&self.output_name)
    }

    /// The decoding thresholds in force.
    pub fn params(&self) -> DecodeParams {
        self.params
    }

    /// The input sizes this detector feeds its model.
    pub fn input_shape(&self) -> InputShape {
        self.input_shape
    }

    /// How frames of this size are placed in the model input.
    pub fn letterbox(&self, width: u32, height: u32) -> Result<Letterbox, InferError> {
        Letterbox::plan(width, height, self.input_shape)
    }

    /// Finds the objects in `frame`, in frame pixels, best first.
    pub fn detect(&mut self, frame: &Frame) -> Result<(Vec<Detection>, DetectorTimes), InferError> {
        let started = Instant::now();
        let resampler = match &mut self.resampler {
            Some(resampler)
                if (resampler.plan().frame_width, resampler.plan().frame_height)
                    == (frame.width, frame.height) =>
            {
                resampler
            }
            slot => slot
                .insert(Letterbox::plan(frame.width, frame.height, self.input_shape)?.resampler()),
        };
        let letterbox = *resampler.plan();
        let shape = [
            1,
            3,
            letterbox.input_height as usize,
            letterbox.input_width as usize,
        ];
        resampler.fill(
            &frame.rgb(),
            self.backend.input_mut(&self.input_name, &shape)?,
        );
        let preprocessed = Instant::now();

        self.backend.run()?;
        let inferred = Instant::now();

        let (output, output_shape) = self.backend.output(&self.output_name)?;
        let anchors = yolo_anchors(
            &self.backend.io().model,
            output_shape,
            self.classes,
            &letterbox,
        )?;
        self.candidates.clear();
        decode_yolo(
            output,
            self.classes,
            anchors,
            self.params.confidence,
            self.params.labels,
            &mut self.candidates,
        );
        let kept = non_max_suppression(
            &mut self.candidates,
            self.params.iou,
            self.params.max_detections,
        );
        let detections = kept
            .iter()
            .map(|candidate| letterbox.to_detection(candidate))
            .collect();
        let finished = Instant::now();

        Ok((
            detections,
            DetectorTimes {
                preprocess: preprocessed - started,
                inference: inferred - preprocessed,
                postprocess: finished - inferred,
            },
        ))
    }
}

/// The names and input sizes of a YOLOv8 detector's one image input and one
/// detection output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YoloIo {
    /// The image input's name.
    pub input: String,
    /// The detection output's name.
    pub output: String,
    /// The input sizes frames are letterboxed to.
    pub input_shape: InputShape,
}

/// Checks that `io` looks like a YOLOv8 detector for `classes` classes: one
/// `[batch, 3, H, W]` input, one `[batch, 4 + classes, anchors]` output.
/// `input_size` is the long side frames are scaled to when the model takes
/// any size.
pub fn yolo_io(io: &ModelIo, classes: usize, input_size: u32) -> Result<YoloIo, InferError> {
    let not_yolo = |reason: String| InferError::NotYolo {
        model: io.model.clone(),
        reason,
    };
    let [input] = io.inputs.as_slice() else {
        return Err(not_yolo(format!(
            "it has {} inputs, expected 1 image input",
            io.inputs.len()
        )));
    };
    let [output] = io.outputs.as_slice() else {
        return Err(not_yolo(format!(
            "it has {} outputs, expected 1",
            io.outputs.len()
        )));
    };
    let input_axes = input.shape.as_deref().unwrap_or(&[None, None, None, None]);
    if input_axes.len() != 4 || input_axes[1].is_some_and(|channels| channels != 3) {
        return Err(not_yolo(format!(
            "input {:?} has shape {}, expected [batch, 3, height, width]",
            input.name,
            show_shape(input_axes)
        )));
    }
    if let Some(batch) = input_axes[0]
        && batch != 1
    {
        return Err(not_yolo(format!(
            "input {:?} takes a batch of {batch}, the line feeds one frame at a time",
            input.name
        )));
    }
    // A model that leaves its output rank to shape inference is checked
    // on its first run instead (see [`yolo_anchors`]).
    let rows = 4 + classes;
    if let Some(axes) = &output.shape
        && (axes.len() != 3 || axes[1].is_some_and(|found| found != rows))
    {
        return Err(not_yolo(format!(
            "output {:?} has shape {}, expected [batch, {rows}, anchors] (4 box rows + {classes} classes)",
            output.name,
            show_shape(axes)
        )));
    }
    let input_shape = match (input_axes[2], input_axes[3]) {
        (Some(height), Some(width)) => InputShape::Fixed {
            width: width as u32,
            height: height as u32,
        },
        _ => InputShape::Dynamic {
            stride: STRIDES[2] as u32,
            max_side: input_size,
        },
    };
    Ok(YoloIo {
        input: input.name.clone(),
        output: output.name.clone(),
        input_shape,
    })
}

/// The anchor count of a `[1, 4 + classes, anchors]` output for an input
/// letterboxed as `letterbox`, or why `shape` is not that output.
pub fn yolo_anchors(
    model: &str,
    shape: &[usize],
    classes: usize,
    letterbox: &Letterbox,
) -> Result<usize, InferError> {
    let expected_anchors: usize = STRIDES
        .iter()
        .map(|stride| {
            (letterbox.input_width as usize / stride) * (letterbox.input_height as usize / stride)
        })
        .sum();
    if shape != [1, 4 + classes, expected_anchors] {
        return Err(InferError::NotYolo {
            model: model.to_owned(),
            reason: format!(
                "for a {}x{} input it produced {shape:?}, expected [1, {}, {expected_anchors}]",
                letterbox.input_width,
                letterbox.input_height,
                4 + classes
            ),
        });
    }
    Ok(expected_anchors)
}

fn show_shape(shape: &[Option<usize>]) -> String {
    let axes: Vec<String> = shape
        .iter()
        .map(|axis| axis.map_or_else(|| "?".to_string(), |size| size.to_string()))
        .collect();
    format!("[{}]", axes.join(", "))
}
