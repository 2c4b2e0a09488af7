//! One camera thread per camera: takes frames from its capture thread (already shrunk for the
//! pre-roll and preprocessed there), feeds the recorder's pre-roll, assembles snippets, sends
//! them to the shared feature pool, puts the features back in order, and runs the camera's own
//! window scorer and alert state machine (with its arming schedule and hourly cap). Events go to
//! the sink thread.
//!
//! On stop (or when a file ends) it finishes what is in flight: waits for the snippets at the
//! pool, scores the lookahead, ends an open alert with an end event, and closes its clip.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{select, unbounded, Receiver, Sender};
use ndarray::Array2;

use super::capture::Feed;
use super::pool::{Job, Reply, SnippetMeta};
use super::record::{self, RecMsg, Recorder};
use super::SinkMsg;
use crate::alert::{AlertEvent, AlertMachine, EventKind, Observation};
use crate::config::{is_armed, CameraConfig, RecordingConfig, Weekday};
use crate::preprocess::{PreparedFrame, Recipe, SnippetAssembler};
use crate::rtfm::{Rtfm, RtfmError, ScoreOutput};
use crate::scorer::{Scored, ScorerConfig, SnippetScorer, StreamScorer};
use crate::source::FrameBuffers;
use crate::telemetry::{CameraMetrics, Metrics, Stage};

/// The RTFM network shared by every camera (read-only at inference).
#[derive(Clone)]
pub struct SharedRtfm(pub Arc<Rtfm>);

impl SnippetScorer for SharedRtfm {
    fn score(&self, feats: ndarray::ArrayView3<f32>) -> Result<ScoreOutput, RtfmError> {
        self.0.score(feats)
    }
}

/// Longest wait for the pool's replies when draining.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest wall time between two update events of one alert.
const UPDATE_INTERVAL: Duration = Duration::from_secs(1);

/// What every camera thread shares, and what is its own.
pub struct CameraTask {
    pub cam: CameraConfig,
    pub recipe: Recipe,
    pub crops: usize,
    pub dim: usize,
    pub scorer: ScorerConfig,
    pub rtfm: SharedRtfm,
    pub jobs: Sender<Job>,
    pub sinks: Sender<SinkMsg>,
    pub metrics: Arc<Metrics>,
    pub counters: Arc<CameraMetrics>,
    pub recording: Option<RecordingConfig>,
    pub active_clips: Arc<Mutex<HashSet<PathBuf>>>,
    pub stop: Arc<AtomicBool>,
    /// Frames (of those a snippet takes) skipped before the first snippet: see [`snippet_phase`].
    pub phase: usize,
    /// Buffers of frames leaving the recorder's ring, handed back to the capture thread's
    /// pre-roll shrink ([`super::capture::Preroll`]).
    pub preroll_buffers: FrameBuffers,
}

/// Where camera `i` of `n` starts its first snippet, in frames: cameras that connect together
/// would otherwise complete their snippets in the same instant and queue them all at once for
/// the feature pool (at 48 cameras a burst every 1.6 s, and each camera's latency that of the
/// whole burst); spreading the starts over one snippet spreads the work evenly. Costs camera `i`
/// at most one snippet's wait before its first score.
pub fn snippet_phase(i: usize, n: usize, snippet_frames: usize) -> usize {
    if n == 0 {
        return 0;
    }
    (i * snippet_frames / n) % snippet_frames.max(1)
}

/// What a camera thread did (for the log line at exit and for tests).
#[derive(Debug, Default, Clone)]
pub struct CameraSummary {
    /// Capture counters at the end.
    pub frames_in: u64,
    pub frames_dropped: u64,
    pub frames_processed: u64,
    pub reconnects: u64,
    /// Per scored snippet: from the capture of the newest frame its score needed (the last frame
    /// of the lookahead) to the score, i.e. latency beyond the unavoidable snippet and lookahead wait.
    pub score_latency: crate::stats::Samples,
    pub snippets: u64,
    pub alerts: u64,
    pub suppressed: u64,
    pub clips: Vec<(PathBuf, u64)>,
}

struct Recording {
    cfg: RecordingConfig,
    tx: Option<Sender<RecMsg>>,
    thread: Option<std::thread::JoinHandle<Recorder>>,
    live: bool,
}

/// The scoring half: features in snippet order -> scores -> alert events.
struct Scoring {
    id: String,
    cfg: ScorerConfig,
    rtfm: SharedRtfm,
    crops: usize,
    dim: usize,
    stream: StreamScorer<SharedRtfm>,
    metas: VecDeque<SnippetMeta>,
    alerts: AlertMachine,
    max_per_hour: u32,
    starts: VecDeque<Instant>,
    suppressed_id: Option<String>,
    /// Clip and snapshot paths of the open alert, repeated in its update and end events.
    open_paths: (Option<String>, Option<String>),
    last_event: Instant,
    last_peak: f32,
}

/// The frame half: snippet assembly from the prepared frames, up to the feature pool.
struct Intake {
    asm: SnippetAssembler,
    /// Number of the next snippet sent to the pool.
    next_snippet: u64,
    /// Prepared frames still to skip before the first snippet ([`CameraTask::phase`]).
    skip: usize,
}

impl Intake {
    /// Adds a prepared frame and sends a completed snippet to the feature pool; false when the
    /// pool is gone.
    fn take(&mut self, task: &CameraTask, p: PreparedFrame, reply: &Sender<Reply>) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return true;
        }
        if let Some(s) = self.asm.push(p) {
            let meta = SnippetMeta::of(self.next_snippet, &s);
            self.next_snippet += 1;
            return task.jobs.send(Job { meta, clip: s.clip, reply: reply.clone() }).is_ok();
        }
        true
    }
}

/// The wall clock's weekday and minute of the day, local time.
fn local_now() -> (Weekday, u16) {
    use chrono::{Datelike, Timelike};
    let now = chrono::Local::now();
    let day = match now.weekday() {
        chrono::Weekday::Mon => Weekday::Mon,
        chrono::Weekday::Tue => Weekday::Tue,
        chrono::Weekday::Wed => Weekday::Wed,
        chrono::Weekday::Thu => Weekday::Thu,
        chrono::Weekday::Fri => Weekday::Fri,
        chrono::Weekday::Sat => Weekday::Sat,
        chrono::Weekday::Sun => Weekday::Sun,
    };
    (day, (now.hour() * 60 + now.minute()) as u16)
}

fn rfc3339_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl CameraTask {
    pub fn run(self, feed: Receiver<Feed>) -> CameraSummary {
        let id = self.cam.id.clone();
        let mut summary = CameraSummary::default();
        let mut intake = Intake { asm: SnippetAssembler::new(self.recipe.clone()), next_snippet: 0, skip: self.phase };
        let (reply_tx, reply_rx) = unbounded::<Reply>();
        let policy = self.cam.effective_alert.policy();
        let mut scoring = Scoring {
            id: id.clone(),
            cfg: self.scorer,
            rtfm: self.rtfm.clone(),
            crops: self.crops,
            dim: self.dim,
            stream: StreamScorer::new(self.rtfm.clone(), self.scorer, self.crops, self.dim),
            metas: VecDeque::new(),
            alerts: AlertMachine::new(id.clone(), policy),
            max_per_hour: self.cam.effective_alert.max_per_hour,
            starts: VecDeque::new(),
            suppressed_id: None,
            open_paths: (None, None),
            last_event: Instant::now(),
            last_peak: 0.0,
        };
        let mut rec = self.recording.clone().map(|cfg| {
            // The ring covers the pre-roll plus the detection delay: a snippet, the lookahead,
            // the minimum duration, and slack for queues. The camera's rate is not known before
            // its first frame, so a snippet's duration assumes 10 fps (cameras at 10 fps or more
            // are covered; slower ones get a shorter pre-roll before long alerts).
            let snippet_s = (self.recipe.snippet_frames * self.recipe.frame_stride.max(1)) as f64 / 10.0;
            let delay =
                Duration::from_secs_f64(snippet_s * (self.scorer.lookahead as f64 + 1.0) + policy.min_duration_s + 2.0);
            let live = super::capture::is_live(&self.cam);
            let mut recorder = Recorder::new(&id, cfg.clone(), cfg.max_fps, delay, Arc::clone(&self.active_clips))
                .with_buffers(self.preroll_buffers.clone());
            if live {
                recorder = recorder.live(Duration::from_secs(5));
            }
            // Unbounded, so that the camera thread never waits for a recorder busy writing a
            // clip (a blocked control message stalled scoring for seconds when many cameras
            // alerted together); frames are held to `record::QUEUE` by the sender instead.
            let (tx, rx) = crossbeam_channel::unbounded();
            let thread = std::thread::Builder::new()
                .name(format!("rec-{id}"))
                .spawn(move || record::run(recorder, rx))
                .map_err(|e| tracing::error!(camera = %id, "cannot start the recorder thread: {e}"))
                .ok();
            Recording { cfg, tx: thread.as_ref().map(|_| tx), thread, live }
        });
        let mut next_to_score = 0u64;
        let mut ready: BTreeMap<u64, Reply> = BTreeMap::new();
        // Snippet numbers that follow a gap in the stream: the scorer restarts there.
        let mut restart_at: Vec<u64> = Vec::new();
        let mut file_ended = false;

        loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            select! {
                recv(feed) -> msg => match msg {
                    Ok(Feed::Frame(c)) => {
                        if let (Some(r), Some(rf)) = (rec.as_ref(), c.rec) {
                            self.to_preroll(r, rf);
                        }
                        if let Some(p) = c.prepared {
                            if !intake.take(&self, p, &reply_tx) {
                                break;
                            }
                        }
                    }
                    Ok(Feed::Gap) => {
                        // The partial snippet spans the break: drop it, restart the window.
                        intake.asm = SnippetAssembler::new(self.recipe.clone());
                        restart_at.push(intake.next_snippet);
                    }
                    Err(_) => {
                        file_ended = true;
                        break;
                    }
                },
                recv(reply_rx) -> r => {
                    if let Ok(r) = r {
                        ready.insert(r.meta.index, r);
                        self.score_ready(&mut scoring, &mut ready, &mut next_to_score, &mut restart_at, &mut rec, &mut summary);
                    }
                },
                default(Duration::from_millis(100)) => {},
            }
        }

        // Drain: a file that ended keeps its last partial snippet (loop-padded, as in replay).
        if file_ended {
            if let Some(s) = intake.asm.finish() {
                let meta = SnippetMeta::of(intake.next_snippet, &s);
                if self.jobs.send(Job { meta, clip: s.clip, reply: reply_tx.clone() }).is_ok() {
                    intake.next_snippet += 1;
                }
            }
        }
        drop(reply_tx);
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let next_snippet = intake.next_snippet;
        while next_to_score < next_snippet {
            match reply_rx.recv_deadline(deadline) {
                Ok(r) => {
                    ready.insert(r.meta.index, r);
                    self.score_ready(
                        &mut scoring,
                        &mut ready,
                        &mut next_to_score,
                        &mut restart_at,
                        &mut rec,
                        &mut summary,
                    );
                }
                Err(_) => {
                    tracing::warn!(camera = %id, "{} snippets still at the feature pool when stopping: not scored", next_snippet - next_to_score);
                    break;
                }
            }
        }
        let scored = scoring.stream.finish().unwrap_or_else(|e| {
            tracing::error!(camera = %id, "scoring: {e}");
            Vec::new()
        });
        self.handle_scored(&mut scoring, scored, None, &mut rec, &mut summary);
        if let Some(ev) = scoring.alerts.finish() {
            self.emit(&mut scoring, ev, &mut rec, &mut summary);
        }
        summary.frames_in = self.counters.frames_in.load(Ordering::Relaxed);
        summary.frames_dropped = self.counters.frames_dropped.load(Ordering::Relaxed);
        summary.frames_processed = self.counters.frames_processed.load(Ordering::Relaxed);
        summary.reconnects = self.counters.reconnects.load(Ordering::Relaxed);
        if let Some(mut r) = rec.take() {
            r.tx = None;
            if let Some(h) = r.thread.take() {
                match h.join() {
                    Ok(recorder) => summary.clips = recorder.finished,
                    Err(_) => tracing::error!(camera = %id, "the recorder thread panicked"),
                }
            }
        }
        summary
    }

    /// Hands a pre-roll frame (shrunk on the capture thread) to the recorder.
    fn to_preroll(&self, r: &Recording, rf: record::RecFrame) {
        let Some(tx) = &r.tx else { return };
        // Live: a recorder that fell behind (writing a clip) skips frames, never the camera.
        // Files played fast lose nothing.
        if !r.live {
            let alive = || r.thread.as_ref().is_some_and(|h| !h.is_finished());
            while tx.len() >= record::QUEUE && alive() && !self.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        if tx.len() < record::QUEUE {
            let _ = tx.send(RecMsg::Frame(rf));
        }
    }

    fn score_ready(
        &self,
        scoring: &mut Scoring,
        ready: &mut BTreeMap<u64, Reply>,
        next: &mut u64,
        restart_at: &mut Vec<u64>,
        rec: &mut Option<Recording>,
        summary: &mut CameraSummary,
    ) {
        while let Some(r) = ready.remove(next) {
            let restart = restart_at.first() == Some(next);
            if restart {
                restart_at.remove(0);
            }
            *next += 1;
            let feats: Array2<f32> = match r.feats {
                Ok(f) => f,
                Err(_) => {
                    // Skipped snippet: the window restarts after it.
                    restart_at.insert(0, *next);
                    continue;
                }
            };
            if restart {
                let scored = scoring.stream.finish().unwrap_or_default();
                self.handle_scored(scoring, scored, None, rec, summary);
                scoring.stream = StreamScorer::new(scoring.rtfm.clone(), scoring.cfg, scoring.crops, scoring.dim);
            }
            let frames = r.meta.last_frame.saturating_sub(r.meta.first_frame) + 1;
            self.counters.frames_processed.fetch_add(frames, Ordering::Relaxed);
            summary.snippets += 1;
            scoring.metas.push_back(r.meta);
            match scoring.stream.push(feats.view()) {
                Ok(scored) => self.handle_scored(scoring, scored, Some(r.meta.captured), rec, summary),
                Err(e) => tracing::error!(camera = %scoring.id, "scoring: {e}"),
            }
        }
    }

    /// `newest`: capture instant of the newest frame these scores needed (None when draining).
    fn handle_scored(
        &self,
        scoring: &mut Scoring,
        scored: Vec<Scored>,
        newest: Option<Instant>,
        rec: &mut Option<Recording>,
        summary: &mut CameraSummary,
    ) {
        let armed = {
            let (day, minute) = local_now();
            is_armed(&self.cam.schedule, day, minute)
        };
        for s in scored {
            let Some(meta) = scoring.metas.pop_front() else { continue };
            // Snippets scored while stopping waited for the shutdown, not for the pipeline: their
            // latency says nothing about live operation.
            if let Some(t) = newest.filter(|_| !self.stop.load(Ordering::Relaxed)) {
                let lat = t.elapsed();
                self.metrics.stage(Stage::Score).observe(lat);
                summary.score_latency.push(lat);
            }
            let end_ms = meta.until_ms();
            let _ =
                self.sinks.send(SinkMsg::Score { camera: scoring.id.clone(), time_s: end_ms / 1000.0, score: s.score });
            // Outside the arming schedule the machine sees zeros: nothing starts, open alerts end.
            let score = if armed { s.score } else { 0.0 };
            let obs = Observation {
                snippet: meta.index,
                first_frame: meta.first_frame,
                last_frame: meta.last_frame,
                start_ms: meta.start_ms,
                end_ms,
                score,
            };
            let events = scoring.alerts.update(obs);
            let had_events = !events.is_empty();
            for ev in events {
                self.emit(scoring, ev, rec, summary);
            }
            if let Some(t) = newest {
                self.metrics.observe_since(Stage::Alert, t);
            }
            if let Some(r) = rec.as_ref() {
                // Clips may be written up to here: while an alert is open, no further than its
                // post-roll would reach if it ended now.
                let post_ms = r.cfg.post_roll.as_secs_f64() * 1000.0;
                let mark = scoring.alerts.open_end_ms().map_or(end_ms, |e| end_ms.min(e + post_ms));
                if let Some(tx) = &r.tx {
                    let _ = tx.send(RecMsg::Scored(mark));
                }
            }
            if !had_events && scoring.last_event.elapsed() >= UPDATE_INTERVAL {
                if let Some(ev) = scoring.alerts.update_event() {
                    if ev.peak_score > scoring.last_peak {
                        self.emit(scoring, ev, rec, summary);
                    }
                }
            }
        }
    }

    /// Sends one event (after the hourly cap), with its clip, snapshot and wall time.
    fn emit(
        &self,
        scoring: &mut Scoring,
        mut ev: AlertEvent,
        rec: &mut Option<Recording>,
        summary: &mut CameraSummary,
    ) {
        let id = scoring.id.clone();
        if ev.event == EventKind::Start {
            let hour = Duration::from_secs(3600);
            while scoring.starts.front().is_some_and(|t| t.elapsed() > hour) {
                scoring.starts.pop_front();
            }
            if scoring.starts.len() >= scoring.max_per_hour as usize {
                summary.suppressed += 1;
                self.counters.alerts_suppressed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(camera = %id, "alert {} suppressed: {} alerts in the last hour (max_per_hour)", ev.id, scoring.starts.len());
                scoring.suppressed_id = Some(ev.id);
                return;
            }
            scoring.starts.push_back(Instant::now());
            summary.alerts += 1;
            self.counters.alerts.fetch_add(1, Ordering::Relaxed);
            if let Some(r) = rec.as_mut() {
                let (clip, snapshot) = record::clip_paths(&r.cfg, &id, &ev.id, SystemTime::now());
                ev.clip = Some(clip.display().to_string());
                ev.snapshot = snapshot.as_ref().map(|s| s.display().to_string());
                if let Some(tx) = &r.tx {
                    let _ = tx.send(RecMsg::Start {
                        id: ev.id.clone(),
                        clip,
                        snapshot,
                        from_ms: ev.time_start_s * 1000.0,
                        peak_frame: ev.peak_frame,
                    });
                }
            }
            scoring.open_paths = (ev.clip.clone(), ev.snapshot.clone());
        } else {
            if scoring.suppressed_id.as_deref() == Some(ev.id.as_str()) {
                if ev.event == EventKind::End {
                    scoring.suppressed_id = None;
                }
                return;
            }
            (ev.clip, ev.snapshot) = scoring.open_paths.clone();
            if let Some(r) = rec.as_mut() {
                if let Some(tx) = &r.tx {
                    let msg = match ev.event {
                        EventKind::End => RecMsg::End {
                            id: ev.id.clone(),
                            end_ms: ev.time_end_s.unwrap_or(ev.time_start_s) * 1000.0,
                            peak_frame: ev.peak_frame,
                        },
                        _ => RecMsg::Peak { id: ev.id.clone(), peak_frame: ev.peak_frame },
                    };
                    let _ = tx.send(msg);
                }
            }
            if ev.event == EventKind::End {
                scoring.open_paths = (None, None);
            }
        }
        scoring.last_event = Instant::now();
        scoring.last_peak = if ev.event == EventKind::End { 0.0 } else { ev.peak_score };
        ev.timestamp = Some(rfc3339_now());
        let _ = self.sinks.send(SinkMsg::Alert(ev));
    }
}

#[cfg(test)]
mod tests {
    use super::snippet_phase;

    #[test]
    fn snippet_phases_spread_cameras_over_one_snippet() {
        assert_eq!(snippet_phase(0, 1, 16), 0);
        let p: Vec<usize> = (0..4).map(|i| snippet_phase(i, 4, 16)).collect();
        assert_eq!(p, [0, 4, 8, 12]);
        // More cameras than frames: every phase used, none out of range.
        let p: Vec<usize> = (0..48).map(|i| snippet_phase(i, 48, 16)).collect();
        assert!(p.iter().all(|&x| x < 16));
        assert_eq!(p.iter().filter(|&&x| x == 5).count(), 3);
        assert_eq!(snippet_phase(0, 0, 16), 0);
    }
}
