//! One evaluation run, per RTFM's protocol: per-snippet scores of whole videos (offline mode),
//! each repeated 16 times, concatenated in list order and compared frame by frame with the gt
//! vector (ROC AUC, trapezoidal PR AUC, average precision); plus what a deployment asks: a
//! per-video table, time to detect at the model's alert thresholds, and false alerts per hour on
//! normal videos. Pure: scores come in, a serialisable report goes out; the command scores and
//! prints.

use super::gt::{self, GtVideo};
use super::metrics::{self, RTFM_FRAMES_PER_SNIPPET};
use super::ttd::{self, Detection};
use crate::alert::{AlertEvent, AlertPolicy, EventKind};
use crate::error::GtError;
use crate::lists::Label;
use serde::Serialize;
use std::path::Path;

/// One scored video of the list.
#[derive(Debug, Clone)]
pub struct VideoScores {
    /// The path as listed.
    pub name: String,
    /// 1-based line in the list file.
    pub line: usize,
    pub label: Label,
    /// One score per snippet, offline mode (the curves).
    pub scores: Vec<f32>,
    /// One score per snippet as the deployed model scores (the manifest's scorer mode): the
    /// alerts, time to detect and false alerts. Same length as `scores`.
    pub alert_scores: Vec<f32>,
    /// Frame rate used for alert times (the video's own, or `--fps` for feature files).
    pub fps: f64,
}

/// A row of the per-video table.
#[derive(Debug, Clone, Serialize)]
pub struct VideoRow {
    pub name: String,
    pub line: usize,
    pub label: Label,
    pub snippets: usize,
    /// Frames in the gt layout (snippets * 16).
    pub frames: usize,
    pub fps: f64,
    pub max_score: f32,
    /// Frame-level ROC AUC of this video alone, when its gt has both classes.
    pub auc: Option<f64>,
    /// Frames labelled anomalous in the gt.
    pub anomalous_frames: usize,
    /// Alerts raised at the model's thresholds.
    pub alerts: usize,
    /// Offline scores (the curves).
    pub scores: Vec<f32>,
    /// The deployed scorer's scores (the alerts).
    pub alert_scores: Vec<f32>,
}

/// Time to detect over the abnormal videos.
#[derive(Debug, Clone, Serialize)]
pub struct TtdSummary {
    /// Median over detected events (`null` when none was detected).
    pub median_s: Option<f64>,
    pub median_frames: Option<f64>,
    pub detected: usize,
    pub missed: usize,
    pub per_video: Vec<Detection>,
}

/// The whole report (`vigil eval --json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub list: String,
    pub gt: String,
    pub model: String,
    pub videos: usize,
    pub snippets: usize,
    pub frames: usize,
    pub frames_per_snippet: usize,
    /// Frame-level ROC AUC (ShanghaiTech, UCF-Crime).
    pub auc: f64,
    /// Trapezoidal area under the PR curve, `auc(recall, precision)` (what RTFM reports for
    /// XD-Violence).
    pub pr_auc: f64,
    /// Step-wise average precision (what some successors report instead).
    pub average_precision: f64,
    pub per_video: Vec<VideoRow>,
    pub ttd: TtdSummary,
    /// Alerts raised on videos whose gt is all normal, per hour of those videos (`null` with no
    /// normal video).
    pub false_alerts_per_hour: Option<f64>,
    pub false_alerts: usize,
    pub normal_hours: f64,
    pub alert_policy: AlertPolicy,
    /// How the scores behind alerts, time to detect and false alerts were made (the deployed
    /// model's scorer mode; the curves always use offline scores).
    pub alert_scoring: String,
}

/// Per-video material for plots.
#[derive(Debug, Clone)]
pub struct VideoDetail {
    pub events: Vec<AlertEvent>,
    /// Anomalous gt spans in seconds.
    pub ground_truth: Vec<(f64, f64)>,
}

/// Names of the inputs, for the report and for messages.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    pub list: &'a Path,
    pub gt: &'a Path,
    pub model: &'a str,
    /// How `VideoScores::alert_scores` were made, for the report.
    pub alert_scoring: &'a str,
}

/// Checks the gt against the videos (length and values), then computes the report.
pub fn evaluate(
    src: Sources<'_>,
    gt: &[f64],
    videos: &[VideoScores],
    policy: AlertPolicy,
) -> Result<(EvalReport, Vec<VideoDetail>), GtError> {
    let per = RTFM_FRAMES_PER_SNIPPET;
    let names: Vec<String> = videos.iter().map(|v| format!("{} ({}:{})", v.name, src.list.display(), v.line)).collect();
    let layout: Vec<GtVideo<'_>> =
        videos.iter().zip(&names).map(|(v, n)| GtVideo { name: n, snippets: v.scores.len() }).collect();
    let ranges = gt::split(src.gt, gt.len(), &layout, per)?;
    gt::check_values(src.gt, gt)?;
    let metric_err =
        |e: metrics::MetricError| GtError::Invalid { path: src.gt.display().to_string(), reason: e.to_string() };
    let frame_scores = metrics::expand_videos(videos.iter().map(|v| v.scores.as_slice()), per);
    let auc = metrics::roc_auc(gt, &frame_scores).map_err(metric_err)?;
    let pr = metrics::pr_curve(gt, &frame_scores).map_err(metric_err)?;

    let mut rows = Vec::with_capacity(videos.len());
    let mut details = Vec::with_capacity(videos.len());
    let mut detections = Vec::new();
    let (mut false_alerts, mut normal_frames_s) = (0usize, 0f64);
    for (v, range) in videos.iter().zip(ranges) {
        let g = &gt[range.clone()];
        let s = &frame_scores[range];
        let anomalous = g.iter().filter(|&&x| x > 0.5).count();
        let video_auc = if anomalous > 0 && anomalous < g.len() { metrics::roc_auc(g, s).ok() } else { None };
        let (events, alerts) = ttd::run_alerts(&v.name, &v.alert_scores, v.fps, per, policy);
        let starts = events.iter().filter(|e| e.event == EventKind::Start).count();
        if anomalous == 0 {
            false_alerts += starts;
            normal_frames_s += g.len() as f64 / v.fps;
        } else if let Some(d) = ttd::detection(&v.name, g, &alerts, v.fps) {
            detections.push(d);
        }
        rows.push(VideoRow {
            name: v.name.clone(),
            line: v.line,
            label: v.label,
            snippets: v.scores.len(),
            frames: g.len(),
            fps: v.fps,
            max_score: v.scores.iter().copied().fold(f32::MIN, f32::max),
            auc: video_auc,
            anomalous_frames: anomalous,
            alerts: starts,
            scores: v.scores.clone(),
            alert_scores: v.alert_scores.clone(),
        });
        details.push(VideoDetail { events, ground_truth: gt::frame_spans(g, v.fps) });
    }
    let ttd_s: Vec<f64> = detections.iter().filter_map(|d| d.ttd_s).collect();
    let ttd_f: Vec<f64> = detections.iter().filter_map(|d| d.ttd_frames.map(|f| f as f64)).collect();
    let normal_hours = normal_frames_s / 3600.0;
    let report = EvalReport {
        list: src.list.display().to_string(),
        gt: src.gt.display().to_string(),
        model: src.model.to_string(),
        videos: videos.len(),
        snippets: videos.iter().map(|v| v.scores.len()).sum(),
        frames: gt.len(),
        frames_per_snippet: per,
        auc,
        pr_auc: pr.auc(),
        average_precision: pr.average_precision(),
        per_video: rows,
        ttd: TtdSummary {
            median_s: ttd::median(&ttd_s),
            median_frames: ttd::median(&ttd_f),
            detected: ttd_s.len(),
            missed: detections.len() - ttd_s.len(),
            per_video: detections,
        },
        false_alerts_per_hour: (normal_hours > 0.0).then(|| false_alerts as f64 / normal_hours),
        false_alerts,
        normal_hours,
        alert_policy: policy,
        alert_scoring: src.alert_scoring.to_string(),
    };
    Ok((report, details))
}

impl EvalReport {
    /// The human-readable report.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{} videos, {} snippets, {} frames ({} per snippet); model {}",
            self.videos, self.snippets, self.frames, self.frames_per_snippet, self.model
        );
        let _ = writeln!(t, "frame-level ROC AUC      {:.4}", self.auc);
        let _ = writeln!(t, "PR AUC (trapezoidal)     {:.4}", self.pr_auc);
        let _ = writeln!(t, "average precision        {:.4}", self.average_precision);
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "{:<40} {:>8} {:>8} {:>9} {:>7} {:>6}  ttd",
            "video", "label", "snippets", "max score", "AUC", "alerts"
        );
        for r in &self.per_video {
            let auc = r.auc.map(|a| format!("{a:.4}")).unwrap_or_else(|| "-".into());
            let ttd = self
                .ttd
                .per_video
                .iter()
                .find(|d| d.name == r.name)
                .map(|d| match d.ttd_s {
                    Some(s) => format!("{s:.2} s ({} frames)", d.ttd_frames.unwrap_or(0)),
                    None => "missed".into(),
                })
                .unwrap_or_default();
            let label = match r.label {
                Label::Normal => "normal",
                Label::Abnormal => "abnormal",
            };
            let _ = writeln!(
                t,
                "{:<40} {:>8} {:>8} {:>9.4} {:>7} {:>6}  {}",
                r.name, label, r.snippets, r.max_score, auc, r.alerts, ttd
            );
        }
        let _ = writeln!(t);
        let median = self.ttd.median_s.map(|s| format!("{s:.2} s")).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            t,
            "time to detect: median {median} over {} detected events, {} missed (thresholds on {} / off {}, \
             alerts from {} scores)",
            self.ttd.detected, self.ttd.missed, self.alert_policy.on, self.alert_policy.off, self.alert_scoring
        );
        let fah = self.false_alerts_per_hour.map(|f| format!("{f:.2}")).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            t,
            "false alerts: {} on normal videos, {fah} per hour over {:.3} h",
            self.false_alerts, self.normal_hours
        );
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(name: &str, scores: Vec<f32>) -> VideoScores {
        VideoScores {
            name: name.into(),
            line: 1,
            label: Label::Abnormal,
            alert_scores: scores.clone(),
            scores,
            fps: 16.0,
        }
    }

    #[test]
    fn alerts_come_from_the_deployed_scores_and_curves_from_the_offline_ones() {
        // Offline scores never reach `on`; the deployed (window) scores do: one alert, and the
        // AUC is that of the offline scores.
        let mut v = video("a", vec![0.1, 0.2, 0.3]);
        v.label = Label::Normal;
        v.alert_scores = vec![0.1, 0.95, 0.95];
        let gt = vec![0.0; 48];
        let policy = AlertPolicy { on: 0.6, off: 0.4, min_duration_s: 0.8, hold_s: 0.0, cooldown_s: 0.0 };
        let src = Sources { list: Path::new("l.list"), gt: Path::new("gt.npy"), model: "m", alert_scoring: "window" };
        let mut abnormal = video("b", vec![0.9, 0.1]);
        abnormal.alert_scores = vec![0.0, 0.0];
        let mut gt2 = gt.clone();
        gt2.extend([1.0; 16].iter().chain([0.0; 16].iter()));
        let (r, _) = evaluate(src, &gt2, &[v, abnormal], policy).unwrap();
        assert_eq!(r.false_alerts, 1, "the normal video alerts on its deployed scores");
        assert_eq!(r.ttd.missed, 1, "the abnormal video's deployed scores never alert");
        assert!((r.auc - 1.0).abs() < 1e-12, "offline scores separate perfectly: {}", r.auc);
        assert_eq!(r.alert_scoring, "window");
    }

    #[test]
    fn report_matches_metrics_on_the_expanded_vectors() {
        let videos = vec![video("a", vec![0.1, 0.9, 0.8]), video("b", vec![0.2, 0.7])];
        let mut gt = vec![0.0; 80];
        gt[16..48].iter_mut().for_each(|v| *v = 1.0);
        let src = Sources { list: Path::new("l.list"), gt: Path::new("gt.npy"), model: "m", alert_scoring: "offline" };
        let (r, d) = evaluate(src, &gt, &videos, AlertPolicy::default()).unwrap();
        let s = metrics::expand_videos([vec![0.1f32, 0.9, 0.8], vec![0.2, 0.7]], 16);
        assert_eq!(r.auc, metrics::roc_auc(&gt, &s).unwrap());
        assert_eq!(r.per_video.len(), 2);
        assert!(r.per_video[0].auc.is_some() && r.per_video[1].auc.is_none());
        assert_eq!(r.ttd.per_video.len(), 1);
        // 2 snippets = 2 s of normal video at 16 fps; b alerts once (0.7 >= 0.6 for 1 s > 0.8 s).
        assert_eq!(r.false_alerts, 1);
        assert!((r.normal_hours - 2.0 / 3600.0).abs() < 1e-12);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].ground_truth, vec![(1.0, 3.0)]);
    }

    #[test]
    fn bad_gt_length_names_the_video() {
        let videos = vec![video("a", vec![0.1; 3]), video("b", vec![0.2; 2])];
        let src = Sources { list: Path::new("l.list"), gt: Path::new("gt.npy"), model: "m", alert_scoring: "offline" };
        let e = evaluate(src, &[0.0; 60], &videos, AlertPolicy::default()).unwrap_err().to_string();
        assert!(e.contains("gt.npy") && e.contains("60") && e.contains("80") && e.contains("l.list:1"), "{e}");
    }
}
