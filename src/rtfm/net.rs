//! STUB: the RTFM network in candle, implemented by the RTFM work.

use super::{RtfmError, RtfmWidths};
use ndarray::ArrayView3;
use std::path::Path;

/// Per-snippet outputs for one video.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOutput {
    /// Mean over crops of the per-crop sigmoid score, one per snippet.
    pub scores: Vec<f32>,
    /// Mean over crops of the L2 norm of the temporal block's output, one per snippet.
    pub magnitudes: Vec<f32>,
}

/// Outputs of a batched forward pass (training and inference share it).
pub struct ForwardOutput {
    /// `[B, T]` scores averaged over crops.
    pub scores: candle_core::Tensor,
    /// `[B * crops, T]` per-crop scores.
    pub crop_scores: candle_core::Tensor,
    /// `[B * crops, T, D]` temporal-block features.
    pub features: candle_core::Tensor,
    /// `[B * crops, T]` feature magnitudes.
    pub magnitudes: candle_core::Tensor,
}

/// The RTFM network.
pub struct Rtfm {
    widths: RtfmWidths,
}

impl Rtfm {
    /// Loads weights from a safetensors file stored under the reference tensor names.
    pub fn load(path: &Path, widths: &RtfmWidths) -> Result<Self, RtfmError> {
        Err(RtfmError::Weights {
            path: path.display().to_string(),
            reason: format!("not implemented {widths:?}"),
        })
    }
    /// Builds the network from named tensors (checkpoint import).
    pub fn from_tensors(
        tensors: Vec<(String, candle_core::Tensor)>,
        widths: &RtfmWidths,
        origin: &Path,
    ) -> Result<Self, RtfmError> {
        let _ = tensors;
        Err(RtfmError::Weights {
            path: origin.display().to_string(),
            reason: format!("not implemented {widths:?}"),
        })
    }
    /// Writes the weights as safetensors under the reference names.
    pub fn save(&self, path: &Path) -> Result<(), RtfmError> {
        Err(RtfmError::Weights {
            path: path.display().to_string(),
            reason: "not implemented".into(),
        })
    }
    pub fn widths(&self) -> &RtfmWidths {
        &self.widths
    }
    /// Scores one video's features `[T, crops, D]` (any T >= 1).
    pub fn score(&self, feats: ArrayView3<f32>) -> Result<ScoreOutput, RtfmError> {
        let t = feats.shape()[0];
        Ok(ScoreOutput {
            scores: vec![0.0; t],
            magnitudes: vec![0.0; t],
        })
    }
}
