//! Frame sources. Owns everything that touches OpenCV's `videoio`; frames leave this module as
//! owned byte buffers (`Frame`) so no OpenCV handle ever crosses a thread.

mod opencv_file;

pub use opencv_file::{decode_only, redact_url, OpenCvSource};

use std::path::PathBuf;
use std::time::Instant;

/// One decoded frame, owned, 8-bit BGR interleaved (`height * width * 3` bytes).
#[derive(Debug, Clone)]
pub struct Frame {
    /// 0-based index of the frame in the stream.
    pub index: u64,
    /// Media timestamp in milliseconds (from the container, or index / fps when unknown).
    pub pts_ms: f64,
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
    /// When the frame left the decoder (for latency measurement).
    pub captured: Instant,
}

/// Frame rate assumed when a source reports none (or an impossible one).
pub const FALLBACK_FPS: f64 = 25.0;

/// What a source knows about itself once opened.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// Human-readable name used in events and errors (a file path or camera id).
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second reported by the container (falls back to 25 when unknown / zero).
    pub fps: f64,
    /// Frame count reported by the container, if any (may be approximate).
    pub frame_count: Option<u64>,
}

impl SourceInfo {
    /// The frame rate to time frames by: `fps`, or [`FALLBACK_FPS`] when a source left it at
    /// zero or set something that is not a positive number.
    pub fn frame_rate(&self) -> f64 {
        if self.fps.is_finite() && self.fps > 0.0 {
            self.fps
        } else {
            FALLBACK_FPS
        }
    }
}

/// Errors from opening or reading a source. Each names the source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("video file {0} does not exist")]
    Missing(PathBuf),
    #[error("video file {0} is empty (0 bytes)")]
    Empty(PathBuf),
    #[error("cannot open video {name}: {reason}")]
    Open { name: String, reason: String },
    #[error("video {name} holds no decodable frame (truncated or corrupt?)")]
    NoFrames { name: String },
    /// Reported by `next_frame` once, after every decodable frame has been returned, so a caller
    /// can keep the results of a partly recorded file while still learning it was cut short.
    #[error(
        "video {name} ended after {decoded} of the {expected} frames its header announces (truncated or damaged file?)"
    )]
    Truncated { name: String, decoded: u64, expected: u64 },
    #[error("video {name}: decode failed at frame {frame}: {reason}")]
    Decode { name: String, frame: u64, reason: String },
}

/// A source of owned frames. `next_frame` returns `Ok(None)` at the end of a file.
pub trait FrameSource: Send {
    fn info(&self) -> &SourceInfo;
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;
}
