/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A replay was asked for, but the configuration names no clip.
    #[error("camera.replay is not set: a replay needs a clip folder")]
    NoReplay,
    /// The camera (or clip) could not be opened.
    #[error("cannot open the camera")]
    Capture(#[from] edgesort_capture::CaptureError),
    /// The detector failed.
    #[error("detector failed")]
    Infer(#[from] edgesort_infer::InferError),
    /// The event store failed.
    #[error("event store failed")]
    Store(#[from] edgesort_store::StoreError),
    /// The ejectors could not be driven; they were driven low.
    #[error("ejector fault")]
    Actuate(#[from] edgesort_actuate::ActuateError),
    /// A pipeline thread died.
    #[error("the {thread} thread panicked")]
    ThreadPanicked {
        /// Which thread.
        thread: &'static str,
    },
}
