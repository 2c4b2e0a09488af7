//! Feature extraction. Owns everything that touches ONNX Runtime: locating the runtime library,
//! one `Session` per extractor (never shared behind a mutex), and shape validation against the
//! manifest.

mod onnx;
mod provider;

pub use onnx::{init_runtime, runtime_library, sha256_hex, OnnxExtractor, ORT_DYLIB_ENV};
pub use provider::{default_cache_dir, resolve_cache_dir, Provider, ProviderOptions};

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
    /// Execution provider: `cpu` (default), `cuda`, `tensorrt` or `auto` (TensorRT, then CUDA,
    /// then CPU). `--provider` overrides it.
    #[serde(default)]
    pub provider: Provider,
    /// When an explicitly requested GPU provider cannot be used, run on CPU with a warning
    /// instead of refusing to start. Default false. `--allow-fallback` sets it.
    #[serde(default)]
    pub allow_fallback: bool,
    /// TensorRT only: build FP16 kernels where TensorRT can. Default false (FP32, the features
    /// the RTFM head was trained on).
    #[serde(default)]
    pub tensorrt_fp16: bool,
    /// TensorRT only: engine and timing cache directory (`~/` expanded, relative paths are
    /// relative to the model directory). Default `$XDG_CACHE_HOME/vigil/tensorrt`, else
    /// `~/.cache/vigil/tensorrt`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

fn default_max_batch() -> usize {
    8
}

/// The manifest defaults, for building specs in code: `extractor.onnx`, `clip` -> `features`, no
/// shapes (fill `input_shape` and `output_shape` in before loading), CPU.
impl Default for ExtractorSpec {
    fn default() -> Self {
        Self {
            file: PathBuf::from("extractor.onnx"),
            sha256: None,
            input: "clip".into(),
            output: "features".into(),
            input_shape: Vec::new(),
            output_shape: Vec::new(),
            max_batch: default_max_batch(),
            provider: Provider::default(),
            allow_fallback: false,
            tensorrt_fp16: false,
            cache_dir: None,
        }
    }
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
