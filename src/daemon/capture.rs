//! One capture thread per camera: opens the source, reads frames onto the camera's frame queue,
//! and reconnects with exponential backoff and jitter when the source fails, ends or stalls (a
//! network read that gets no frame for `stall_timeout` fails). Frames are renumbered on one
//! running timeline per camera, so indices and times keep increasing across reconnects and file
//! loops; a [`Feed::Gap`] marks each break.
//!
//! Live sources (URLs, USB devices, files paced in real time) never build up latency: when the
//! queue is full the oldest frame is dropped and counted, and the newest is queued. Files played
//! fast block instead and lose nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};

use super::SinkMsg;
use crate::config::{CameraConfig, Pace, Source};
use crate::source::{FfmpegSource, Frame, FrameSource, OpenCvSource, SourceError};
use crate::telemetry::{CameraMetrics, Metrics, Stage};

/// What flows from a capture thread to its camera thread.
#[derive(Debug)]
pub enum Feed {
    Frame(Frame),
    /// The stream restarted (reconnect or file loop): frames on either side are not contiguous.
    Gap,
}

/// Frames a camera's queue holds: 0.8 s at 10 fps, 0.27 s at 30 fps; a full queue of 1080p frames
/// is 50 MB, of 768x576 frames 10.6 MB.
pub const FRAME_QUEUE: usize = 8;

/// Whether a camera's source is live (drop-oldest) rather than a file played as fast as possible.
pub fn is_live(cam: &CameraConfig) -> bool {
    !matches!(cam.source, Source::File(_)) || cam.pace == Pace::Realtime
}

fn open(cam: &CameraConfig, yuv: bool) -> Result<Box<dyn FrameSource>, SourceError> {
    Ok(match (&cam.source, yuv) {
        (Source::Url(u), true) => Box::new(FfmpegSource::open_url(u.expose(), &cam.id, cam.stall_timeout)?),
        (Source::File(p), true) => Box::new(FfmpegSource::open_file(p)?),
        (Source::Url(u), false) => {
            Box::new(OpenCvSource::open_url_with_timeout(u.expose(), &cam.id, cam.stall_timeout)?)
        }
        (Source::Usb(i), _) => Box::new(OpenCvSource::open_device(*i, &cam.id)?),
        (Source::File(p), false) => Box::new(OpenCvSource::open_file(p)?),
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
                    }
                }
            }
        }
    }

    /// Runs until stopped, or until a non-looping file ends. `rx` is the queue's own receiver,
    /// used to drop the oldest frame when a live queue is full.
    pub fn run(self, tx: Sender<Feed>, rx: Receiver<Feed>) {
        let cam = &self.cam;
        let live = is_live(cam);
        let is_file = matches!(cam.source, Source::File(_));
        let t0 = Instant::now();
        let mut online = None;
        let mut attempt = 0u32;
        let mut index = 0u64;
        // Files: media time of the next loop's first frame.
        let mut offset_ms = 0.0;
        let mut last_pts_ms = 0.0f64;
        while !self.stop.load(Ordering::Relaxed) {
            let mut src = match open(cam, self.yuv) {
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
            let started = Instant::now();
            let mut n = 0u64;
            let ended_cleanly = loop {
                if self.stop.load(Ordering::Relaxed) {
                    break false;
                }
                match src.next_frame() {
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
                        self.counters.frames_in.fetch_add(1, Ordering::Relaxed);
                        self.metrics.observe_since(Stage::Decode, f.captured);
                        if !self.push(&tx, &rx, Feed::Frame(f), live) {
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
            tracing::warn!(camera = %cam.id, "stream lost after {n} frames; reconnecting in {delay:.1?}");
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
        };
        (cap, counters)
    }

    fn frame(index: u64) -> Feed {
        Feed::Frame(Frame {
            index,
            pts_ms: 0.0,
            width: 2,
            height: 2,
            format: PixelFormat::Bgr,
            data: vec![0; 12],
            captured: Instant::now(),
        })
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
