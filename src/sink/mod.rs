//! Alert sinks: where [`AlertEvent`]s go once the alert machine emits them.
//!
//! A [`Sink`] accepts an event and returns quickly. The JSON-lines sink writes at once; the
//! network sinks ([`mqtt`], [`webhook`]) first store the event in their own on-disk
//! [`Outbox`] (fsynced) and deliver it from a named thread, in order, retrying with backoff,
//! removing it only when the destination acknowledged it (MQTT PUBACK, HTTP 2xx). Delivery is
//! at least once: a resent event carries the same `id` (start and end of one alert share it;
//! `(id, event)` is unique) so consumers can drop duplicates. [`SinkSet`] fans events out.
//! Sinks know nothing of cameras, frames or scores beyond what they are handed.

pub mod jsonl;
pub mod mqtt;
pub mod outbox;
pub mod webhook;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::alert::AlertEvent;
use crate::config::SinksConfig;
use crate::telemetry::Metrics;

pub use jsonl::JsonlSink;
pub use mqtt::MqttSink;
pub use outbox::{Outbox, OutboxEntry};
pub use webhook::WebhookSink;

/// Sink failures, with the sink or file they concern.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("outbox {path}: {what}: {source}", path = .path.display())]
    Outbox { path: PathBuf, what: &'static str, source: std::io::Error },
    #[error("outbox {dir} is full ({max} undelivered events): event refused", dir = .dir.display())]
    OutboxFull { dir: PathBuf, max: usize },
    #[error("encoding an event as JSON: {0}")]
    Encode(serde_json::Error),
    #[error("jsonl sink {path}: {source}", path = .path.display())]
    Jsonl { path: PathBuf, source: std::io::Error },
    #[error("{sink} sink: {reason}")]
    Setup { sink: &'static str, reason: String },
    #[error("{sink} sink: {depth} events still undelivered after {timeout:?}")]
    FlushTimeout { sink: &'static str, depth: usize, timeout: Duration },
    #[error("{} sinks failed: {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Several(Vec<SinkError>),
}

/// Somewhere alert events go.
pub trait Sink: Send {
    /// Short name ("jsonl", "mqtt", "webhook"), also the metrics label.
    fn name(&self) -> &'static str;

    /// Accepts one event. Durable sinks return once it is safely in their outbox; delivery
    /// goes on in the background.
    fn send(&mut self, ev: &AlertEvent) -> Result<(), SinkError>;

    /// Waits until every accepted event was delivered, or `timeout` passed
    /// ([`SinkError::FlushTimeout`]; the rest stays in the outbox for the next run).
    fn flush(&mut self, timeout: Duration) -> Result<(), SinkError>;

    /// Events accepted but not yet delivered.
    fn depth(&self) -> usize {
        0
    }

    /// A camera went online or offline (MQTT publishes it retained). Best effort.
    fn camera_status(&mut self, _camera: &str, _online: bool) {}

    /// One snippet score (MQTT publishes it rate-limited when enabled). Best effort.
    fn score(&mut self, _camera: &str, _time_s: f64, _score: f32) {}
}

/// Every configured sink; events go to each.
#[derive(Default)]
pub struct SinkSet {
    sinks: Vec<Box<dyn Sink>>,
}

impl SinkSet {
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        SinkSet { sinks }
    }

    /// Builds the sinks of `[sinks]`, each network sink with its outbox in
    /// `outbox_dir/<name>`; counts into `metrics` when it has a series for the sink name.
    pub fn from_config(cfg: &SinksConfig, metrics: Option<&Metrics>) -> Result<SinkSet, SinkError> {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(j) = &cfg.jsonl {
            sinks.push(Box::new(JsonlSink::open(&j.path)?));
        }
        if let Some(m) = &cfg.mqtt {
            let ob = open_outbox(cfg, "mqtt", metrics)?;
            sinks.push(Box::new(MqttSink::start(m, ob, metrics.and_then(|m| m.sink("mqtt")))?));
        }
        if let Some(w) = &cfg.webhook {
            let ob = open_outbox(cfg, "webhook", metrics)?;
            sinks.push(Box::new(WebhookSink::start(w, ob, metrics.and_then(|m| m.sink("webhook")))?));
        }
        Ok(SinkSet { sinks })
    }

    /// The names of the sinks `[sinks]` configures (to register their metrics).
    pub fn names(cfg: &SinksConfig) -> Vec<&'static str> {
        let mut v = Vec::new();
        if cfg.jsonl.is_some() {
            v.push("jsonl");
        }
        if cfg.mqtt.is_some() {
            v.push("mqtt");
        }
        if cfg.webhook.is_some() {
            v.push("webhook");
        }
        v
    }

    pub fn push(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Sends to every sink (one failing does not stop the others).
    pub fn send(&mut self, ev: &AlertEvent) -> Result<(), SinkError> {
        collect(self.sinks.iter_mut().map(|s| s.send(ev)))
    }

    /// Flushes every sink within one shared `timeout`.
    pub fn flush(&mut self, timeout: Duration) -> Result<(), SinkError> {
        let deadline = Instant::now() + timeout;
        collect(self.sinks.iter_mut().map(|s| s.flush(deadline.saturating_duration_since(Instant::now()))))
    }

    /// `(name, depth)` per sink.
    pub fn depths(&self) -> Vec<(&'static str, usize)> {
        self.sinks.iter().map(|s| (s.name(), s.depth())).collect()
    }

    pub fn camera_status(&mut self, camera: &str, online: bool) {
        self.sinks.iter_mut().for_each(|s| s.camera_status(camera, online));
    }

    pub fn score(&mut self, camera: &str, time_s: f64, score: f32) {
        self.sinks.iter_mut().for_each(|s| s.score(camera, time_s, score));
    }
}

fn collect(results: impl Iterator<Item = Result<(), SinkError>>) -> Result<(), SinkError> {
    let mut errs: Vec<SinkError> = results.filter_map(Result::err).collect();
    match errs.len() {
        0 => Ok(()),
        1 => Err(errs.remove(0)),
        _ => Err(SinkError::Several(errs)),
    }
}

fn open_outbox(cfg: &SinksConfig, name: &str, metrics: Option<&Metrics>) -> Result<Outbox, SinkError> {
    let mut ob = Outbox::open(cfg.outbox_dir.join(name), cfg.outbox_max_events)?;
    if let Some(m) = metrics.and_then(|m| m.sink(name)) {
        ob.set_metrics(m);
    }
    Ok(ob)
}

/// The part of a durable sink shared by the caller (push) and its delivery thread (read, ack).
pub(crate) struct Durable {
    outbox: Mutex<Outbox>,
    /// Capacity 1: a full channel already means "look at the outbox".
    wake_tx: Sender<()>,
}

impl Durable {
    pub(crate) fn new(outbox: Outbox) -> (Arc<Durable>, Receiver<()>) {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        // Pending events from a previous run: look at once.
        let _ = wake_tx.try_send(());
        (Arc::new(Durable { outbox: Mutex::new(outbox), wake_tx }), wake_rx)
    }

    pub(crate) fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // A panic while holding the lock leaves the outbox consistent (files are the truth).
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, ev: &AlertEvent) -> Result<(), SinkError> {
        self.outbox().push(ev)?;
        let _ = self.wake_tx.try_send(());
        Ok(())
    }

    pub(crate) fn depth(&self) -> usize {
        self.outbox().depth()
    }

    pub(crate) fn flush(&self, sink: &'static str, timeout: Duration) -> Result<(), SinkError> {
        let deadline = Instant::now() + timeout;
        loop {
            let depth = self.depth();
            if depth == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SinkError::FlushTimeout { sink, depth, timeout });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Seconds since the Unix epoch (for status payloads).
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
