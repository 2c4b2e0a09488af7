//! Sinks and telemetry against real servers: a `mosquitto` broker (plain, with passwords, or
//! with a TLS listener) started per test on a free loopback port (stopped and restarted
//! mid-test), a tiny_http webhook receiver that fails on purpose, and the telemetry endpoint
//! over HTTP. Every wait is bounded; child processes are killed on drop.
#![allow(clippy::unwrap_used)]

mod common;

use common::mqtt::{free_port, Broker, Msg, Subscriber, TestPki};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use vigil::alert::{AlertEvent, EventKind};
use vigil::config::{Backoff, MqttConfig, MqttScores, MqttTls, Secret, UrlString, WebhookConfig};
use vigil::sink::{MqttSink, Outbox, Sink, SinkSet, WebhookSink};
use vigil::telemetry::{Metrics, Stage, TelemetryServer};

fn event(i: u32) -> AlertEvent {
    AlertEvent {
        event: EventKind::Start,
        id: format!("alert-{i:02}"),
        source: "cam1".into(),
        snippet_start: u64::from(i),
        frame_start: u64::from(i) * 16,
        time_start_s: f64::from(i),
        snippet_end: None,
        frame_end: None,
        time_end_s: None,
        peak_score: 0.9,
        peak_snippet: u64::from(i),
        peak_frame: u64::from(i) * 16 + 8,
        reason: None,
        timestamp: None,
        clip: None,
        snapshot: None,
    }
}

/// Alert ids received on `vigil/cam1/alert`, first occurrences only (duplicates are allowed).
fn alert_ids(msgs: &[Msg]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for m in msgs.iter().filter(|m| m.topic == "vigil/cam1/alert") {
        let ev: AlertEvent = serde_json::from_slice(&m.payload).unwrap();
        if !ids.contains(&ev.id) {
            ids.push(ev.id);
        }
    }
    ids
}

fn ids(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| event(i).id).collect()
}

fn mqtt_config(port: u16, creds: Option<(&str, &str)>) -> MqttConfig {
    let text = format!("host = \"127.0.0.1\"\nport = {port}\nclient_id = \"vigil-test\"\n");
    let mut cfg: MqttConfig = toml::from_str(&text).unwrap();
    cfg.reconnect = Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(300) };
    if let Some((u, p)) = creds {
        cfg.username = Some(u.into());
        cfg.password = Some(Secret::new(p));
    }
    cfg
}

fn outbox_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn mqtt_delivers_every_alert_in_order_across_a_broker_restart() {
    let mut broker = Broker::start(&[]);
    let sub = Subscriber::start(broker.port, "test-sub-restart", None);
    let out = tempfile::tempdir().unwrap();
    let metrics = Metrics::new(["cam1"], ["mqtt"]);
    let mut ob = Outbox::open(out.path().join("mqtt"), 1000).unwrap();
    ob.set_metrics(metrics.sink("mqtt").unwrap());
    let mut sink = MqttSink::start(&mqtt_config(broker.port, None), ob, metrics.sink("mqtt")).unwrap();
    sink.camera_status("cam1", true);
    let mut seen = Vec::new();
    for i in 1..=3 {
        sink.send(&event(i)).unwrap();
    }
    sub.collect_until(Duration::from_secs(10), &mut seen, |m| alert_ids(m).len() >= 3);
    assert_eq!(alert_ids(&seen), ids(1..=3));
    sub.collect_until(Duration::from_secs(5), &mut seen, |m| {
        m.iter().any(|m| m.topic == "vigil/daemon/status") && m.iter().any(|m| m.topic == "vigil/cam1/status")
    });
    let status = seen.iter().find(|m| m.topic == "vigil/cam1/status").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.payload).unwrap();
    assert_eq!(v["status"], "online");
    assert!(v["timestamp"].as_f64().unwrap() > 1.6e9);
    sink.flush(Duration::from_secs(5)).unwrap();

    // Broker down: events wait in the outbox, on disk.
    broker.stop();
    for i in 4..=8 {
        sink.send(&event(i)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.depth(), 5);
    assert_eq!(outbox_files(&out.path().join("mqtt")).len(), 5);
    assert_eq!(metrics.sink("mqtt").unwrap().depth(), 5);

    // Broker back on the same port: all of them arrive, in order, and the outbox empties.
    broker.restart();
    sink.flush(Duration::from_secs(20)).unwrap();
    sub.collect_until(Duration::from_secs(15), &mut seen, |m| alert_ids(m).len() >= 8);
    assert_eq!(alert_ids(&seen), ids(1..=8));
    assert!(outbox_files(&out.path().join("mqtt")).is_empty());
    let m = metrics.sink("mqtt").unwrap();
    assert_eq!(m.enqueued.load(Ordering::Relaxed), 8);
    assert_eq!(m.delivered.load(Ordering::Relaxed), 8);
    assert!(m.failures.load(Ordering::Relaxed) >= 1);

    // A clean shutdown marks the daemon offline (retained).
    drop(sink);
    sub.collect_until(Duration::from_secs(5), &mut seen, |m| {
        m.iter().any(|m| m.topic == "vigil/daemon/status" && String::from_utf8_lossy(&m.payload).contains("offline"))
    });
}

#[test]
fn mqtt_with_password_delivers_a_previous_runs_outbox() {
    let broker = Broker::start(&[("vigil", "pw-vigil"), ("watcher", "pw-watcher")]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("mqtt");
    {
        // "Previous run": three events stored, one write interrupted.
        let mut ob = Outbox::open(&dir, 1000).unwrap();
        for i in 1..=3 {
            ob.push(&event(i)).unwrap();
        }
        std::fs::write(dir.join("00000000000000000004-alert-04.json.tmp"), b"{").unwrap();
    }
    let sub = Subscriber::start(broker.port, "test-sub-auth", Some(("watcher", "pw-watcher")));

    // Wrong password: nothing is delivered, nothing is lost.
    {
        let ob = Outbox::open(&dir, 1000).unwrap();
        assert_eq!(ob.depth(), 3, "the temp file is not an event");
        let mut bad = MqttSink::start(&mqtt_config(broker.port, Some(("vigil", "wrong"))), ob, None).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(bad.depth(), 3);
        assert!(bad.flush(Duration::from_millis(10)).is_err());
    }
    assert_eq!(outbox_files(&dir).len(), 3);

    let mut cfg = mqtt_config(broker.port, Some(("vigil", "pw-vigil")));
    cfg.scores = MqttScores { enabled: true, max_rate_hz: 2.0 };
    let ob = Outbox::open(&dir, 1000).unwrap();
    let mut set = SinkSet::new(vec![Box::new(MqttSink::start(&cfg, ob, None).unwrap())]);
    set.send(&event(4)).unwrap();
    let mut seen = Vec::new();
    sub.collect_until(Duration::from_secs(10), &mut seen, |m| alert_ids(m).len() >= 4);
    assert_eq!(alert_ids(&seen), ids(1..=4));
    set.flush(Duration::from_secs(5)).unwrap();
    assert!(outbox_files(&dir).is_empty());
    assert_eq!(set.depths(), vec![("mqtt", 0)]);

    // Scores: rate-limited (2 Hz), QoS 0, not retained.
    for k in 0..20 {
        set.score("cam1", f64::from(k) * 0.1, 0.5);
    }
    sub.collect_until(Duration::from_secs(5), &mut seen, |m| m.iter().any(|m| m.topic == "vigil/cam1/score"));
    std::thread::sleep(Duration::from_millis(200));
    while let Ok(m) = sub.rx.try_recv() {
        seen.push(m);
    }
    let scores: Vec<&Msg> = seen.iter().filter(|m| m.topic == "vigil/cam1/score").collect();
    assert_eq!(scores.len(), 1, "20 scores within 2 ms at 2 Hz give one message");
    assert!(!scores[0].retain);
    let v: serde_json::Value = serde_json::from_slice(&scores[0].payload).unwrap();
    assert_eq!(v["camera"], "cam1");
}

#[test]
fn mqtt_over_tls_delivers_and_refuses_a_broker_it_cannot_verify() {
    let pki = TestPki::new();
    let broker = Broker::start_tls(&pki);
    // The subscriber listens on the plain listener; vigil publishes over TLS.
    let sub = Subscriber::start(broker.port, "test-sub-tls", None);
    let tls_config = |ca: &str| {
        let mut cfg = mqtt_config(pki.port, None);
        cfg.client_id = format!("vigil-tls-{ca}");
        cfg.tls = Some(MqttTls { ca_file: pki.path(&format!("{ca}.crt")), client_cert: None, client_key: None });
        cfg
    };
    let out = tempfile::tempdir().unwrap();

    // A CA that did not sign the broker's certificate: the handshake fails, the alert waits.
    let metrics = Metrics::new(["cam1"], ["mqtt"]);
    let dir = out.path().join("untrusted");
    let mut bad =
        MqttSink::start(&tls_config("other_ca"), Outbox::open(&dir, 10).unwrap(), metrics.sink("mqtt")).unwrap();
    bad.send(&event(1)).unwrap();
    common::mqtt::wait_until("a failed TLS connection", Duration::from_secs(10), || {
        metrics.sink("mqtt").is_some_and(|m| m.failures.load(Ordering::Relaxed) >= 1)
    });
    assert_eq!(bad.depth(), 1);
    assert!(bad.flush(Duration::from_millis(10)).is_err());
    drop(bad);
    assert_eq!(outbox_files(&dir).len(), 1, "the undelivered alert stays on disk");

    // The right CA: delivered in order over TLS, the outbox empties.
    let dir = out.path().join("trusted");
    let mut sink = MqttSink::start(&tls_config("ca"), Outbox::open(&dir, 10).unwrap(), None).unwrap();
    for i in 1..=3 {
        sink.send(&event(i)).unwrap();
    }
    let mut seen = Vec::new();
    sub.collect_until(Duration::from_secs(10), &mut seen, |m| alert_ids(m).len() >= 3);
    assert_eq!(alert_ids(&seen), ids(1..=3));
    sink.flush(Duration::from_secs(5)).unwrap();
    assert!(outbox_files(&dir).is_empty());
}

/// A webhook receiver failing the first `fail` requests with 500.
struct Receiver500 {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<(u16, String, String)>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver500 {
    fn start(fail: usize) -> Receiver500 {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (s, b) = (Arc::clone(&server), Arc::clone(&bodies));
        let thread = std::thread::spawn(move || {
            for mut rq in s.incoming_requests() {
                let mut body = String::new();
                std::io::Read::read_to_string(rq.as_reader(), &mut body).unwrap();
                let id = rq
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("X-Vigil-Alert-Id"))
                    .map(|h| h.value.to_string())
                    .unwrap_or_default();
                let mut v = b.lock().unwrap();
                let code = if v.len() < fail { 500 } else { 200 };
                v.push((code, id, body));
                drop(v);
                let _ = rq.respond(tiny_http::Response::from_string("").with_status_code(code));
            }
        });
        Receiver500 { addr, bodies, server, thread: Some(thread) }
    }
}

impl Drop for Receiver500 {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn webhook_retries_with_backoff_and_delivers_in_order() {
    let rx = Receiver500::start(3);
    let out = tempfile::tempdir().unwrap();
    let cfg = WebhookConfig {
        url: UrlString::new(format!("http://{}/hook", rx.addr)),
        headers: [("Authorization".to_string(), Secret::new("Bearer t0k3n"))].into(),
        timeout: Duration::from_secs(2),
        retry: Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(100) },
    };
    assert!(!format!("{cfg:?}").contains("t0k3n"));
    let ob = Outbox::open(out.path().join("webhook"), 100).unwrap();
    let mut sink = WebhookSink::start(&cfg, ob, None).unwrap();
    for i in 1..=4 {
        sink.send(&event(i)).unwrap();
    }
    sink.flush(Duration::from_secs(10)).unwrap();
    let got = rx.bodies.lock().unwrap().clone();
    // One request at a time: three failures of the first event, then one success each.
    assert_eq!(got.len(), 7, "{got:#?}");
    assert!(got[..3].iter().all(|(c, id, _)| *c == 500 && id == "alert-01"));
    let delivered: Vec<String> = got
        .iter()
        .filter(|(c, _, _)| *c == 200)
        .map(|(_, _, body)| serde_json::from_str::<AlertEvent>(body).unwrap().id)
        .collect();
    assert_eq!(delivered, ids(1..=4));
    assert!(outbox_files(&out.path().join("webhook")).is_empty());
}

#[test]
fn webhook_keeps_events_while_the_receiver_is_down() {
    // Nothing listens on this port: every attempt is refused; events stay on disk.
    let port = free_port();
    let out = tempfile::tempdir().unwrap();
    let cfg: WebhookConfig = toml::from_str(&format!(
        "url = \"http://127.0.0.1:{port}/x\"\nretry = {{ initial = \"10ms\", max = \"50ms\" }}\n"
    ))
    .unwrap();
    let ob = Outbox::open(out.path(), 100).unwrap();
    let mut sink = WebhookSink::start(&cfg, ob, None).unwrap();
    sink.send(&event(1)).unwrap();
    sink.send(&event(2)).unwrap();
    let err = sink.flush(Duration::from_millis(300)).unwrap_err().to_string();
    assert!(err.contains("2 events still undelivered"), "{err}");
    drop(sink);
    assert_eq!(Outbox::open(out.path(), 100).unwrap().depth(), 2);
}

#[test]
fn outbox_requeues_in_order_after_reopen_and_refuses_when_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut ob = Outbox::open(dir.path(), 3).unwrap();
    let seqs: Vec<u64> = (1..=3).map(|i| ob.push(&event(i)).unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let err = ob.push(&event(4)).unwrap_err().to_string();
    assert!(err.contains("full"), "{err}");
    ob.ack(seqs[0]).unwrap();
    ob.ack(seqs[0]).unwrap(); // twice: a duplicate PUBACK is harmless
    drop(ob);
    let mut ob = Outbox::open(dir.path(), 3).unwrap();
    let pending: Vec<String> = ob.pending().map(|e| e.id.clone()).collect();
    assert_eq!(pending, ids(2..=3));
    let next = ob.push(&event(5)).unwrap();
    assert!(next > seqs[2], "sequence numbers keep growing across restarts");
    let first = ob.get(0).unwrap().clone();
    let ev: AlertEvent = serde_json::from_slice(&ob.read(&first).unwrap()).unwrap();
    assert_eq!(ev, event(2));
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(format!("http://{addr}{path}")).call().unwrap();
    let code = resp.status().as_u16();
    (code, resp.body_mut().read_to_string().unwrap())
}

#[test]
fn telemetry_serves_metrics_health_and_readiness() {
    let metrics = Metrics::new(["cam1", "cam-2"], ["mqtt", "webhook"]);
    let server = TelemetryServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&metrics)).unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0, "the bound port is reported");
    let cam = metrics.camera("cam1").unwrap();
    cam.frames_in.fetch_add(42, Ordering::Relaxed);
    cam.alerts.fetch_add(2, Ordering::Relaxed);
    cam.up.store(true, Ordering::Relaxed);
    metrics.stage(Stage::Score).observe(Duration::from_millis(120));
    metrics.sink("mqtt").unwrap().enqueued.fetch_add(3, Ordering::Relaxed);

    assert_eq!(http_get(addr, "/healthz").0, 200);
    assert_eq!(http_get(addr, "/readyz").0, 503);
    let (code, body) = http_get(addr, "/metrics");
    assert_eq!(code, 200);
    for line in [
        "vigil_frames_in_total{camera=\"cam1\"} 42",
        "vigil_frames_in_total{camera=\"cam-2\"} 0",
        "vigil_alerts_total{camera=\"cam1\"} 2",
        "vigil_camera_up{camera=\"cam1\"} 1",
        "vigil_outbox_depth{sink=\"mqtt\"} 3",
        "vigil_outbox_depth{sink=\"webhook\"} 0",
        "vigil_stage_latency_seconds_bucket{stage=\"score\",le=\"0.1\"} 0",
        "vigil_stage_latency_seconds_bucket{stage=\"score\",le=\"0.25\"} 1",
        "vigil_stage_latency_seconds_count{stage=\"score\"} 1",
        "# TYPE vigil_stage_latency_seconds histogram",
        "vigil_ready 0",
    ] {
        assert!(body.lines().any(|l| l == line), "missing line {line:?} in:\n{body}");
    }
    // Every sample line is `name{labels} value` with a numeric value.
    for l in body.lines().filter(|l| !l.starts_with('#')) {
        let v = l.rsplit(' ').next().unwrap();
        assert!(v.parse::<f64>().is_ok(), "bad sample line {l:?}");
    }
    server.set_ready();
    assert_eq!(http_get(addr, "/readyz").0, 200);
    assert_eq!(http_get(addr, "/nope").0, 404);
    let (_, body2) = http_get(addr, "/metrics");
    assert!(body2.lines().any(|l| l == "vigil_ready 1"));
    drop(server); // joins the serving thread
}
