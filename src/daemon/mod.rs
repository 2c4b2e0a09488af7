//! `vigil run`: the edge daemon. Threads, per camera and shared:
//!
//! ```text
//! capture(cam) ─frames(8, drop-oldest if live)─> camera(cam) ─jobs(bounded)─> feature pool (workers.count)
//!      │                                           ^  │  └─rec frames─> recorder(cam): pre-roll, clips, snapshots
//!      └─status─┐                                  └──┴─ replies (per camera, reordered) -> scorer -> alerts
//!               v                                        │
//!            sinks thread (jsonl, MQTT, webhook; outboxes) <─ alert/update/end events, scores
//! telemetry thread: /metrics /healthz /readyz     signal thread: SIGTERM/SIGINT
//! ```
//!
//! Start-up loads the model and runs every extractor session and the network once before
//! `/readyz` turns ready. The first SIGTERM or SIGINT stops capture; each camera finishes the
//! snippets in flight, scores its lookahead, ends an open alert (reason `stream_end`) and closes
//! its clip; then the sinks flush their outboxes (what is still undelivered after
//! [`FLUSH_TIMEOUT`] stays on disk for the next start) and the process exits 0. A second signal
//! exits at once with 128 + the signal number.

pub mod camera;
pub mod capture;
pub mod mask;
pub mod pool;
pub mod record;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{bounded, unbounded, Receiver};
use ndarray::{Array3, Array5};

use crate::alert::AlertEvent;
use crate::config::Config;
use crate::features::FeatureExtractor;
use crate::model::ModelDir;
use crate::sink::SinkSet;
use crate::telemetry::{Metrics, TelemetryServer};

/// How long the sinks get to deliver their outboxes at shutdown.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// What the sink thread receives.
#[derive(Debug, Clone)]
pub enum SinkMsg {
    Alert(AlertEvent),
    Status { camera: String, online: bool },
    Score { camera: String, time_s: f64, score: f32 },
}

/// Options of one daemon run besides the configuration file.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Stop on its own after this long (benchmarks, tests), as if signalled.
    pub duration: Option<Duration>,
    /// A flag that stops the daemon when set (signals set it; tests may too).
    pub stop: Option<Arc<AtomicBool>>,
    /// Called once the daemon is ready, with the telemetry address.
    pub on_ready: Option<Arc<dyn Fn(std::net::SocketAddr) + Send + Sync>>,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub cameras: Vec<(String, camera::CameraSummary)>,
    pub undelivered: usize,
}

/// The model directory a config names: its `model`, except that the default `models/default`
/// is looked up like `--model`'s default ($VIGIL_MODEL, the current directory, the executable's).
pub fn model_dir(cfg: &Config) -> PathBuf {
    if cfg.model == std::path::Path::new("models/default") {
        crate::model::default_model_dir()
    } else {
        cfg.model.clone()
    }
}

/// Runs the daemon until stopped (or until every camera is a file that ended).
pub fn run(cfg: Config, opts: RunOptions) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    record::single_threaded_opencv();
    let model = ModelDir::load(&model_dir(&cfg))?;
    let recipe = model.extractor_parts()?.1.clone();
    let (crops, dim) = (model.manifest.features.crops, model.manifest.features.dim);
    let rtfm = camera::SharedRtfm(Arc::new(model.load_rtfm()?));
    let workers = cfg.workers;
    let mut extractors: Vec<Box<dyn FeatureExtractor + Send>> = Vec::new();
    for _ in 0..workers.count {
        extractors.push(Box::new(model.load_extractor(1)?));
    }

    let cameras: Vec<_> = cfg.enabled_cameras().cloned().collect();
    if cameras.is_empty() {
        anyhow::bail!("every camera in the configuration is disabled (enabled = false): nothing to run");
    }
    let grey = recipe.color == crate::preprocess::ColorOrder::Gray;
    let yuv = cameras.iter().map(|c| c.reads_yuv(grey)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
    let metrics = Metrics::new(cameras.iter().map(|c| c.id.clone()), SinkSet::names(&cfg.sinks));
    let server = TelemetryServer::start(cfg.http.listen, Arc::clone(&metrics))
        .with_context(|| format!("starting the HTTP endpoint on {}", cfg.http.listen))?;

    // Run the model once (every session and the network) before declaring readiness.
    let [c, ch, t, h, w] = recipe.clip_shape();
    let zeros = Array5::<f32>::zeros((c, ch, t, h, w));
    for ex in extractors.iter_mut() {
        ex.extract(zeros.view()).context("warm-up run of the feature extractor")?;
    }
    rtfm.0.score(Array3::<f32>::zeros((2, crops, dim)).view()).context("warm-up run of the RTFM network")?;

    let sinks = SinkSet::from_config(&cfg.sinks, Some(&metrics))?;
    let (sink_tx, sink_rx) = unbounded::<SinkMsg>();
    let sink_thread = std::thread::Builder::new().name("sinks".into()).spawn(move || sink_loop(sinks, sink_rx))?;

    let stop = opts.stop.clone().unwrap_or_default();
    let (jobs_tx, jobs_rx) = bounded::<pool::Job>(workers.max_batch * workers.count * 2);
    let mut worker_threads = Vec::new();
    for (i, ex) in extractors.into_iter().enumerate() {
        let (rx, m) = (jobs_rx.clone(), Arc::clone(&metrics));
        worker_threads.push(
            std::thread::Builder::new()
                .name(format!("features-{i}"))
                .spawn(move || pool::run_worker(ex, rx, workers.max_batch, workers.max_wait, crops, m))?,
        );
    }
    drop(jobs_rx);

    let recording = cfg.recording.enabled.then(|| cfg.recording.clone());
    let active_clips = Arc::new(Mutex::new(HashSet::new()));
    if let Some(r) = &recording {
        if let Err(e) = record::enforce_retention(&r.dir, &r.retention, &active_clips) {
            tracing::warn!("retention of {}: {e}", r.dir.display());
        }
    }
    let mut camera_threads = Vec::new();
    let n_cameras = cameras.len();
    for (i, cam) in cameras.into_iter().enumerate() {
        let counters = metrics.camera(&cam.id).context("camera metrics")?;
        let (feed_tx, feed_rx) = bounded(capture::FRAME_QUEUE);
        // Buffers of pre-roll frames: from the recorder's ring back to the capture thread.
        let preroll_buffers = crate::source::FrameBuffers::new(4);
        let preroll =
            recording.as_ref().map(|r| capture::Preroll::new(r.max_fps, r.max_width, preroll_buffers.clone()));
        let cap = capture::Capture {
            cam: cam.clone(),
            metrics: Arc::clone(&metrics),
            counters: Arc::clone(&counters),
            status: sink_tx.clone(),
            stop: Arc::clone(&stop),
            yuv: yuv[i],
            work: capture::FrameWork::new(recipe.clone(), preroll),
            drops: capture::DropLog::default(),
        };
        let rx2 = feed_rx.clone();
        std::thread::Builder::new().name(format!("cap-{}", cam.id)).spawn(move || cap.run(feed_tx, rx2))?;
        let task = camera::CameraTask {
            cam: cam.clone(),
            recipe: recipe.clone(),
            crops,
            dim,
            scorer: cfg.scorer,
            rtfm: rtfm.clone(),
            jobs: jobs_tx.clone(),
            sinks: sink_tx.clone(),
            metrics: Arc::clone(&metrics),
            counters,
            recording: recording.clone(),
            active_clips: Arc::clone(&active_clips),
            stop: Arc::clone(&stop),
            phase: camera::snippet_phase(i, n_cameras, recipe.snippet_frames),
            preroll_buffers,
        };
        let id = cam.id.clone();
        camera_threads
            .push((id, std::thread::Builder::new().name(format!("cam-{}", cam.id)).spawn(move || task.run(feed_rx))?));
    }
    drop(jobs_tx);

    server.set_ready();
    tracing::info!(
        cameras = camera_threads.len(),
        workers = workers.count,
        http = %server.local_addr(),
        "vigil ready in {:.1?}",
        started.elapsed()
    );
    if let Some(f) = &opts.on_ready {
        f(server.local_addr());
    }

    // Wait for a stop (signal, duration) or for every camera thread to end on its own.
    let deadline = opts.duration.map(|d| Instant::now() + d);
    while !stop.load(Ordering::Relaxed) && camera_threads.iter().any(|(_, h)| !h.is_finished()) {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            tracing::info!("run duration reached: stopping");
            stop.store(true, Ordering::Relaxed);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if stop.load(Ordering::Relaxed) {
        tracing::info!("stopping: finishing snippets in flight, ending open alerts, flushing sinks");
    }
    stop.store(true, Ordering::Relaxed);
    let mut summary = RunSummary::default();
    for (id, h) in camera_threads {
        match h.join() {
            Ok(s) => summary.cameras.push((id, s)),
            Err(_) => tracing::error!(camera = %id, "the camera thread panicked"),
        }
    }
    for h in worker_threads {
        let _ = h.join();
    }
    drop(sink_tx);
    summary.undelivered = match sink_thread.join() {
        Ok(n) => n,
        Err(_) => anyhow::bail!("the sink thread panicked"),
    };
    drop(server);
    Ok(summary)
}

/// The sink thread: fans messages out to the sinks; when every sender is gone, flushes the
/// outboxes and returns how many events remain undelivered.
fn sink_loop(mut sinks: SinkSet, rx: Receiver<SinkMsg>) -> usize {
    for msg in rx.iter() {
        match msg {
            SinkMsg::Alert(ev) => {
                tracing::info!(camera = %ev.source, id = %ev.id, event = ?ev.event, peak = ev.peak_score, "alert");
                if let Err(e) = sinks.send(&ev) {
                    tracing::error!("alert {} ({:?}): {e}", ev.id, ev.event);
                }
            }
            SinkMsg::Status { camera, online } => sinks.camera_status(&camera, online),
            SinkMsg::Score { camera, time_s, score } => sinks.score(&camera, time_s, score),
        }
    }
    if let Err(e) = sinks.flush(FLUSH_TIMEOUT) {
        tracing::warn!("at exit: {e} (kept in the outbox for the next start)");
    }
    sinks.depths().iter().map(|(_, d)| d).sum()
}

/// Installs the SIGTERM/SIGINT handling: the first signal sets `stop`, a second exits at once.
pub fn install_signals(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).context("installing signal handlers")?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let mut seen = 0;
        for sig in signals.forever() {
            seen += 1;
            if seen == 1 {
                tracing::info!("signal {sig}: shutting down (send it again to exit at once)");
                stop.store(true, Ordering::Relaxed);
            } else {
                eprintln!("second signal {sig}: exiting now");
                std::process::exit(128 + sig);
            }
        }
    })?;
    Ok(())
}
