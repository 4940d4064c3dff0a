use std::fmt;

use edgesort_types::config::Precision;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bumped whenever the builder's flags change in a way that changes the
/// engine, so that boxes rebuild; a plain edgesort update does not.
pub const BUILDER_REVISION: u32 = 1;

/// Hex digits of the key kept in file names: 128 bits, no collision in any
/// cache's lifetime, short enough for a technician to read out.
const KEY_HEX_DIGITS: usize = 32;

/// Shapes of the optimisation profile of the model's image input.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProfileShapes {
    /// Input tensor name.
    pub input: String,
    /// Smallest shape, NCHW.
    pub min: Vec<i64>,
    /// The shape the engine is tuned for: the camera's letterbox.
    pub opt: Vec<i64>,
    /// Largest shape.
    pub max: Vec<i64>,
}

/// Everything an engine depends on. Two boxes (or one box before and after
/// an update) with equal inputs can share an engine; any difference means a
/// rebuild.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInputs {
    /// SHA-256 of the FP32 ONNX model's bytes.
    pub model_sha256: String,
    /// TensorRT library version, e.g. `10.3.0`.
    pub tensorrt: String,
    /// GPU name as the driver reports it.
    pub gpu: String,
    /// Compute capability, e.g. `8.7` for Orin.
    pub compute_capability: String,
    /// DLA core, if the engine runs on one.
    pub dla_core: Option<u32>,
    /// The precision asked for (the manifest records the one built).
    pub precision: Precision,
    /// Dynamic-shape profile; `None` for a fixed-shape model.
    pub profile: Option<ProfileShapes>,
    /// SHA-256 over the INT8 calibration settings and images; calibration is
    /// deterministic, so this fixes the Q/DQ model. `None` unless INT8.
    pub calibration_sha256: Option<String>,
    /// Builder options that change the engine.
    pub builder: BuilderOptions,
}

/// Builder options that are part of the key. The workspace limit is not:
/// a retry at a smaller limit builds an equivalent engine.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BuilderOptions {
    /// Layers the DLA cannot run go to the GPU.
    pub gpu_fallback: bool,
    /// [`BUILDER_REVISION`] of the code that built.
    pub revision: u32,
}

/// The name of one engine in the cache.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EngineKey(String);

impl EngineKey {
    /// Derives the key: a hash over the inputs' canonical JSON (fields in
    /// declaration order), versioned so that a change of scheme never
    /// collides with old keys.
    pub fn of(inputs: &KeyInputs) -> EngineKey {
        let mut hasher = Sha256::new();
        hasher.update(b"edgesort-engine-key/1\n");
        hasher.update(serde_json::to_vec(inputs).expect("key inputs serialize"));
        let digest = hex::encode(hasher.finalize());
        EngineKey(digest[..KEY_HEX_DIGITS].to_owned())
    }

    /// A key read back from a file name, if it is one.
    pub fn parse(text: &str) -> Option<EngineKey> {
        (text.len() == KEY_HEX_DIGITS
            && text
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| EngineKey(text.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EngineKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn inputs() -> KeyInputs {
        KeyInputs {
            model_sha256: "ab".repeat(32),
            tensorrt: "10.3.0".into(),
            gpu: "Orin (nvgpu)".into(),
            compute_capability: "8.7".into(),
            dla_core: None,
            precision: Precision::Int8,
            profile: Some(ProfileShapes {
                input: "images".into(),
                min: vec![1, 3, 384, 640],
                opt: vec![1, 3, 384, 640],
                max: vec![1, 3, 640, 640],
            }),
            calibration_sha256: Some("cd".repeat(32)),
            builder: BuilderOptions {
                gpu_fallback: true,
                revision: BUILDER_REVISION,
            },
        }
    }

    #[test]
    fn equal_inputs_give_equal_keys() {
        assert_eq!(EngineKey::of(&inputs()), EngineKey::of(&inputs()));
        let key = EngineKey::of(&inputs());
        assert_eq!(EngineKey::parse(key.as_str()), Some(key));
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = EngineKey::of(&inputs());
        type Change = fn(&mut KeyInputs);
        let changes: Vec<(&str, Change)> = vec![
            ("model", |i| i.model_sha256 = "ef".repeat(32)),
            ("tensorrt upgrade", |i| i.tensorrt = "10.3.1".into()),
            ("gpu", |i| i.gpu = "NVIDIA H100".into()),
            ("sm", |i| i.compute_capability = "9.0".into()),
            ("dla", |i| i.dla_core = Some(0)),
            ("precision", |i| i.precision = Precision::Fp16),
            ("profile", |i| {
                i.profile.as_mut().unwrap().max = vec![1, 3, 640, 1280]
            }),
            ("no profile", |i| i.profile = None),
            ("calibration", |i| {
                i.calibration_sha256 = Some("00".repeat(32))
            }),
            ("fallback", |i| i.builder.gpu_fallback = false),
            ("revision", |i| i.builder.revision += 1),
        ];
        for (what, change) in changes {
            let mut changed = inputs();
            change(&mut changed);
            assert_ne!(EngineKey::of(&changed), base, "{what} must change the key");
        }
    }

    #[test]
    fn file_names_that_are_not_keys_are_refused() {
        for name in [
            "",
            "timing",
            &"A".repeat(32),
            &"0".repeat(31),
            &"0".repeat(33),
        ] {
            assert_eq!(EngineKey::parse(name), None, "{name:?}");
        }
    }
}
