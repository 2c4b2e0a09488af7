//! The daemon configuration (`vigil run --config FILE`): serde structs with
//! `deny_unknown_fields` and a documented default on every field, then one `validate` pass
//! that does every cross-field check, resolves secrets (env vars, files) and merges the
//! per-camera alert overrides over the global `[alert]` defaults.
//!
//! Errors name the file, the key (`cameras[2].id`) and the reason; toml's own errors (syntax,
//! types, unknown keys) already carry the line and key and are kept whole. Secrets never reach
//! `Debug`: passwords and header values are [`Secret`]s and URLs print redacted.
//! This module parses and checks only; it opens no camera, socket or file other than the config
//! itself and the secret files it names.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::alert::AlertPolicy;
use crate::scorer::ScorerConfig;

/// Longest accepted `recording.pre_roll` / `post_roll`: the pre-roll lives in memory.
pub const MAX_ROLL: Duration = Duration::from_secs(60);

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}", path = .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path}: {source}", path = .path.display())]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("config {path}: {key}: {reason}", path = .path.display())]
    Invalid { path: PathBuf, key: String, reason: String },
}

pub use alert::*;
pub use values::*;

mod alert;
mod values;

/// One `[[cameras]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Unique, non-empty, `[A-Za-z0-9_-]` (it goes into MQTT topics and metric labels). Required.
    pub id: String,
    /// RTSP/HTTP URL, `"usb:N"` or an integer index, or a file path. Required.
    pub source: Source,
    /// Password for a URL source, read from this environment variable (the URL keeps the user).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Password for a URL source, read from this file (trailing newline stripped).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Whether the camera runs (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// File sources only: "realtime" (default) or "fast".
    #[serde(default)]
    pub pace: Pace,
    /// File sources only: start over at the end (default false).
    #[serde(default, rename = "loop")]
    pub loop_: bool,
    /// Polygons in normalised 0..1 `[x, y]` coordinates blanked before features (default none).
    #[serde(default)]
    pub mask: Vec<Vec<[f32; 2]>>,
    /// Arming windows; empty = always armed (default).
    #[serde(default)]
    pub schedule: Vec<ScheduleWindow>,
    /// "auto" (default), "ffmpeg" or "opencv": see [`Decoder`].
    #[serde(default)]
    pub decoder: Decoder,
    /// No frame for this long counts as a stall and triggers a reconnect (default "5s").
    #[serde(default = "secs5", with = "duration")]
    pub stall_timeout: Duration,
    /// Reconnect backoff (default initial "1s", max "30s").
    #[serde(default)]
    pub reconnect: Backoff,
    /// Overrides of the global `[alert]` settings (default none).
    #[serde(default)]
    pub alert: AlertOverrides,
    /// The effective alert settings (global `[alert]` merged with `alert`), set by validation.
    #[serde(skip)]
    pub effective_alert: AlertSettings,
}

impl CameraConfig {
    /// Whether this camera is read by the FFmpeg YUV decoder: its `decoder` key, and whether the
    /// model is grey (only a grey model can read I420 frames). An explicit "ffmpeg" with a
    /// colour model is an error naming the camera.
    pub fn reads_yuv(&self, grey_model: bool) -> Result<bool, String> {
        let usb = matches!(self.source, Source::Usb(_));
        match self.decoder {
            Decoder::Opencv => Ok(false),
            Decoder::Auto => Ok(grey_model && !usb),
            Decoder::Ffmpeg if grey_model && !usb => Ok(true),
            Decoder::Ffmpeg => Err(format!(
                "camera {}: \"ffmpeg\" gives YUV frames, which only a grey model reads (this model's \
                 [preprocess] color is not \"gray\"); use \"auto\" or \"opencv\"",
                self.id
            )),
        }
    }
}

fn yes() -> bool {
    true
}

/// `[workers]`: the feature extraction pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Feature workers, one ONNX Runtime session each (default 1).
    pub count: usize,
    /// Most clips batched into one inference (default 8).
    pub max_batch: usize,
    /// Longest wait to fill a batch (default "20ms").
    #[serde(with = "duration")]
    pub max_wait: Duration,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig { count: 1, max_batch: 8, max_wait: Duration::from_millis(20) }
    }
}

/// `[sinks.jsonl]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    /// "-" for stdout (default) or a file appended to.
    #[serde(default = "dash")]
    pub path: PathBuf,
}

fn dash() -> PathBuf {
    PathBuf::from("-")
}

/// `[sinks.mqtt.tls]`: TLS through rustls.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTls {
    /// PEM CA certificate(s) the broker's certificate must chain to. Required.
    pub ca_file: PathBuf,
    /// PEM client certificate for mutual TLS (default none; needs `client_key`).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM client private key (default none; needs `client_cert`).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

/// `[sinks.mqtt.scores]`: the optional rate-limited score stream.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttScores {
    /// Publish `<prefix>/<camera>/score` (default false).
    pub enabled: bool,
    /// Most score messages per camera per second, QoS 0 (default 1.0).
    pub max_rate_hz: f64,
}

impl Default for MqttScores {
    fn default() -> Self {
        MqttScores { enabled: false, max_rate_hz: 1.0 }
    }
}

/// `[sinks.mqtt]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address. Required.
    pub host: String,
    /// Broker port (default 1883).
    #[serde(default = "port_1883")]
    pub port: u16,
    /// MQTT client id (default "vigil").
    #[serde(default = "vigil")]
    pub client_id: String,
    /// User name (default none).
    #[serde(default)]
    pub username: Option<String>,
    /// Password inline (default none; prefer `password_env` or `password_file`). After
    /// validation it holds the resolved password whichever way it was given.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Read the password from this environment variable.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Read the password from this file (trailing newline stripped).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// TLS settings (default none: plain TCP).
    #[serde(default)]
    pub tls: Option<MqttTls>,
    /// Topic prefix (default "vigil"); no wildcards, no leading or trailing '/'.
    #[serde(default = "vigil")]
    pub topic_prefix: String,
    /// QoS of alert and status messages (default 1; only 1: the outbox drops an event on its
    /// PUBACK).
    #[serde(default = "qos1")]
    pub qos: u8,
    /// MQTT keep-alive (default "30s", at least "5s").
    #[serde(default = "secs30", with = "duration")]
    pub keep_alive: Duration,
    /// Reconnect backoff while the broker is unreachable (default "1s" .. "30s").
    #[serde(default)]
    pub reconnect: Backoff,
    /// The score stream (default off).
    #[serde(default)]
    pub scores: MqttScores,
}

fn port_1883() -> u16 {
    1883
}
fn vigil() -> String {
    "vigil".into()
}
fn qos1() -> u8 {
    1
}

/// `[sinks.webhook]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` endpoint receiving one POST of JSON per event. Required.
    pub url: UrlString,
    /// Extra headers (default none); values are secrets (they often hold tokens).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Timeout of one request (default "5s").
    #[serde(default = "secs5", with = "duration")]
    pub timeout: Duration,
    /// Retry backoff (default "1s" .. "30s").
    #[serde(default)]
    pub retry: Backoff,
}

/// `[sinks]`: where alerts go. Every sink but jsonl goes through an on-disk outbox.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    /// JSON lines (default: none).
    #[serde(default)]
    pub jsonl: Option<JsonlConfig>,
    /// MQTT (default: none).
    #[serde(default)]
    pub mqtt: Option<MqttConfig>,
    /// Webhook (default: none).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// Outbox root; each sink gets a subdirectory (default "/var/lib/vigil/outbox").
    #[serde(default = "outbox_dir")]
    pub outbox_dir: PathBuf,
    /// Most undelivered events kept per sink; newer ones are refused and counted (default 10000).
    #[serde(default = "outbox_max")]
    pub outbox_max_events: usize,
}

impl Default for SinksConfig {
    fn default() -> Self {
        SinksConfig {
            jsonl: None,
            mqtt: None,
            webhook: None,
            outbox_dir: outbox_dir(),
            outbox_max_events: outbox_max(),
        }
    }
}

fn outbox_dir() -> PathBuf {
    PathBuf::from("/var/lib/vigil/outbox")
}
fn outbox_max() -> usize {
    10_000
}

/// `[recording.retention]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Delete clips older than this (default "7d").
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// Delete the oldest clips beyond this total, bytes; written "2GB", "500MB", "1GiB"
    /// (default "2GB").
    #[serde(deserialize_with = "size")]
    pub max_total_size: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_age: Duration::from_secs(7 * 86_400), max_total_size: 2_000_000_000 }
    }
}

/// `[recording]`: alert clips and snapshots.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Record clips and snapshots at all (default true).
    pub enabled: bool,
    /// Clip directory (default "/var/lib/vigil/recordings").
    pub dir: PathBuf,
    /// Clips are shrunk by the smallest whole factor that makes them at most this wide, aspect
    /// kept (default 480: 768x576 records at 384x288, 1080p at 480x270). The pre-roll ring holds
    /// width x height x 1.5 bytes per frame.
    pub max_width: u32,
    /// Clips hold at most this many frames per second (default 10).
    pub max_fps: f64,
    /// Video kept before an alert start (default "5s", at most "60s").
    #[serde(with = "duration")]
    pub pre_roll: Duration,
    /// Video kept after an alert end (default "5s", at most "60s").
    #[serde(with = "duration")]
    pub post_roll: Duration,
    /// Save a JPEG of the peak frame (default true).
    pub snapshot: bool,
    /// Clean-up limits.
    pub retention: Retention,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            enabled: true,
            dir: PathBuf::from("/var/lib/vigil/recordings"),
            max_width: 480,
            max_fps: 10.0,
            pre_roll: secs5(),
            post_roll: secs5(),
            snapshot: true,
            retention: Retention::default(),
        }
    }
}

/// `[http]`: the telemetry endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz` (default "127.0.0.1:9700").
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9700)) }
    }
}

/// The whole daemon configuration, validated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The cameras; at least one is required.
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// Model directory (default "models/default").
    #[serde(default = "model_dir")]
    pub model: PathBuf,
    /// Window scoring (default: `ScorerConfig::default()`).
    #[serde(default)]
    pub scorer: ScorerConfig,
    /// Global alert settings; a key left out takes the model manifest's `[alert]` value
    /// (`max_per_hour`: 20). See [`Config::apply_model_alert`].
    #[serde(default)]
    pub alert: AlertOverrides,
    #[serde(default)]
    pub workers: WorkersConfig,
    #[serde(default)]
    pub sinks: SinksConfig,
    #[serde(default)]
    pub recording: RecordingConfig,
    #[serde(default)]
    pub http: HttpConfig,
}

fn model_dir() -> PathBuf {
    PathBuf::from("models/default")
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::from_str(&text, path)
    }

    /// Parses and validates `text`; `path` is used in messages (and to resolve nothing else).
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let mut cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), source: Box::new(e) })?;
        cfg.validate().map_err(|(key, reason)| ConfigError::Invalid { path: path.to_path_buf(), key, reason })?;
        Ok(cfg)
    }

    /// Sets every camera's effective alert settings from the model's thresholds (`model`, its
    /// manifest `[alert]`), laid under the global `[alert]` and the camera's own `alert`, and
    /// checks the result; `path` names the config file in errors.
    pub fn apply_model_alert(&mut self, model: AlertPolicy, path: &Path) -> Result<(), ConfigError> {
        let base = AlertSettings {
            on: model.on,
            off: model.off,
            min_duration_s: model.min_duration_s,
            hold_s: model.hold_s,
            cooldown_s: model.cooldown_s,
            max_per_hour: AlertSettings::default().max_per_hour,
        }
        .merged(&self.alert);
        for (i, cam) in self.cameras.iter_mut().enumerate() {
            let merged = base.merged(&cam.alert);
            merged.policy().validate().map_err(|(k, r)| ConfigError::Invalid {
                path: path.to_path_buf(),
                key: format!("cameras[{i}].alert.{k}"),
                reason: format!(
                    "{r} (after merging the model's [alert] thresholds on = {}, off = {})",
                    model.on, model.off
                ),
            })?;
            cam.effective_alert = merged;
        }
        Ok(())
    }

    /// Checks every camera's `decoder` against the model: "ffmpeg" needs a grey model.
    pub fn check_decoders(&self, grey_model: bool, path: &Path) -> Result<(), ConfigError> {
        for (i, cam) in self.cameras.iter().enumerate() {
            cam.reads_yuv(grey_model).map_err(|reason| ConfigError::Invalid {
                path: path.to_path_buf(),
                key: format!("cameras[{i}].decoder"),
                reason,
            })?;
        }
        Ok(())
    }

    /// The enabled cameras.
    pub fn enabled_cameras(&self) -> impl Iterator<Item = &CameraConfig> {
        self.cameras.iter().filter(|c| c.enabled)
    }

    /// Every cross-field check, secret resolution and alert merge; `(key, reason)` on failure.
    fn validate(&mut self) -> Result<(), (String, String)> {
        let err = |key: &str, reason: String| Err((key.to_string(), reason));
        if self.cameras.is_empty() {
            return err("cameras", "at least one [[cameras]] entry is required".into());
        }
        // The model's thresholds fill the keys left out (Config::apply_model_alert); here only
        // what is written is checked.
        check_alert(&self.alert).map_err(|(k, r)| (format!("alert.{k}"), r))?;
        let mut seen = HashSet::new();
        for (i, cam) in self.cameras.iter_mut().enumerate() {
            let key = |k: &str| format!("cameras[{i}].{k}");
            if cam.id.is_empty() {
                return Err((key("id"), "must not be empty".into()));
            }
            if let Some(c) = cam.id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
                return Err((
                    key("id"),
                    format!("'{}' holds '{c}': only A-Z a-z 0-9 _ - (it goes into MQTT topics)", cam.id),
                ));
            }
            if !seen.insert(cam.id.clone()) {
                return Err((key("id"), format!("duplicate camera id '{}'", cam.id)));
            }
            validate_source(cam).map_err(|(k, r)| (key(k), r))?;
            for (j, poly) in cam.mask.iter().enumerate() {
                if poly.len() < 3 {
                    return Err((
                        format!("cameras[{i}].mask[{j}]"),
                        format!("a polygon needs at least 3 points, got {}", poly.len()),
                    ));
                }
                if let Some(p) = poly.iter().find(|p| !p.iter().all(|v| (0.0..=1.0).contains(v))) {
                    return Err((
                        format!("cameras[{i}].mask[{j}]"),
                        format!("point [{}, {}] is outside the normalised 0..1 range", p[0], p[1]),
                    ));
                }
            }
            for (j, w) in cam.schedule.iter().enumerate() {
                if w.days.is_empty() {
                    return Err((format!("cameras[{i}].schedule[{j}].days"), "must list at least one day".into()));
                }
                if w.start == w.end {
                    return Err((
                        format!("cameras[{i}].schedule[{j}].end"),
                        "must differ from start (an empty window never arms)".into(),
                    ));
                }
            }
            if cam.stall_timeout.is_zero() {
                return Err((key("stall_timeout"), "must be greater than 0".into()));
            }
            check_backoff(&cam.reconnect).map_err(|(k, r)| (key(&format!("reconnect.{k}")), r))?;
            let written = self.alert.under(&cam.alert);
            check_alert(&written)
                .map_err(|(k, r)| (key(&format!("alert.{k}")), format!("{r} (after merging [alert] defaults)")))?;
            // Provisional until the model's thresholds are known.
            let merged = AlertSettings::default().merged(&written);
            cam.effective_alert = merged;
        }
        self.scorer.validate().map_err(|(k, r)| (format!("scorer.{k}"), r))?;
        if self.workers.count == 0 {
            return err("workers.count", "must be at least 1".into());
        }
        if self.workers.max_batch == 0 {
            return err("workers.max_batch", "must be at least 1".into());
        }
        if self.workers.max_wait > Duration::from_secs(1) {
            return err(
                "workers.max_wait",
                format!("{:?} is too long for live video (at most 1s)", self.workers.max_wait),
            );
        }
        self.validate_sinks()?;
        for (k, v) in
            [("recording.pre_roll", self.recording.pre_roll), ("recording.post_roll", self.recording.post_roll)]
        {
            if v > MAX_ROLL {
                return err(k, format!("{v:?} is longer than {MAX_ROLL:?} (the pre-roll is held in memory)"));
            }
        }
        if !(16..=7680).contains(&self.recording.max_width) {
            return err("recording.max_width", format!("must be 16..=7680 pixels, got {}", self.recording.max_width));
        }
        if !(self.recording.max_fps.is_finite() && self.recording.max_fps >= 1.0 && self.recording.max_fps <= 120.0) {
            return err(
                "recording.max_fps",
                format!("must be 1..=120 frames per second, got {}", self.recording.max_fps),
            );
        }
        if self.recording.retention.max_total_size == 0 {
            return err("recording.retention.max_total_size", "must be greater than 0".into());
        }
        if self.recording.retention.max_age.is_zero() {
            return err("recording.retention.max_age", "must be greater than 0".into());
        }
        Ok(())
    }

    fn validate_sinks(&mut self) -> Result<(), (String, String)> {
        let s = &mut self.sinks;
        if s.outbox_max_events == 0 {
            return Err(("sinks.outbox_max_events".into(), "must be at least 1".into()));
        }
        if let Some(j) = &s.jsonl {
            if j.path.as_os_str().is_empty() {
                return Err(("sinks.jsonl.path".into(), "must be \"-\" or a file".into()));
            }
        }
        if let Some(m) = &mut s.mqtt {
            let key = |k: &str| format!("sinks.mqtt.{k}");
            if m.host.is_empty() {
                return Err((key("host"), "must not be empty".into()));
            }
            if m.port == 0 {
                return Err((key("port"), "must not be 0".into()));
            }
            if m.client_id.is_empty() {
                return Err((key("client_id"), "must not be empty".into()));
            }
            if m.topic_prefix.is_empty()
                || m.topic_prefix.starts_with('/')
                || m.topic_prefix.ends_with('/')
                || m.topic_prefix.contains(['+', '#', '\0'])
            {
                return Err((
                    key("topic_prefix"),
                    format!(
                        "'{}' must be non-empty, without wildcards (+ #) or a leading/trailing '/'",
                        m.topic_prefix
                    ),
                ));
            }
            if m.qos != 1 {
                return Err((
                    key("qos"),
                    format!("{} is not supported: must be 1 (the outbox drops an event on its PUBACK)", m.qos),
                ));
            }
            if m.keep_alive < Duration::from_secs(5) {
                return Err((key("keep_alive"), "must be at least 5s".into()));
            }
            check_backoff(&m.reconnect).map_err(|(k, r)| (key(&format!("reconnect.{k}")), r))?;
            if !(m.scores.max_rate_hz.is_finite() && m.scores.max_rate_hz > 0.0) {
                return Err((key("scores.max_rate_hz"), "must be a number > 0".into()));
            }
            let resolved = resolve_password(m.password.take(), m.password_env.as_deref(), m.password_file.as_deref())
                .map_err(|(k, r)| (key(k), r))?;
            if resolved.is_some() && m.username.is_none() {
                return Err((key("username"), "is required when a password is given".into()));
            }
            m.password = resolved;
            if let Some(t) = &m.tls {
                if t.client_cert.is_some() != t.client_key.is_some() {
                    return Err((key("tls.client_key"), "client_cert and client_key go together".into()));
                }
                if !t.ca_file.is_file() {
                    return Err((key("tls.ca_file"), format!("{} is not a readable file", t.ca_file.display())));
                }
            }
        }
        if let Some(w) = &s.webhook {
            let key = |k: &str| format!("sinks.webhook.{k}");
            match url::Url::parse(w.url.expose()) {
                Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.has_host() => {}
                Ok(u) => {
                    return Err((
                        key("url"),
                        format!("{}: scheme must be http or https with a host, got '{}'", w.url, u.scheme()),
                    ))
                }
                Err(e) => return Err((key("url"), format!("{}: {e}", w.url))),
            }
            for name in w.headers.keys() {
                if name.is_empty()
                    || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                {
                    return Err((key(&format!("headers.{name}")), "is not a valid header name".into()));
                }
            }
            if w.timeout.is_zero() {
                return Err((key("timeout"), "must be greater than 0".into()));
            }
            check_backoff(&w.retry).map_err(|(k, r)| (key(&format!("retry.{k}")), r))?;
        }
        Ok(())
    }
}

fn check_backoff(b: &Backoff) -> Result<(), (&'static str, String)> {
    if b.initial.is_zero() {
        return Err(("initial", "must be greater than 0".into()));
    }
    if b.max < b.initial {
        return Err(("max", format!("{:?} is smaller than initial ({:?})", b.max, b.initial)));
    }
    Ok(())
}

fn resolve_password(
    inline: Option<Secret>,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<Secret>, (&'static str, String)> {
    let given = [inline.is_some(), env.is_some(), file.is_some()].iter().filter(|b| **b).count();
    if given > 1 {
        return Err(("password", "give at most one of password, password_env, password_file".into()));
    }
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(Secret(v))),
            _ => Err(("password_env", format!("environment variable {var} is not set (or empty)"))),
        };
    }
    if let Some(f) = file {
        return match std::fs::read_to_string(f) {
            Ok(v) => Ok(Some(Secret(v.trim_end_matches(['\n', '\r']).to_string()))),
            Err(e) => Err(("password_file", format!("reading {}: {e}", f.display()))),
        };
    }
    Ok(inline)
}

fn validate_source(cam: &mut CameraConfig) -> Result<(), (&'static str, String)> {
    let is_file = matches!(cam.source, Source::File(_));
    if !is_file && cam.loop_ {
        return Err(("loop", "only file sources can loop".into()));
    }
    if !is_file && cam.pace == Pace::Fast {
        return Err(("pace", "\"fast\" applies to file sources only".into()));
    }
    let password = resolve_password(None, cam.password_env.as_deref(), cam.password_file.as_deref())?;
    match &mut cam.source {
        Source::File(p) => {
            if p.as_os_str().is_empty() {
                return Err(("source", "must not be empty".into()));
            }
            if password.is_some() {
                return Err(("password_env", "file sources take no password".into()));
            }
        }
        Source::Usb(_) => {
            if password.is_some() {
                return Err(("password_env", "USB sources take no password".into()));
            }
            if cam.decoder == Decoder::Ffmpeg {
                return Err(("decoder", "\"ffmpeg\" reads URLs and files; USB devices go through OpenCV".into()));
            }
        }
        Source::Url(u) => {
            let mut parsed =
                url::Url::parse(u.expose()).map_err(|e| ("source", format!("{}: invalid URL: {e}", u.redacted())))?;
            if !matches!(parsed.scheme(), "rtsp" | "rtsps" | "http" | "https") {
                return Err((
                    "source",
                    format!("{}: scheme '{}' is not one of rtsp, rtsps, http, https", u.redacted(), parsed.scheme()),
                ));
            }
            if !parsed.has_host() || parsed.host_str().is_some_and(str::is_empty) {
                return Err(("source", format!("{}: the URL has no host", u.redacted())));
            }
            if let Some(p) = password {
                if parsed.username().is_empty() {
                    return Err((
                        "source",
                        format!("{}: a password is given but the URL has no user (rtsp://user@host/...)", u.redacted()),
                    ));
                }
                if parsed.password().is_some() {
                    return Err(("password_env", "the URL already holds a password".into()));
                }
                parsed
                    .set_password(Some(p.expose()))
                    .map_err(|()| ("source", "this URL cannot hold a password".to_string()))?;
                *u = UrlString(parsed.to_string());
            }
        }
    }
    Ok(())
}

/// Parses "2GB", "500MB", "1.5GiB", "1024" into bytes (decimal units are powers of 1000,
/// `Ki`/`Mi`/`Gi`/`Ti` powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("'{s}': expected a size like 2GB, 500MB, 1GiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("'{s}': unknown size unit '{other}' (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")),
    };
    let v = n * mult;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(format!("'{s}': too large"));
    }
    Ok(v.round() as u64)
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bytes(b) => Ok(b),
        Raw::Text(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

/// Durations written as humantime strings: "5s", "200ms", "1m 30s", "7d".
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!("'{s}': {e} (expected a duration like \"5s\", \"200ms\", \"7d\")"))
        })
    }
}

#[cfg(test)]
mod tests;
