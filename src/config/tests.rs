//! Unit tests of `config`.
use super::values::redact_url;
use super::*;

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
    assert_eq!(parse_size("500MB"), Ok(500_000_000));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert_eq!(parse_size("10"), Ok(10));
    assert!(parse_size("2XB").is_err());
    assert!(parse_size("GB").is_err());
}

#[test]
fn redaction_hides_url_password() {
    let s = Source::Url(UrlString::new("rtsp://admin:hunter2@cam.local:554/stream1"));
    assert_eq!(s.redacted(), "rtsp://admin:***@cam.local:554/stream1");
    assert!(!format!("{s:?}").contains("hunter2"));
    assert_eq!(redact_url("rtsp://u:pw@host:99999/"), "rtsp://***@host:99999/");
}

#[test]
fn schedule_arming_wraps_midnight() {
    let w = vec![ScheduleWindow { days: vec![Weekday::Fri], start: TimeOfDay(22 * 60), end: TimeOfDay(6 * 60) }];
    assert!(is_armed(&w, Weekday::Fri, 23 * 60));
    assert!(is_armed(&w, Weekday::Sat, 60));
    assert!(!is_armed(&w, Weekday::Sat, 23 * 60));
    assert!(!is_armed(&w, Weekday::Fri, 60));
    assert!(is_armed(&[], Weekday::Mon, 0));
}

#[test]
fn backoff_doubles_and_caps() {
    let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_millis(1000) };
    for a in 0..30 {
        let d = b.delay(a);
        let base = Duration::from_millis(100 * (1u64 << a.min(4))).min(Duration::from_millis(1000));
        assert!(d <= base && d >= base.mul_f64(0.75), "attempt {a}: {d:?}");
    }
}
