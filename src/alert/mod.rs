//! The alert state machine: pure hysteresis with a minimum duration, a hold time and a cooldown.
//! It sees one scored snippet at a time (with its media time span) and returns the events it
//! caused; it never reads a clock, so replay, the daemon, evaluation and tests share it.
//!
//! States: `Idle` -> (score >= on) -> `Rising` -> (above `on` for `min_duration`) -> `Active`
//! [start event] -> (below `off` for `hold`) -> `Cooldown` [end event] -> (cooldown elapsed) ->
//! `Idle`. A `Rising` that dips below `on` falls back to `Idle`; an `Active` that comes back to
//! `off` or above before the hold ends stays active; a stream that ends while active ends the alert.

use serde::{Deserialize, Serialize};

/// The `[alert]` policy of a manifest (and per camera in the daemon).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertPolicy {
    /// Score at or above which an alert may start (default 0.6).
    pub on: f32,
    /// Score below which an active alert may end (default 0.4; at most `on`).
    pub off: f32,
    /// Seconds the score must stay at or above `on` before the alert starts (default 0.8).
    pub min_duration_s: f64,
    /// Seconds the score must stay below `off` before the alert ends (default 2.0).
    pub hold_s: f64,
    /// Seconds after an alert ends during which no new alert starts (default 10.0).
    pub cooldown_s: f64,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self { on: 0.6, off: 0.4, min_duration_s: 0.8, hold_s: 2.0, cooldown_s: 10.0 }
    }
}

impl AlertPolicy {
    /// Checks ranges; returns (key, reason) on failure.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.on > 0.0 && self.on <= 1.0) {
            return Err(("on", format!("must be in (0, 1], got {}", self.on)));
        }
        if !(self.off >= 0.0 && self.off <= self.on) {
            return Err(("off", format!("must be in [0, on = {}], got {}", self.on, self.off)));
        }
        for (key, v) in
            [("min_duration_s", self.min_duration_s), ("hold_s", self.hold_s), ("cooldown_s", self.cooldown_s)]
        {
            if !(v.is_finite() && v >= 0.0) {
                return Err((key, format!("must be a finite number of seconds >= 0, got {v}")));
            }
        }
        Ok(())
    }
}

/// One scored snippet as the state machine sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub snippet: u64,
    pub first_frame: u64,
    pub last_frame: u64,
    /// Media time of the snippet's first frame, ms.
    pub start_ms: f64,
    /// Media time just after the snippet's last frame, ms.
    pub end_ms: f64,
    pub score: f32,
}

/// Why an alert ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The score stayed below `off` for the hold time.
    ScoreBelowOff,
    /// The video or stream ended (or the daemon stopped) during the alert.
    StreamEnd,
}

/// Start or end of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Start,
    /// An open alert's peak rose (the daemon sends these, rate-limited).
    Update,
    End,
}

/// An alert event as printed (one JSON line) and sent to sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub event: EventKind,
    /// Unique per alert; the start and end events of one alert share it.
    pub id: String,
    /// Camera id or video file.
    pub source: String,
    pub snippet_start: u64,
    pub frame_start: u64,
    pub time_start_s: f64,
    /// Last snippet above `off` (end events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet_end: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_end: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_end_s: Option<f64>,
    /// Highest score so far (at start: over the rising span).
    pub peak_score: f32,
    pub peak_snippet: u64,
    /// A frame in the middle of the peak snippet (for snapshots).
    pub peak_frame: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<EndReason>,
    /// Wall-clock time the event was raised, RFC 3339 UTC (daemon only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The alert's clip file (daemon with recording; written until the post-roll ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<String>,
    /// The JPEG snapshot of the peak frame (daemon with recording).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Peak {
    score: f32,
    snippet: u64,
    frame: u64,
}

impl Peak {
    fn of(o: &Observation) -> Self {
        Peak { score: o.score, snippet: o.snippet, frame: (o.first_frame + o.last_frame) / 2 }
    }
    fn update(&mut self, o: &Observation) {
        if o.score > self.score {
            *self = Peak::of(o);
        }
    }
}

#[derive(Debug, Clone)]
enum State {
    Idle,
    Rising { since: Observation, peak: Peak },
    Active { id: String, since: Observation, last_above: Observation, below_since: Option<Observation>, peak: Peak },
    Cooldown { until_ms: f64 },
}

/// The per-source alert state machine.
pub struct AlertMachine {
    source: String,
    policy: AlertPolicy,
    state: State,
    next_id: Box<dyn FnMut() -> String + Send>,
}

impl AlertMachine {
    /// A machine whose alert ids are random UUIDs.
    pub fn new(source: impl Into<String>, policy: AlertPolicy) -> Self {
        Self::with_ids(source, policy, Box::new(|| uuid::Uuid::new_v4().to_string()))
    }

    /// A machine with its own id generator (deterministic ids for tests and golden files).
    pub fn with_ids(
        source: impl Into<String>,
        policy: AlertPolicy,
        next_id: Box<dyn FnMut() -> String + Send>,
    ) -> Self {
        Self { source: source.into(), policy, state: State::Idle, next_id }
    }

    pub fn policy(&self) -> &AlertPolicy {
        &self.policy
    }

    /// Whether an alert is open.
    pub fn is_active(&self) -> bool {
        matches!(self.state, State::Active { .. })
    }

    /// While an alert is open: the media time (ms) its last snippet at or above `off` ends,
    /// i.e. where the alert ends if the score stays below `off` from now on.
    pub fn open_end_ms(&self) -> Option<f64> {
        match &self.state {
            State::Active { last_above, .. } => Some(last_above.end_ms),
            _ => None,
        }
    }

    /// Feeds one scored snippet (in order); returns 0, 1 or 2 events.
    pub fn update(&mut self, o: Observation) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let p = self.policy;
        let min_ms = p.min_duration_s * 1000.0;
        let state = std::mem::replace(&mut self.state, State::Idle);
        self.state = match state {
            State::Cooldown { until_ms } if o.start_ms < until_ms => State::Cooldown { until_ms },
            State::Idle | State::Cooldown { .. } => {
                if o.score >= p.on {
                    self.rise_or_start(o, Peak::of(&o), o, min_ms, &mut events)
                } else {
                    State::Idle
                }
            }
            State::Rising { since, mut peak } => {
                if o.score >= p.on {
                    peak.update(&o);
                    self.rise_or_start(since, peak, o, min_ms, &mut events)
                } else {
                    State::Idle
                }
            }
            State::Active { id, since, last_above, below_since, mut peak } => {
                if o.score >= p.off {
                    peak.update(&o);
                    State::Active { id, since, last_above: o, below_since: None, peak }
                } else {
                    let below = below_since.unwrap_or(o);
                    if o.end_ms - below.start_ms >= p.hold_s * 1000.0 {
                        events.push(self.end_event(&id, &since, &last_above, &peak, EndReason::ScoreBelowOff));
                        State::Cooldown { until_ms: o.end_ms + p.cooldown_s * 1000.0 }
                    } else {
                        State::Active { id, since, last_above, below_since: Some(below), peak }
                    }
                }
            }
        };
        events
    }

    fn rise_or_start(
        &mut self,
        since: Observation,
        peak: Peak,
        now: Observation,
        min_ms: f64,
        events: &mut Vec<AlertEvent>,
    ) -> State {
        if now.end_ms - since.start_ms >= min_ms {
            let id = (self.next_id)();
            events.push(AlertEvent {
                event: EventKind::Start,
                id: id.clone(),
                source: self.source.clone(),
                snippet_start: since.snippet,
                frame_start: since.first_frame,
                time_start_s: since.start_ms / 1000.0,
                snippet_end: None,
                frame_end: None,
                time_end_s: None,
                peak_score: peak.score,
                peak_snippet: peak.snippet,
                peak_frame: peak.frame,
                reason: None,
                timestamp: None,
                clip: None,
                snapshot: None,
            });
            State::Active { id, since, last_above: now, below_since: None, peak }
        } else {
            State::Rising { since, peak }
        }
    }

    fn end_event(
        &self,
        id: &str,
        since: &Observation,
        last: &Observation,
        peak: &Peak,
        reason: EndReason,
    ) -> AlertEvent {
        AlertEvent {
            event: EventKind::End,
            id: id.to_string(),
            source: self.source.clone(),
            snippet_start: since.snippet,
            frame_start: since.first_frame,
            time_start_s: since.start_ms / 1000.0,
            snippet_end: Some(last.snippet),
            frame_end: Some(last.last_frame),
            time_end_s: Some(last.end_ms / 1000.0),
            peak_score: peak.score,
            peak_snippet: peak.snippet,
            peak_frame: peak.frame,
            reason: Some(reason),
            timestamp: None,
            clip: None,
            snapshot: None,
        }
    }

    /// An `update` event describing the open alert now (its span so far and its peak), or
    /// None when no alert is open. The machine's state is unchanged.
    pub fn update_event(&self) -> Option<AlertEvent> {
        match &self.state {
            State::Active { id, since, last_above, peak, .. } => {
                let mut ev = self.end_event(id, since, last_above, peak, EndReason::StreamEnd);
                ev.event = EventKind::Update;
                ev.reason = None;
                Some(ev)
            }
            _ => None,
        }
    }

    /// Ends the stream: an open alert gets an end event with reason `stream_end`.
    pub fn finish(&mut self) -> Option<AlertEvent> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Active { id, since, last_above, peak, .. } => {
                Some(self.end_event(&id, &since, &last_above, &peak, EndReason::StreamEnd))
            }
            _ => None,
        }
    }
}

/// Closed alert spans `(start_s, end_s)` from a list of events (for plots and evaluation).
pub fn spans(events: &[AlertEvent]) -> Vec<(f64, f64)> {
    events.iter().filter(|e| e.event == EventKind::End).filter_map(|e| Some((e.time_start_s, e.time_end_s?))).collect()
}

#[cfg(test)]
mod tests;
