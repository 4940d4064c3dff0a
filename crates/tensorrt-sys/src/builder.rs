//! Building an engine plan from an ONNX model.

use std::path::Path;

use crate::{TensorRt, TensorRtError};

/// The precision the builder may choose kernels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// FP32 (TF32 where the GPU has it).
    Fp32,
    /// FP16 where faster, FP32 elsewhere.
    Fp16,
    /// INT8 where the model's Q/DQ nodes (or, on TensorRT 8.x, a
    /// calibration cache) give scales, FP16 elsewhere.
    Int8,
}

/// The optimisation profile of a model with a dynamic input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileShapes {
    /// The input tensor's name.
    pub input: String,
    /// The smallest shape the engine will accept.
    pub min: Vec<i64>,
    /// The shape kernels are tuned for.
    pub opt: Vec<i64>,
    /// The largest shape the engine will accept.
    pub max: Vec<i64>,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    /// The ONNX model.
    pub onnx: &'a Path,
    /// The precision to build for.
    pub precision: Precision,
    /// A legacy INT8 calibration cache; TensorRT 8.x only, 10.x rejects it.
    pub calibration_cache: Option<&'a [u8]>,
    /// Needed when the model's input has dynamic dimensions.
    pub profile: Option<ProfileShapes>,
    /// Scratch memory the builder may give a layer; 0 leaves TensorRT's
    /// default (all device memory).
    pub workspace_bytes: u64,
    /// Build for this DLA core instead of the GPU.
    pub dla_core: Option<u32>,
    /// With `dla_core`: run layers the DLA cannot on the GPU.
    pub gpu_fallback: bool,
    /// A timing cache from an earlier build on this kind of device; one
    /// from another device or TensorRT version is dropped with a warning.
    pub timing_cache: Option<&'a [u8]>,
}

/// A step of a build's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A phase began.
    PhaseStart {
        /// Its name, e.g. "Building engine".
        name: String,
        /// The phase it is part of.
        parent: Option<String>,
        /// How many steps it has.
        steps: u32,
    },
    /// A step of a phase completed.
    Step {
        /// The phase.
        phase: String,
        /// The step's number, from 0.
        step: u32,
    },
    /// A phase ended, possibly before all its steps.
    PhaseFinish {
        /// Its name.
        name: String,
    },
}

/// What the progress callback wants the build to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop the build; it then fails with [`TensorRtError::BuildCancelled`].
    /// Only TensorRT 10 can stop: 8.x finishes the build.
    Cancel,
}

/// A built engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltEngine {
    /// The serialized engine, for [`TensorRt::deserialize`]; valid only on
    /// the same kind of device and TensorRT version.
    pub plan: Vec<u8>,
    /// The timing cache after this build, to speed up the next one; empty
    /// when TensorRT gave none.
    pub timing_cache: Vec<u8>,
}

impl TensorRt {
    /// Builds an engine; takes minutes on a Jetson. `progress` hears of
    /// phases and steps: from TensorRT's progress monitor on 10.x, and as a
    /// single "Building engine" phase read from the log on 8.x. It may be
    /// called from TensorRT's worker threads, one call at a time.
    pub fn build(
        &self,
        request: &BuildRequest<'_>,
        progress: &mut (dyn FnMut(ProgressEvent) -> Flow + Send),
    ) -> Result<BuiltEngine, TensorRtError> {
        #[cfg(tensorrt_shim)]
        {
            imp::build(&self.loaded, request, progress)
        }
        #[cfg(not(tensorrt_shim))]
        {
            let _ = (request, progress);
            match self.never {}
        }
    }
}

/// Parts of TensorRT 8.x builder log lines that end a step of the one
/// phase reported there, in the order they are logged.
const LEGACY_STEPS: [&str; 3] = [
    "Graph optimization time",
    "output network tensors",
    "Engine generation completed",
];

/// Which step of the 8.x phase a log line ends, if any.
#[cfg_attr(
    not(any(tensorrt_shim, test)),
    expect(dead_code, reason = "only the shim builds")
)]
fn legacy_step(message: &str) -> Option<u32> {
    LEGACY_STEPS
        .iter()
        .position(|needle| message.contains(needle))
        .and_then(|step| u32::try_from(step).ok())
}

#[cfg(tensorrt_shim)]
pub(crate) use imp::legacy_progress_log;

#[cfg(tensorrt_shim)]
mod imp {
    use std::cell::Cell;
    use std::ffi::{CStr, CString, c_char, c_void};
    use std::os::unix::ffi::OsStrExt;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::ptr;

    use super::{
        BuildRequest, BuiltEngine, Flow, LEGACY_STEPS, Precision, ProfileShapes, ProgressEvent,
        legacy_step,
    };
    use crate::error::mentions_out_of_memory;
    use crate::shim::{HEADERS, Loaded, call};
    use crate::{TensorRtError, ffi};

    type Progress<'a> = &'a mut (dyn FnMut(ProgressEvent) -> Flow + Send);

    /// The phase reported on TensorRT 8.x, whose builder has no progress
    /// monitor.
    const LEGACY_PHASE: &str = "Building engine";

    pub(super) fn build(
        loaded: &Loaded,
        request: &BuildRequest<'_>,
        progress: Progress<'_>,
    ) -> Result<BuiltEngine, TensorRtError> {
        loaded.require_parser()?;
        let path = request.onnx;
        let strings = Strings::new(request)?;
        let mut options = strings.options(request);
        let legacy = HEADERS.major < 10;
        // Passed to the shim as a thin pointer to this fat one.
        let mut monitor: Progress<'_> = progress;
        if !legacy {
            options.progress = Some(forward_progress);
            options.progress_user = (&raw mut monitor).cast();
        }

        let out_of_memory_before = loaded.out_of_memory_messages();
        let mut plan = ptr::null_mut();
        let mut cache = ptr::null_mut();
        // SAFETY: every pointer in options and the outputs outlive the call;
        // monitor is only reached through options.progress_user meanwhile.
        let mut run = || {
            call(|error| unsafe {
                ffi::es_trt_build(loaded.lib(), &options, &mut plan, &mut cache, error)
            })
        };
        let result = if legacy {
            monitor(ProgressEvent::PhaseStart {
                name: LEGACY_PHASE.to_owned(),
                parent: None,
                steps: LEGACY_STEPS.len() as u32,
            });
            let mut tap = LegacyTap {
                progress: &mut *monitor,
                reached: None,
            };
            let result = with_legacy_tap(&mut tap, run);
            monitor(ProgressEvent::PhaseFinish {
                name: LEGACY_PHASE.to_owned(),
            });
            result
        } else {
            run()
        };
        let plan = OwnedBlob(plan);
        let cache = OwnedBlob(cache);
        match result {
            Ok(()) => Ok(BuiltEngine {
                plan: plan.to_vec(),
                timing_cache: cache.to_vec(),
            }),
            Err((ffi::CANCELLED, _)) => Err(TensorRtError::BuildCancelled),
            Err((ffi::PARSE_FAILED, message)) => Err(TensorRtError::ParseOnnx {
                path: path.to_owned(),
                errors: message.lines().map(str::to_owned).collect(),
            }),
            Err((_, message)) => Err(TensorRtError::Build {
                out_of_memory: mentions_out_of_memory(&message)
                    || loaded.out_of_memory_messages() != out_of_memory_before,
                message,
            }),
        }
    }

    /// The request's strings as C strings, checked.
    struct Strings {
        onnx: CString,
        profile_input: Option<CString>,
        dla_core: i32,
    }

    impl Strings {
        fn new(request: &BuildRequest<'_>) -> Result<Self, TensorRtError> {
            let path = request.onnx;
            let parse_error = |reason: &str| TensorRtError::ParseOnnx {
                path: path.to_owned(),
                errors: vec![reason.to_owned()],
            };
            if !path.is_file() {
                return Err(parse_error("no such file"));
            }
            let onnx = CString::new(path.as_os_str().as_bytes())
                .map_err(|_| parse_error("path contains a NUL byte"))?;
            let invalid = |message: String| TensorRtError::Build {
                message,
                out_of_memory: false,
            };
            let profile_input = match &request.profile {
                Some(profile) => {
                    let rank = profile.min.len();
                    if profile.opt.len() != rank
                        || profile.max.len() != rank
                        || rank > ffi::MAX_DIMS
                    {
                        return Err(invalid(format!(
                            "profile for {:?}: min, opt and max must have the same rank, at most {}",
                            profile.input,
                            ffi::MAX_DIMS
                        )));
                    }
                    let name = CString::new(profile.input.as_str()).map_err(|_| {
                        invalid(format!(
                            "profile input name {:?} contains NUL",
                            profile.input
                        ))
                    })?;
                    Some(name)
                }
                None => None,
            };
            let dla_core = match request.dla_core {
                Some(core) => {
                    i32::try_from(core).map_err(|_| invalid(format!("no DLA core {core}")))?
                }
                None => -1,
            };
            Ok(Self {
                onnx,
                profile_input,
                dla_core,
            })
        }

        /// Options pointing into `self` and `request`, without progress.
        fn options(&self, request: &BuildRequest<'_>) -> ffi::BuildOptions {
            let bytes = |data: Option<&[u8]>| {
                data.map_or((ptr::null(), 0), |data| {
                    (data.as_ptr().cast::<c_void>(), data.len())
                })
            };
            let (calibration_cache, calibration_cache_size) = bytes(request.calibration_cache);
            let (timing_cache, timing_cache_size) = bytes(request.timing_cache);
            let profile = request.profile.as_ref();
            let dims = |pick: fn(&ProfileShapes) -> &Vec<i64>| {
                profile.map_or(ptr::null(), |p| pick(p).as_ptr())
            };
            ffi::BuildOptions {
                onnx_path: self.onnx.as_ptr(),
                precision: match request.precision {
                    Precision::Fp32 => ffi::PRECISION_FP32,
                    Precision::Fp16 => ffi::PRECISION_FP16,
                    Precision::Int8 => ffi::PRECISION_INT8,
                },
                calibration_cache,
                calibration_cache_size,
                profile_input: self
                    .profile_input
                    .as_ref()
                    .map_or(ptr::null(), |name| name.as_ptr()),
                // Checked against MAX_DIMS in new().
                profile_rank: profile.map_or(0, |p| p.min.len() as i32),
                profile_min: dims(|p| &p.min),
                profile_opt: dims(|p| &p.opt),
                profile_max: dims(|p| &p.max),
                workspace_bytes: request.workspace_bytes,
                dla_core: self.dla_core,
                gpu_fallback: i32::from(request.gpu_fallback),
                timing_cache,
                timing_cache_size,
                // Kept for TensorRT 11; nothing asks for it yet.
                strongly_typed: 0,
                progress: None,
                progress_user: ptr::null_mut(),
            }
        }
    }

    /// An `IHostMemory` from the shim, freed on drop.
    struct OwnedBlob(*mut ffi::Blob);

    impl OwnedBlob {
        fn to_vec(&self) -> Vec<u8> {
            // SAFETY: the shim's accessors accept null and return (null, 0).
            let (data, size) =
                unsafe { (ffi::es_trt_blob_data(self.0), ffi::es_trt_blob_size(self.0)) };
            if data.is_null() || size == 0 {
                return Vec::new();
            }
            // SAFETY: TensorRT's buffer of `size` bytes, alive until the drop.
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size) }.to_vec()
        }
    }

    impl Drop for OwnedBlob {
        fn drop(&mut self) {
            // SAFETY: null or a blob the shim gave us, freed once.
            unsafe { ffi::es_trt_blob_free(self.0) };
        }
    }

    /// `es_trt_progress_fn`: TensorRT 10's progress monitor, serialised by the shim.
    unsafe extern "C" fn forward_progress(
        user: *mut c_void,
        event: i32,
        phase: *const c_char,
        parent: *const c_char,
        value: i32,
    ) -> i32 {
        let text = |text: *const c_char| {
            // SAFETY: TensorRT's C strings, valid during the call.
            (!text.is_null()).then(|| {
                unsafe { CStr::from_ptr(text) }
                    .to_string_lossy()
                    .into_owned()
            })
        };
        let count = u32::try_from(value).unwrap_or(0);
        let flow = catch_unwind(AssertUnwindSafe(|| {
            let phase = text(phase).unwrap_or_default();
            let event = match event {
                ffi::PROGRESS_PHASE_START => ProgressEvent::PhaseStart {
                    name: phase,
                    parent: text(parent),
                    steps: count,
                },
                ffi::PROGRESS_STEP => ProgressEvent::Step { phase, step: count },
                ffi::PROGRESS_PHASE_FINISH => ProgressEvent::PhaseFinish { name: phase },
                _ => return Flow::Continue,
            };
            // SAFETY: user is `monitor` in build(), which waits for the shim.
            let progress = unsafe { &mut *user.cast::<Progress<'_>>() };
            progress(event)
        }));
        // A panicking callback cancels rather than unwinding into C++.
        i32::from(matches!(flow, Ok(Flow::Continue)))
    }

    /// Reads TensorRT 8.x's builder log on the building thread.
    struct LegacyTap<'a> {
        progress: Progress<'a>,
        reached: Option<u32>,
    }

    thread_local! {
        static LEGACY_TAP: Cell<*mut LegacyTap<'static>> = const { Cell::new(ptr::null_mut()) };
    }

    fn with_legacy_tap<R>(tap: &mut LegacyTap<'_>, run: impl FnOnce() -> R) -> R {
        struct Clear;
        impl Drop for Clear {
            fn drop(&mut self) {
                LEGACY_TAP.with(|cell| cell.set(ptr::null_mut()));
            }
        }
        let _clear = Clear;
        LEGACY_TAP.with(|cell| cell.set(ptr::from_mut(tap).cast()));
        run()
    }

    /// Called with every log message; turns 8.x builder lines into steps.
    pub(crate) fn legacy_progress_log(message: &str) {
        let Some(step) = legacy_step(message) else {
            return;
        };
        // Taken out while in use, so that a callback that logs cannot reach
        // it a second time.
        let tap = LEGACY_TAP.with(|cell| cell.replace(ptr::null_mut()));
        if tap.is_null() {
            return;
        }
        // SAFETY: set by with_legacy_tap on this thread, which clears it
        // before the tap's borrow ends.
        let state = unsafe { &mut *tap };
        if state.reached.is_none_or(|reached| step > reached) {
            state.reached = Some(step);
            // 8.x cannot stop a build, so the answer is moot.
            let _ = (state.progress)(ProgressEvent::Step {
                phase: LEGACY_PHASE.to_owned(),
                step,
            });
        }
        LEGACY_TAP.with(|cell| cell.set(tap));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensorrt_8_builder_lines_end_steps_in_order() {
        let log = [
            "[MemUsageChange] Init CUDA: CPU +2, GPU +0, now: CPU 40, GPU 4470 (MiB)",
            "Graph optimization time: 0.0123 seconds.",
            "Global timing cache in use. Profiling results in this builder pass will be stored.",
            "Detected 1 inputs and 3 output network tensors.",
            "Engine generation completed in 93.4 seconds.",
        ];
        let steps: Vec<Option<u32>> = log.iter().map(|line| legacy_step(line)).collect();
        assert_eq!(steps, [None, Some(0), None, Some(1), Some(2)]);
        assert_eq!(LEGACY_STEPS.len(), 3);
    }
}
