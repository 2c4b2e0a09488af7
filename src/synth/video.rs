//! The only OpenCV contact of the generator: decoding the real source into owned rasters,
//! encoding frames to JPEG for MJPG/AVI files, and decoding them back for checks. MJPG is
//! intra-only, so every frame decodes on its own and fast, and needs no external encoder.

use super::raster::Image;
use super::SynthError;
use opencv::core::{Mat, Size, Vec3b};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc, videoio};
use std::path::{Path, PathBuf};

/// JPEG quality of written frames: high enough that blocking artefacts stay below the sensor
/// noise we add, low enough to keep the full benchmark well under 2 GB.
const JPEG_QUALITY: i32 = 85;

fn cv_err(path: &Path) -> impl Fn(opencv::Error) -> String + '_ {
    move |e| format!("{} (OpenCV: {e})", path.display())
}

/// Decodes up to `limit` frames of `path`, each resized to `width` x `height` (area averaging).
/// Returns the frames and the file's frame rate.
pub fn read_resized(path: &Path, width: usize, height: usize, limit: usize) -> Result<(Vec<Image>, f64), SynthError> {
    if !path.is_file() {
        return Err(SynthError::Source { path: path.to_path_buf(), reason: "file not found".into() });
    }
    let source = |reason: String| SynthError::Source { path: path.to_path_buf(), reason };
    let name = path.to_str().ok_or_else(|| source("path is not valid UTF-8".into()))?;
    let mut cap = videoio::VideoCapture::from_file(name, videoio::CAP_ANY).map_err(|e| source(cv_err(path)(e)))?;
    if !cap.is_opened().map_err(|e| source(cv_err(path)(e)))? {
        return Err(source("OpenCV cannot open it (no FFmpeg support, or not a video)".into()));
    }
    let fps = cap.get(videoio::CAP_PROP_FPS).map_err(|e| source(cv_err(path)(e)))?;
    let fps = if fps.is_finite() && fps > 0.0 { fps } else { 10.0 };
    let mut frames = Vec::new();
    let mut mat = Mat::default();
    let mut small = Mat::default();
    while frames.len() < limit {
        let ok = cap.read(&mut mat).map_err(|e| source(cv_err(path)(e)))?;
        if !ok || mat.empty() {
            break;
        }
        imgproc::resize(&mat, &mut small, Size::new(width as i32, height as i32), 0.0, 0.0, imgproc::INTER_AREA)
            .map_err(|e| source(cv_err(path)(e)))?;
        frames.push(to_image(&small).map_err(|e| source(format!("frame {}: {e}", frames.len())))?);
    }
    Ok((frames, fps))
}

/// Copies a continuous CV_8UC3 `Mat` into an owned raster (a `Mat` must not outlive its thread's
/// use of it, and our drawing works on plain bytes).
fn to_image(mat: &Mat) -> Result<Image, String> {
    if mat.typ() != Vec3b::opencv_type() {
        return Err(format!("expected 8-bit BGR frames, got OpenCV type {}", mat.typ()));
    }
    let bytes = if mat.is_continuous() {
        mat.data_bytes().map_err(|e| e.to_string())?.to_vec()
    } else {
        let c = mat.try_clone().map_err(|e| e.to_string())?;
        c.data_bytes().map_err(|e| e.to_string())?.to_vec()
    };
    Ok(Image { width: mat.cols() as usize, height: mat.rows() as usize, data: bytes })
}

/// An open MJPG/AVI writer for one output video: each frame is encoded to JPEG by OpenCV's
/// `imencode` (libjpeg, baseline, deterministic) and muxed by [`super::avi`]. OpenCV 4.6's own
/// MJPEG writer (`CAP_OPENCV_MJPEG`) is not used: it drops the last bytes of some frames
/// (OpenCV issues 19634 and 24171, fixed in 4.9), which FFmpeg reports as `[mjpeg] error`.
pub struct VideoOut {
    avi: super::avi::AviWriter,
    path: PathBuf,
    params: opencv::core::Vector<i32>,
    jpeg: opencv::core::Vector<u8>,
}

impl VideoOut {
    pub fn create(path: &Path, fps: f64, width: usize, height: usize) -> Result<Self, SynthError> {
        let avi = super::avi::AviWriter::create(path, fps, width, height)
            .map_err(|e| SynthError::Writer { path: path.to_path_buf(), reason: e.to_string() })?;
        let params = opencv::core::Vector::<i32>::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, JPEG_QUALITY]);
        Ok(VideoOut { avi, path: path.to_path_buf(), params, jpeg: opencv::core::Vector::new() })
    }

    pub fn write(&mut self, img: &Image) -> Result<(), SynthError> {
        let frame = self.avi.frames();
        let path = &self.path;
        let err = |reason: String| SynthError::Write { path: path.clone(), frame, reason };
        let mat = Mat::new_rows_cols_with_bytes::<Vec3b>(img.height as i32, img.width as i32, &img.data)
            .map_err(|e| err(e.to_string()))?;
        let ok = imgcodecs::imencode(".jpg", &mat, &mut self.jpeg, &self.params).map_err(|e| err(e.to_string()))?;
        if !ok {
            return Err(err("OpenCV could not encode the frame as JPEG".into()));
        }
        self.avi.write_frame(self.jpeg.as_slice()).map_err(|e| err(e.to_string()))?;
        Ok(())
    }

    /// Closes the file (writes the AVI index); returns the frame count.
    pub fn finish(self) -> Result<usize, SynthError> {
        let (path, frames) = (self.path, self.avi.frames());
        self.avi.finish().map_err(|e| SynthError::Write { path, frame: frames, reason: e.to_string() })
    }
}

/// Decodes a whole video and returns its frame count, size and an FNV-1a hash of all decoded
/// pixels: what tests compare, since the same pixels may be encoded to different bytes.
pub fn decode_digest(path: &Path) -> Result<(usize, usize, usize, u64), SynthError> {
    let source = |reason: String| SynthError::Source { path: path.to_path_buf(), reason };
    let name = path.to_str().ok_or_else(|| source("path is not valid UTF-8".into()))?;
    let mut cap = videoio::VideoCapture::from_file(name, videoio::CAP_ANY).map_err(|e| source(e.to_string()))?;
    if !cap.is_opened().map_err(|e| source(e.to_string()))? {
        return Err(source("OpenCV cannot open it".into()));
    }
    let mut mat = Mat::default();
    let (mut n, mut w, mut h) = (0usize, 0usize, 0usize);
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    while cap.read(&mut mat).map_err(|e| source(e.to_string()))? && !mat.empty() {
        let img = to_image(&mat).map_err(|e| source(format!("frame {n}: {e}")))?;
        (w, h) = (img.width, img.height);
        for b in &img.data {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        n += 1;
    }
    Ok((n, w, h, hash))
}
