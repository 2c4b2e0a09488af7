//! `vigil run` end to end with real parts: the real binary, the real ONNX Runtime and extractor,
//! a real mosquitto broker (stopped and restarted), a real RTSP camera (GStreamer's RTSP server,
//! killed and restarted), real video files, SIGTERM.
//!
//! The camera clip is vtest.avi with an injected event: 12 s normal, 6 s in which the scene plays
//! at 4x speed, 10 s normal (10 fps, H.264). The model is the shipped extractor with an RTFM
//! network whose weights are set (not trained) to a linear probe: the temporal block passes its
//! input through (conv_5 weights zero, so the residual carries the features) and the head scores
//! the projection of a snippet's features on the difference between the mean event and mean
//! normal features of this clip, computed here from `vigil features`. Its scores are near 0 on
//! the normal parts and near 1 on the event whatever the extractor, so these tests exercise the
//! daemon's machinery (capture, pool, scorer, alerts, sinks, clips, signals), not model quality.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use common::mqtt::{free_port, summary, wait_until, Broker, Msg, Subscriber};
use common::{p, root, vigil, vtest};
use opencv::prelude::*;
use vigil::alert::{AlertEvent, EventKind};
use vigil::model::ModelDir;
use vigil::rtfm::Rtfm;

/// The injected event, seconds of the clip.
const EVENT_S: (f64, f64) = (12.0, 18.0);
const CLIP_FRAMES: usize = 280;

struct Fixture {
    clip: PathBuf,
    model: PathBuf,
}

/// The clip and the probe model, made once per test run under Cargo's target tmp dir.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("daemon-fixture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let clip = dir.join("event.mp4");
        make_clip(&clip);
        let model = dir.join("probe-model");
        make_probe_model(&clip, &model, &dir.join("feats"));
        Fixture { clip, model }
    })
}

fn make_clip(out: &Path) {
    let filter = "[0:v]trim=0:12,setpts=PTS-STARTPTS[a];\
                  [0:v]trim=12:36,setpts=(PTS-STARTPTS)/4,fps=10[b];\
                  [0:v]trim=36:46,setpts=PTS-STARTPTS[c];\
                  [a][b][c]concat=n=3:v=1:a=0,fps=10[v]";
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i", vtest(), "-filter_complex", filter, "-map", "[v]"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-bf", "0", "-pix_fmt", "yuv420p"])
        .arg(out)
        .status()
        .expect("ffmpeg (Debian package ffmpeg; scripts/setup.sh installs it)");
    assert!(st.success(), "ffmpeg failed to make the event clip");
}

/// Writes a model directory: the shipped extractor and manifest, and a linear-probe RTFM.
fn make_probe_model(clip: &Path, out: &Path, feats_dir: &Path) {
    let default = ModelDir::load(&root().join("models/default")).unwrap();
    let o = vigil(&["features", p(clip), "--out", p(feats_dir)]);
    assert!(o.status.success(), "vigil features: {}", common::stderr(&o));
    let feats = vigil::npy::read_features(&feats_dir.join("event.npy"), None).unwrap();
    let (t, crops, d) = (feats.shape()[0], feats.shape()[1], feats.shape()[2]);
    assert_eq!(t, CLIP_FRAMES.div_ceil(16));
    let snippet = |i: usize| -> Vec<f64> {
        (0..d).map(|k| (0..crops).map(|c| f64::from(feats[[i, c, k]])).sum::<f64>() / crops as f64).collect()
    };
    // Snippets wholly inside the normal parts and the event (16 frames = 1.6 s).
    let inside = |i: usize, a: f64, b: f64| i as f64 * 1.6 >= a && (i + 1) as f64 * 1.6 <= b;
    let normal: Vec<usize> = (0..t - 1).filter(|&i| inside(i, 0.0, EVENT_S.0) || inside(i, EVENT_S.1, 28.0)).collect();
    let event: Vec<usize> = (0..t).filter(|&i| inside(i, EVENT_S.0, EVENT_S.1)).collect();
    let mean = |idx: &[usize]| -> Vec<f64> {
        let mut m = vec![0.0; d];
        for &i in idx {
            for (a, b) in m.iter_mut().zip(snippet(i)) {
                *a += b / idx.len() as f64;
            }
        }
        m
    };
    let (mn, me) = (mean(&normal), mean(&event));
    let w: Vec<f64> = me.iter().zip(&mn).map(|(e, n)| e - n).collect();
    let dot = |x: &[f64]| x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
    let mid = (dot(&mn) + dot(&me)) / 2.0;
    let half = (dot(&me) - dot(&mn)) / 2.0;
    for &i in &normal {
        assert!(dot(&snippet(i)) < mid, "normal snippet {i} is on the event side of the probe");
    }
    for &i in &event {
        assert!(dot(&snippet(i)) > mid, "event snippet {i} is on the normal side of the probe");
    }
    // h = k (w.x - mid) is +-10 at the two means; score = sigmoid(relu(relu(h)) - 4).
    let k = 10.0 / half;
    let widths = default.manifest.rtfm.widths();
    let mut tensors = Vec::new();
    for (name, shape) in widths.tensor_shapes() {
        let n: usize = shape.iter().product();
        let mut v = vec![0.0f32; n];
        if name.ends_with("running_var") {
            v.fill(1.0);
        }
        match name.as_str() {
            "fc1.weight" => {
                for (j, wj) in w.iter().enumerate() {
                    v[j] = (k * wj) as f32;
                }
            }
            "fc1.bias" => v[0] = (-k * mid) as f32,
            "fc2.weight" | "fc3.weight" => v[0] = 1.0,
            "fc3.bias" => v[0] = -4.0,
            _ => {}
        }
        tensors.push((name, Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap()));
    }
    std::fs::create_dir_all(out).unwrap();
    let net = Rtfm::from_tensors(&widths, tensors).unwrap();
    net.save(&out.join("rtfm.safetensors")).unwrap();
    let ex = default.manifest.extractor.as_ref().unwrap();
    std::fs::copy(default.dir.join(&ex.file), out.join(&ex.file)).unwrap();
    let manifest = std::fs::read_to_string(default.dir.join("model.toml")).unwrap();
    let manifest = manifest
        .lines()
        .map(|l| match l.split('=').next().map(str::trim) {
            Some("name") if !l.starts_with(' ') => "name = \"daemon-test-probe\"".to_string(),
            Some("trained") => "trained = true".to_string(),
            Some("weights") => "weights = \"rtfm.safetensors\"".to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(out.join("model.toml"), manifest).unwrap();
    // The probe really separates the clip through the real network.
    let probe = ModelDir::load(out).unwrap().load_rtfm().unwrap();
    let s = probe.score(feats.view()).unwrap().scores;
    assert!(normal.iter().all(|&i| s[i] < 0.1), "normal scores {s:?}");
    assert!(event.iter().all(|&i| s[i] > 0.6), "event scores {s:?}");
}

/// A `vigil run` child process with its config and output files in a temp dir; killed on drop.
struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    http: u16,
}

impl Daemon {
    /// `camera`: the `[[cameras]]` table body; `extra`: more TOML (sinks etc.).
    fn start(camera: &str, extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let http = free_port();
        let cfg = format!(
            r#"model = "{model}"

[[cameras]]
id = "cam1"
{camera}

[alert]
on = 0.5
off = 0.3
min_duration_s = 1.0
hold_s = 1.0
cooldown_s = 5.0
max_per_hour = 1000

[sinks]
outbox_dir = "{d}/outbox"
[sinks.jsonl]
path = "{d}/alerts.jsonl"
{extra}

[recording]
dir = "{d}/rec"
pre_roll = "2s"
post_roll = "1s"

[http]
listen = "127.0.0.1:{http}"
"#,
            model = p(&fixture().model),
            d = p(dir.path()),
        );
        std::fs::write(dir.path().join("vigil.toml"), cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("vigil.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["--log", "info", "run", "--config"])
            .arg(dir.path().join("vigil.toml"))
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon { child: Some(child), dir, http }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vigil.log")).unwrap_or_default()
    }

    fn events(&self) -> Vec<AlertEvent> {
        let text = std::fs::read_to_string(self.dir.path().join("alerts.jsonl")).unwrap_or_default();
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn wait_events(&self, what: &str, timeout: Duration, mut ok: impl FnMut(&[AlertEvent]) -> bool) -> Vec<AlertEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let evs = self.events();
            if ok(&evs) {
                return evs;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; events {evs:#?}\nlog:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(Instant::now() < deadline, "vigil did not exit within {timeout:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET `path` from the daemon's HTTP endpoint: (status code, body).
    fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let code = out.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (code, body)
    }

    fn wait_ready(&self) {
        wait_until("/readyz to answer 200", Duration::from_secs(60), || {
            TcpStream::connect(("127.0.0.1", self.http)).is_ok() && self.get("/readyz").0 == 200
        });
    }

    /// One sample of a metric with `camera="cam1"`.
    fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find(|l| l.starts_with(&format!("{name}{{camera=\"cam1\"")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} for cam1 in /metrics:\n{body}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn mqtt_table(port: u16, client: &str) -> String {
    format!(
        "[sinks.mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"{client}\"\nkeep_alive = \"5s\"\n\
         reconnect = {{ initial = \"200ms\", max = \"1s\" }}\n"
    )
}

fn starts(evs: &[AlertEvent]) -> Vec<&AlertEvent> {
    evs.iter().filter(|e| e.event == EventKind::Start).collect()
}

/// (id, event) of every alert message on `vigil/cam1/alert`, first occurrences in arrival order
/// (delivery is at least once: a consumer drops repeats by this pair).
fn mqtt_alerts(msgs: &[Msg]) -> Vec<(String, EventKind)> {
    let mut out = Vec::new();
    for m in msgs.iter().filter(|m| m.topic == "vigil/cam1/alert") {
        let ev: AlertEvent = serde_json::from_slice(&m.payload).unwrap();
        if !out.contains(&(ev.id.clone(), ev.event)) {
            out.push((ev.id, ev.event));
        }
    }
    out
}

fn statuses(msgs: &[Msg]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.topic == "vigil/cam1/status")
        .map(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()["status"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Opens a clip with OpenCV and counts its frames.
fn clip_frames(path: &str) -> (usize, i32, i32) {
    let mut cap = opencv::videoio::VideoCapture::from_file(path, opencv::videoio::CAP_FFMPEG).unwrap();
    assert!(cap.is_opened().unwrap(), "clip {path} does not open");
    let mut m = opencv::core::Mat::default();
    let (mut n, mut w, mut h) = (0, 0, 0);
    while cap.read(&mut m).unwrap() && !m.empty() {
        (w, h) = (m.cols(), m.rows());
        n += 1;
    }
    (n, w, h)
}

#[test]
fn file_camera_alerts_on_the_event_with_a_playable_clip_and_a_snapshot() {
    let f = fixture();
    let mut d = Daemon::start(&format!("source = \"{}\"\npace = \"fast\"", p(&f.clip)), "");
    let st = d.wait_exit(Duration::from_secs(120));
    assert!(st.success(), "exit {st}; log:\n{}", d.log());
    let evs = d.events();
    let s = starts(&evs);
    assert_eq!(s.len(), 1, "one alert expected: {evs:#?}");
    let start = s[0];
    assert!(start.time_start_s >= EVENT_S.0 - 1.6 && start.time_start_s <= EVENT_S.0 + 1.6, "{start:?}");
    let end = evs.iter().find(|e| e.event == EventKind::End).unwrap();
    assert_eq!(end.id, start.id);
    assert!(end.time_end_s.unwrap() <= EVENT_S.1 + 3.2, "{end:?}");
    assert!(start.timestamp.as_ref().unwrap().ends_with('Z'));
    // Clip: from 2 s before the start to 1 s after the end, at 10 fps, 768x576 shrunk by 2 (the
    // smallest whole factor within recording.max_width = 480).
    let clip = start.clip.as_ref().unwrap();
    assert_eq!(end.clip.as_ref(), Some(clip));
    let (n, w, h) = clip_frames(clip);
    assert_eq!((w, h), (384, 288));
    let expected = ((end.time_end_s.unwrap() + 1.0 - (start.time_start_s - 2.0)) * 10.0).round() as i64;
    assert!((n as i64 - expected).abs() <= 3, "clip has {n} frames, expected about {expected}: {evs:#?}");
    let jpg = std::fs::read(start.snapshot.as_ref().unwrap()).unwrap();
    assert_eq!(&jpg[..2], &[0xFF, 0xD8]);
    assert!(d.log().contains("file ended"), "{}", d.log());
}

#[test]
fn sigterm_during_an_alert_ends_it_flushes_mqtt_and_exits_0() {
    let f = fixture();
    let broker = Broker::start(&[]);
    let sub = Subscriber::start(broker.port, "test-sub-sigterm", None);
    let mut d = Daemon::start(
        &format!("source = \"{}\"\npace = \"realtime\"\nloop = true", p(&f.clip)),
        &mqtt_table(broker.port, "vigil-sigterm"),
    );
    d.wait_ready();
    let evs = d.wait_events("an alert start", Duration::from_secs(60), |e| !starts(e).is_empty());
    let id = starts(&evs)[0].id.clone();
    // Metrics while running: frames in, camera up, one alert, stage latencies recorded.
    assert!(d.metric("vigil_frames_in_total") > 100.0);
    assert_eq!(d.metric("vigil_camera_up"), 1.0);
    assert_eq!(d.metric("vigil_alerts_total"), 1.0);
    assert_eq!(d.metric("vigil_frames_dropped_total"), 0.0, "a 10 fps camera must not drop frames");
    let (_, body) = d.get("/metrics");
    assert!(body.contains("vigil_stage_latency_seconds_count{stage=\"score\"}"), "{body}");

    d.signal("-TERM");
    let st = d.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "exit {st}; log:\n{}", d.log());
    let evs = d.events();
    let last = evs.last().unwrap();
    assert_eq!((last.event, last.id.as_str()), (EventKind::End, id.as_str()), "{evs:#?}");
    assert_eq!(last.reason, Some(vigil::alert::EndReason::StreamEnd));
    let (n, _, _) = clip_frames(last.clip.as_ref().unwrap());
    assert!(n >= 20, "the clip holds the pre-roll and the alert so far: {n} frames");
    let mut seen = Vec::new();
    sub.collect_until(Duration::from_secs(10), &mut seen, |m| mqtt_alerts(m).contains(&(id.clone(), EventKind::End)));
    let ids: Vec<_> = mqtt_alerts(&seen).into_iter().filter(|(_, k)| *k != EventKind::Update).collect();
    assert_eq!(ids, vec![(id.clone(), EventKind::Start), (id, EventKind::End)], "{:#?}", summary(&seen));
    assert!(d.log().contains("stopping"), "{}", d.log());
}

#[test]
fn alerts_raised_while_the_broker_is_down_all_arrive_in_order() {
    let f = fixture();
    let mut broker = Broker::start(&[]);
    let sub = Subscriber::start(broker.port, "test-sub-outage", None);
    let mut d = Daemon::start(
        &format!("source = \"{}\"\npace = \"fast\"\nloop = true", p(&f.clip)),
        &mqtt_table(broker.port, "vigil-outage"),
    );
    d.wait_ready();
    let mut seen = Vec::new();
    sub.collect_until(Duration::from_secs(30), &mut seen, |m| !mqtt_alerts(m).is_empty());
    broker.stop();
    let before = d.events().len();
    // Every loop of the clip raises one alert; let two more start and end with no broker.
    d.wait_events("two alerts during the outage", Duration::from_secs(120), |e| {
        starts(&e[before.min(e.len())..]).len() >= 2 && e.last().is_some_and(|l| l.event == EventKind::End)
    });
    broker.restart();
    let during = d.events();
    let want: Vec<_> = during.iter().map(|e| (e.id.clone(), e.event)).collect();
    sub.collect_until(Duration::from_secs(60), &mut seen, |m| {
        let got = mqtt_alerts(m);
        want.iter().all(|w| got.contains(w))
    });
    d.signal("-TERM");
    let st = d.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "exit {st}; log:\n{}", d.log());
    // Everything the daemon raised (jsonl is the record) reached the broker, in the same order.
    let all: Vec<_> = d.events().iter().map(|e| (e.id.clone(), e.event)).collect();
    sub.collect_until(Duration::from_secs(30), &mut seen, |m| mqtt_alerts(m).len() >= all.len());
    assert_eq!(mqtt_alerts(&seen), all);
    assert!(starts(&d.events()).len() >= 3);
    let outbox = d.dir.path().join("outbox/mqtt");
    let left = std::fs::read_dir(&outbox).map(|r| r.count()).unwrap_or(0);
    assert_eq!(left, 0, "the outbox is empty after a clean stop");
}

/// Starts the loopback RTSP server on `port`; returns once it listens.
fn rtsp_server(clip: &Path, port: u16) -> Child {
    let script = root().join("scripts/rtsp_server.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(clip)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("/usr/bin/python3 with python3-gst-1.0 (scripts/setup.sh installs it)");
    let mut line = [0u8; 6];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut line)
        .expect("the RTSP server says ready (python3-gst-1.0 and gir1.2-gst-rtsp-server-1.0 installed?)");
    assert_eq!(&line[..5], b"ready");
    child
}

#[test]
fn rtsp_camera_killed_and_restarted_goes_offline_online_and_still_alerts() {
    let f = fixture();
    let broker = Broker::start(&[]);
    let sub = Subscriber::start(broker.port, "test-sub-rtsp", None);
    let port = free_port();
    let mut server = rtsp_server(&f.clip, port);
    let mut d = Daemon::start(
        &format!(
            "source = \"rtsp://127.0.0.1:{port}/cam\"\nstall_timeout = \"2s\"\n\
             reconnect = {{ initial = \"500ms\", max = \"2s\" }}"
        ),
        &mqtt_table(broker.port, "vigil-rtsp"),
    );
    d.wait_ready();
    let mut seen = Vec::new();
    sub.collect_until(Duration::from_secs(30), &mut seen, |m| statuses(m).last().map(String::as_str) == Some("online"));
    std::thread::sleep(Duration::from_secs(3));
    server.kill().unwrap();
    server.wait().unwrap();
    sub.collect_until(Duration::from_secs(20), &mut seen, |m| {
        statuses(m).last().map(String::as_str) == Some("offline")
    });
    assert_eq!(d.metric("vigil_camera_up"), 0.0);
    assert!(starts(&d.events()).is_empty(), "no alert from the broken stream: {:#?}", d.events());
    std::thread::sleep(Duration::from_secs(2));
    let mut server = rtsp_server(&f.clip, port);
    sub.collect_until(Duration::from_secs(30), &mut seen, |m| statuses(m).last().map(String::as_str) == Some("online"));
    // The new session plays the clip from the start: the event comes 12 s later.
    let evs = d.wait_events("an alert from the reconnected stream", Duration::from_secs(60), |e| !starts(e).is_empty());
    let id = starts(&evs)[0].id.clone();
    sub.collect_until(Duration::from_secs(10), &mut seen, |m| mqtt_alerts(m).contains(&(id.clone(), EventKind::Start)));
    assert!(d.metric("vigil_reconnects_total") >= 1.0);
    // Exported per camera (the killed session may or may not have cut a packet short).
    assert!(d.metric("vigil_packets_damaged_total") >= 0.0);
    d.signal("-INT");
    let st = d.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "exit {st}; log:\n{}", d.log());
    let _ = server.kill();
    let _ = server.wait();
    assert!(!d.log().contains("rtsp://127.0.0.1") || !d.log().contains('@'), "no credentials to leak here");
}

#[test]
fn check_config_accepts_the_example_and_names_the_key_of_each_bad_one() {
    let o = vigil(&["check-config", "config/vigil.example.toml"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("OK: 2 cameras"));
    let dir = tempfile::tempdir().unwrap();
    let cam = "[[cameras]]\nid = \"a\"\nsource = \"x.mp4\"\n";
    let cases: [(&str, String, &str); 6] = [
        ("off-above-on", format!("{cam}[alert]\non = 0.5\noff = 0.6\n"), "alert.off"),
        (
            "usb-ffmpeg",
            "[[cameras]]\nid = \"u\"\nsource = \"usb:0\"\ndecoder = \"ffmpeg\"\n".into(),
            "cameras[0].decoder: \"ffmpeg\" reads URLs and files",
        ),
        ("duplicate", format!("{cam}{cam}"), "cameras[1].id: duplicate camera id 'a'"),
        ("unknown-key", format!("{cam}colour = \"red\"\n"), "unknown field `colour`"),
        ("empty-id", "[[cameras]]\nid = \"\"\nsource = \"x.mp4\"\n".into(), "cameras[0].id: must not be empty"),
        ("no-cameras", "model = \"models/default\"\n".into(), "cameras: at least one"),
    ];
    for (name, text, want) in cases {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        for args in [vec!["check-config", p(&path)], vec!["run", "--config", p(&path)]] {
            let o = vigil(&args);
            let err = common::stderr(&o);
            assert_eq!(o.status.code(), Some(10), "{name} {args:?}: {err}");
            assert!(err.contains(p(&path)) && err.contains(want), "{name}: expected '{want}' in: {err}");
        }
    }
    let o = vigil(&["run", "--config", "/nonexistent/vigil.toml"]);
    assert_eq!(o.status.code(), Some(10));
    assert!(common::stderr(&o).contains("reading config /nonexistent/vigil.toml"));
    let path = dir.path().join("bad-model.toml");
    std::fs::write(&path, format!("model = \"{}/nope\"\n{cam}", p(dir.path()))).unwrap();
    let o = vigil(&["check-config", p(&path)]);
    assert_eq!(o.status.code(), Some(4), "{}", common::stderr(&o));
}

#[test]
fn the_hourly_cap_drops_extra_alerts_and_a_disarmed_schedule_raises_none() {
    let f = fixture();
    // Each loop of the clip raises one alert; at most two per hour get through.
    let camera = format!("source = \"{}\"\npace = \"fast\"\nloop = true\nalert = {{ max_per_hour = 2 }}", p(&f.clip));
    let mut d = Daemon::start(&camera, "");
    d.wait_ready();
    wait_until("a third alert to be suppressed", Duration::from_secs(120), || d.log().contains("suppressed"));
    assert_eq!(d.metric("vigil_alerts_suppressed_total"), 1.0);
    d.signal("-TERM");
    assert!(d.wait_exit(Duration::from_secs(30)).success(), "{}", d.log());
    let evs = d.events();
    assert_eq!(starts(&evs).len(), 2, "{evs:#?}");
    assert!(evs.iter().all(|e| starts(&evs).iter().any(|s| s.id == e.id)), "no event of a suppressed alert");

    // Armed only from two to three hours from now, every day: the event raises nothing now.
    use chrono::Timelike;
    let now = chrono::Local::now();
    let at = |h: u32| format!("{:02}:{:02}", (now.hour() + h) % 24, now.minute());
    let days = r#"["mon", "tue", "wed", "thu", "fri", "sat", "sun"]"#;
    let camera = format!(
        "source = \"{}\"\npace = \"fast\"\n[[cameras.schedule]]\ndays = {days}\nstart = \"{}\"\nend = \"{}\"",
        p(&f.clip),
        at(2),
        at(3)
    );
    let mut d = Daemon::start(&camera, "");
    assert!(d.wait_exit(Duration::from_secs(120)).success(), "{}", d.log());
    assert!(d.log().contains("file ended"));
    assert!(d.events().is_empty(), "{:#?}", d.events());
}

#[test]
fn an_http_address_in_use_is_refused_with_exit_7() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vigil.toml");
    let text = format!(
        "[[cameras]]\nid = \"a\"\nsource = \"{}\"\n[sinks]\noutbox_dir = \"{d}/outbox\"\n\
         [recording]\ndir = \"{d}/rec\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
        vtest(),
        d = p(dir.path())
    );
    std::fs::write(&cfg, text).unwrap();
    let o = vigil(&["run", "--config", p(&cfg)]);
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(7), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    drop(taken);
}
