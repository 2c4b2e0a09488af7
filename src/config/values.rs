//! Value types of the daemon configuration: secrets and redacted URLs, camera sources, pacing,
//! arming schedules and backoff. Parsing and printing only; validation lives in `config`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::duration;

/// A string that never prints: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub(super) String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that needs it (a connect call, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL kept as written (it may hold `user:pass@`); prints with the password replaced by
/// `***`. Validated (parsed) when the config loads ([`Config::load`]).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct UrlString(pub(super) String);

impl UrlString {
    pub fn new(s: impl Into<String>) -> Self {
        UrlString(s.into())
    }
    /// The full URL, credentials included (for the connect call only).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The URL with its password replaced by `***` (what logs and `Debug` show).
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for UrlString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for UrlString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

pub(super) fn redact_url(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            // set_password fails only for URLs that cannot have one, and this one has one.
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        // Unparseable: hide anything between "://" and the last '@' of the authority.
        Err(_) => match (s.find("://"), s.rfind('@')) {
            (Some(a), Some(b)) if b > a => format!("{}***{}", &s[..a + 3], &s[b..]),
            _ => s.to_string(),
        },
    }
}

/// Where a camera's frames come from.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// `rtsp://`, `rtsps://`, `http://` or `https://` stream (may hold credentials).
    Url(UrlString),
    /// A USB / V4L2 device index: `"usb:0"` or the integer `0`.
    Usb(u32),
    /// A video file standing in for a camera (see `pace`, `loop`).
    File(PathBuf),
}

impl Source {
    /// The source for logs and metrics labels: URL passwords replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            Source::Url(u) => u.redacted(),
            Source::Usb(i) => format!("usb:{i}"),
            Source::File(p) => p.display().to_string(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Url(u) => write!(f, "Url({u:?})"),
            Source::Usb(i) => write!(f, "Usb({i})"),
            Source::File(p) => write!(f, "File({p:?})"),
        }
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Index(u32),
            Text(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Index(i) => Source::Usb(i),
            Raw::Text(s) => {
                if let Some(n) = s.strip_prefix("usb:") {
                    match n.parse() {
                        Ok(i) => Source::Usb(i),
                        Err(_) => {
                            return Err(serde::de::Error::custom(format!(
                                "'{s}': a USB source is usb:N with N a device index"
                            )))
                        }
                    }
                } else if s.contains("://") {
                    Source::Url(UrlString(s))
                } else {
                    Source::File(PathBuf::from(s))
                }
            }
        })
    }
}

/// How a file source is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// At the file's frame rate, like a live camera (default).
    #[default]
    Realtime,
    /// As fast as the pipeline takes frames.
    Fast,
}

/// Which decoder reads a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decoder {
    /// FFmpeg straight to YUV for URL and file sources when the model is grey (it reads luma
    /// only: no BGR conversion per frame); OpenCV otherwise (default).
    #[default]
    Auto,
    /// FFmpeg to YUV; URL and file sources with a grey model only (refused otherwise).
    Ffmpeg,
    /// OpenCV's capture (BGR frames), as replay and `vigil features` read video.
    Opencv,
}

/// A day of the week in a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// A time of day `"HH:MM"`, minutes since midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(pub u16);

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || serde::de::Error::custom(format!("'{s}': expected a time HH:MM (00:00-24:00)"));
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(TimeOfDay(h * 60 + m))
    }
}

/// One arming window: on these days from `start` to `end` (an `end` before `start` runs past
/// midnight into the next day).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleWindow {
    /// Days the window starts on (no default: required, non-empty).
    pub days: Vec<Weekday>,
    /// Start time "HH:MM" (default "00:00").
    #[serde(default = "midnight")]
    pub start: TimeOfDay,
    /// End time "HH:MM", exclusive (default "24:00").
    #[serde(default = "end_of_day")]
    pub end: TimeOfDay,
}

fn midnight() -> TimeOfDay {
    TimeOfDay(0)
}
fn end_of_day() -> TimeOfDay {
    TimeOfDay(24 * 60)
}

const DAYS: [Weekday; 7] =
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

/// Whether a camera with this schedule is armed on `day` at `minute` (minutes since midnight,
/// local time). An empty schedule is always armed. Pure: the caller reads the clock.
pub fn is_armed(schedule: &[ScheduleWindow], day: Weekday, minute: u16) -> bool {
    if schedule.is_empty() {
        return true;
    }
    let idx = DAYS.iter().position(|d| *d == day).unwrap_or(0);
    let yesterday = DAYS[(idx + 6) % 7];
    schedule.iter().any(|w| {
        let (s, e) = (w.start.0, w.end.0);
        if s <= e {
            w.days.contains(&day) && minute >= s && minute < e
        } else {
            (w.days.contains(&day) && minute >= s) || (w.days.contains(&yesterday) && minute < e)
        }
    })
}

/// Exponential backoff bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// First delay (default "1s").
    #[serde(default = "secs1", with = "duration")]
    pub initial: Duration,
    /// Largest delay (default "30s").
    #[serde(default = "secs30", with = "duration")]
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: secs1(), max: secs30() }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based): `initial * 2^attempt` capped at `max`,
    /// then jittered down by up to a quarter so that many clients do not retry in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.initial.saturating_mul(1u32 << attempt.min(20)).min(self.max);
        let jitter = base.mul_f64(fastrand::f64() * 0.25);
        base.saturating_sub(jitter)
    }
}

pub(super) fn secs1() -> Duration {
    Duration::from_secs(1)
}
pub(super) fn secs5() -> Duration {
    Duration::from_secs(5)
}
pub(super) fn secs30() -> Duration {
    Duration::from_secs(30)
}
