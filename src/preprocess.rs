//! Pure preprocessing: owned BGR (or, for grey models, I420) frames -> normalised crops ->
//! 16-frame snippet clips.
//! Knows nothing of OpenCV or ONNX Runtime (it must stay pure Rust so replay, benches and tests
//! give bit-identical clips everywhere) and never touches threads or I/O.
//!
//! Order of operations for one frame: resize (separable: a vertical pass over the interleaved
//! `u8` rows, then a horizontal pass) -> colour (gray / RGB / BGR) and normalisation fused into
//! the horizontal pass -> crops copied out as `[crops, C, H, W]`. Resizing before the colour
//! conversion is exact because both are linear and all arithmetic stays in `f32`: unlike an
//! OpenCV/PIL `uint8` pipeline nothing is rounded between steps, so values can differ from such a
//! pipeline by at most half a grey level (under 0.01 after I3D's /57.375).

use crate::source::{Frame, PixelFormat};
use ndarray::Array5;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Instant;
use taps::Taps;

mod taps;

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

/// Largest resized side accepted by [`Recipe::validate`]; guards against typos such as
/// `size = 25600` allocating gigabytes per frame.
const MAX_SIDE: u32 = 8192;

/// Most `u8` rows whose sum still fits a `u16` (257 * 255 = 65,535).
const MAX_U16_ROWS: usize = 257;

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

    /// Number of `f32` values in one prepared frame: `crops * C * crop_height * crop_width`.
    pub fn frame_len(&self) -> usize {
        self.crops() * self.channels() * self.crop_height as usize * self.crop_width as usize
    }

    /// Shape of a snippet's clip: `[crops, C, T, H, W]`.
    pub fn clip_shape(&self) -> [usize; 5] {
        [self.crops(), self.channels(), self.snippet_frames, self.crop_height as usize, self.crop_width as usize]
    }

    /// Size of a `width` x `height` frame after [`Recipe::resize`].
    ///
    /// `ShorterSide` truncates the longer side like torchvision's `Resize(int)`
    /// (`int(size * long / short)`): 320x240 -> 341x256.
    pub fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        match self.resize {
            Resize::None => (width, height),
            Resize::Exact { width, height } => (width, height),
            Resize::ShorterSide { size } => {
                let scaled = |long: u32, short: u32| {
                    ((u64::from(size) * u64::from(long)) / u64::from(short.max(1))).max(1) as u32
                };
                if width <= height {
                    (size, scaled(height, width))
                } else {
                    (scaled(width, height), size)
                }
            }
        }
    }

    /// Cross-field checks; the message names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.snippet_frames == 0 {
            return Err("preprocess.snippet_frames: must be at least 1 (RTFM uses 16)".into());
        }
        if self.frame_stride == 0 {
            return Err("preprocess.frame_stride: must be at least 1 (1 keeps every frame)".into());
        }
        let channels = self.channels();
        for (key, values) in [("mean", &self.mean), ("std", &self.std)] {
            if values.len() != 1 && values.len() != channels {
                return Err(format!(
                    "preprocess.{key}: has {} values; expected 1 (shared) or {channels} (one per channel of color = {:?})",
                    values.len(),
                    self.color
                ));
            }
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                return Err(format!("preprocess.{key}: {bad} is not a finite number"));
            }
        }
        if let Some(bad) = self.std.iter().find(|v| **v <= 0.0) {
            return Err(format!("preprocess.std: {bad} must be greater than 0 (it divides)"));
        }
        for (key, v) in [("crop_width", self.crop_width), ("crop_height", self.crop_height)] {
            if v == 0 || v > MAX_SIDE {
                return Err(format!("preprocess.{key}: {v} must be in 1..={MAX_SIDE}"));
            }
        }
        match self.resize {
            Resize::None => {}
            Resize::Exact { width, height } => {
                for (key, v) in [("width", width), ("height", height)] {
                    if v == 0 || v > MAX_SIDE {
                        return Err(format!("preprocess.resize.{key}: {v} must be in 1..={MAX_SIDE}"));
                    }
                }
                if self.crop == CropMode::None {
                    if (self.crop_width, self.crop_height) != (width, height) {
                        return Err(format!(
                            "preprocess.crop_width/crop_height: {}x{} must equal the resized size {width}x{height} when crop = \"none\"",
                            self.crop_width, self.crop_height
                        ));
                    }
                } else {
                    if self.crop_width > width {
                        return Err(format!(
                            "preprocess.crop_width: {} is wider than the resized width {width}",
                            self.crop_width
                        ));
                    }
                    if self.crop_height > height {
                        return Err(format!(
                            "preprocess.crop_height: {} is taller than the resized height {height}",
                            self.crop_height
                        ));
                    }
                }
            }
            Resize::ShorterSide { size } => {
                if size == 0 || size > MAX_SIDE {
                    return Err(format!("preprocess.resize.size: {size} must be in 1..={MAX_SIDE}"));
                }
                if self.crop == CropMode::None {
                    return Err(
                        "preprocess.crop: \"none\" needs a fixed resized size; use resize mode \"exact\" or a crop such as \"center\""
                            .into(),
                    );
                }
                // The shorter side becomes `size` and the longer one at least `size`, so a crop
                // no larger than `size` always fits.
                for (key, v) in [("crop_width", self.crop_width), ("crop_height", self.crop_height)] {
                    if v > size {
                        return Err(format!("preprocess.{key}: {v} is larger than the resized shorter side {size}"));
                    }
                }
            }
        }
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
    /// Timestamps of the first and last real frame.
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
    TooSmall { index: u64, width: u32, height: u32, crop_width: u32, crop_height: u32 },
    #[error("frame {index} has {got} bytes, expected {expected} for {width}x{height} {format:?}")]
    BadBuffer { index: u64, got: usize, expected: usize, width: u32, height: u32, format: PixelFormat },
    #[error("frame {index} is YUV 4:2:0, which only a grey model reads; this model wants {color:?} (decode to BGR)")]
    NeedsColour { index: u64, color: ColorOrder },
    #[error(
        "frame {index} is {width}x{height} after resizing, but crop \"none\" needs exactly {crop_width}x{crop_height}"
    )]
    CropMismatch { index: u64, width: u32, height: u32, crop_width: u32, crop_height: u32 },
}

/// Buffers reused across frames so the per-frame path allocates only its output.
#[derive(Default)]
struct Scratch {
    /// After the vertical pass: `[resized_h][src_w * 3]`, interleaved BGR.
    rows: Vec<f32>,
    /// After the horizontal pass + colour + normalise: `[C][resized_h * resized_w]`.
    planes: Vec<f32>,
    /// Integer row sums for the vertical box-filter fast path: `[src_w * 3]`.
    sums: Vec<u16>,
    /// A TV-range luma plane clamped to 16-235.
    luma: Vec<u8>,
}

/// What `u8` samples a resize reads: interleaved BGR, or one luma plane mapped to grey by
/// `(y - offset) * gain` after resizing (exact: the map is affine and the resize linear).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pixels {
    Bgr,
    Luma { offset: f32, gain: f32 },
}

impl Pixels {
    fn channels(self) -> usize {
        match self {
            Pixels::Bgr => 3,
            Pixels::Luma { .. } => 1,
        }
    }
}

/// One crop: top-left corner in the resized frame and whether it is mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CropWindow {
    x: usize,
    y: usize,
    flip: bool,
}

/// Applies a [`Recipe`] to single frames.
pub struct Preprocessor {
    recipe: Recipe,
    /// Per-channel mean and 1/std, expanded from the recipe's one-or-C values.
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// Behind a mutex only so `prepare` can take `&self`; one stage thread owns a preprocessor,
    /// so the lock is uncontended (a contended caller gets fresh buffers instead of waiting).
    scratch: Mutex<Scratch>,
}

impl Preprocessor {
    /// Builds a preprocessor for `recipe`. Call [`Recipe::validate`] first (or use
    /// [`Preprocessor::try_new`]); an unvalidated recipe never panics but may give meaningless
    /// values (e.g. a missing mean is taken as 0).
    pub fn new(recipe: Recipe) -> Self {
        let channels = recipe.channels();
        let per_channel = |values: &[f32], default: f32| -> Vec<f32> {
            (0..channels).map(|c| values.get(c).or(values.first()).copied().unwrap_or(default)).collect()
        };
        let mean = per_channel(&recipe.mean, 0.0);
        let inv_std = per_channel(&recipe.std, 1.0).into_iter().map(|s| 1.0 / s).collect();
        Self { recipe, mean, inv_std, scratch: Mutex::new(Scratch::default()) }
    }

    /// Validates `recipe` and builds a preprocessor for it.
    pub fn try_new(recipe: Recipe) -> Result<Self, String> {
        recipe.validate()?;
        Ok(Self::new(recipe))
    }

    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// Resize, convert, crop and normalise one frame.
    pub fn prepare(&self, frame: &Frame) -> Result<PreparedFrame, PreprocessError> {
        let (w, h) = (frame.width as usize, frame.height as usize);
        let expected = frame.format.frame_len(frame.width, frame.height);
        if frame.data.len() != expected || expected == 0 {
            return Err(PreprocessError::BadBuffer {
                index: frame.index,
                got: frame.data.len(),
                expected,
                width: frame.width,
                height: frame.height,
                format: frame.format,
            });
        }
        let pixels = match frame.format {
            PixelFormat::Bgr => Pixels::Bgr,
            PixelFormat::I420 { .. } if self.recipe.color != ColorOrder::Gray => {
                return Err(PreprocessError::NeedsColour { index: frame.index, color: self.recipe.color })
            }
            // The grey a BGR decode would give: BT.601's RGB from YUV, weighted back to luma,
            // is 255 / 219 * (Y - 16) with Y clamped to 16-235 (the chroma terms cancel).
            PixelFormat::I420 { full_range: false } => Pixels::Luma { offset: 16.0, gain: 255.0 / 219.0 },
            PixelFormat::I420 { full_range: true } => Pixels::Luma { offset: 0.0, gain: 1.0 },
        };
        let r = &self.recipe;
        let (rw, rh) = r.resized_size(frame.width, frame.height);
        let (cw, ch) = (r.crop_width, r.crop_height);
        if r.crop == CropMode::None && (rw, rh) != (cw, ch) {
            return Err(PreprocessError::CropMismatch {
                index: frame.index,
                width: rw,
                height: rh,
                crop_width: cw,
                crop_height: ch,
            });
        }
        if rw < cw || rh < ch {
            return Err(PreprocessError::TooSmall {
                index: frame.index,
                width: rw,
                height: rh,
                crop_width: cw,
                crop_height: ch,
            });
        }
        let mut local;
        let mut guard = self.scratch.try_lock();
        let scratch: &mut Scratch = match guard.as_deref_mut() {
            Ok(s) => s,
            Err(_) => {
                local = Scratch::default();
                &mut local
            }
        };
        let (rw, rh) = (rw as usize, rh as usize);
        match pixels {
            // TV-range luma outside 16-235 is black or white (clipped) in BGR too: the block
            // path clamps as it sums; the general path reads a clamped copy.
            Pixels::Luma { offset, .. } if offset > 0.0 && !self.block_path(w, h, rw, rh) => {
                let mut luma = std::mem::take(&mut scratch.luma);
                luma.clear();
                luma.extend(frame.data[..w * h].iter().map(|v| (*v).clamp(16, 235)));
                self.resize_convert(&luma, pixels, w, h, rw, rh, scratch);
                scratch.luma = luma;
            }
            Pixels::Luma { .. } => self.resize_convert(&frame.data[..w * h], pixels, w, h, rw, rh, scratch),
            Pixels::Bgr => self.resize_convert(&frame.data, pixels, w, h, rw, rh, scratch),
        }
        let data = self.crop(&scratch.planes, rw, rh);
        Ok(PreparedFrame { index: frame.index, pts_ms: frame.pts_ms, captured: frame.captured, data })
    }

    /// Resizes the `u8` frame (BGR, or one luma plane) to `rw` x `rh` and leaves normalised
    /// channel planes in `scratch.planes`.
    #[allow(clippy::too_many_arguments)]
    fn resize_convert(&self, src: &[u8], px: Pixels, w: usize, h: usize, rw: usize, rh: usize, scratch: &mut Scratch) {
        if self.block_path(w, h, rw, rh) {
            self.block_convert(src, px, w, h, rw, rh, scratch)
        } else {
            self.separable_convert(src, px, w, h, rw, rh, scratch)
        }
    }

    /// Whether a `w` x `h` -> `rw` x `rh` resize takes [`Preprocessor::block_convert`]: area
    /// resampling by whole factors (768x576 -> 128x96).
    fn block_path(&self, w: usize, h: usize, rw: usize, rh: usize) -> bool {
        self.recipe.interpolation == Interpolation::Area && w % rw == 0 && h % rh == 0 && h / rh <= MAX_U16_ROWS
    }

    /// The general resize: a vertical then a horizontal pass with the filter's taps.
    #[allow(clippy::too_many_arguments)]
    fn separable_convert(
        &self,
        src: &[u8],
        px: Pixels,
        w: usize,
        h: usize,
        rw: usize,
        rh: usize,
        scratch: &mut Scratch,
    ) {
        let filter = self.recipe.interpolation;
        let cin = px.channels();
        let row_len = w * cin;

        // Vertical pass first: it streams whole contiguous source rows (vectorisable), and for
        // the usual downscale it shrinks the data before the strided horizontal pass.
        let ty = Taps::new(filter, h, rh);
        scratch.rows.resize(rh * row_len, 0.0);
        scratch.sums.resize(row_len, 0);
        for (oy, out) in scratch.rows.chunks_exact_mut(row_len).enumerate() {
            let (start, weights) = ty.get(oy);
            let row = |k: usize| &src[(start + k) * row_len..(start + k + 1) * row_len];
            // A box filter gives all interior rows one shared weight: summing those rows as
            // integers and converting once per output is ~2x faster than a float multiply-add
            // per source byte (u8 -> f32 conversion dominates without AVX2), and exact.
            let common = weights.iter().copied().fold(0.0f32, f32::max);
            let shared = weights.iter().filter(|w| **w == common).count();
            let integer_rows = (3..=MAX_U16_ROWS).contains(&shared);
            let mut started = false;
            if integer_rows {
                let sums = &mut scratch.sums;
                sums.fill(0);
                for k in (0..weights.len()).filter(|k| weights[*k] == common) {
                    sums.iter_mut().zip(row(k)).for_each(|(a, &s)| *a += u16::from(s));
                }
                out.iter_mut().zip(sums.iter()).for_each(|(o, &a)| *o = common * f32::from(a));
                started = true;
            }
            for (k, &wt) in weights.iter().enumerate() {
                if integer_rows && wt == common {
                    continue;
                }
                if started {
                    out.iter_mut().zip(row(k)).for_each(|(o, &s)| *o += wt * f32::from(s));
                } else {
                    out.iter_mut().zip(row(k)).for_each(|(o, &s)| *o = wt * f32::from(s));
                    started = true;
                }
            }
        }

        // Horizontal pass, fused with colour conversion and normalisation.
        let tx = Taps::new(filter, w, rw);
        let plane = rw * rh;
        scratch.planes.resize(self.recipe.channels() * plane, 0.0);
        for (oy, row) in scratch.rows.chunks_exact(row_len).enumerate() {
            if let Pixels::Luma { offset, gain } = px {
                for ox in 0..rw {
                    let (start, weights) = tx.get(ox);
                    let y: f32 = weights.iter().zip(&row[start..]).map(|(wt, v)| wt * v).sum();
                    self.store_luma(&mut scratch.planes, oy * rw + ox, (y - offset) * gain);
                }
                continue;
            }
            for ox in 0..rw {
                let (start, weights) = tx.get(ox);
                let (mut b, mut g, mut r) = (0.0f32, 0.0f32, 0.0f32);
                for (k, &wt) in weights.iter().enumerate() {
                    let p = (start + k) * 3;
                    b += wt * row[p];
                    g += wt * row[p + 1];
                    r += wt * row[p + 2];
                }
                self.store(&mut scratch.planes, plane, oy * rw + ox, b, g, r);
            }
        }
    }

    /// Area resize by a whole factor (768x576 -> 128x96 is 6 x 6): every output pixel is the mean
    /// of its own block, summed as integers (exact) and scaled once. Equal to the general path up
    /// to float rounding, at a fraction of its cost (it ran at 0.57 ms a frame in the daemon).
    #[allow(clippy::too_many_arguments)]
    fn block_convert(&self, src: &[u8], px: Pixels, w: usize, h: usize, rw: usize, rh: usize, scratch: &mut Scratch) {
        let (kx, ky) = (w / rw, h / rh);
        let row_len = w * px.channels();
        // TV-range luma is clamped to 16-235 as it is summed (see `prepare`).
        let clamp = matches!(px, Pixels::Luma { offset, .. } if offset > 0.0);
        let plane = rw * rh;
        scratch.planes.resize(self.recipe.channels() * plane, 0.0);
        scratch.sums.resize(row_len, 0);
        let scale = 1.0 / (kx * ky) as f32;
        for oy in 0..rh {
            let sums = &mut scratch.sums;
            sums.fill(0);
            for row in src[oy * ky * row_len..(oy + 1) * ky * row_len].chunks_exact(row_len) {
                if clamp {
                    // `max().min()`, not `clamp()`: clamp's bounds check kept this loop from
                    // vectorising (0.15 against 0.11 ms a vtest frame, `cargo bench`).
                    #[allow(clippy::manual_clamp)]
                    sums.iter_mut().zip(row).for_each(|(a, &s)| *a += u16::from(s.max(16).min(235)));
                } else {
                    sums.iter_mut().zip(row).for_each(|(a, &s)| *a += u16::from(s));
                }
            }
            if let Pixels::Luma { offset, gain } = px {
                for (ox, block) in sums.chunks_exact(kx).enumerate() {
                    let y = block.iter().map(|v| u32::from(*v)).sum::<u32>() as f32 * scale;
                    self.store_luma(&mut scratch.planes, oy * rw + ox, (y - offset) * gain);
                }
                continue;
            }
            for (ox, block) in sums.chunks_exact(kx * 3).enumerate() {
                let (mut b, mut g, mut r) = (0u32, 0u32, 0u32);
                for px in block.chunks_exact(3) {
                    b += u32::from(px[0]);
                    g += u32::from(px[1]);
                    r += u32::from(px[2]);
                }
                let (b, g, r) = (b as f32 * scale, g as f32 * scale, r as f32 * scale);
                self.store(&mut scratch.planes, plane, oy * rw + ox, b, g, r);
            }
        }
    }

    /// Normalisation of one resized grey pixel (a grey recipe's only plane).
    #[inline(always)]
    fn store_luma(&self, planes: &mut [f32], at: usize, grey: f32) {
        planes[at] = (grey - self.mean[0]) * self.inv_std[0];
    }

    /// Colour conversion and normalisation of one resized pixel into the channel planes.
    #[inline(always)]
    fn store(&self, planes: &mut [f32], plane: usize, at: usize, b: f32, g: f32, r: f32) {
        let (m, s) = (&self.mean, &self.inv_std);
        match self.recipe.color {
            ColorOrder::Gray => {
                let y = 0.299 * r + 0.587 * g + 0.114 * b;
                planes[at] = (y - m[0]) * s[0];
            }
            ColorOrder::Rgb => {
                planes[at] = (r - m[0]) * s[0];
                planes[plane + at] = (g - m[1]) * s[1];
                planes[2 * plane + at] = (b - m[2]) * s[2];
            }
            ColorOrder::Bgr => {
                planes[at] = (b - m[0]) * s[0];
                planes[plane + at] = (g - m[1]) * s[1];
                planes[2 * plane + at] = (r - m[2]) * s[2];
            }
        }
    }

    /// Crop windows for a `rw` x `rh` resized frame, in output order.
    fn windows(&self, rw: usize, rh: usize) -> Vec<CropWindow> {
        let (cw, ch) = (self.recipe.crop_width as usize, self.recipe.crop_height as usize);
        let (right, bottom) = (rw - cw, rh - ch);
        // torchvision's center_crop: `int(round((H - h) / 2))`; Python rounds half to even.
        let centre = |free: usize| (free as f64 / 2.0).round_ties_even() as usize;
        let at = |x, y| CropWindow { x, y, flip: false };
        let five = [at(0, 0), at(right, 0), at(0, bottom), at(right, bottom), at(centre(right), centre(bottom))];
        match self.recipe.crop {
            CropMode::None => vec![at(0, 0)],
            CropMode::Center => vec![five[4]],
            CropMode::Five => five.to_vec(),
            CropMode::Ten => five.iter().copied().chain(five.iter().map(|c| CropWindow { flip: true, ..*c })).collect(),
        }
    }

    /// Copies the crops out of the normalised planes into `[crops, C, H, W]`.
    fn crop(&self, planes: &[f32], rw: usize, rh: usize) -> Vec<f32> {
        let (cw, ch) = (self.recipe.crop_width as usize, self.recipe.crop_height as usize);
        let channels = self.recipe.channels();
        let mut out = Vec::with_capacity(self.recipe.frame_len());
        for win in self.windows(rw, rh) {
            for c in 0..channels {
                let plane = &planes[c * rw * rh..(c + 1) * rw * rh];
                for y in win.y..win.y + ch {
                    let row = &plane[y * rw + win.x..y * rw + win.x + cw];
                    if win.flip {
                        out.extend(row.iter().rev());
                    } else {
                        out.extend_from_slice(row);
                    }
                }
            }
        }
        out
    }
}

/// Groups prepared frames (after `frame_stride`) into snippets; `finish` loop-pads the last one.
///
/// Stride is applied on the frame's stream index (`index % frame_stride == 0`), not on how many
/// frames were pushed, so frames dropped upstream (a live camera under load) do not shift the
/// sampling grid. Callers can ask [`SnippetAssembler::keeps`] before preparing a frame to skip the
/// work for frames that would be dropped.
pub struct SnippetAssembler {
    recipe: Recipe,
    pending: Vec<PreparedFrame>,
    next_index: u64,
}

impl SnippetAssembler {
    pub fn new(recipe: Recipe) -> Self {
        let pending = Vec::with_capacity(recipe.snippet_frames);
        Self { recipe, pending, next_index: 0 }
    }

    /// Whether a frame with stream index `frame_index` is kept by `frame_stride`.
    pub fn keeps(&self, frame_index: u64) -> bool {
        frame_index % self.recipe.frame_stride.max(1) as u64 == 0
    }

    /// Real frames waiting for the next snippet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Adds one prepared frame; returns a snippet when `snippet_frames` kept frames are pending.
    ///
    /// # Panics
    /// If `frame.data` does not hold `recipe.frame_len()` values, i.e. it was prepared with a
    /// different recipe (a bug in the caller).
    pub fn push(&mut self, frame: PreparedFrame) -> Option<Snippet> {
        if !self.keeps(frame.index) {
            return None;
        }
        assert_eq!(
            frame.data.len(),
            self.recipe.frame_len(),
            "prepared frame {} does not match the assembler's recipe",
            frame.index
        );
        self.pending.push(frame);
        if self.pending.len() >= self.recipe.snippet_frames.max(1) {
            Some(self.emit())
        } else {
            None
        }
    }

    /// Emits the last partial snippet, loop-padded with frames repeated from its start
    /// (f0 f1 f2 -> f0 f1 f2 f0 f1 f2 ...), or `None` when no frame is pending.
    pub fn finish(&mut self) -> Option<Snippet> {
        if self.pending.is_empty() {
            None
        } else {
            Some(self.emit())
        }
    }

    fn emit(&mut self) -> Snippet {
        let [crops, channels, t_len, h, w] = self.recipe.clip_shape();
        let t_len = t_len.max(1);
        let hw = h * w;
        let real = self.pending.len();
        let mut clip = vec![0.0f32; crops * channels * t_len * hw];
        for t in 0..t_len {
            let frame = &self.pending[t % real];
            for kc in 0..crops * channels {
                let src = &frame.data[kc * hw..(kc + 1) * hw];
                let dst = (kc * t_len + t) * hw;
                clip[dst..dst + hw].copy_from_slice(src);
            }
        }
        let clip = Array5::from_shape_vec((crops, channels, t_len, h, w), clip)
            .expect("clip buffer is sized from the recipe's clip shape");
        let (first, last) = (&self.pending[0], &self.pending[real - 1]);
        let snippet = Snippet {
            index: self.next_index,
            first_frame: first.index,
            last_frame: last.index,
            start_ms: first.pts_ms,
            end_ms: last.pts_ms,
            captured: last.captured,
            real_frames: real,
            clip,
        };
        self.next_index += 1;
        self.pending.clear();
        snippet
    }
}

#[cfg(test)]
mod tests;
