//! Frame sources. Owns everything that touches OpenCV's `videoio` and FFmpeg's decoders; frames
//! leave this module as owned byte buffers (`Frame`) so no decoder handle ever crosses a thread.
//!
//! Two decoders: [`OpenCvSource`] (OpenCV's capture: BGR frames; files, streams and USB devices)
//! and [`FfmpegSource`] (FFmpeg's own API through `ffdec.c`: I420 frames, without the BGR
//! conversion; files and streams). Replay, features and evaluation read BGR through OpenCV; the
//! daemon reads I420 through FFmpeg when its model is grey (`daemon::capture`).

mod ffmpeg;
mod opencv_file;

pub use ffmpeg::{decode_only_yuv, FfmpegSource};
pub use opencv_file::{decode_only, redact_url, OpenCvSource};

use std::path::PathBuf;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};

/// Frame buffers handed back by whoever is done with a source's frames, for the source to fill
/// again. A camera's frames all have one size, and a fresh buffer per frame (0.6 MB for
/// 768x576 I420, 3 MB for 1080p) costs page faults and the allocator's work on every frame
/// (with the pre-roll's buffers reused too: 361 against 152 page faults a second and ~5% less
/// CPU at 72 vtest cameras, `perf stat`, 2026-11-28).
/// Cloning shares the pool.
#[derive(Clone)]
pub struct FrameBuffers {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

impl FrameBuffers {
    /// A pool that keeps at most `keep` buffers waiting; more handed back are freed.
    pub fn new(keep: usize) -> Self {
        let (tx, rx) = bounded(keep.max(1));
        Self { tx, rx }
    }

    /// An empty buffer with room for `len` bytes: one handed back when one is large enough (smaller
    /// ones, from before a change of frame size, are freed), else a new one.
    pub fn take(&self, len: usize) -> Vec<u8> {
        while let Ok(mut buf) = self.rx.try_recv() {
            if buf.capacity() >= len {
                buf.clear();
                return buf;
            }
        }
        Vec::with_capacity(len)
    }

    /// Hands `buf` back for a later [`FrameBuffers::take`]; freed when the pool is full.
    pub fn give(&self, buf: Vec<u8>) {
        if buf.capacity() > 0 {
            let _ = self.tx.try_send(buf);
        }
    }

    /// Buffers waiting to be taken.
    pub fn waiting(&self) -> usize {
        self.rx.len()
    }
}

/// How a [`Frame`]'s bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PixelFormat {
    /// 8-bit BGR interleaved: `height * width * 3` bytes.
    #[default]
    Bgr,
    /// Planar YUV 4:2:0, tightly packed: the `width * height` luma plane, then the U and the V
    /// plane of `ceil(width / 2) * ceil(height / 2)` bytes each. `full_range`: luma spans 0-255
    /// (JPEG range); otherwise 16-235 (BT.601 "TV" range, what nearly every camera sends).
    I420 { full_range: bool },
}

impl PixelFormat {
    /// Bytes of a `width` x `height` frame in this format.
    pub fn frame_len(self, width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelFormat::Bgr => w * h * 3,
            PixelFormat::I420 { .. } => w * h + 2 * w.div_ceil(2) * h.div_ceil(2),
        }
    }
}

/// One decoded frame, owned, in the layout its `format` says.
#[derive(Debug, Clone)]
pub struct Frame {
    /// 0-based index of the frame in the stream.
    pub index: u64,
    /// Media timestamp in milliseconds (from the container, or index / fps when unknown).
    pub pts_ms: f64,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
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

/// Timestamps of decoded frames: the container's when plausible (finite, non-negative, strictly
/// increasing: some demuxers report 0 or repeat the last value for every frame, and snippet times
/// must be monotonic), else index / fps, never stepping backwards when switching between them.
#[derive(Debug, Clone)]
struct PtsClock {
    fps: f64,
    last_ms: f64,
}

impl PtsClock {
    fn new(fps: f64) -> Self {
        Self { fps, last_ms: f64::NEG_INFINITY }
    }

    fn next(&mut self, index: u64, reported: Option<f64>) -> f64 {
        let sane = reported.filter(|r| r.is_finite() && *r >= 0.0 && (index == 0 || *r > self.last_ms));
        let pts = match sane {
            Some(r) => r,
            None => {
                let derived = index as f64 * 1000.0 / self.fps;
                if index > 0 && derived <= self.last_ms {
                    self.last_ms + 1000.0 / self.fps
                } else {
                    derived
                }
            }
        };
        self.last_ms = pts;
        pts
    }
}

/// The first frame a source decoded at open: it settles the frame size (container headers can
/// disagree with the decoded frame), and a file without one is [`SourceError::NoFrames`]
/// (a damaged first frame or a cut before it included) rather than an empty video later.
fn first_frame(info: &mut SourceInfo, decoded: Result<Option<Frame>, SourceError>) -> Result<Frame, SourceError> {
    match decoded {
        Ok(Some(frame)) => {
            info.width = frame.width;
            info.height = frame.height;
            Ok(frame)
        }
        Ok(None) | Err(SourceError::Decode { .. } | SourceError::Truncated { .. }) => {
            Err(SourceError::NoFrames { name: info.name.clone() })
        }
        Err(e) => Err(e),
    }
}

/// FFmpeg conceals damage and simply stops at a cut-off file, so the only sign of truncation is
/// ending well short of the header's frame count. Counts from some containers are estimates
/// (duration x fps), so a shortfall under one second or 2% is not reported.
fn truncation(info: &SourceInfo, is_file: bool, decoded: u64) -> Option<SourceError> {
    let expected = info.frame_count.filter(|_| is_file)?;
    let tolerance = (info.fps.ceil() as u64).max(expected / 50).max(2);
    (decoded + tolerance < expected).then(|| SourceError::Truncated { name: info.name.clone(), decoded, expected })
}

/// The checks a decoder would otherwise collapse into one unhelpful "could not open".
fn check_file(path: &std::path::Path) -> Result<(), SourceError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SourceError::Missing(path.to_path_buf())),
        Err(e) => return Err(SourceError::Open { name: path.display().to_string(), reason: e.to_string() }),
    };
    if meta.is_dir() {
        return Err(SourceError::Open {
            name: path.display().to_string(),
            reason: "it is a directory, not a video file".into(),
        });
    }
    if meta.len() == 0 {
        return Err(SourceError::Empty(path.to_path_buf()));
    }
    // Catch permission problems here; a decoder would just report that it cannot open the file.
    std::fs::File::open(path)
        .map_err(|e| SourceError::Open { name: path.display().to_string(), reason: e.to_string() })?;
    Ok(())
}

/// A source of owned frames. `next_frame` returns `Ok(None)` at the end of a file.
pub trait FrameSource: Send {
    fn info(&self) -> &SourceInfo;
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;
    /// Damaged packets the decoder skipped so far (their pictures are lost or concealed), where
    /// the decoder tells; 0 otherwise (OpenCV's capture does not).
    fn damaged_packets(&self) -> u64 {
        0
    }
}

impl<T: FrameSource + ?Sized> FrameSource for Box<T> {
    fn info(&self) -> &SourceInfo {
        (**self).info()
    }
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        (**self).next_frame()
    }
    fn damaged_packets(&self) -> u64 {
        (**self).damaged_packets()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_buffers_are_reused_when_large_enough_and_capped() {
        let pool = FrameBuffers::new(2);
        assert_eq!(pool.take(100).capacity(), 100, "an empty pool makes a new buffer");
        let mut a = Vec::with_capacity(100);
        a.extend_from_slice(&[1, 2, 3]);
        let at = a.as_ptr();
        pool.give(a);
        let b = pool.take(80);
        assert_eq!((b.as_ptr(), b.len()), (at, 0), "the same allocation, emptied");
        pool.give(Vec::with_capacity(10));
        assert!(pool.take(50).capacity() >= 50, "a buffer too small is freed, not handed out");
        assert_eq!(pool.waiting(), 0);
        for _ in 0..5 {
            pool.give(Vec::with_capacity(8));
        }
        pool.give(Vec::new());
        assert_eq!(pool.waiting(), 2, "at most `keep` wait; empty ones are not kept");
    }
}
