//! STUB: PyTorch checkpoint import, implemented by the RTFM work.

use super::{CheckpointError, RtfmWidths};
use std::path::Path;

/// A checkpoint read and validated: its widths (inferred from tensor shapes) and tensors.
pub struct ImportedCheckpoint {
    pub widths: RtfmWidths,
    pub tensors: Vec<(String, candle_core::Tensor)>,
}

/// Reads a `torch.save(state_dict)` file (zip or legacy format) with the 47 reference names.
pub fn import_checkpoint(path: &Path) -> Result<ImportedCheckpoint, CheckpointError> {
    Err(CheckpointError::Read {
        path: path.display().to_string(),
        reason: "not implemented".into(),
    })
}
