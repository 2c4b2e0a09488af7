//! One capture thread per camera: opens the source, reads frames onto the camera's frame queue,
//! and reconnects with exponential backoff and jitter when the source fails, ends or stalls (a
//! network read that gets no frame for `stall_timeout` fails). Frames are renumbered on one
//! running timeline per camera, so indices and times keep increasing across reconnects and file
//! loops; a [`Feed::Gap`] marks each break.
//!
//! Live sources (URLs, USB devices, files paced in real time) never build up latency: when the
//! queue is full the oldest frame is dropped and counted, and the newest is queued. Files played
//! fast block instead and lose nothing.
//!
//! The per-pixel work on each frame happens here too ([`FrameWork`]): the shrink for the
//! recorder's pre-roll, the mask and the model's preprocessing, while the decoded frame is still
//! in this core's cache; the full frame then goes straight back to the decoder to hold the next
//! one, and only the small results cross to the camera thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};

use super::mask::Mask;
use super::record::{self, RecFrame};
use super::SinkMsg;
use crate::config::{CameraConfig, Pace, Source};
use crate::preprocess::{PreparedFrame, Preprocessor, Recipe};
use crate::source::{FfmpegSource, Frame, FrameBuffers, FrameSource, OpenCvSource, SourceError};
use crate::telemetry::{CameraMetrics, Metrics, Stage};

/// What flows from a capture thread to its camera thread.
#[derive(Debug)]
pub enum Feed {
    Frame(Captured),
    /// The stream restarted (reconnect or file loop): frames on either side are not contiguous.
    Gap,
}

/// One frame as the camera thread gets it: what the recorder and the model need of it.
#[derive(Debug)]
pub struct Captured {
    pub index: u64,
    pub pts_ms: f64,
    pub captured: Instant,
    /// The frame shrunk for the recorder's pre-roll, when recording takes this frame (`max_fps`).
    pub rec: Option<RecFrame>,
    /// The frame, masked, as the model's recipe prepares it; `None` for a frame the recipe skips
    /// (`frame_stride`) or one that could not be prepared (logged).
    pub prepared: Option<PreparedFrame>,
}

/// Frames a camera's queue holds: 0.8 s at 10 fps, 0.27 s at 30 fps. The queue holds prepared
/// frames (48 kB at 128x96) and pre-roll frames (166 kB at 384x288), not decoded ones.
pub const FRAME_QUEUE: usize = 8;

/// Decoded frames a camera's source keeps for reuse: each goes back as soon as its frame is
/// worked on, so one is nearly always enough.
const FRAME_BUFFERS: usize = 2;

/// How the pre-roll takes frames: thinned to `max_fps` and shrunk to `max_width`.
pub struct Preroll {
    interval_ms: f64,
    next_ms: f64,
    max_width: u32,
    /// Buffers of frames that left the recorder's ring, to shrink new frames into.
    buffers: FrameBuffers,
}

impl Preroll {
    pub fn new(max_fps: f64, max_width: u32, buffers: FrameBuffers) -> Preroll {
        Preroll { interval_ms: 1000.0 / max_fps, next_ms: f64::NEG_INFINITY, max_width, buffers }
    }
}

/// The per-pixel work on each frame, done on the capture thread.
pub struct FrameWork {
    pre: Preprocessor,
    /// The recipe keeps every `stride`-th frame.
    stride: u64,
    /// Built for the first frame, rebuilt when the frame size changes.
    mask: Option<Mask>,
    preroll: Option<Preroll>,
}

impl FrameWork {
    pub fn new(recipe: Recipe, preroll: Option<Preroll>) -> FrameWork {
        let stride = recipe.frame_stride.max(1) as u64;
        FrameWork { pre: Preprocessor::new(recipe), stride, mask: None, preroll }
    }

    /// Shrinks `f` for the pre-roll (unmasked: clips show the whole scene), then masks and
    /// prepares it for the model.
    fn process(&mut self, cam: &CameraConfig, f: &mut Frame, metrics: &Metrics) -> Captured {
        let mut rec = None;
        if let Some(p) = self.preroll.as_mut() {
            if f.pts_ms >= p.next_ms - 0.25 * p.interval_ms {
                p.next_ms = f.pts_ms.max(p.next_ms) + p.interval_ms;
                match record::to_rec_frame(f, p.max_width, p.buffers.take(0)) {
                    Ok(r) => rec = Some(r),
                    Err(e) => tracing::warn!(camera = %cam.id, "{e}"),
                }
            }
        }
        let mut prepared = None;
        if f.index % self.stride == 0 {
            if !cam.mask.is_empty() {
                if !self.mask.as_ref().is_some_and(|m| m.fits(f.width, f.height)) {
                    self.mask = Some(Mask::new(&cam.mask, f.width, f.height));
                }
                if let Some(m) = &self.mask {
                    m.apply(f);
                }
            }
            match self.pre.prepare(f) {
                Ok(p) => {
                    metrics.observe_since(Stage::Preprocess, f.captured);
                    prepared = Some(p);
                }
                Err(e) => tracing::warn!(camera = %cam.id, "frame skipped: {e}"),
            }
        }
        Captured { index: f.index, pts_ms: f.pts_ms, captured: f.captured, rec, prepared }
    }
}

/// Whether a camera's source is live (drop-oldest) rather than a file played as fast as possible.
pub fn is_live(cam: &CameraConfig) -> bool {
    !matches!(cam.source, Source::File(_)) || cam.pace == Pace::Realtime
}

fn open(cam: &CameraConfig, yuv: bool, buffers: &FrameBuffers) -> Result<Box<dyn FrameSource>, SourceError> {
    let b = buffers.clone();
    Ok(match (&cam.source, yuv) {
        (Source::Url(u), true) => {
            Box::new(FfmpegSource::open_url(u.expose(), &cam.id, cam.stall_timeout)?.with_buffers(b))
        }
        (Source::File(p), true) => Box::new(FfmpegSource::open_file(p)?.with_buffers(b)),
        (Source::Url(u), false) => {
            Box::new(OpenCvSource::open_url_with_timeout(u.expose(), &cam.id, cam.stall_timeout)?.with_buffers(b))
        }
        (Source::Usb(i), _) => Box::new(OpenCvSource::open_device(*i, &cam.id)?.with_buffers(b)),
        (Source::File(p), false) => Box::new(OpenCvSource::open_file(p)?.with_buffers(b)),
    })
}

/// Everything a capture thread needs.
pub struct Capture {
    pub cam: CameraConfig,
    pub metrics: Arc<Metrics>,
    pub counters: Arc<CameraMetrics>,
    pub status: Sender<SinkMsg>,
    pub stop: Arc<AtomicBool>,
    /// Decode with FFmpeg to I420 ([`CameraConfig::reads_yuv`]) rather than with OpenCV to BGR.
    pub yuv: bool,
    pub work: FrameWork,
    /// Frames dropped since the last warning about them.
    pub drops: DropLog,
}

/// Shortest time between two warnings about one camera's dropped frames.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A camera's dropped frames, told to the log at most once per [`DROP_LOG_INTERVAL`]: an
/// operator learns that processing fell behind (and when) without a line per frame.
#[derive(Debug, Default)]
pub struct DropLog {
    /// When the last warning was written (None: never) and the frames dropped since.
    last: std::cell::Cell<Option<Instant>>,
    pending: std::cell::Cell<u64>,
}

impl DropLog {
    /// Counts one dropped frame; returns the count to report when a warning is due.
    fn dropped(&self, now: Instant) -> Option<u64> {
        let n = self.pending.get() + 1;
        if self.last.get().is_some_and(|t| now.duration_since(t) < DROP_LOG_INTERVAL) {
            self.pending.set(n);
            return None;
        }
        self.last.set(Some(now));
        self.pending.set(0);
        Some(n)
    }
}

impl Capture {
    fn set_online(&self, online: &mut Option<bool>, now: bool) {
        if *online != Some(now) {
            *online = Some(now);
            self.counters.up.store(now, Ordering::Relaxed);
            tracing::info!(camera = %self.cam.id, "camera {}", if now { "online" } else { "offline" });
            let _ = self.status.send(SinkMsg::Status { camera: self.cam.id.clone(), online: now });
        }
    }

    /// Sleeps up to `d`, waking early on stop; returns false when stopping.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while !self.stop.load(Ordering::Relaxed) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        false
    }

    fn push(&self, tx: &Sender<Feed>, rx: &Receiver<Feed>, item: Feed, live: bool) -> bool {
        let mut item = item;
        if !live {
            // Lossless, but a stop must not wait for a queue nobody drains any more.
            loop {
                match tx.send_timeout(item, Duration::from_millis(100)) {
                    Ok(()) => return true,
                    Err(SendTimeoutError::Disconnected(_)) => return false,
                    Err(SendTimeoutError::Timeout(back)) => {
                        if self.stop.load(Ordering::Relaxed) {
                            return false;
                        }
                        item = back;
                    }
                }
            }
        }
        loop {
            match tx.try_send(item) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    item = back;
                    if let Ok(Feed::Frame(_)) = rx.try_recv() {
                        self.counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
                        if let Some(n) = self.drops.dropped(Instant::now()) {
                            tracing::warn!(
                                camera = %self.cam.id,
                                "{n} frame(s) dropped since the last warning: processing is behind the camera \
                                 (the oldest queued frames are dropped, the newest kept)"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Runs until stopped, or until a non-looping file ends. `rx` is the queue's own receiver,
    /// used to drop the oldest frame when a live queue is full.
    pub fn run(mut self, tx: Sender<Feed>, rx: Receiver<Feed>) {
        let cam = self.cam.clone();
        let cam = &cam;
        let buffers = FrameBuffers::new(FRAME_BUFFERS);
        let live = is_live(cam);
        let is_file = matches!(cam.source, Source::File(_));
        let t0 = Instant::now();
        let mut online = None;
        let mut attempt = 0u32;
        let mut index = 0u64;
        // Files: media time of the next loop's first frame.
        let mut offset_ms = 0.0;
        let mut last_pts_ms = 0.0f64;
        // Paced files: when the first frame of this run of loops was due and the frames read since,
        // so a loop's first frame is due one frame after the previous loop's last (reopening the
        // file must not read it early: a frame too many per loop, 0.1% over 10 minutes of vtest).
        let mut clock: Option<(Instant, u64)> = None;
        while !self.stop.load(Ordering::Relaxed) {
            let mut src = match open(cam, self.yuv, &buffers) {
                Ok(s) => s,
                Err(e) => {
                    self.set_online(&mut online, false);
                    let delay = cam.reconnect.delay(attempt);
                    tracing::warn!(camera = %cam.id, "cannot open the source: {e}; retrying in {delay:.1?}");
                    attempt = attempt.saturating_add(1);
                    self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    if !self.sleep(delay) {
                        break;
                    }
                    continue;
                }
            };
            let fps = src.info().frame_rate();
            let (started, mut n) = clock.take().unwrap_or_else(|| (Instant::now(), 0));
            let mut frames_read = 0u64;
            let mut damaged = 0u64;
            let ended_cleanly = loop {
                if self.stop.load(Ordering::Relaxed) {
                    break false;
                }
                let read = src.next_frame();
                let now_damaged = src.damaged_packets();
                if now_damaged > damaged {
                    self.counters.packets_damaged.fetch_add(now_damaged - damaged, Ordering::Relaxed);
                    damaged = now_damaged;
                }
                match read {
                    Ok(Some(mut f)) => {
                        if is_file && cam.pace == Pace::Realtime {
                            let due = started + Duration::from_secs_f64(n as f64 / fps);
                            if !self.sleep(due.saturating_duration_since(Instant::now())) {
                                break false;
                            }
                        }
                        if online != Some(true) {
                            attempt = 0;
                            self.set_online(&mut online, true);
                        }
                        f.captured = Instant::now();
                        f.pts_ms =
                            if is_file { offset_ms + f.pts_ms } else { (f.captured - t0).as_secs_f64() * 1000.0 };
                        last_pts_ms = f.pts_ms;
                        f.index = index;
                        index += 1;
                        n += 1;
                        frames_read += 1;
                        self.counters.frames_in.fetch_add(1, Ordering::Relaxed);
                        self.metrics.observe_since(Stage::Decode, f.captured);
                        let c = self.work.process(cam, &mut f, &self.metrics);
                        buffers.give(f.data);
                        if !self.push(&tx, &rx, Feed::Frame(c), live) {
                            return;
                        }
                    }
                    Ok(None) => break true,
                    Err(SourceError::Truncated { .. }) if is_file => break true,
                    Err(e) => {
                        tracing::warn!(camera = %cam.id, "{e}");
                        break false;
                    }
                }
            };
            offset_ms = last_pts_ms + 1000.0 / fps;
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            if is_file && ended_cleanly {
                clock = Some((started, n));
                if !cam.loop_ {
                    tracing::info!(camera = %cam.id, frames = index, "file ended");
                    break;
                }
                if !self.push(&tx, &rx, Feed::Gap, live) {
                    return;
                }
                continue;
            }
            // A live stream that ended or failed, or a file that failed: reconnect.
            self.set_online(&mut online, false);
            if !self.push(&tx, &rx, Feed::Gap, live) {
                return;
            }
            let delay = cam.reconnect.delay(attempt);
            attempt = attempt.saturating_add(1);
            self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(camera = %cam.id, "stream lost after {frames_read} frames; reconnecting in {delay:.1?}");
            if !self.sleep(delay) {
                break;
            }
        }
        self.set_online(&mut online, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::source::PixelFormat;
    use crossbeam_channel::bounded;

    /// The shipped default model's recipe (128x96 grey, area), keeping every `stride`-th frame.
    fn grey_recipe(stride: usize) -> Recipe {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
        let model = crate::model::ModelDir::load(&dir).unwrap();
        let (_, recipe) = model.extractor_parts().unwrap();
        Recipe { frame_stride: stride, ..recipe.clone() }
    }

    fn capture(pace: &str) -> (Capture, Arc<CameraMetrics>) {
        let cfg =
            Config::from_str(&format!("[[cameras]]\nid = \"c\"\nsource = \"x.avi\"\npace = \"{pace}\"\n"), "t.toml")
                .unwrap();
        let metrics = Metrics::new(["c"], Vec::<String>::new());
        let counters = metrics.camera("c").unwrap();
        let (status, _) = crossbeam_channel::unbounded();
        let cap = Capture {
            cam: cfg.cameras[0].clone(),
            metrics,
            counters: Arc::clone(&counters),
            status,
            stop: Arc::default(),
            yuv: false,
            work: FrameWork::new(grey_recipe(1), None),
            drops: DropLog::default(),
        };
        (cap, counters)
    }

    fn frame(index: u64) -> Feed {
        Feed::Frame(Captured { index, pts_ms: 0.0, captured: Instant::now(), rec: None, prepared: None })
    }

    fn indices(rx: &Receiver<Feed>) -> Vec<u64> {
        rx.try_iter().filter_map(|f| if let Feed::Frame(f) = f { Some(f.index) } else { None }).collect()
    }

    #[test]
    fn the_decoder_follows_the_key_the_source_and_the_model() {
        let cfg = |source: &str, decoder: &str| {
            let text = format!("[[cameras]]\nid = \"c\"\nsource = {source}\ndecoder = \"{decoder}\"\n");
            Config::from_str(&text, "t.toml").map(|c| c.cameras[0].clone())
        };
        let file = cfg("\"x.avi\"", "auto").unwrap();
        assert_eq!(file.reads_yuv(true), Ok(true));
        assert_eq!(file.reads_yuv(false), Ok(false));
        let usb = cfg("\"usb:0\"", "auto").unwrap();
        assert_eq!(usb.reads_yuv(true), Ok(false));
        assert_eq!(cfg("\"rtsp://h/s\"", "opencv").unwrap().reads_yuv(true), Ok(false));
        let forced = cfg("\"rtsp://h/s\"", "ffmpeg").unwrap();
        assert_eq!(forced.reads_yuv(true), Ok(true));
        let err = forced.reads_yuv(false).unwrap_err();
        assert!(err.contains("camera c") && err.contains("grey"), "{err}");
        let err = cfg("\"usb:0\"", "ffmpeg").unwrap_err().to_string();
        assert!(err.contains("decoder") && err.contains("USB"), "{err}");
        let err = cfg("\"x.avi\"", "vaapi").unwrap_err().to_string();
        assert!(err.contains("decoder"), "{err}");
    }

    #[test]
    fn frame_work_shrinks_the_whole_frame_for_the_preroll_and_prepares_the_masked_one() {
        // The left half of the picture masked; recording at 5 fps of a 10 fps camera; the model
        // keeps every second frame.
        let text =
            "[[cameras]]\nid = \"c\"\nsource = \"x.avi\"\nmask = [[[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]]\n";
        let cam = Config::from_str(text, "t.toml").unwrap().cameras[0].clone();
        let metrics = Metrics::new(["c"], Vec::<String>::new());
        let preroll_buffers = FrameBuffers::new(2);
        let mut work = FrameWork::new(grey_recipe(2), Some(Preroll::new(5.0, 480, preroll_buffers.clone())));
        let format = PixelFormat::I420 { full_range: false };
        let (w, h) = (768u32, 576u32);
        let mut out = Vec::new();
        for index in 0..6u64 {
            // Luma 235 (white) everywhere, chroma neutral.
            let mut data = vec![128u8; format.frame_len(w, h)];
            data[..(w * h) as usize].fill(235);
            let mut f = Frame {
                index,
                pts_ms: index as f64 * 100.0,
                width: w,
                height: h,
                format,
                data,
                captured: Instant::now(),
            };
            out.push(work.process(&cam, &mut f, &metrics));
        }
        let recorded: Vec<u64> = out.iter().filter(|c| c.rec.is_some()).map(|c| c.index).collect();
        assert_eq!(recorded, vec![0, 2, 4], "5 of 10 frames a second");
        let prepared: Vec<u64> = out.iter().filter_map(|c| c.prepared.as_ref().map(|p| p.index)).collect();
        assert_eq!(prepared, vec![0, 2, 4], "frame_stride 2");
        // The pre-roll shows the whole scene: no black left half.
        let rec = out[0].rec.as_ref().unwrap();
        assert_eq!((rec.width, rec.height), (384, 288));
        assert!(rec.yuv[..384 * 288].iter().all(|&y| y == 235));
        // The model sees the left half black (0) and the right half white (1).
        let p = &out[2].prepared.as_ref().unwrap().data;
        assert_eq!(p.len(), 128 * 96);
        assert!(p.chunks_exact(128).all(|row| row[..64].iter().all(|&v| v == 0.0)));
        assert!(p.chunks_exact(128).all(|row| row[64..].iter().all(|&v| (v - 1.0).abs() < 1e-6)));
        // A pre-roll frame's buffer handed back is what the next shrink fills.
        let back = out.remove(0).rec.unwrap().yuv;
        let at = back.as_ptr();
        preroll_buffers.give(back);
        let mut f = Frame {
            index: 6,
            pts_ms: 600.0,
            width: w,
            height: h,
            format,
            data: vec![16; format.frame_len(w, h)],
            captured: Instant::now(),
        };
        let c = work.process(&cam, &mut f, &metrics);
        assert_eq!(c.rec.map(|r| r.yuv.as_ptr()), Some(at));
    }

    #[test]
    fn a_full_live_queue_drops_the_oldest_frames_and_counts_them() {
        let (cap, counters) = capture("realtime");
        assert!(is_live(&cap.cam));
        let (tx, rx) = bounded(3);
        for i in 0..10 {
            assert!(cap.push(&tx, &rx, frame(i), true));
        }
        assert_eq!(indices(&rx), vec![7, 8, 9], "the newest frames are kept");
        assert_eq!(counters.frames_dropped.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn dropped_frames_are_logged_at_most_once_per_interval_with_their_count() {
        let log = DropLog::default();
        let t0 = Instant::now();
        assert_eq!(log.dropped(t0), Some(1), "the first drop is told at once");
        assert_eq!(log.dropped(t0 + Duration::from_secs(1)), None);
        assert_eq!(log.dropped(t0 + Duration::from_secs(9)), None);
        assert_eq!(log.dropped(t0 + DROP_LOG_INTERVAL), Some(3), "the two held back and this one");
        assert_eq!(log.dropped(t0 + DROP_LOG_INTERVAL + Duration::from_secs(1)), None);
    }

    #[test]
    fn a_looping_realtime_file_keeps_its_frame_rate_across_loops() {
        use opencv::core::{Mat, Scalar, Size, CV_8UC3};
        use opencv::prelude::*;
        // Five frames at 50 fps: a loop is 100 ms, and reopening the file at each loop's end
        // must not read the next loop's first frame early (it did: 93 frames in 1.5 s, where 76 were due).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("five.avi");
        let fourcc = opencv::videoio::VideoWriter::fourcc('M', 'J', 'P', 'G').unwrap();
        let mut w =
            opencv::videoio::VideoWriter::new(path.to_str().unwrap(), fourcc, 50.0, Size::new(256, 192), true).unwrap();
        for i in 0..5 {
            let m = Mat::new_rows_cols_with_default(192, 256, CV_8UC3, Scalar::all(f64::from(40 * i))).unwrap();
            w.write(&m).unwrap();
        }
        w.release().unwrap();
        let (mut cap, counters) = capture("realtime");
        cap.cam = Config::from_str(&format!("[[cameras]]\nid = \"c\"\nsource = {path:?}\nloop = true\n"), "t.toml")
            .unwrap()
            .cameras[0]
            .clone();
        let stop = Arc::clone(&cap.stop);
        let (tx, rx) = crossbeam_channel::unbounded();
        let started = Instant::now();
        let t = std::thread::spawn(move || cap.run(tx, crossbeam_channel::never()));
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        let frames = indices(&rx).len() as f64;
        assert_eq!(frames, counters.frames_in.load(Ordering::Relaxed) as f64);
        // Never faster than the clip's rate (a busy machine may make it slower, not faster).
        assert!(frames <= 50.0 * elapsed + 1.0, "{frames} frames in {elapsed:.3} s: faster than 50 fps");
        assert!(frames >= 5.0 * 3.0, "{frames} frames in {elapsed:.3} s: not even three loops");
    }

    #[test]
    fn a_fast_file_waits_instead_of_dropping_and_a_stop_releases_it() {
        let (cap, counters) = capture("fast");
        assert!(!is_live(&cap.cam));
        let (tx, rx) = bounded(2);
        assert!(cap.push(&tx, &rx, frame(0), false));
        assert!(cap.push(&tx, &rx, frame(1), false));
        let stop = Arc::clone(&cap.stop);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
        });
        let started = Instant::now();
        assert!(!cap.push(&tx, &rx, frame(2), false), "a stop gives up the blocked frame");
        assert!(started.elapsed() >= Duration::from_millis(250));
        t.join().unwrap();
        assert_eq!(indices(&rx), vec![0, 1]);
        assert_eq!(counters.frames_dropped.load(Ordering::Relaxed), 0);
    }
}
