//! The webhook sink: each event is POSTed as JSON, in outbox order, from a thread named
//! `sink-webhook`. A 2xx answer removes it from the outbox; anything else (status, timeout,
//! refused connection) is retried with exponential backoff and jitter, holding back the events
//! behind it so they arrive in order. Headers `X-Vigil-Alert-Id` and `X-Vigil-Outbox-Seq` let
//! the receiver drop duplicates.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{select, Receiver, Sender};

use crate::alert::AlertEvent;
use crate::config::{Backoff, Secret, WebhookConfig};
use crate::telemetry::SinkMetrics;

use super::{Durable, Outbox, OutboxEntry, Sink, SinkError};

/// POSTs events to a URL, durably.
pub struct WebhookSink {
    durable: Arc<Durable>,
    shutdown: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WebhookSink {
    /// Starts the delivery thread; pending events in `outbox` go first.
    pub fn start(
        cfg: &WebhookConfig,
        outbox: Outbox,
        metrics: Option<Arc<SinkMetrics>>,
    ) -> Result<WebhookSink, SinkError> {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(cfg.timeout)).http_status_as_error(false).build().into();
        let (durable, wake) = Durable::new(outbox);
        let (shutdown, shutdown_rx) = crossbeam_channel::bounded(0);
        let worker = Worker {
            agent,
            url: cfg.url.expose().to_string(),
            redacted_url: cfg.url.redacted(),
            headers: cfg.headers.clone().into_iter().collect(),
            retry: cfg.retry,
            durable: Arc::clone(&durable),
            metrics,
        };
        let thread = std::thread::Builder::new()
            .name("sink-webhook".into())
            .spawn(move || worker.run(&wake, &shutdown_rx))
            .map_err(|e| SinkError::Setup { sink: "webhook", reason: format!("starting thread: {e}") })?;
        Ok(WebhookSink { durable, shutdown: Some(shutdown), thread: Some(thread) })
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &'static str {
        "webhook"
    }
    fn send(&mut self, ev: &AlertEvent) -> Result<(), SinkError> {
        self.durable.push(ev)
    }
    fn flush(&mut self, timeout: Duration) -> Result<(), SinkError> {
        self.durable.flush("webhook", timeout)
    }
    fn depth(&self) -> usize {
        self.durable.depth()
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!(sink = "webhook", "delivery thread panicked");
            }
        }
    }
}

struct Worker {
    agent: ureq::Agent,
    url: String,
    redacted_url: String,
    headers: Vec<(String, Secret)>,
    retry: Backoff,
    durable: Arc<Durable>,
    metrics: Option<Arc<SinkMetrics>>,
}

enum Attempt {
    Delivered,
    /// Retry later; the reason is logged once per outage.
    Failed(String),
}

impl Worker {
    fn run(&self, wake: &Receiver<()>, shutdown: &Receiver<()>) {
        let mut attempt = 0u32;
        loop {
            let head = self.durable.outbox().get(0).cloned();
            let Some(entry) = head else {
                select! {
                    recv(wake) -> _ => continue,
                    recv(shutdown) -> _ => return,
                }
            };
            match self.post(&entry) {
                Attempt::Delivered => {
                    if attempt > 0 {
                        tracing::info!(sink = "webhook", url = %self.redacted_url, attempts = attempt + 1, "webhook delivering again");
                    }
                    attempt = 0;
                    if let Err(e) = self.durable.outbox().ack(entry.seq) {
                        tracing::error!(sink = "webhook", error = %e, "cannot remove a delivered event; it will be sent again");
                    }
                }
                Attempt::Failed(reason) => {
                    if let Some(m) = &self.metrics {
                        m.failures.fetch_add(1, Ordering::Relaxed);
                    }
                    if attempt == 0 {
                        tracing::warn!(sink = "webhook", url = %self.redacted_url, seq = entry.seq, reason = %reason, "webhook delivery failed; retrying with backoff");
                    } else {
                        tracing::debug!(sink = "webhook", seq = entry.seq, attempt, reason = %reason, "webhook retry failed");
                    }
                    let delay = self.retry.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    // Sleep, but leave at once on shutdown (the event stays in the outbox).
                    if !matches!(shutdown.recv_timeout(delay), Err(crossbeam_channel::RecvTimeoutError::Timeout)) {
                        return;
                    }
                }
            }
        }
    }

    fn post(&self, entry: &OutboxEntry) -> Attempt {
        let body = match self.durable.outbox().read(entry) {
            Ok(b) => b,
            Err(e) => {
                // A file that cannot be read will never be delivered: drop it loudly.
                tracing::error!(sink = "webhook", error = %e, "dropping an unreadable outbox entry");
                return Attempt::Delivered;
            }
        };
        let mut rq = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Vigil-Alert-Id", &entry.id)
            .header("X-Vigil-Outbox-Seq", entry.seq.to_string());
        for (k, v) in &self.headers {
            rq = rq.header(k, v.expose());
        }
        match rq.send(&body[..]) {
            Ok(resp) if resp.status().is_success() => Attempt::Delivered,
            Ok(resp) => Attempt::Failed(format!("HTTP {}", resp.status())),
            Err(e) => Attempt::Failed(e.to_string()),
        }
    }
}
