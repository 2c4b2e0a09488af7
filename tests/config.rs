//! The shipped example config parses; bad configurations are rejected with the file, the key
//! and the reason in the message; secrets never reach Debug output.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use vigil::config::{Config, Pace, Source};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/vigil.example.toml");

const MIN: &str = r#"
[[cameras]]
id = "cam1"
source = "rtsp://cam.local/stream"
"#;

#[test]
fn example_config_parses() {
    let cfg = Config::load(EXAMPLE).unwrap();
    assert_eq!(cfg.cameras.len(), 2);
    let c = &cfg.cameras[0];
    assert_eq!(c.id, "front-door");
    assert_eq!(c.effective_alert.on, 0.995);
    assert_eq!(c.effective_alert.off, 0.95);
    assert_eq!(c.effective_alert.max_per_hour, 10);
    assert_eq!(cfg.cameras[1].pace, Pace::Fast);
    assert!(matches!(cfg.cameras[1].source, Source::File(_)));
    assert_eq!(cfg.recording.retention.max_age, Duration::from_secs(7 * 86400));
    assert_eq!(cfg.recording.retention.max_total_size, 2_000_000_000);
    assert_eq!(cfg.http.listen.port(), 9700);
    let dbg = format!("{cfg:?}");
    assert!(!dbg.contains("change-me"), "webhook header secret in Debug: {dbg}");
}

#[test]
fn defaults_apply() {
    let cfg = Config::from_str(MIN, "min.toml").unwrap();
    let c = &cfg.cameras[0];
    assert!(c.enabled);
    assert_eq!(c.stall_timeout, Duration::from_secs(5));
    assert_eq!(c.reconnect.initial, Duration::from_secs(1));
    assert_eq!(c.reconnect.max, Duration::from_secs(30));
    assert_eq!(c.effective_alert.max_per_hour, 20);
    assert_eq!(cfg.workers.count, 1);
    assert_eq!(cfg.workers.max_batch, 8);
    assert_eq!(cfg.workers.max_wait, Duration::from_millis(20));
    assert_eq!(cfg.model, Path::new("models/default"));
    assert_eq!(cfg.sinks.outbox_dir, Path::new("/var/lib/vigil/outbox"));
    assert_eq!(cfg.recording.pre_roll, Duration::from_secs(5));
    assert!(cfg.recording.snapshot);
    assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:9700");
}

#[test]
fn usb_sources_and_integer_index() {
    let text = r#"
[[cameras]]
id = "a"
source = "usb:2"
[[cameras]]
id = "b"
source = 0
"#;
    let cfg = Config::from_str(text, "usb.toml").unwrap();
    assert_eq!(cfg.cameras[0].source, Source::Usb(2));
    assert_eq!(cfg.cameras[1].source, Source::Usb(0));
}

#[test]
fn secrets_are_redacted_and_resolved() {
    std::env::set_var("VIGIL_TEST_CAM_PASS", "s3cr3t-cam");
    std::env::set_var("VIGIL_TEST_MQTT_PASS", "s3cr3t-mqtt");
    let text = r#"
[[cameras]]
id = "a"
source = "rtsp://admin@cam.local:554/live"
password_env = "VIGIL_TEST_CAM_PASS"
[[cameras]]
id = "b"
source = "rtsp://user:inline-pw@cam2.local/live"
[sinks.mqtt]
host = "localhost"
username = "vigil"
password_env = "VIGIL_TEST_MQTT_PASS"
"#;
    let cfg = Config::from_str(text, "secrets.toml").unwrap();
    let Source::Url(u) = &cfg.cameras[0].source else { panic!("not a URL") };
    assert_eq!(u.expose(), "rtsp://admin:s3cr3t-cam@cam.local:554/live");
    assert_eq!(cfg.cameras[0].source.redacted(), "rtsp://admin:***@cam.local:554/live");
    assert_eq!(cfg.cameras[1].source.to_string(), "rtsp://user:***@cam2.local/live");
    let mqtt = cfg.sinks.mqtt.as_ref().unwrap();
    assert_eq!(mqtt.password.as_ref().unwrap().expose(), "s3cr3t-mqtt");
    let dbg = format!("{cfg:?}");
    for s in ["s3cr3t-cam", "s3cr3t-mqtt", "inline-pw"] {
        assert!(!dbg.contains(s), "{s} leaked into Debug: {dbg}");
    }
}

/// Each bad config: (name, extra TOML or full replacement, key expected, reason fragment).
#[test]
fn bad_configs_are_rejected_with_file_key_and_reason() {
    let cam = |extra: &str| format!("[[cameras]]\nid = \"cam1\"\nsource = \"rtsp://cam.local/s\"\n{extra}\n");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("no cameras", "model = \"m\"\n".into(), "cameras", "at least one"),
        ("empty id", "[[cameras]]\nid = \"\"\nsource = \"a.mp4\"\n".into(), "cameras[0].id", "must not be empty"),
        (
            "bad id chars",
            format!("{}[[cameras]]\nid = \"cam/2\"\nsource = \"a.mp4\"\n", cam("")),
            "cameras[1].id",
            "only A-Z",
        ),
        (
            "duplicate id",
            format!(
                "{}{}[[cameras]]\nid = \"cam1\"\nsource = \"b.mp4\"\n",
                cam(""),
                "[[cameras]]\nid = \"cam2\"\nsource = \"a.mp4\"\n"
            ),
            "cameras[2].id",
            "duplicate camera id 'cam1'",
        ),
        (
            "bad url scheme",
            "[[cameras]]\nid = \"c\"\nsource = \"ftp://x/y\"\n".into(),
            "cameras[0].source",
            "scheme 'ftp'",
        ),
        ("url without host", "[[cameras]]\nid = \"c\"\nsource = \"rtsp://\"\n".into(), "cameras[0].source", "URL"),
        ("loop on a stream", cam("loop = true"), "cameras[0].loop", "only file sources"),
        (
            "off above on after merge",
            format!("{}[alert]\non = 0.8\n", cam("alert = { off = 0.9 }")),
            "cameras[0].alert.off",
            "after merging",
        ),
        ("global off above on", format!("{}[alert]\non = 0.5\noff = 0.6\n", cam("")), "alert.off", "must be in [0, on"),
        ("zero workers", format!("{}[workers]\ncount = 0\n", cam("")), "workers.count", "at least 1"),
        (
            "pre_roll too long",
            format!("{}[recording]\npre_roll = \"2m\"\n", cam("")),
            "recording.pre_roll",
            "longer than 60s",
        ),
        (
            "reconnect max < initial",
            cam("reconnect = { initial = \"10s\", max = \"1s\" }"),
            "cameras[0].reconnect.max",
            "smaller than initial",
        ),
        (
            "mask out of range",
            cam("mask = [[[0.0, 0.0], [1.5, 0.0], [0.0, 1.0]]]"),
            "cameras[0].mask[0]",
            "outside the normalised",
        ),
        ("mask too few points", cam("mask = [[[0.0, 0.0], [1.0, 0.0]]]"), "cameras[0].mask[0]", "at least 3 points"),
        (
            "empty schedule days",
            cam("schedule = [{ days = [], start = \"08:00\", end = \"18:00\" }]"),
            "cameras[0].schedule[0].days",
            "at least one day",
        ),
        (
            "scorer lookahead",
            format!("{}[scorer]\nwindow = 4\nlookahead = 4\n", cam("")),
            "scorer.lookahead",
            "smaller than window",
        ),
        ("mqtt qos 0", format!("{}[sinks.mqtt]\nhost = \"h\"\nqos = 0\n", cam("")), "sinks.mqtt.qos", "must be 1"),
        (
            "mqtt wildcard prefix",
            format!("{}[sinks.mqtt]\nhost = \"h\"\ntopic_prefix = \"a/#\"\n", cam("")),
            "sinks.mqtt.topic_prefix",
            "wildcards",
        ),
        (
            "mqtt two passwords",
            format!(
                "{}[sinks.mqtt]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\npassword_file = \"/x\"\n",
                cam("")
            ),
            "sinks.mqtt.password",
            "at most one",
        ),
        (
            "mqtt missing env",
            format!(
                "{}[sinks.mqtt]\nhost = \"h\"\nusername = \"u\"\npassword_env = \"VIGIL_TEST_SURELY_UNSET_VAR\"\n",
                cam("")
            ),
            "sinks.mqtt.password_env",
            "VIGIL_TEST_SURELY_UNSET_VAR is not set",
        ),
        (
            "webhook bad url",
            format!("{}[sinks.webhook]\nurl = \"not a url\"\n", cam("")),
            "sinks.webhook.url",
            "relative URL",
        ),
        (
            "webhook scheme",
            format!("{}[sinks.webhook]\nurl = \"ftp://h/x\"\n", cam("")),
            "sinks.webhook.url",
            "http or https",
        ),
        (
            "zero retention size",
            format!("{}[recording.retention]\nmax_total_size = \"0MB\"\n", cam("")),
            "recording.retention.max_total_size",
            "greater than 0",
        ),
    ];
    for (name, text, key, reason) in cases {
        let err = Config::from_str(&text, "/etc/vigil/bad.toml").expect_err(name).to_string();
        assert!(err.contains("/etc/vigil/bad.toml"), "{name}: no file in: {err}");
        assert!(err.contains(&format!(": {key}: ")), "{name}: no key {key} in: {err}");
        assert!(err.contains(reason), "{name}: no reason '{reason}' in: {err}");
    }
}

/// Syntax, type and unknown-key errors come from toml with the line and key.
#[test]
fn toml_errors_keep_line_and_key() {
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("unknown key", format!("{MIN}fps = 3\n"), &["line 5", "unknown field `fps`"]),
        ("unknown nested key", format!("{MIN}[workers]\nthreads = 2\n"), &["line 6", "unknown field `threads`"]),
        ("bad duration", format!("{MIN}stall_timeout = \"5 parsecs\"\n"), &["line 5", "stall_timeout", "duration"]),
        (
            "bad size",
            format!("{MIN}[recording.retention]\nmax_total_size = \"2XB\"\n"),
            &["line 6", "max_total_size", "unknown size unit"],
        ),
        ("bad pace", format!("{MIN}pace = \"slow\"\n"), &["line 5", "pace", "unknown variant `slow`"]),
        ("bad time", format!("{MIN}schedule = [{{ days = [\"mon\"], start = \"25:00\" }}]\n"), &["line 5", "HH:MM"]),
        ("bad day", format!("{MIN}schedule = [{{ days = [\"monday\"] }}]\n"), &["line 5", "unknown variant `monday`"]),
        ("bad listen", format!("{MIN}[http]\nlisten = \"localhost\"\n"), &["line 6", "listen"]),
        ("syntax", "[[cameras]\nid = 1\n".into(), &["line 1"]),
    ];
    for (name, text, frags) in cases {
        let err = Config::from_str(&text, "bad.toml").expect_err(name).to_string();
        assert!(err.starts_with("config bad.toml: "), "{name}: {err}");
        for f in frags {
            assert!(err.contains(f), "{name}: no '{f}' in: {err}");
        }
    }
}

#[test]
fn load_names_a_missing_file() {
    let err = Config::load("/nonexistent/vigil.toml").unwrap_err().to_string();
    assert!(err.contains("/nonexistent/vigil.toml"), "{err}");
}

#[test]
fn alert_keys_left_out_take_the_models_thresholds() {
    use vigil::alert::AlertPolicy;
    let text = format!(
        "{MIN}alert = {{ on = 0.95 }}\n[[cameras]]\nid = \"cam2\"\nsource = \"x.mp4\"\n[alert]\nhold_s = 3.0\n"
    );
    let mut cfg = Config::from_str(&text, "t.toml").unwrap();
    let model = AlertPolicy { on: 0.9, off: 0.7, min_duration_s: 0.5, hold_s: 1.0, cooldown_s: 4.0 };
    cfg.apply_model_alert(model, Path::new("t.toml")).unwrap();
    let (a, b) = (&cfg.cameras[0].effective_alert, &cfg.cameras[1].effective_alert);
    // cam1: its own on; off and durations from the model; hold from [alert].
    assert_eq!((a.on, a.off, a.min_duration_s, a.hold_s, a.cooldown_s, a.max_per_hour), (0.95, 0.7, 0.5, 3.0, 4.0, 20));
    assert_eq!((b.on, b.off, b.hold_s), (0.9, 0.7, 3.0));
    // A camera `off` above the model's `on` is caught once the model is known, naming the key.
    let text = format!("{MIN}alert = {{ off = 0.8 }}\n");
    let mut cfg = Config::from_str(&text, "t.toml").unwrap();
    let low = AlertPolicy { on: 0.5, off: 0.3, ..AlertPolicy::default() };
    let err = cfg.apply_model_alert(low, Path::new("t.toml")).unwrap_err().to_string();
    assert!(err.contains("t.toml") && err.contains("cameras[0].alert.off") && err.contains("model's"), "{err}");
}
