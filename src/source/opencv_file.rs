//! OpenCV (FFmpeg backend) file and stream source. STUB: implemented by the source/preprocess work.

use super::{Frame, FrameSource, SourceError, SourceInfo};
use std::path::Path;

/// A video file (or URL) decoded with OpenCV's FFmpeg backend.
pub struct OpenCvSource {
    info: SourceInfo,
}

impl OpenCvSource {
    /// Opens a video file, checking existence and size first so errors are specific.
    pub fn open_file(path: &Path) -> Result<Self, SourceError> {
        Err(SourceError::Open {
            name: path.display().to_string(),
            reason: "not implemented".into(),
        })
    }
}

impl FrameSource for OpenCvSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        Ok(None)
    }
}

/// Decodes every frame of `path` with OpenCV alone and returns (frames, seconds): the decode floor.
pub fn decode_only(path: &Path) -> Result<(u64, f64), SourceError> {
    Err(SourceError::Open {
        name: path.display().to_string(),
        reason: "not implemented".into(),
    })
}
