//! ONNX Runtime extractor. STUB: implemented by the source/preprocess/features work.

use super::{ExtractorSpec, FeatureError, FeatureExtractor};
use ndarray::{Array2, ArrayView5};
use std::path::Path;

/// Loads the ONNX Runtime shared library once per process (ORT_DYLIB_PATH, then known places).
pub fn init_runtime() -> Result<(), FeatureError> {
    Err(FeatureError::RuntimeMissing("not implemented".into()))
}

/// An ONNX model run by ONNX Runtime on CPU; one session per instance.
pub struct OnnxExtractor {
    dim: usize,
}

impl OnnxExtractor {
    /// Loads `spec.file` relative to `model_dir` and checks its real input/output names and shapes
    /// against `spec`. `threads` is ONNX Runtime's intra-op thread count.
    pub fn load(
        spec: &ExtractorSpec,
        model_dir: &Path,
        threads: usize,
    ) -> Result<Self, FeatureError> {
        let _ = (spec, threads);
        Err(FeatureError::Model {
            path: model_dir.display().to_string(),
            reason: "not implemented".into(),
        })
    }
}

impl FeatureExtractor for OnnxExtractor {
    fn dim(&self) -> usize {
        self.dim
    }
    fn extract(&mut self, clips: ArrayView5<f32>) -> Result<Array2<f32>, FeatureError> {
        Ok(Array2::zeros((clips.shape()[0], self.dim)))
    }
}
