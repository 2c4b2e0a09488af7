//! The `[alert]` settings of the daemon configuration: the global section, per-camera
//! overrides, how they merge, and the checks of the keys that are written.

use serde::Deserialize;

use crate::alert::AlertPolicy;

/// Per-camera alert overrides: any field left out takes the global `[alert]` value.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertOverrides {
    pub on: Option<f32>,
    pub off: Option<f32>,
    pub min_duration_s: Option<f64>,
    pub hold_s: Option<f64>,
    pub cooldown_s: Option<f64>,
    pub max_per_hour: Option<u32>,
}

impl AlertOverrides {
    /// `o`'s fields laid over these.
    pub fn under(&self, o: &AlertOverrides) -> AlertOverrides {
        AlertOverrides {
            on: o.on.or(self.on),
            off: o.off.or(self.off),
            min_duration_s: o.min_duration_s.or(self.min_duration_s),
            hold_s: o.hold_s.or(self.hold_s),
            cooldown_s: o.cooldown_s.or(self.cooldown_s),
            max_per_hour: o.max_per_hour.or(self.max_per_hour),
        }
    }
}

/// Checks the alert keys that are written: ranges, and `off <= on` when both are.
pub(super) fn check_alert(o: &AlertOverrides) -> Result<(), (&'static str, String)> {
    if let Some(on) = o.on {
        if !(on > 0.0 && on <= 1.0) {
            return Err(("on", format!("must be in (0, 1], got {on}")));
        }
    }
    if let Some(off) = o.off {
        let on = o.on.unwrap_or(1.0);
        if !(off >= 0.0 && off <= on) {
            return Err(("off", format!("must be in [0, on = {on}], got {off}")));
        }
    }
    for (key, v) in [("min_duration_s", o.min_duration_s), ("hold_s", o.hold_s), ("cooldown_s", o.cooldown_s)] {
        if let Some(v) = v {
            if !(v.is_finite() && v >= 0.0) {
                return Err((key, format!("must be a finite number of seconds >= 0, got {v}")));
            }
        }
    }
    if o.max_per_hour == Some(0) {
        return Err(("max_per_hour", "must be at least 1".into()));
    }
    Ok(())
}

/// The global `[alert]` section: the alert policy plus a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    /// Score at or above which an alert may start (default 0.6).
    pub on: f32,
    /// Score below which an active alert may end (default 0.4; at most `on`).
    pub off: f32,
    /// Seconds above `on` before an alert starts (default 0.8).
    pub min_duration_s: f64,
    /// Seconds below `off` before an alert ends (default 2.0).
    pub hold_s: f64,
    /// Seconds after an alert during which no new one starts (default 10.0).
    pub cooldown_s: f64,
    /// Most alert starts per camera per hour; later ones are counted and dropped (default 20).
    pub max_per_hour: u32,
}

impl Default for AlertSettings {
    fn default() -> Self {
        let p = AlertPolicy::default();
        AlertSettings {
            on: p.on,
            off: p.off,
            min_duration_s: p.min_duration_s,
            hold_s: p.hold_s,
            cooldown_s: p.cooldown_s,
            max_per_hour: 20,
        }
    }
}

impl AlertSettings {
    pub fn policy(&self) -> AlertPolicy {
        AlertPolicy {
            on: self.on,
            off: self.off,
            min_duration_s: self.min_duration_s,
            hold_s: self.hold_s,
            cooldown_s: self.cooldown_s,
        }
    }

    /// These settings with `o`'s fields laid over them.
    pub fn merged(&self, o: &AlertOverrides) -> AlertSettings {
        AlertSettings {
            on: o.on.unwrap_or(self.on),
            off: o.off.unwrap_or(self.off),
            min_duration_s: o.min_duration_s.unwrap_or(self.min_duration_s),
            hold_s: o.hold_s.unwrap_or(self.hold_s),
            cooldown_s: o.cooldown_s.unwrap_or(self.cooldown_s),
            max_per_hour: o.max_per_hour.unwrap_or(self.max_per_hour),
        }
    }
}
