//! Alert clips and snapshots. Each camera keeps a pre-roll ring of recent frames, downscaled to
//! `recording.max_width` and thinned to `recording.max_fps`, stored as I420 (1.5 bytes a pixel)
//! so that the ring costs ~26 MB for a 480x360 camera over 11 s. The ring spans the pre-roll plus
//! the detection delay (snippet, lookahead, minimum duration), because an alert's start time lies
//! that far in the past when the alert is raised. On alert start a recorder thread opens an MJPG
//! clip, writes the ring from `start - pre_roll`, then every new frame until `end + post_roll`,
//! and writes a JPEG of the peak frame (rewritten if the peak moves). Retention removes clips older
//! than `max_age`, then the oldest beyond `max_total_size`, never a clip still being written.
//!
//! This module is the only one besides `source` that touches OpenCV (resize, colour conversion,
//! `VideoWriter`, JPEG encoding); frames enter and leave it as owned byte buffers.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crossbeam_channel::Receiver;
use opencv::core::{Mat, Rect, Size, Vector};
use opencv::prelude::*;
use opencv::videoio::VideoWriter;

use crate::config::{RecordingConfig, Retention};
use crate::source::{Frame, FrameBuffers, PixelFormat};

/// Recording failures, each naming the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("recording {path}: {reason}", path = .path.display())]
    File { path: PathBuf, reason: String },
    #[error("converting frame {index} for recording: {reason}")]
    Convert { index: u64, reason: String },
}

/// One pre-roll frame: I420, `width` x `height` (both even).
#[derive(Debug, Clone)]
pub struct RecFrame {
    pub index: u64,
    pub pts_ms: f64,
    pub width: u32,
    pub height: u32,
    pub yuv: Vec<u8>,
}

/// How a `width` x `height` frame is recorded: shrunk by the smallest whole factor that makes it
/// at most `max_width` wide (but never below 2 x 2 blocks, nor by more than 257), both sides even (I420 needs it) and at least 2. Returns (factor, width, height).
pub fn recorded_size(width: u32, height: u32, max_width: u32) -> (u32, u32, u32) {
    let wanted = width.div_ceil(max_width.max(2));
    let factor = wanted.min(MAX_FACTOR).min(width / 2).min(height / 2).max(1);
    let w = ((width / factor) & !1).max(2);
    let h = ((height / factor) & !1).max(2);
    (factor, w, h)
}

/// Largest shrink factor.
const MAX_FACTOR: u32 = 257;

/// Shrinks a BGR frame by a whole factor and converts it to I420. Bilinear at a whole factor: for
/// the usual factor 2 (768x576, 640x480) it is exactly the 2 x 2 mean, and it costs a fraction
/// of OpenCV's area filter (in the daemon at 48 cameras: area at a fractional factor, 768 -> 480,
/// took 60% of the CPU; area at factor 2 still ~30%; bilinear at factor 2 ~5%; a fused Rust
/// box filter + BT.601 conversion was tried too and was slower than OpenCV's area filter).
///
/// An I420 frame (the daemon's FFmpeg decoder) is shrunk plane by plane the same way, with no
/// colour conversion at all, straight into `buf` (a buffer the recorder handed back, or empty):
/// new pre-roll buffers and OpenCV's temporary resize outputs were 45% of the daemon's page
/// faults in a 10 s run at 32 cameras (`perf record -e page-faults`, 2026-11-28).
pub fn to_rec_frame(frame: &Frame, max_width: u32, buf: Vec<u8>) -> Result<RecFrame, RecordError> {
    let err = |e: opencv::Error| RecordError::Convert { index: frame.index, reason: e.to_string() };
    let (factor, w, h) = recorded_size(frame.width, frame.height, max_width);
    if w * factor > frame.width || h * factor > frame.height {
        return Err(RecordError::Convert {
            index: frame.index,
            reason: format!("a {}x{} frame is too small to record", frame.width, frame.height),
        });
    }
    if let PixelFormat::I420 { .. } = frame.format {
        let yuv = shrink_i420(frame, factor, w, h, buf).map_err(err)?;
        return Ok(RecFrame { index: frame.index, pts_ms: frame.pts_ms, width: w, height: h, yuv });
    }
    let src =
        Mat::new_rows_cols_with_data::<u8>(frame.height as i32, frame.width as i32 * 3, &frame.data).map_err(err)?;
    let src = src.reshape(3, frame.height as i32).map_err(err)?;
    // The whole blocks only (at most factor - 1 pixels are cut, plus one for an odd side).
    let src = Mat::roi(&src, Rect::new(0, 0, (w * factor) as i32, (h * factor) as i32)).map_err(err)?;
    let mut yuv = Mat::default();
    let code = opencv::imgproc::COLOR_BGR2YUV_I420;
    if factor == 1 {
        opencv::imgproc::cvt_color(&src, &mut yuv, code, 0).map_err(err)?;
    } else {
        let mut small = Mat::default();
        let size = Size::new(w as i32, h as i32);
        opencv::imgproc::resize(&src, &mut small, size, 0.0, 0.0, opencv::imgproc::INTER_LINEAR).map_err(err)?;
        opencv::imgproc::cvt_color(&small, &mut yuv, code, 0).map_err(err)?;
    }
    let mut out = buf;
    out.clear();
    out.extend_from_slice(yuv.data_bytes().map_err(err)?);
    Ok(RecFrame { index: frame.index, pts_ms: frame.pts_ms, width: w, height: h, yuv: out })
}

/// Shrinks each plane of an I420 frame by `factor` into a packed `w` x `h` I420 buffer (`w` and
/// `h` even, `w * factor` and `h * factor` within the frame), reusing `buf`'s allocation: OpenCV
/// resizes each plane straight into its place in the buffer.
fn shrink_i420(frame: &Frame, factor: u32, w: u32, h: u32, buf: Vec<u8>) -> opencv::Result<Vec<u8>> {
    let (fw, fh) = (frame.width as usize, frame.height as usize);
    let (fcw, fch) = (fw.div_ceil(2), fh.div_ceil(2));
    let (w, h) = (w as usize, h as usize);
    let mut out = buf;
    out.clear();
    out.resize(w * h * 3 / 2, 0);
    let planes = [(0, fw, fh, w, h), (fw * fh, fcw, fch, w / 2, h / 2), (fw * fh + fcw * fch, fcw, fch, w / 2, h / 2)];
    let mut at = 0;
    for (offset, pw, ph, ow, oh) in planes {
        let plane = &frame.data[offset..offset + pw * ph];
        let dst = &mut out[at..at + ow * oh];
        at += ow * oh;
        if factor == 1 {
            for (row, d) in plane.chunks_exact(pw).zip(dst.chunks_exact_mut(ow)) {
                d.copy_from_slice(&row[..ow]);
            }
            continue;
        }
        let src = Mat::new_rows_cols_with_data::<u8>(ph as i32, pw as i32, plane)?;
        let src = Mat::roi(&src, Rect::new(0, 0, (ow * factor as usize) as i32, (oh * factor as usize) as i32))?;
        let expected = dst.as_ptr();
        let mut small = Mat::new_rows_cols_with_data_mut::<u8>(oh as i32, ow as i32, dst)?;
        let size = Size::new(ow as i32, oh as i32);
        opencv::imgproc::resize(&src, &mut small, size, 0.0, 0.0, opencv::imgproc::INTER_LINEAR)?;
        if small.data() != expected {
            // OpenCV reallocated the destination (it does not when size and type match, as here).
            return Err(opencv::Error::new(opencv::core::StsError, "resize did not write in place".to_string()));
        }
    }
    if let PixelFormat::I420 { full_range: true } = frame.format {
        // Clips and snapshots are converted as TV-range BT.601 (OpenCV's I420 conversions):
        // squeeze full-range ("JPEG") luma into 16-235 and chroma into 16-240 first.
        let (luma, chroma) = tv_range_tables();
        let (y, uv) = out.split_at_mut(w * h);
        y.iter_mut().for_each(|v| *v = luma[usize::from(*v)]);
        uv.iter_mut().for_each(|v| *v = chroma[usize::from(*v)]);
    }
    Ok(out)
}

/// Lookup tables from full-range ("JPEG") to TV-range luma (0-255 -> 16-235) and chroma
/// (0-255 -> 16-240, 128 stays 128), built once: they are applied to every pre-roll frame of a
/// full-range camera.
fn tv_range_tables() -> &'static ([u8; 256], [u8; 256]) {
    static TABLES: std::sync::OnceLock<([u8; 256], [u8; 256])> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let (mut luma, mut chroma) = ([0u8; 256], [0u8; 256]);
        for v in 0..256i32 {
            luma[v as usize] = (16 + (v * 219 + 127) / 255) as u8;
            chroma[v as usize] = (128 + ((v - 128) * 224 + if v >= 128 { 127 } else { -127 }) / 255) as u8;
        }
        (luma, chroma)
    })
}

fn to_bgr(f: &RecFrame) -> opencv::Result<Mat> {
    let yuv = Mat::new_rows_cols_with_data::<u8>(f.height as i32 * 3 / 2, f.width as i32, &f.yuv)?;
    let mut bgr = Mat::default();
    opencv::imgproc::cvt_color(&yuv, &mut bgr, opencv::imgproc::COLOR_YUV2BGR_I420, 0)?;
    Ok(bgr)
}

/// Writes `f` as a JPEG at `path` (via a temporary file, so readers never see half a file).
pub fn write_snapshot(f: &RecFrame, path: &Path) -> Result<(), RecordError> {
    let err = |reason: String| RecordError::File { path: path.to_path_buf(), reason };
    let bgr = to_bgr(f).map_err(|e| err(e.to_string()))?;
    let mut buf = Vector::<u8>::new();
    let ok = opencv::imgcodecs::imencode_def(".jpg", &bgr, &mut buf).map_err(|e| err(e.to_string()))?;
    if !ok {
        return Err(err("the JPEG encoder refused the frame".into()));
    }
    let tmp = path.with_extension("jpg.tmp");
    std::fs::write(&tmp, buf.as_slice()).map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

/// What the camera thread tells its recorder.
#[derive(Debug)]
pub enum RecMsg {
    Frame(RecFrame),
    /// Scoring has reached this media time: frames up to it may go into an open clip (frames
    /// decoded ahead of scoring wait in the ring, so a clip never runs past its alert's end).
    Scored(f64),
    /// An alert started at media time `from_ms`: record from `from_ms - pre_roll`.
    Start {
        id: String,
        clip: PathBuf,
        snapshot: Option<PathBuf>,
        from_ms: f64,
        peak_frame: u64,
    },
    /// The peak of the open alert moved (update events).
    Peak {
        id: String,
        peak_frame: u64,
    },
    /// The alert ended at media time `end_ms`: keep recording until `end_ms + post_roll`.
    End {
        id: String,
        end_ms: f64,
        peak_frame: u64,
    },
}

/// Paths of an alert's clip and snapshot: `<dir>/<camera>/<camera>_<UTC time>_<id8>.{avi,jpg}`.
pub fn clip_paths(cfg: &RecordingConfig, camera: &str, id: &str, now: SystemTime) -> (PathBuf, Option<PathBuf>) {
    let stamp = chrono::DateTime::<chrono::Utc>::from(now).format("%Y%m%dT%H%M%SZ");
    let short: String = id.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect();
    let base = cfg.dir.join(camera).join(format!("{camera}_{stamp}_{short}"));
    (base.with_extension("avi"), cfg.snapshot.then(|| base.with_extension("jpg")))
}

struct OpenClip {
    id: String,
    path: PathBuf,
    snapshot: Option<PathBuf>,
    writer: VideoWriter,
    size: (u32, u32),
    /// Media time the clip starts at (alert start - pre-roll).
    from_ms: f64,
    last_index: Option<u64>,
    until_ms: Option<f64>,
    /// Peak frame whose snapshot is still to be written.
    snapshot_due: Option<u64>,
    frames: u64,
}

/// One camera's pre-roll ring and open clip. Driven by [`run`] on the camera's recorder thread.
///
/// Frames enter the ring as they are decoded; the camera thread also reports how far scoring has
/// got ([`RecMsg::Scored`]). Clips are written only up to that watermark, so a file played faster
/// than it is scored still gets clips that start and end where their alert does, and the ring is
/// trimmed relative to the watermark, not to the newest frame.
pub struct Recorder {
    camera: String,
    cfg: RecordingConfig,
    fps: f64,
    span_ms: f64,
    /// Live cameras: frames older than this before the newest go whatever the watermark says,
    /// so a pipeline that falls behind cannot grow the ring without bound.
    max_age_ms: Option<f64>,
    ring: VecDeque<RecFrame>,
    scored_ms: f64,
    clip: Option<OpenClip>,
    active: Arc<Mutex<HashSet<PathBuf>>>,
    /// Where evicted frames' buffers go, for the camera thread to fill again.
    buffers: Option<FrameBuffers>,
    /// Clips finished so far (path, frames).
    pub finished: Vec<(PathBuf, u64)>,
}

impl Recorder {
    /// `fps`: the rate frames arrive at (after thinning); `delay`: how far before the scoring
    /// watermark an alert can start, which the ring must cover besides the pre-roll. `active` is
    /// shared by every camera so that retention never deletes a clip being written.
    pub fn new(
        camera: &str,
        cfg: RecordingConfig,
        fps: f64,
        delay: Duration,
        active: Arc<Mutex<HashSet<PathBuf>>>,
    ) -> Recorder {
        let span_ms = (cfg.pre_roll + delay).as_secs_f64() * 1000.0;
        Recorder {
            camera: camera.to_string(),
            cfg,
            fps: fps.max(1.0),
            span_ms,
            max_age_ms: None,
            ring: VecDeque::new(),
            scored_ms: f64::NEG_INFINITY,
            clip: None,
            active,
            buffers: None,
            finished: Vec::new(),
        }
    }

    /// Hands the buffers of frames leaving the ring to `buffers` (see [`to_rec_frame`]).
    pub fn with_buffers(mut self, buffers: FrameBuffers) -> Recorder {
        self.buffers = Some(buffers);
        self
    }

    fn drop_oldest(&mut self) {
        if let (Some(f), Some(b)) = (self.ring.pop_front(), &self.buffers) {
            b.give(f.yuv);
        }
    }

    /// Bounds the ring for a live camera: frames more than the span plus `slack` older than the
    /// newest are dropped even when scoring has not reached them (an overloaded box then loses
    /// the start of a pre-roll instead of memory).
    pub fn live(mut self, slack: Duration) -> Recorder {
        self.max_age_ms = Some(self.span_ms + slack.as_secs_f64() * 1000.0);
        self
    }

    /// Frames held in the ring, and their bytes.
    pub fn ring_usage(&self) -> (usize, usize) {
        (self.ring.len(), self.ring.iter().map(|f| f.yuv.len()).sum())
    }

    pub fn handle(&mut self, msg: RecMsg) -> Result<(), RecordError> {
        match msg {
            RecMsg::Frame(f) => {
                self.ring.push_back(f);
                self.evict();
                Ok(())
            }
            RecMsg::Scored(ms) => {
                self.scored_ms = self.scored_ms.max(ms);
                self.evict();
                self.advance()
            }
            RecMsg::Start { id, clip, snapshot, from_ms, peak_frame } => {
                self.on_start(id, clip, snapshot, from_ms, peak_frame)
            }
            RecMsg::Peak { id, peak_frame } => {
                if let Some(c) = self.clip.as_mut().filter(|c| c.id == id) {
                    c.snapshot_due = c.snapshot.as_ref().map(|_| peak_frame);
                }
                self.advance()
            }
            RecMsg::End { id, end_ms, peak_frame } => {
                if let Some(c) = self.clip.as_mut().filter(|c| c.id == id) {
                    c.until_ms = Some(end_ms + self.cfg.post_roll.as_secs_f64() * 1000.0);
                    c.snapshot_due = c.snapshot.as_ref().map(|_| peak_frame);
                }
                self.advance()
            }
        }
    }

    /// Drops ring frames older than the span before the watermark, never one an open clip has
    /// still to write.
    fn evict(&mut self) {
        let keep_from = self.scored_ms - self.span_ms;
        if let (Some(max), Some(newest)) = (self.max_age_ms, self.ring.back().map(|f| f.pts_ms)) {
            while self.ring.front().is_some_and(|f| f.pts_ms < newest - max) {
                self.drop_oldest();
            }
        }
        while let Some(old) = self.ring.front() {
            let unwritten = self.clip.as_ref().is_some_and(|c| c.last_index.is_none_or(|l| old.index > l));
            if old.pts_ms >= keep_from || unwritten {
                break;
            }
            self.drop_oldest();
        }
    }

    /// Writes the open clip's ring frames from its start up to `limit` (media ms).
    fn write_until(&mut self, limit: f64) -> Result<(), RecordError> {
        let Some(c) = self.clip.as_mut() else { return Ok(()) };
        let from = c.from_ms;
        let mut result = Ok(());
        for f in self.ring.iter().filter(|f| f.pts_ms >= from && f.pts_ms <= limit) {
            if c.last_index.is_none_or(|l| f.index > l) {
                result = result.and(write_frame(c, f));
            }
        }
        result
    }

    /// Writes what scoring has passed (and at most the post-roll), the due snapshot, and closes
    /// the clip once its post-roll is written.
    fn advance(&mut self) -> Result<(), RecordError> {
        let Some(c) = self.clip.as_ref() else { return Ok(()) };
        let until = c.until_ms;
        let limit = until.map_or(self.scored_ms, |u| u.min(self.scored_ms));
        let mut result = self.write_until(limit);
        result = result.and(self.write_due_snapshot());
        if until.is_some_and(|u| self.scored_ms >= u) {
            result = result.and(self.close());
        }
        result
    }

    fn on_start(
        &mut self,
        id: String,
        path: PathBuf,
        snapshot: Option<PathBuf>,
        from_ms: f64,
        peak_frame: u64,
    ) -> Result<(), RecordError> {
        // A new alert during the previous one's post-roll: that clip ends here.
        self.close()?;
        let err = |reason: String| RecordError::File { path: path.clone(), reason };
        let Some(size) = self.ring.back().map(|f| (f.width, f.height)) else {
            return Err(err("no frame recorded yet".into()));
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(format!("cannot create the directory: {e}")))?;
        }
        let fourcc = VideoWriter::fourcc('M', 'J', 'P', 'G').map_err(|e| err(e.to_string()))?;
        let frame_size = Size::new(size.0 as i32, size.1 as i32);
        let writer = VideoWriter::new(&path, fourcc, self.fps, frame_size, true).map_err(|e| err(e.to_string()))?;
        if !writer.is_opened().unwrap_or(false) {
            return Err(err("OpenCV cannot open an MJPG writer for it".into()));
        }
        if let Ok(mut a) = self.active.lock() {
            a.insert(path.clone());
        }
        let snapshot_due = snapshot.as_ref().map(|_| peak_frame);
        self.clip = Some(OpenClip {
            id,
            path,
            snapshot,
            writer,
            size,
            from_ms: from_ms - self.cfg.pre_roll.as_secs_f64() * 1000.0,
            last_index: None,
            until_ms: None,
            snapshot_due,
            frames: 0,
        });
        self.advance()
    }

    /// Writes the due snapshot once the ring holds its frame (the nearest earlier one if that
    /// frame was thinned out).
    fn write_due_snapshot(&mut self) -> Result<(), RecordError> {
        let Some(c) = self.clip.as_mut() else { return Ok(()) };
        let (Some(due), Some(path)) = (c.snapshot_due, c.snapshot.as_ref()) else { return Ok(()) };
        if self.ring.back().is_none_or(|b| b.index < due) {
            return Ok(());
        }
        let best = self.ring.iter().rev().find(|f| f.index <= due).or_else(|| self.ring.front());
        let r = best.map_or(Ok(()), |f| write_snapshot(f, path));
        c.snapshot_due = None;
        r
    }

    /// Finishes the open clip now (daemon shutdown, stream end, or a new alert): what the ring
    /// holds up to the post-roll (or up to the watermark) goes in first.
    pub fn close(&mut self) -> Result<(), RecordError> {
        let Some(limit) = self.clip.as_ref().map(|c| c.until_ms.unwrap_or(self.scored_ms)) else { return Ok(()) };
        let mut result = self.write_until(limit);
        let Some(mut c) = self.clip.take() else { return result };
        if c.snapshot_due.is_some() {
            // The peak frame never came (stream ended): use the newest frame we have.
            if let (Some(f), Some(s)) = (self.ring.back(), c.snapshot.as_ref()) {
                result = result.and(write_snapshot(f, s));
            }
        }
        let released =
            c.writer.release().map_err(|e| RecordError::File { path: c.path.clone(), reason: e.to_string() });
        if let Ok(mut a) = self.active.lock() {
            a.remove(&c.path);
        }
        tracing::info!(camera = %self.camera, clip = %c.path.display(), frames = c.frames, "clip finished");
        self.finished.push((c.path.clone(), c.frames));
        if let Err(e) = enforce_retention(&self.cfg.dir, &self.cfg.retention, &self.active) {
            tracing::warn!(camera = %self.camera, "retention: {e}");
        }
        result.and(released)
    }
}

fn write_frame(c: &mut OpenClip, f: &RecFrame) -> Result<(), RecordError> {
    if (f.width, f.height) != c.size {
        // The camera came back at another resolution mid-clip: those frames are left out.
        return Ok(());
    }
    let bgr = to_bgr(f).map_err(|e| RecordError::File { path: c.path.clone(), reason: e.to_string() })?;
    c.writer.write(&bgr).map_err(|e| RecordError::File { path: c.path.clone(), reason: e.to_string() })?;
    c.last_index = Some(f.index);
    c.frames += 1;
    Ok(())
}

/// Messages a recorder's queue holds before the camera stops adding frames (live cameras skip
/// them: the ring is best effort; files played fast wait); control messages always go in.
pub const QUEUE: usize = 16;

/// The recorder thread: handles messages until the camera thread hangs up, then closes the
/// open clip. Errors are logged and the thread goes on (a full disk must not stop alerts).
pub fn run(mut rec: Recorder, rx: Receiver<RecMsg>) -> Recorder {
    lower_priority(&rec.camera);
    for msg in rx.iter() {
        if let Err(e) = rec.handle(msg) {
            tracing::error!(camera = %rec.camera, "{e}");
        }
    }
    if let Err(e) = rec.close() {
        tracing::error!(camera = %rec.camera, "{e}");
    }
    rec
}

/// Nice value of recorder threads. Writing a clip encodes its whole pre-roll at once (~100 JPEG
/// frames); when many cameras alert together (one scene seen by several cameras) those bursts
/// took the CPU from capture and scoring. Clips are not urgent: at nice 10 a recorder gets ~10%
/// of a contended core. (`SCHED_IDLE` was tried and was worse: an idle-class thread starved while
/// holding a shared lock, a malloc arena say, stalls the threads that need it.)
const RECORDER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority (Linux: the nice value is per thread).
fn lower_priority(camera: &str) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread's own id.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, RECORDER_NICE)
        };
        if rc != 0 {
            tracing::debug!(camera, "recorder thread keeps its priority: {}", std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = camera;
}

/// Deletes recordings (files under `dir/<camera>/`) older than `max_age`, then the oldest until
/// the total is within `max_total_size`; files in `active` are never touched. Returns the files
/// deleted.
pub fn enforce_retention(
    dir: &Path,
    retention: &Retention,
    active: &Mutex<HashSet<PathBuf>>,
) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for cam in entries.flatten() {
        if !cam.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        for f in std::fs::read_dir(cam.path())?.flatten() {
            let Ok(meta) = f.metadata() else { continue };
            if meta.is_file() {
                files.push((f.path(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len()));
            }
        }
    }
    let active: HashSet<PathBuf> = active.lock().map(|a| a.clone()).unwrap_or_default();
    let is_active = |p: &Path| active.contains(p) || active.iter().any(|a| a.with_extension("jpg") == p);
    files.sort_by_key(|(_, t, _)| *t);
    let now = SystemTime::now();
    let mut total: u64 = files.iter().map(|f| f.2).sum();
    let mut deleted = Vec::new();
    for (path, modified, len) in files {
        if is_active(&path) {
            continue;
        }
        let too_old = now.duration_since(modified).is_ok_and(|age| age > retention.max_age);
        if too_old || total > retention.max_total_size {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            total = total.saturating_sub(len);
            deleted.push(path);
        }
    }
    Ok(deleted)
}

/// Makes OpenCV run its image functions (resize, colour conversion, JPEG) in the calling thread.
/// The daemon calls them on many camera threads at once; fanning each small call out to OpenCV's
/// own pool only adds contention.
pub fn single_threaded_opencv() {
    if let Err(e) = opencv::core::set_num_threads(1) {
        tracing::warn!("cannot set OpenCV's thread count: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn frame(index: u64, fps: f64, shade: u8) -> Frame {
        Frame {
            index,
            pts_ms: index as f64 * 1000.0 / fps,
            width: 320,
            height: 240,
            format: PixelFormat::Bgr,
            data: vec![shade; 320 * 240 * 3],
            captured: Instant::now(),
        }
    }

    fn config(dir: &Path) -> RecordingConfig {
        RecordingConfig {
            dir: dir.to_path_buf(),
            pre_roll: Duration::from_secs(1),
            post_roll: Duration::from_secs(1),
            ..RecordingConfig::default()
        }
    }

    #[test]
    fn sizes_are_even_and_keep_the_aspect() {
        assert_eq!(recorded_size(768, 576, 480), (2, 384, 288));
        assert_eq!(recorded_size(1920, 1080, 480), (4, 480, 270));
        assert_eq!(recorded_size(1280, 720, 480), (3, 426, 240));
        assert_eq!(recorded_size(320, 240, 480), (1, 320, 240));
        assert_eq!(recorded_size(333, 201, 480), (1, 332, 200));
        assert_eq!(recorded_size(1001, 3, 480), (1, 1000, 2));
        assert_eq!(recorded_size(7680, 4320, 16), (257, 28, 16));
    }

    #[test]
    fn rec_frame_is_a_box_filtered_i420_frame() {
        // 768x576: left half black, right half white, one mid-grey pixel column at x = 0.
        let (w, h) = (768usize, 576usize);
        let mut data = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in w / 2..w {
                data[(y * w + x) * 3..(y * w + x) * 3 + 3].fill(255);
            }
            data[y * w * 3..y * w * 3 + 3].fill(128);
        }
        let f = Frame {
            index: 7,
            pts_ms: 700.0,
            width: w as u32,
            height: h as u32,
            format: PixelFormat::Bgr,
            data,
            captured: Instant::now(),
        };
        let r = to_rec_frame(&f, 480, Vec::new()).unwrap();
        assert_eq!((r.index, r.width, r.height, r.yuv.len()), (7, 384, 288, 384 * 288 * 3 / 2));
        let luma = |x: usize, y: usize| r.yuv[y * 384 + x];
        // BT.601 limited range: black 16, white 235; a 2x2 block of one grey and one black column
        // averages to 64 -> 16 + 64 * 219 / 255 = 71.
        assert_eq!((luma(1, 5), luma(191, 100)), (16, 16));
        assert_eq!((luma(192, 100), luma(383, 287)), (235, 235));
        assert!((i32::from(luma(0, 50)) - 71).abs() <= 1, "{}", luma(0, 50));
        // Chroma of grey is neutral.
        assert!(r.yuv[384 * 288..].iter().all(|&c| (127..=129).contains(&c)));
    }

    #[test]
    fn an_i420_frame_is_shrunk_plane_by_plane() {
        // 768x576 I420: luma 16 left, 235 right, 128 in column 0; U 90 left, 200 right; V 128.
        let (w, h) = (768usize, 576usize);
        let format = PixelFormat::I420 { full_range: false };
        let mut data = vec![128u8; format.frame_len(w as u32, h as u32)];
        for y in 0..h {
            for x in 0..w {
                data[y * w + x] = if x == 0 {
                    128
                } else if x < w / 2 {
                    16
                } else {
                    235
                };
            }
        }
        let u = &mut data[w * h..w * h + w * h / 4];
        for (i, v) in u.iter_mut().enumerate() {
            *v = if i % (w / 2) < w / 4 { 90 } else { 200 };
        }
        let f = Frame {
            index: 3,
            pts_ms: 300.0,
            width: w as u32,
            height: h as u32,
            format,
            data,
            captured: Instant::now(),
        };
        let r = to_rec_frame(&f, 480, Vec::new()).unwrap();
        assert_eq!((r.index, r.width, r.height, r.yuv.len()), (3, 384, 288, 384 * 288 * 3 / 2));
        // Into a reused buffer (larger, full of other bytes): the same frame, in the same memory.
        let mut reused = vec![77u8; 400 * 300 * 2];
        let at = reused.as_ptr();
        reused = to_rec_frame(&f, 480, reused).unwrap().yuv;
        assert_eq!(reused, r.yuv);
        assert_eq!(reused.as_ptr(), at, "no new allocation");
        let luma = |x: usize, y: usize| r.yuv[y * 384 + x];
        assert_eq!((luma(1, 5), luma(191, 100), luma(192, 100), luma(383, 287)), (16, 16, 235, 235));
        assert_eq!(luma(0, 50), 72, "the 2 x 2 mean of 128, 128, 16, 16");
        let (cu, cv) = r.yuv[384 * 288..].split_at(192 * 144);
        assert!(cu
            .chunks_exact(192)
            .all(|row| row[..96].iter().all(|&c| c == 90) && row[96..].iter().all(|&c| c == 200)));
        assert!(cv.iter().all(|&c| c == 128));
        // Full range (JPEG) luma and chroma are squeezed into TV range for the clip writer.
        let full = PixelFormat::I420 { full_range: true };
        let mut data = vec![255u8; full.frame_len(4, 4)];
        data[..8].fill(0);
        data[16..18].fill(0);
        let g = Frame { width: 4, height: 4, format: full, data, ..f.clone() };
        let r = to_rec_frame(&g, 480, Vec::new()).unwrap();
        let want: Vec<u8> =
            [[16u8; 8], [235; 8]].concat().into_iter().chain([16, 16, 240, 240, 240, 240, 240, 240]).collect();
        assert_eq!(r.yuv, want);
        // Too small to record: an error naming the frame, not a panic.
        let tiny = Frame { width: 1, height: 1, data: vec![0; format.frame_len(1, 1)], ..f };
        assert!(matches!(to_rec_frame(&tiny, 480, Vec::new()), Err(RecordError::Convert { index: 3, .. })));
    }

    #[test]
    fn frames_leaving_the_ring_hand_their_buffers_back() {
        let dir = tempfile::tempdir().unwrap();
        let buffers = FrameBuffers::new(4);
        let mut rec = Recorder::new("cam", config(dir.path()), 10.0, Duration::from_secs(2), Arc::default())
            .with_buffers(buffers.clone());
        let mut reused = 0;
        for i in 0..60 {
            let buf = buffers.take(0);
            reused += usize::from(buf.capacity() > 0);
            rec.handle(RecMsg::Frame(to_rec_frame(&frame(i, 10.0, 0), 480, buf).unwrap())).unwrap();
            rec.handle(RecMsg::Scored(i as f64 * 100.0)).unwrap();
        }
        // The ring holds 31 frames (29..=59): frames 0..=28 left it, and each one's buffer went
        // to the next new frame (32..=59), but the last, which waits in the pool.
        assert_eq!(rec.ring_usage().0, 31);
        assert_eq!((reused, buffers.waiting()), (28, 1));
    }

    #[test]
    fn clip_covers_pre_roll_to_post_roll_and_snapshot_is_a_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        let active = Arc::new(Mutex::new(HashSet::new()));
        let mut rec = Recorder::new("cam", config(dir.path()), 10.0, Duration::from_secs(2), active.clone());
        for i in 0..50 {
            rec.handle(RecMsg::Frame(to_rec_frame(&frame(i, 10.0, (i * 5) as u8), 480, Vec::new()).unwrap())).unwrap();
            rec.handle(RecMsg::Scored(i as f64 * 100.0)).unwrap();
        }
        // Ring: pre-roll 1 s + delay 2 s at 10 fps = frames 19..=49 (pts >= 4900 - 3000).
        assert_eq!(rec.ring_usage().0, 31);
        let (clip, snap) = clip_paths(&rec.cfg, "cam", "0123abcd-ef", SystemTime::now());
        assert!(clip.to_string_lossy().ends_with("_0123abcd.avi"), "{clip:?}");
        // Alert from 3.0 s (frame 30): the clip starts at 2.0 s (frame 20).
        let start = RecMsg::Start {
            id: "a".into(),
            clip: clip.clone(),
            snapshot: snap.clone(),
            from_ms: 3000.0,
            peak_frame: 35,
        };
        rec.handle(start).unwrap();
        assert!(active.lock().unwrap().contains(&clip));
        // Frames decoded ahead of scoring wait: nothing past the watermark is written yet.
        for i in 50..70 {
            rec.handle(RecMsg::Frame(to_rec_frame(&frame(i, 10.0, 0), 480, Vec::new()).unwrap())).unwrap();
        }
        for i in 50..60 {
            rec.handle(RecMsg::Scored(i as f64 * 100.0)).unwrap();
        }
        // End at 5.5 s: post-roll to 6.5 s = frame 65.
        rec.handle(RecMsg::End { id: "a".into(), end_ms: 5500.0, peak_frame: 35 }).unwrap();
        for i in 60..70 {
            rec.handle(RecMsg::Scored(i as f64 * 100.0)).unwrap();
        }
        assert_eq!(rec.finished, vec![(clip.clone(), 46)], "frames 20..=65");
        assert!(active.lock().unwrap().is_empty());
        let mut cap =
            opencv::videoio::VideoCapture::from_file(clip.to_str().unwrap(), opencv::videoio::CAP_FFMPEG).unwrap();
        let mut m = Mat::default();
        let mut n = 0;
        while cap.read(&mut m).unwrap() && !m.empty() {
            assert_eq!((m.cols(), m.rows()), (320, 240));
            n += 1;
        }
        assert_eq!(n, 46);
        let jpg = std::fs::read(snap.unwrap()).unwrap();
        assert_eq!(&jpg[..2], &[0xFF, 0xD8], "JPEG magic");
    }

    #[test]
    fn retention_removes_old_then_oldest_but_never_active() {
        let dir = tempfile::tempdir().unwrap();
        let cam = dir.path().join("cam");
        std::fs::create_dir_all(&cam).unwrap();
        let mut paths = Vec::new();
        for i in 0..4 {
            let p = cam.join(format!("c{i}.avi"));
            std::fs::write(&p, vec![0u8; 1000]).unwrap();
            let t = SystemTime::now() - Duration::from_secs(100 - i * 10);
            std::fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
            paths.push(p);
        }
        let active = Mutex::new(HashSet::from([paths[0].clone()]));
        // c0 is oldest but active; c1 is older than 75 s; then 2 files of 1000 B fit in 2500 B.
        let r = Retention { max_age: Duration::from_secs(75), max_total_size: 2500 };
        let deleted = enforce_retention(dir.path(), &r, &active).unwrap();
        assert_eq!(deleted, vec![paths[1].clone(), paths[2].clone()]);
        assert!(paths[0].exists() && paths[3].exists());
    }
}
