//! Feature extraction. Owns everything that touches ONNX Runtime: locating the runtime library,
//! one `Session` per extractor (never shared behind a mutex), and shape validation against the
//! manifest.

mod onnx;

pub use onnx::{init_runtime, sha256_hex, OnnxExtractor, ORT_DYLIB_ENV};

use ndarray::{Array2, ArrayView5};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The `[extractor]` section of `model.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractorSpec {
    /// ONNX file, relative to the model directory.
    pub file: PathBuf,
    /// Optional SHA-256 of the ONNX file (hex); checked at load when present.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Input tensor name; its layout is `[N, C, T, H, W]`.
    pub input: String,
    /// Output tensor name; its layout is `[N, D]`.
    pub output: String,
    /// Expected input shape, -1 for a dynamic dimension.
    pub input_shape: Vec<i64>,
    /// Expected output shape, -1 for a dynamic dimension.
    pub output_shape: Vec<i64>,
    /// Largest batch (clips) per run.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

fn default_max_batch() -> usize {
    8
}

/// Errors of the feature extractor; each names the file or runtime at fault.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("ONNX Runtime library not found: {0}")]
    RuntimeMissing(String),
    #[error("ONNX Runtime library {path} could not be loaded: {reason}")]
    RuntimeLoad { path: String, reason: String },
    #[error("ONNX model {path}: {reason}")]
    Model { path: String, reason: String },
    #[error("feature extraction failed: {0}")]
    Run(String),
}

/// Turns clips into one feature vector each.
pub trait FeatureExtractor: Send {
    /// Feature dimension D.
    fn dim(&self) -> usize;
    /// `clips`: `[N, C, T, H, W]` -> `[N, D]`.
    fn extract(&mut self, clips: ArrayView5<f32>) -> Result<Array2<f32>, FeatureError>;
}
