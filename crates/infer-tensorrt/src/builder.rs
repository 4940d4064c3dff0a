use std::sync::Arc;

use edgesort_engine::{
    BuildFailure, BuildJob, BuildOutput, BuildProgress, BuildTarget, EngineBuilder,
};
use edgesort_infer::Backend;
use edgesort_types::config::Precision;
use tensorrt_sys::{BuildRequest, Flow, ProgressEvent, TensorRt, TensorRtError};

use crate::TensorRtBackend;

/// Builds and loads engines with the TensorRT installed on the box.
pub struct TensorRtBuilder {
    tensorrt: Arc<TensorRt>,
    target: BuildTarget,
    cuda_graph: bool,
}

impl TensorRtBuilder {
    /// A builder for `tensorrt` on the GPU the CUDA driver named.
    pub fn new(
        tensorrt: TensorRt,
        gpu: &str,
        compute_capability: &str,
    ) -> Result<Self, TensorRtError> {
        let target = BuildTarget {
            tensorrt: tensorrt.version().to_string(),
            gpu: gpu.to_owned(),
            compute_capability: compute_capability.to_owned(),
            dla_cores: tensorrt.dla_cores()?,
        };
        Ok(TensorRtBuilder {
            tensorrt: Arc::new(tensorrt),
            target,
            cuda_graph: false,
        })
    }

    /// Loads engines with CUDA-graph replay, as the line runs them, so that
    /// validation checks the path the line takes.
    pub fn with_cuda_graph(mut self, enabled: bool) -> Self {
        self.cuda_graph = enabled;
        self
    }
}

impl EngineBuilder for TensorRtBuilder {
    fn target(&self) -> &BuildTarget {
        &self.target
    }

    fn build(
        &mut self,
        job: &BuildJob<'_>,
        progress: &mut dyn FnMut(&BuildProgress),
    ) -> Result<BuildOutput, BuildFailure> {
        let request = BuildRequest {
            onnx: job.onnx,
            precision: match job.precision {
                Precision::Int8 => tensorrt_sys::Precision::Int8,
                Precision::Fp16 => tensorrt_sys::Precision::Fp16,
                Precision::Fp32 => tensorrt_sys::Precision::Fp32,
            },
            // INT8 comes from the Q/DQ model, the one path TensorRT 10 and
            // 11 keep; the legacy cache stays for hand-run 8.x builds.
            calibration_cache: None,
            profile: job.profile.map(|profile| tensorrt_sys::ProfileShapes {
                input: profile.input.clone(),
                min: profile.min.clone(),
                opt: profile.opt.clone(),
                max: profile.max.clone(),
            }),
            workspace_bytes: job.workspace_bytes,
            dla_core: job.dla_core,
            gpu_fallback: job.gpu_fallback,
            timing_cache: (!job.timing_cache.is_empty()).then_some(job.timing_cache),
        };
        // TensorRT may report from its own threads, so the build runs on a
        // scoped thread and its events come back here to `progress`.
        let (events, received) = std::sync::mpsc::channel();
        let tensorrt = &self.tensorrt;
        let result = std::thread::scope(|scope| {
            let build = scope.spawn(move || {
                let mut forward = |event: ProgressEvent| {
                    let _ = events.send(event);
                    Flow::Continue
                };
                tensorrt.build(&request, &mut forward)
            });
            let mut phases: Vec<(String, u32)> = Vec::new();
            for event in received {
                forward_progress(event, &mut phases, progress);
            }
            build
                .join()
                .expect("the TensorRT build thread does not panic")
        });
        match result {
            Ok(built) => Ok(BuildOutput {
                plan: built.plan,
                timing_cache: built.timing_cache,
            }),
            Err(error) => Err(BuildFailure {
                out_of_memory: matches!(
                    error,
                    TensorRtError::Build {
                        out_of_memory: true,
                        ..
                    }
                ),
                message: error.to_string(),
            }),
        }
    }

    fn load(&mut self, plan: &[u8], dla_core: Option<u32>) -> Result<Box<dyn Backend>, String> {
        TensorRtBackend::deserialize(&self.tensorrt, plan, dla_core)
            .map(|backend| Box::new(backend.with_cuda_graph(self.cuda_graph)) as Box<dyn Backend>)
            .map_err(|error| error.to_string())
    }
}

/// Turns TensorRT's nested phases into the cache's flat progress lines.
fn forward_progress(
    event: ProgressEvent,
    phases: &mut Vec<(String, u32)>,
    progress: &mut dyn FnMut(&BuildProgress),
) {
    match event {
        ProgressEvent::PhaseStart { name, steps, .. } => {
            progress(&BuildProgress {
                phase: name.clone(),
                step: (steps > 0).then_some((0, steps)),
            });
            phases.push((name, steps));
        }
        ProgressEvent::Step { phase, step } => {
            let steps = phases
                .iter()
                .rev()
                .find(|(name, _)| *name == phase)
                .map_or(0, |(_, steps)| *steps);
            progress(&BuildProgress {
                phase,
                step: (steps > 0).then_some((step + 1, steps)),
            });
        }
        ProgressEvent::PhaseFinish { name } => phases.retain(|(phase, _)| *phase != name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_phases_become_numbered_progress_lines() {
        let mut lines = Vec::new();
        let mut phases = Vec::new();
        let events = [
            ProgressEvent::PhaseStart {
                name: "Building engine".into(),
                parent: None,
                steps: 3,
            },
            ProgressEvent::PhaseStart {
                name: "Tactic selection".into(),
                parent: Some("Building engine".into()),
                steps: 0,
            },
            ProgressEvent::PhaseFinish {
                name: "Tactic selection".into(),
            },
            ProgressEvent::Step {
                phase: "Building engine".into(),
                step: 1,
            },
        ];
        for event in events {
            forward_progress(event, &mut phases, &mut |progress: &BuildProgress| {
                lines.push((progress.phase.clone(), progress.step))
            });
        }
        assert_eq!(
            lines,
            [
                ("Building engine".to_owned(), Some((0, 3))),
                ("Tactic selection".to_owned(), None),
                ("Building engine".to_owned(), Some((2, 3))),
            ]
        );
        assert_eq!(phases, [("Building engine".to_owned(), 3)]);
    }
}
