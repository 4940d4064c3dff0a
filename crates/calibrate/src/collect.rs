//! Running the FP32 model over calibration frames and keeping streaming
//! statistics of every tensor that will be quantized.

use std::collections::BTreeMap;
use std::path::Path;

use edgesort_infer::{Backend, InputShape, Letterbox, Resampler};
use edgesort_infer_tract::TractBackend;

use crate::histogram::Histogram;
use crate::{CalibrateError, QuantPlan};

/// Statistics of the tensors of a [`QuantPlan`], fed one frame at a time.
///
/// This is the seam for calibrating from anything that yields RGB frames:
/// the image folder of `edgesort calibrate`, or frames captured on site. The
/// preprocessing is the runtime's own letterbox, so the statistics describe
/// exactly what the deployed model will see. Memory is the model's working
/// set plus one fixed-size histogram per tensor, whatever the frame count.
pub struct Collector {
    backend: TractBackend,
    feeder: Feeder,
    observed: Vec<String>,
    histograms: BTreeMap<String, Histogram>,
    frames: usize,
}

/// Letterboxes frames into a backend's input exactly as the runtime does.
pub(crate) struct Feeder {
    input_name: String,
    input_shape: InputShape,
    resampler: Option<Resampler>,
}

impl Feeder {
    pub(crate) fn new(input_name: String, input_shape: InputShape) -> Self {
        Feeder {
            input_name,
            input_shape,
            resampler: None,
        }
    }

    /// Writes one packed RGB frame into `backend`'s input and lends the
    /// written input back.
    pub(crate) fn feed<'b>(
        &mut self,
        backend: &'b mut impl Backend,
        width: u32,
        height: u32,
        rgb: &[u8],
    ) -> Result<&'b mut [f32], CalibrateError> {
        let planned = self.resampler.as_ref().is_some_and(|resampler| {
            let plan = resampler.plan();
            (plan.frame_width, plan.frame_height) == (width, height)
        });
        if !planned {
            self.resampler = Some(Letterbox::plan(width, height, self.input_shape)?.resampler());
        }
        let resampler = self.resampler.as_mut().expect("planned above");
        let plan = *resampler.plan();
        let shape = [1, 3, plan.input_height as usize, plan.input_width as usize];
        let input = backend.input_mut(&self.input_name, &shape)?;
        resampler.fill(rgb, input);
        Ok(input)
    }
}

impl Collector {
    /// Prepares `model` to report every tensor of `plan`.
    /// `input_shape` is the detector's (as [`edgesort_infer::Detector`]
    /// derives it), so that frames are letterboxed as at runtime.
    pub fn new(
        model: &Path,
        plan: &QuantPlan,
        input_shape: InputShape,
        threads: usize,
    ) -> Result<Self, CalibrateError> {
        let plain = TractBackend::load(model)?;
        let input_name = plain.io().inputs[0].name.clone();
        let observed: Vec<String> = plan
            .tensors
            .iter()
            .filter(|tensor| **tensor != input_name)
            .cloned()
            .collect();
        let backend = plain.with_threads(threads).observing(&observed)?;
        Ok(Collector {
            backend,
            feeder: Feeder::new(input_name, input_shape),
            histograms: plan
                .tensors
                .iter()
                .map(|tensor| (tensor.clone(), Histogram::default()))
                .collect(),
            observed,
            frames: 0,
        })
    }

    /// Runs one packed RGB frame and adds every observed tensor to its
    /// histogram.
    pub fn observe(&mut self, width: u32, height: u32, rgb: &[u8]) -> Result<(), CalibrateError> {
        let input = self.feeder.feed(&mut self.backend, width, height, rgb)?;
        if let Some(histogram) = self.histograms.get_mut(&self.feeder.input_name) {
            histogram.add(input);
        }
        self.backend.run()?;
        for tensor in &self.observed {
            let (values, _) = self.backend.output(tensor)?;
            self.histograms
                .get_mut(tensor)
                .expect("one histogram per planned tensor")
                .add(values);
        }
        self.frames += 1;
        Ok(())
    }

    /// Frames observed so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The statistics gathered so far.
    pub fn histograms(&self) -> &BTreeMap<String, Histogram> {
        &self.histograms
    }
}
