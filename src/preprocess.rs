//! Pure preprocessing: owned BGR frames -> normalised crops -> 16-frame snippet clips.
//! Knows nothing of OpenCV or ONNX Runtime. STUB: implemented by the source/preprocess work.

use crate::source::Frame;
use ndarray::Array5;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Channel order of the clip fed to the extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorOrder {
    Gray,
    Rgb,
    Bgr,
}

/// Resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Bilinear with half-pixel centres (OpenCV INTER_LINEAR / PIL BILINEAR without antialias).
    #[default]
    Bilinear,
    /// Box average over the covered source area (OpenCV INTER_AREA); good for large downscales.
    Area,
}

/// How a frame is resized before cropping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Resize {
    /// Keep the decoded size.
    None,
    /// Stretch to exactly `width` x `height`.
    Exact { width: u32, height: u32 },
    /// Scale so the shorter side equals `size`, keeping the aspect ratio (I3D: 256).
    ShorterSide { size: u32 },
}

/// Which crops are taken from each resized frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CropMode {
    /// The whole resized frame (crop size must equal the resized size).
    None,
    /// One centre crop.
    Center,
    /// Four corners and the centre.
    Five,
    /// Five crops and their horizontal flips (I3D ten-crop).
    Ten,
}

/// The `[preprocess]` section of `model.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Frames per snippet (RTFM: 16).
    pub snippet_frames: usize,
    /// Keep every k-th decoded frame (1 = native rate, as RTFM's I3D features).
    #[serde(default = "default_stride")]
    pub frame_stride: usize,
    pub color: ColorOrder,
    #[serde(default)]
    pub interpolation: Interpolation,
    pub resize: Resize,
    pub crop: CropMode,
    pub crop_width: u32,
    pub crop_height: u32,
    /// Per-channel (or one shared) mean, on the 0..255 scale.
    pub mean: Vec<f32>,
    /// Per-channel (or one shared) std, on the 0..255 scale.
    pub std: Vec<f32>,
}

fn default_stride() -> usize {
    1
}

impl Recipe {
    /// Number of channels of the clip (1 for gray, 3 otherwise).
    pub fn channels(&self) -> usize {
        match self.color {
            ColorOrder::Gray => 1,
            _ => 3,
        }
    }
    /// Number of crops per snippet.
    pub fn crops(&self) -> usize {
        match self.crop {
            CropMode::None | CropMode::Center => 1,
            CropMode::Five => 5,
            CropMode::Ten => 10,
        }
    }
    /// Cross-field checks; the message names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// One frame after resize / colour / crop / normalise: `[crops, C, H, W]` flattened.
#[derive(Debug, Clone)]
pub struct PreparedFrame {
    pub index: u64,
    pub pts_ms: f64,
    pub captured: Instant,
    pub data: Vec<f32>,
}

/// A 16-frame snippet ready for the extractor.
#[derive(Debug, Clone)]
pub struct Snippet {
    /// 0-based snippet index in the stream.
    pub index: u64,
    /// First and last real (non-padding) frame index, inclusive.
    pub first_frame: u64,
    pub last_frame: u64,
    pub start_ms: f64,
    pub end_ms: f64,
    /// Capture time of the newest real frame.
    pub captured: Instant,
    /// How many frames are real (< snippet_frames only for a loop-padded last snippet).
    pub real_frames: usize,
    /// `[crops, C, T, H, W]`.
    pub clip: Array5<f32>,
}

/// Errors of preprocessing.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("frame {index} is {width}x{height}, smaller than the {crop_width}x{crop_height} crop")]
    TooSmall {
        index: u64,
        width: u32,
        height: u32,
        crop_width: u32,
        crop_height: u32,
    },
    #[error("frame {index} has {got} bytes, expected {expected} for {width}x{height} BGR")]
    BadBuffer {
        index: u64,
        got: usize,
        expected: usize,
        width: u32,
        height: u32,
    },
}

/// Applies a [`Recipe`] to single frames.
pub struct Preprocessor {
    recipe: Recipe,
}

impl Preprocessor {
    pub fn new(recipe: Recipe) -> Self {
        Self { recipe }
    }
    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }
    /// Resize, convert, crop and normalise one frame.
    pub fn prepare(&self, frame: &Frame) -> Result<PreparedFrame, PreprocessError> {
        Ok(PreparedFrame {
            index: frame.index,
            pts_ms: frame.pts_ms,
            captured: frame.captured,
            data: vec![],
        })
    }
}

/// Groups prepared frames (after `frame_stride`) into snippets; `finish` loop-pads the last one.
pub struct SnippetAssembler {
    recipe: Recipe,
}

impl SnippetAssembler {
    pub fn new(recipe: Recipe) -> Self {
        Self { recipe }
    }
    pub fn push(&mut self, frame: PreparedFrame) -> Option<Snippet> {
        let _ = (&self.recipe, frame);
        None
    }
    pub fn finish(&mut self) -> Option<Snippet> {
        None
    }
}
