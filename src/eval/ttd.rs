//! Alert-level evaluation: the model's [`AlertMachine`] run over a video's scored snippets with
//! media times from its frame rate, then time to detect (first gt frame of the event to the
//! first alert that covers it) and false alerts on normal videos. Pure: no I/O, no model.

use crate::alert::{AlertEvent, AlertMachine, AlertPolicy, EventKind, Observation};
use serde::Serialize;

/// One alert as evaluation sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alert {
    /// Frame at which the start event was raised: just after the snippet that completed
    /// `min_duration` (the snippet's score is known once its 16 frames have arrived).
    pub raised_frame: usize,
    /// Frame just after the last snippet above `off` (the video's end for an alert still open).
    pub end_frame: usize,
}

/// Runs the alert machine over `scores` (snippet k = frames `k*per_snippet .. (k+1)*per_snippet`).
pub fn run_alerts(
    name: &str,
    scores: &[f32],
    fps: f64,
    per_snippet: usize,
    policy: AlertPolicy,
) -> (Vec<AlertEvent>, Vec<Alert>) {
    let mut machine = AlertMachine::new(name, policy);
    let ms = |frame: usize| frame as f64 * 1000.0 / fps;
    let mut events = Vec::new();
    let mut alerts: Vec<Alert> = Vec::new();
    let total = scores.len() * per_snippet;
    for (k, &score) in scores.iter().enumerate() {
        let (a, b) = (k * per_snippet, (k + 1) * per_snippet);
        for e in machine.update(Observation {
            snippet: k as u64,
            first_frame: a as u64,
            last_frame: (b - 1) as u64,
            start_ms: ms(a),
            end_ms: ms(b),
            score,
        }) {
            push_event(&mut alerts, &e, b, total);
            events.push(e);
        }
    }
    if let Some(e) = machine.finish() {
        push_event(&mut alerts, &e, total, total);
        events.push(e);
    }
    (events, alerts)
}

fn push_event(alerts: &mut Vec<Alert>, e: &AlertEvent, now_frame: usize, total: usize) {
    match e.event {
        EventKind::Start => alerts.push(Alert { raised_frame: now_frame, end_frame: total }),
        EventKind::End => {
            if let (Some(last), Some(f)) = (alerts.last_mut(), e.frame_end) {
                last.end_frame = (f as usize + 1).min(total);
            }
        }
        EventKind::Update => {}
    }
}

/// Time to detect for one abnormal video.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Detection {
    pub name: String,
    pub event_start_frame: usize,
    pub event_start_s: f64,
    /// Frame at which the covering alert was raised (`null` when missed).
    pub detected_frame: Option<usize>,
    pub ttd_frames: Option<usize>,
    pub ttd_s: Option<f64>,
    pub missed: bool,
}

/// Time to detect: from the first anomalous gt frame to the first alert raised at or after it,
/// or 0 when an alert raised earlier is still open at that frame. `None` for a video without
/// anomalous frames.
pub fn detection(name: &str, gt: &[f64], alerts: &[Alert], fps: f64) -> Option<Detection> {
    let first = gt.iter().position(|&v| v > 0.5)?;
    let hit = alerts.iter().find_map(|a| {
        if a.raised_frame >= first {
            Some(a.raised_frame)
        } else if a.end_frame > first {
            Some(first)
        } else {
            None
        }
    });
    Some(Detection {
        name: name.to_string(),
        event_start_frame: first,
        event_start_s: first as f64 / fps,
        detected_frame: hit,
        ttd_frames: hit.map(|h| h - first),
        ttd_s: hit.map(|h| (h - first) as f64 / fps),
        missed: hit.is_none(),
    })
}

/// The median of some values (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AlertPolicy {
        AlertPolicy { on: 0.6, off: 0.4, min_duration_s: 0.0, hold_s: 0.0, cooldown_s: 0.0 }
    }

    #[test]
    fn alerts_raised_at_snippet_end() {
        let (events, alerts) = run_alerts("v", &[0.1, 0.9, 0.9, 0.1, 0.1], 16.0, 16, policy());
        assert_eq!(events.iter().filter(|e| e.event == EventKind::Start).count(), 1);
        assert_eq!(alerts, vec![Alert { raised_frame: 32, end_frame: 48 }]);
    }

    #[test]
    fn ttd_after_during_and_missed() {
        let mut gt = vec![0.0; 80];
        gt[20..60].iter_mut().for_each(|v| *v = 1.0);
        let a = [Alert { raised_frame: 48, end_frame: 80 }];
        let d = detection("v", &gt, &a, 10.0).unwrap();
        assert_eq!((d.ttd_frames, d.ttd_s, d.missed), (Some(28), Some(2.8), false));
        let early = [Alert { raised_frame: 16, end_frame: 40 }];
        assert_eq!(detection("v", &gt, &early, 10.0).unwrap().ttd_frames, Some(0));
        let gone = [Alert { raised_frame: 8, end_frame: 16 }];
        assert!(detection("v", &gt, &gone, 10.0).unwrap().missed);
        assert!(detection("v", &[0.0; 16], &a, 10.0).is_none());
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
