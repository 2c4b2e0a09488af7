//! The MQTT sink: rumqttc's blocking client driven from one thread named `sink-mqtt`, which
//! owns the connection, publishes from the outbox and acknowledges outbox entries on PUBACK.
//!
//! Topics: `<prefix>/<camera>/alert` (the event JSON, QoS 1), `<prefix>/<camera>/status`
//! (retained `{"status":"online"|"offline","timestamp":..}`), `<prefix>/daemon/status` (retained
//! online on connect, offline on clean shutdown and as the last will), and, when enabled,
//! `<prefix>/<camera>/score` (QoS 0, rate-limited, dropped while disconnected).
//!
//! Packet ids: rumqttc handles requests in order and reports `Outgoing::Publish(pkid)` for each,
//! so a FIFO of what this thread published maps each pkid to its outbox entry; `PubAck(pkid)`
//! then removes exactly that entry. Sessions are clean: on any connection error both maps are
//! dropped and, after the next CONNACK, everything still in the outbox is published again
//! from the oldest (duplicates possible, loss not). Publishing happens only while connected,
//! so no request can straddle two sessions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use rumqttc::{
    Client, ConnectReturnCode, Connection, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, RecvTimeoutError,
    TlsConfiguration, Transport,
};

use crate::alert::AlertEvent;
use crate::config::{Backoff, MqttConfig};
use crate::telemetry::SinkMetrics;

use super::{unix_now, Durable, Outbox, Sink, SinkError};

/// Most alert publishes awaiting PUBACK at once.
const WINDOW: usize = 16;
/// Status and score commands waiting for the thread; beyond this they are dropped.
const COMMANDS: usize = 256;

enum Command {
    Status { camera: String, online: bool },
    Score { camera: String, time_s: f64, score: f32 },
}

/// Publishes events to an MQTT broker, durably.
pub struct MqttSink {
    durable: Arc<Durable>,
    commands: Sender<Command>,
    shutdown: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Replaces characters that are not safe in a topic level (a camera id is already safe; a
/// replayed file name may not be).
pub fn topic_level(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

fn status_payload(online: bool) -> Vec<u8> {
    let status = if online { "online" } else { "offline" };
    serde_json::json!({ "status": status, "timestamp": unix_now() }).to_string().into_bytes()
}

impl MqttSink {
    /// Connects (in the background, retrying with backoff) and starts delivering `outbox`.
    pub fn start(cfg: &MqttConfig, outbox: Outbox, metrics: Option<Arc<SinkMetrics>>) -> Result<MqttSink, SinkError> {
        let setup = |reason: String| SinkError::Setup { sink: "mqtt", reason };
        let mut opts = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
        opts.set_keep_alive(cfg.keep_alive);
        opts.set_clean_session(true);
        opts.set_inflight((WINDOW + 16) as u16);
        let prefix = cfg.topic_prefix.clone();
        opts.set_last_will(LastWill::new(
            format!("{prefix}/daemon/status"),
            status_payload(false),
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(user) = &cfg.username {
            let pass = cfg.password.as_ref().map(|p| p.expose().to_string());
            opts.set_credentials(user.clone(), pass.unwrap_or_default());
        }
        if let Some(tls) = &cfg.tls {
            // Only the ring provider is compiled in; make it the process default explicitly.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let read =
                |p: &std::path::Path| std::fs::read(p).map_err(|e| setup(format!("reading {}: {e}", p.display())));
            let ca = read(&tls.ca_file)?;
            let client_auth = match (&tls.client_cert, &tls.client_key) {
                (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                _ => None,
            };
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Simple { ca, alpn: None, client_auth }));
        }
        let (client, connection) = Client::new(opts, 64);
        let (durable, wake) = Durable::new(outbox);
        let (commands, commands_rx) = crossbeam_channel::bounded(COMMANDS);
        let (shutdown, shutdown_rx) = crossbeam_channel::bounded(0);
        let worker = Worker {
            client,
            connection,
            prefix,
            reconnect: cfg.reconnect,
            score_interval: cfg.scores.enabled.then(|| Duration::from_secs_f64(1.0 / cfg.scores.max_rate_hz)),
            durable: Arc::clone(&durable),
            metrics,
            connected: false,
            tags: VecDeque::new(),
            inflight: HashMap::new(),
            last_sent: None,
            statuses: BTreeMap::new(),
            last_score: HashMap::new(),
            host: format!("{}:{}", cfg.host, cfg.port),
        };
        let thread = std::thread::Builder::new()
            .name("sink-mqtt".into())
            .spawn(move || worker.run(&wake, &commands_rx, &shutdown_rx))
            .map_err(|e| setup(format!("starting thread: {e}")))?;
        Ok(MqttSink { durable, commands, shutdown: Some(shutdown), thread: Some(thread) })
    }
}

impl Sink for MqttSink {
    fn name(&self) -> &'static str {
        "mqtt"
    }
    fn send(&mut self, ev: &AlertEvent) -> Result<(), SinkError> {
        self.durable.push(ev)
    }
    fn flush(&mut self, timeout: Duration) -> Result<(), SinkError> {
        self.durable.flush("mqtt", timeout)
    }
    fn depth(&self) -> usize {
        self.durable.depth()
    }
    fn camera_status(&mut self, camera: &str, online: bool) {
        let _ = self.commands.try_send(Command::Status { camera: camera.to_string(), online });
    }
    fn score(&mut self, camera: &str, time_s: f64, score: f32) {
        let _ = self.commands.try_send(Command::Score { camera: camera.to_string(), time_s, score });
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!(sink = "mqtt", "delivery thread panicked");
            }
        }
    }
}

struct Worker {
    client: Client,
    connection: Connection,
    prefix: String,
    reconnect: Backoff,
    score_interval: Option<Duration>,
    durable: Arc<Durable>,
    metrics: Option<Arc<SinkMetrics>>,
    connected: bool,
    /// What each publish request handed to rumqttc was, in order: `Some(seq)` for an outbox
    /// entry, `None` for status/score messages.
    tags: VecDeque<Option<u64>>,
    /// pkid -> outbox seq, for publishes awaiting PUBACK.
    inflight: HashMap<u16, u64>,
    /// Newest outbox seq published in this session.
    last_sent: Option<u64>,
    /// Last known status per camera, republished (retained) on every connect.
    statuses: BTreeMap<String, bool>,
    last_score: HashMap<String, Instant>,
    host: String,
}

impl Worker {
    fn run(mut self, wake: &Receiver<()>, commands: &Receiver<Command>, shutdown: &Receiver<()>) {
        let mut attempt = 0u32;
        loop {
            if matches!(shutdown.try_recv(), Err(TryRecvError::Disconnected)) {
                self.goodbye();
                return;
            }
            while let Ok(cmd) = commands.try_recv() {
                self.command(cmd);
            }
            let _ = wake.try_recv();
            if self.connected {
                self.publish_pending();
            }
            let busy = !self.tags.is_empty() || !self.inflight.is_empty();
            let wait = if busy { 5 } else { 50 };
            match self.connection.recv_timeout(Duration::from_millis(wait)) {
                Ok(Ok(ev)) => {
                    if self.event(ev) {
                        if attempt > 0 {
                            tracing::info!(sink = "mqtt", broker = %self.host, "connected to broker again");
                        }
                        attempt = 0;
                    }
                }
                Ok(Err(e)) => {
                    self.disconnected();
                    if let Some(m) = &self.metrics {
                        m.failures.fetch_add(1, Ordering::Relaxed);
                    }
                    if attempt == 0 {
                        tracing::warn!(sink = "mqtt", broker = %self.host, error = %e, "broker connection lost; retrying with backoff");
                    } else {
                        tracing::debug!(sink = "mqtt", attempt, error = %e, "broker still unreachable");
                    }
                    let delay = self.reconnect.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    match shutdown.recv_timeout(delay) {
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Handles one event; true on a successful CONNACK.
    fn event(&mut self, ev: Event) -> bool {
        match ev {
            Event::Incoming(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => {
                self.disconnected();
                self.connected = true;
                let topic = format!("{}/daemon/status", self.prefix);
                self.publish(topic, QoS::AtLeastOnce, true, status_payload(true), None);
                let statuses: Vec<(String, bool)> = self.statuses.iter().map(|(c, s)| (c.clone(), *s)).collect();
                for (camera, online) in statuses {
                    self.publish_status(&camera, online);
                }
                return true;
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(seq) = self.inflight.remove(&ack.pkid) {
                    if let Err(e) = self.durable.outbox().ack(seq) {
                        tracing::error!(sink = "mqtt", error = %e, "cannot remove a delivered event; it will be sent again");
                    }
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Some(seq)) = self.tags.pop_front() {
                    self.inflight.insert(pkid, seq);
                }
            }
            _ => {}
        }
        false
    }

    fn disconnected(&mut self) {
        self.connected = false;
        self.tags.clear();
        self.inflight.clear();
        self.last_sent = None;
    }

    fn publish(&mut self, topic: String, qos: QoS, retain: bool, payload: Vec<u8>, tag: Option<u64>) -> bool {
        match self.client.try_publish(topic, qos, retain, payload) {
            Ok(()) => {
                self.tags.push_back(tag);
                true
            }
            Err(e) => {
                tracing::debug!(sink = "mqtt", error = %e, "publish request not queued");
                false
            }
        }
    }

    fn publish_status(&mut self, camera: &str, online: bool) {
        let topic = format!("{}/{}/status", self.prefix, topic_level(camera));
        self.publish(topic, QoS::AtLeastOnce, true, status_payload(online), None);
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Status { camera, online } => {
                self.statuses.insert(camera.clone(), online);
                if self.connected {
                    self.publish_status(&camera, online);
                }
            }
            Command::Score { camera, time_s, score } => {
                let Some(every) = self.score_interval else {
                    return;
                };
                if !self.connected {
                    return;
                }
                let now = Instant::now();
                if self.last_score.get(&camera).is_some_and(|t| now.duration_since(*t) < every) {
                    return;
                }
                self.last_score.insert(camera.clone(), now);
                let topic = format!("{}/{}/score", self.prefix, topic_level(&camera));
                let payload =
                    serde_json::json!({ "camera": camera, "time_s": time_s, "score": score }).to_string().into_bytes();
                self.publish(topic, QoS::AtMostOnce, false, payload, None);
            }
        }
    }

    /// Publishes outbox entries after `last_sent`, keeping at most `WINDOW` awaiting PUBACK.
    fn publish_pending(&mut self) {
        loop {
            let outstanding = self.inflight.len() + self.tags.iter().filter(|t| t.is_some()).count();
            if outstanding >= WINDOW {
                return;
            }
            let (entry, body) = {
                let ob = self.durable.outbox();
                let Some(entry) = ob.pending().find(|e| self.last_sent.is_none_or(|s| e.seq > s)).cloned() else {
                    return;
                };
                let body = ob.read(&entry);
                (entry, body)
            };
            let body = match body {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(sink = "mqtt", error = %e, "dropping an unreadable outbox entry");
                    let _ = self.durable.outbox().ack(entry.seq);
                    continue;
                }
            };
            #[derive(serde::Deserialize)]
            struct Head {
                source: String,
            }
            let camera = match serde_json::from_slice::<Head>(&body) {
                Ok(h) => topic_level(&h.source),
                Err(e) => {
                    tracing::error!(sink = "mqtt", seq = entry.seq, error = %e, "dropping an outbox entry that is not an alert event");
                    let _ = self.durable.outbox().ack(entry.seq);
                    continue;
                }
            };
            let topic = format!("{}/{}/alert", self.prefix, camera);
            if !self.publish(topic, QoS::AtLeastOnce, false, body, Some(entry.seq)) {
                return;
            }
            self.last_sent = Some(entry.seq);
        }
    }

    /// Clean shutdown: offline statuses, then DISCONNECT (so the will is not sent).
    fn goodbye(&mut self) {
        if !self.connected {
            return;
        }
        let cameras: Vec<String> = self.statuses.keys().cloned().collect();
        for camera in cameras {
            self.publish_status(&camera, false);
        }
        let topic = format!("{}/daemon/status", self.prefix);
        self.publish(topic, QoS::AtLeastOnce, true, status_payload(false), None);
        let _ = self.client.try_disconnect();
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match self.connection.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) => break,
                Err(RecvTimeoutError::Disconnected) => break,
                _ => {}
            }
        }
    }
}
