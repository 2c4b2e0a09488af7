//! Every transition of the alert state machine.

use super::*;

/// One snippet per second, so times are easy to read.
fn obs(i: u64, score: f32) -> Observation {
    Observation {
        snippet: i,
        first_frame: i * 16,
        last_frame: i * 16 + 15,
        start_ms: i as f64 * 1000.0,
        end_ms: (i + 1) as f64 * 1000.0,
        score,
    }
}

fn policy() -> AlertPolicy {
    AlertPolicy { on: 0.6, off: 0.4, min_duration_s: 2.0, hold_s: 2.0, cooldown_s: 3.0 }
}

fn machine() -> AlertMachine {
    let mut n = 0;
    AlertMachine::with_ids(
        "cam",
        policy(),
        Box::new(move || {
            n += 1;
            format!("a{n}")
        }),
    )
}

fn feed(m: &mut AlertMachine, scores: &[f32]) -> Vec<(u64, AlertEvent)> {
    let mut out = Vec::new();
    for (i, &s) in scores.iter().enumerate() {
        for e in m.update(obs(i as u64, s)) {
            out.push((i as u64, e));
        }
    }
    out
}

#[test]
fn idle_stays_idle_below_on() {
    let mut m = machine();
    assert!(feed(&mut m, &[0.1, 0.59, 0.5, 0.0]).is_empty());
    assert!(!m.is_active());
    assert!(m.finish().is_none());
}

#[test]
fn rising_that_dips_returns_to_idle() {
    let mut m = machine();
    // One second above `on` (< 2 s), dip, one second again: never two consecutive seconds.
    assert!(feed(&mut m, &[0.9, 0.5, 0.9, 0.5]).is_empty());
}

#[test]
fn starts_after_min_duration() {
    let mut m = machine();
    let ev = feed(&mut m, &[0.1, 0.7, 0.8, 0.9]);
    assert_eq!(ev.len(), 1);
    let (at, e) = &ev[0];
    assert_eq!(*at, 2, "start when snippets 1..=2 span 2 s");
    assert_eq!(e.event, EventKind::Start);
    assert_eq!(e.id, "a1");
    assert_eq!(e.snippet_start, 1);
    assert_eq!(e.frame_start, 16);
    assert_eq!(e.time_start_s, 1.0);
    assert_eq!(e.peak_score, 0.8);
    assert_eq!(e.peak_snippet, 2);
    assert!(m.is_active());
}

#[test]
fn zero_min_duration_starts_at_once() {
    let mut m = AlertMachine::new("cam", AlertPolicy { min_duration_s: 0.0, ..policy() });
    let ev = m.update(obs(0, 0.6));
    assert_eq!(ev.len(), 1, "score exactly at `on` counts");
    assert_eq!(ev[0].event, EventKind::Start);
}

#[test]
fn hysteresis_keeps_alert_between_off_and_on() {
    let mut m = machine();
    let ev = feed(&mut m, &[0.9, 0.9, 0.5, 0.45, 0.4, 0.5, 0.41]);
    assert_eq!(ev.len(), 1, "only the start: scores stay >= off");
    assert!(m.is_active());
}

#[test]
fn short_dip_below_off_does_not_end() {
    let mut m = machine();
    // Below off for 1 s only (hold is 2 s), then back up.
    let ev = feed(&mut m, &[0.9, 0.9, 0.1, 0.7, 0.7]);
    assert_eq!(ev.len(), 1);
    assert!(m.is_active());
}

#[test]
fn ends_after_hold_with_last_snippet_above_off() {
    let mut m = machine();
    let ev = feed(&mut m, &[0.9, 0.95, 0.8, 0.3, 0.2, 0.1]);
    assert_eq!(ev.len(), 2);
    let (at, end) = &ev[1];
    assert_eq!(*at, 4, "snippets 3 and 4 below off span 2 s");
    assert_eq!(end.event, EventKind::End);
    assert_eq!(end.id, ev[0].1.id, "start and end share the id");
    assert_eq!(end.snippet_end, Some(2));
    assert_eq!(end.frame_end, Some(47));
    assert_eq!(end.time_end_s, Some(3.0));
    assert_eq!(end.peak_score, 0.95);
    assert_eq!(end.peak_snippet, 1);
    assert_eq!(end.reason, Some(EndReason::ScoreBelowOff));
    assert!(!m.is_active());
}

#[test]
fn cooldown_blocks_retrigger_then_allows_it() {
    let mut m = machine();
    // Alert 0..=1, ends at snippet 3 (end_ms 4000), cooldown until 7000 ms.
    let scores = [0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9];
    let ev = feed(&mut m, &scores);
    let kinds: Vec<(u64, EventKind, &str)> = ev.iter().map(|(i, e)| (*i, e.event, e.id.as_str())).collect();
    // Snippets 4..=6 start before 7000 ms: ignored. Snippet 7 starts at 7000: rising; 8 starts.
    assert_eq!(kinds, vec![(1, EventKind::Start, "a1"), (3, EventKind::End, "a1"), (8, EventKind::Start, "a2")]);
}

#[test]
fn finish_ends_open_alert_with_stream_end() {
    let mut m = machine();
    feed(&mut m, &[0.9, 0.9, 0.9]);
    let end = m.finish().expect("open alert is ended");
    assert_eq!(end.reason, Some(EndReason::StreamEnd));
    assert_eq!(end.snippet_end, Some(2));
    assert!(m.finish().is_none(), "only once");
}

#[test]
fn finish_during_rising_or_cooldown_emits_nothing() {
    let mut m = machine();
    feed(&mut m, &[0.9]);
    assert!(m.finish().is_none());
    let mut m = machine();
    feed(&mut m, &[0.9, 0.9, 0.1, 0.1]);
    assert!(m.finish().is_none());
}

#[test]
fn ids_are_unique_by_default() {
    let mut m = AlertMachine::new("cam", AlertPolicy { min_duration_s: 0.0, hold_s: 0.0, cooldown_s: 0.0, ..policy() });
    let mut ids = std::collections::HashSet::new();
    for i in 0..20 {
        for e in m.update(obs(i, if i % 2 == 0 { 0.9 } else { 0.0 })) {
            if e.event == EventKind::Start {
                assert!(ids.insert(e.id));
            }
        }
    }
    assert_eq!(ids.len(), 10);
}

#[test]
fn policy_validation() {
    assert!(AlertPolicy::default().validate().is_ok());
    assert_eq!(AlertPolicy { off: 0.7, ..policy() }.validate().unwrap_err().0, "off");
    assert_eq!(AlertPolicy { on: 0.0, ..policy() }.validate().unwrap_err().0, "on");
    assert_eq!(AlertPolicy { hold_s: -1.0, ..policy() }.validate().unwrap_err().0, "hold_s");
    assert_eq!(AlertPolicy { cooldown_s: f64::NAN, ..policy() }.validate().unwrap_err().0, "cooldown_s");
}

#[test]
fn spans_from_events() {
    let mut m = machine();
    let ev: Vec<AlertEvent> = feed(&mut m, &[0.9, 0.95, 0.8, 0.3, 0.2, 0.1]).into_iter().map(|(_, e)| e).collect();
    assert_eq!(spans(&ev), vec![(0.0, 3.0)]);
}

#[test]
fn event_json_shape() {
    let mut m = machine();
    let ev = feed(&mut m, &[0.9, 0.9]);
    let j = serde_json::to_value(&ev[0].1).unwrap();
    assert_eq!(j["event"], "start");
    assert_eq!(j["source"], "cam");
    assert!(j.get("time_end_s").is_none());
}
