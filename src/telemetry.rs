//! Telemetry: the one place that defines every metric, their Prometheus text rendering, and the
//! HTTP endpoint (`/metrics`, `/healthz`, `/readyz`) on its own named thread.
//!
//! Every metric is an atomic owned by a [`CameraMetrics`], [`SinkMetrics`] or stage
//! [`Histogram`], created once at start-up from the configured cameras and sinks, so the set of
//! series (and the size of a `/metrics` answer) is fixed for the life of the process. Gauges
//! that are differences (outbox depth) are rendered from pushed/popped counters, never sampled.
//! Stages record; this module never reads a camera or a sink.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A metric's typed name: its exposition name, help and type, all defined here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: &'static str,
}

const fn def(name: &'static str, kind: &'static str, help: &'static str) -> MetricDef {
    MetricDef { name, help, kind }
}

pub const FRAMES_IN: MetricDef = def("vigil_frames_in_total", "counter", "Frames read from the camera.");
pub const FRAMES_PROCESSED: MetricDef =
    def("vigil_frames_processed_total", "counter", "Frames that went through feature extraction.");
pub const FRAMES_DROPPED: MetricDef =
    def("vigil_frames_dropped_total", "counter", "Frames dropped because a live queue was full (newest kept).");
pub const RECONNECTS: MetricDef = def("vigil_reconnects_total", "counter", "Camera reconnect attempts.");
pub const PACKETS_DAMAGED: MetricDef = def(
    "vigil_packets_damaged_total",
    "counter",
    "Damaged packets the decoder skipped (their pictures lost or concealed; FFmpeg decoder only).",
);
pub const CAMERA_UP: MetricDef = def("vigil_camera_up", "gauge", "1 while the camera delivers frames, else 0.");
pub const ALERTS: MetricDef = def("vigil_alerts_total", "counter", "Alert start events per camera.");
pub const ALERTS_SUPPRESSED: MetricDef =
    def("vigil_alerts_suppressed_total", "counter", "Alert starts dropped by the camera's max_per_hour cap.");
pub const STAGE_LATENCY: MetricDef = def(
    "vigil_stage_latency_seconds",
    "histogram",
    "Time from frame capture to the end of each stage (score and alert: from the capture of the newest frame \
     the score needed, i.e. beyond the wait for the snippet and lookahead).",
);
pub const OUTBOX_ENQUEUED: MetricDef = def(
    "vigil_outbox_enqueued_total",
    "counter",
    "Events written to a sink's outbox (including those found pending at start).",
);
pub const OUTBOX_DELIVERED: MetricDef = def(
    "vigil_outbox_delivered_total",
    "counter",
    "Events acknowledged by a sink's destination and removed from its outbox.",
);
pub const OUTBOX_DEPTH: MetricDef =
    def("vigil_outbox_depth", "gauge", "Undelivered events in a sink's outbox (enqueued - delivered).");
pub const OUTBOX_REFUSED: MetricDef =
    def("vigil_outbox_refused_total", "counter", "Events refused because a sink's outbox was full.");
pub const SINK_FAILURES: MetricDef =
    def("vigil_sink_failures_total", "counter", "Failed delivery attempts (each retried).");
pub const READY: MetricDef = def("vigil_ready", "gauge", "1 once the daemon has started every stage.");

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A pipeline stage whose latency from frame capture is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Decode,
    Preprocess,
    Features,
    Score,
    Alert,
}

impl Stage {
    pub const ALL: [Stage; 5] = [Stage::Decode, Stage::Preprocess, Stage::Features, Stage::Score, Stage::Alert];
    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Preprocess => "preprocess",
            Stage::Features => "features",
            Stage::Score => "score",
            Stage::Alert => "alert",
        }
    }
}

/// A fixed-bucket latency histogram of atomics.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Counters of one camera.
#[derive(Debug, Default)]
pub struct CameraMetrics {
    pub frames_in: AtomicU64,
    pub frames_processed: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub reconnects: AtomicU64,
    pub packets_damaged: AtomicU64,
    pub alerts: AtomicU64,
    pub alerts_suppressed: AtomicU64,
    pub up: AtomicBool,
}

/// Counters of one sink and its outbox.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    pub enqueued: AtomicU64,
    pub delivered: AtomicU64,
    pub refused: AtomicU64,
    pub failures: AtomicU64,
}

impl SinkMetrics {
    /// Undelivered events: enqueued minus delivered.
    pub fn depth(&self) -> u64 {
        let d = self.delivered.load(Ordering::Relaxed);
        self.enqueued.load(Ordering::Relaxed).saturating_sub(d)
    }
}

/// Every metric of the process; created once with the configured cameras and sinks.
#[derive(Debug)]
pub struct Metrics {
    cameras: Vec<(String, Arc<CameraMetrics>)>,
    sinks: Vec<(String, Arc<SinkMetrics>)>,
    stages: [Histogram; Stage::ALL.len()],
    ready: AtomicBool,
}

impl Metrics {
    pub fn new<C, S>(cameras: C, sinks: S) -> Arc<Metrics>
    where
        C: IntoIterator,
        C::Item: Into<String>,
        S: IntoIterator,
        S::Item: Into<String>,
    {
        Arc::new(Metrics {
            cameras: cameras.into_iter().map(|c| (c.into(), Arc::default())).collect(),
            sinks: sinks.into_iter().map(|s| (s.into(), Arc::default())).collect(),
            stages: Default::default(),
            ready: AtomicBool::new(false),
        })
    }

    /// The counters of camera `id` (None for a camera not given to `new`).
    pub fn camera(&self, id: &str) -> Option<Arc<CameraMetrics>> {
        self.cameras.iter().find(|(c, _)| c == id).map(|(_, m)| Arc::clone(m))
    }

    /// The counters of sink `name` (None for a sink not given to `new`).
    pub fn sink(&self, name: &str) -> Option<Arc<SinkMetrics>> {
        self.sinks.iter().find(|(s, _)| s == name).map(|(_, m)| Arc::clone(m))
    }

    pub fn stage(&self, stage: Stage) -> &Histogram {
        let i = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0);
        &self.stages[i]
    }

    /// Records the time from `captured` (the frame's capture instant) to now for `stage`.
    pub fn observe_since(&self, stage: Stage, captured: Instant) {
        self.stage(stage).observe(captured.elapsed());
    }

    /// `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Appends the Prometheus text exposition (format 0.0.4) of every metric to `out`.
    pub fn render(&self, out: &mut String) {
        fn load(a: &AtomicU64) -> u64 {
            a.load(Ordering::Relaxed)
        }
        let cams: [(MetricDef, CameraGetter); 8] = [
            (FRAMES_IN, |c| load(&c.frames_in)),
            (FRAMES_PROCESSED, |c| load(&c.frames_processed)),
            (FRAMES_DROPPED, |c| load(&c.frames_dropped)),
            (RECONNECTS, |c| load(&c.reconnects)),
            (PACKETS_DAMAGED, |c| load(&c.packets_damaged)),
            (CAMERA_UP, |c| u64::from(c.up.load(Ordering::Relaxed))),
            (ALERTS, |c| load(&c.alerts)),
            (ALERTS_SUPPRESSED, |c| load(&c.alerts_suppressed)),
        ];
        for (d, get) in cams {
            header(out, d);
            for (id, c) in &self.cameras {
                let _ = writeln!(out, "{}{{camera=\"{}\"}} {}", d.name, Escaped(id), get(c));
            }
        }
        let sinks: [(MetricDef, SinkGetter); 5] = [
            (OUTBOX_ENQUEUED, |s| load(&s.enqueued)),
            (OUTBOX_DELIVERED, |s| load(&s.delivered)),
            (OUTBOX_DEPTH, SinkMetrics::depth),
            (OUTBOX_REFUSED, |s| load(&s.refused)),
            (SINK_FAILURES, |s| load(&s.failures)),
        ];
        for (d, get) in sinks {
            header(out, d);
            for (name, s) in &self.sinks {
                let _ = writeln!(out, "{}{{sink=\"{}\"}} {}", d.name, Escaped(name), get(s));
            }
        }
        header(out, STAGE_LATENCY);
        let n = STAGE_LATENCY.name;
        for (stage, h) in Stage::ALL.iter().zip(&self.stages) {
            let st = stage.name();
            let mut cum = 0;
            for (b, le) in h.buckets.iter().zip(LATENCY_BUCKETS) {
                cum += load(b);
                let _ = writeln!(out, "{n}_bucket{{stage=\"{st}\",le=\"{le}\"}} {cum}");
            }
            let count = load(&h.count);
            let _ = writeln!(out, "{n}_bucket{{stage=\"{st}\",le=\"+Inf\"}} {count}");
            let sum = load(&h.sum_us) as f64 / 1e6;
            let _ = writeln!(out, "{n}_sum{{stage=\"{st}\"}} {sum}");
            let _ = writeln!(out, "{n}_count{{stage=\"{st}\"}} {count}");
        }
        header(out, READY);
        let _ = writeln!(out, "{} {}", READY.name, u64::from(self.is_ready()));
    }
}

type CameraGetter = fn(&CameraMetrics) -> u64;
type SinkGetter = fn(&SinkMetrics) -> u64;

fn header(out: &mut String, d: MetricDef) {
    let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", d.name, d.help, d.name, d.kind);
}

/// A label value escaped for the text format.
struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Why the telemetry server did not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("binding the telemetry endpoint on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("starting the telemetry thread: {0}")]
    Thread(std::io::Error),
}

/// The HTTP endpoint; stops (and joins its thread) on drop.
pub struct TelemetryServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    thread: Option<JoinHandle<()>>,
}

impl TelemetryServer {
    /// Binds `addr` (port 0 picks a free port: see [`TelemetryServer::local_addr`]) and serves
    /// on a thread named `telemetry-http`.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<TelemetryServer, TelemetryError> {
        let server = tiny_http::Server::http(addr).map_err(|e| TelemetryError::Bind { addr, reason: e.to_string() })?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| TelemetryError::Bind { addr, reason: "not bound to an IP address".into() })?;
        let server = Arc::new(server);
        let (s, m) = (Arc::clone(&server), Arc::clone(&metrics));
        let thread = std::thread::Builder::new()
            .name("telemetry-http".into())
            .spawn(move || serve(&s, &m))
            .map_err(TelemetryError::Thread)?;
        tracing::info!(addr = %bound, "telemetry endpoint listening");
        Ok(TelemetryServer { server, addr: bound, metrics, thread: Some(thread) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Same as `metrics().set_ready()`.
    pub fn set_ready(&self) {
        self.metrics.set_ready();
    }
}

impl Drop for TelemetryServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("telemetry thread panicked");
            }
        }
    }
}

fn serve(server: &tiny_http::Server, metrics: &Metrics) {
    // One buffer for the life of the thread: the series set is fixed, so it stops growing.
    let mut body = String::with_capacity(16 * 1024);
    for rq in server.incoming_requests() {
        let path = rq.url().split('?').next().unwrap_or("");
        let get = matches!(rq.method(), tiny_http::Method::Get | tiny_http::Method::Head);
        body.clear();
        let (code, ctype) = if !get {
            body.push_str("method not allowed\n");
            (405, "text/plain; charset=utf-8")
        } else {
            match path {
                "/metrics" => {
                    metrics.render(&mut body);
                    (200, "text/plain; version=0.0.4; charset=utf-8")
                }
                "/healthz" => {
                    body.push_str("ok\n");
                    (200, "text/plain; charset=utf-8")
                }
                "/readyz" if metrics.is_ready() => {
                    body.push_str("ready\n");
                    (200, "text/plain; charset=utf-8")
                }
                "/readyz" => {
                    body.push_str("starting\n");
                    (503, "text/plain; charset=utf-8")
                }
                _ => {
                    body.push_str("not found\n");
                    (404, "text/plain; charset=utf-8")
                }
            }
        };
        let mut resp = tiny_http::Response::from_data(body.as_bytes()).with_status_code(code);
        if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()) {
            resp.add_header(h);
        }
        if let Err(e) = rq.respond(resp) {
            tracing::debug!(error = %e, "telemetry client went away");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_fixed_series() {
        let m = Metrics::new(["cam1", "cam2"], ["mqtt"]);
        m.camera("cam1").map(|c| c.frames_in.fetch_add(3, Ordering::Relaxed));
        m.stage(Stage::Features).observe(Duration::from_millis(30));
        let s = m.sink("mqtt");
        s.iter().for_each(|s| {
            s.enqueued.fetch_add(5, Ordering::Relaxed);
            s.delivered.fetch_add(2, Ordering::Relaxed);
        });
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("vigil_frames_in_total{camera=\"cam1\"} 3\n"));
        assert!(out.contains("vigil_outbox_depth{sink=\"mqtt\"} 3\n"));
        assert!(out.contains("vigil_stage_latency_seconds_bucket{stage=\"features\",le=\"0.025\"} 0\n"));
        assert!(out.contains("vigil_stage_latency_seconds_bucket{stage=\"features\",le=\"0.05\"} 1\n"));
        assert!(out.contains("vigil_stage_latency_seconds_count{stage=\"features\"} 1\n"));
        let len = out.len();
        out.clear();
        m.render(&mut out);
        assert_eq!(out.len(), len);
    }
}
