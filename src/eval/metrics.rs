//! Frame-level evaluation metrics: ROC curve and ROC AUC, precision-recall curve, PR AUC
//! (trapezoidal) and average precision (step-wise), with parity against scikit-learn.
//!
//! This module owns the numbers printed by evaluation: it is pure (no I/O, no threads, no
//! model code) and takes the ground-truth and score vectors already aligned frame by frame.
//! It must not know how scores were produced or where gt came from; [`expand_snippet_scores`]
//! and [`expand_videos`] implement the one protocol step that sits between them (each
//! per-snippet score repeated 16 times, videos concatenated in list order).
//!
//! Parity: every function reproduces the scikit-learn function named in its doc, including its
//! conventions (threshold order, the +inf first ROC threshold, the (recall 0, precision 1) end
//! point of the PR curve). True/false positive counts are exact integers (the cumulative sums
//! sklearn takes of 0/1 labels are exact in f64), the divisions are the same IEEE divisions, and
//! the final sums use NumPy's pairwise summation, so results match sklearn to the last bit in
//! practice and to 1e-9 by test (`tests/fixtures/metrics/cases.json`, written by
//! `scripts/make_metric_fixtures.py`). sklearn was used only to produce those expected values.

use std::cmp::Ordering;

/// Frames per snippet in the RTFM protocol: each snippet score stands for 16 frames.
pub const RTFM_FRAMES_PER_SNIPPET: usize = 16;

/// Why a metric could not be computed. Each variant names the offending input so an
/// evaluation run can say which frame or which count is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// Both vectors are empty.
    #[error("no frames to evaluate: ground truth and scores are both empty")]
    Empty,
    /// Ground truth and scores are not aligned.
    #[error(
        "length mismatch: {labels} ground-truth frames but {scores} scores \
         (expanded snippet scores must cover exactly the gt frames)"
    )]
    LengthMismatch { labels: usize, scores: usize },
    /// A ground-truth value other than 0.0 or 1.0.
    #[error(
        "invalid ground-truth value {value} at frame {index}: \
         gt must be 0.0 (normal) or 1.0 (anomalous)"
    )]
    InvalidLabel { index: usize, value: f64 },
    /// A NaN or infinite score: it cannot be ranked (sklearn rejects these too).
    #[error("non-finite score {value} at frame {index}: scores must be finite")]
    NonFiniteScore { index: usize, value: f64 },
    /// ROC needs both classes: with one, either TPR or FPR divides by zero (sklearn raises).
    #[error(
        "ROC is undefined with a single ground-truth class \
         ({positives} anomalous frames, {negatives} normal frames)"
    )]
    SingleClass { positives: usize, negatives: usize },
    /// Precision-recall needs at least one anomalous frame, or recall divides by zero.
    #[error(
        "precision-recall is undefined without anomalous frames \
         (all {negatives} frames are labelled normal)"
    )]
    NoPositives { negatives: usize },
}

/// Which ROC operating points to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RocPoints {
    /// One point per distinct score: sklearn `roc_curve(..., drop_intermediate=False)`.
    All,
    /// Only corners: sklearn `roc_curve(..., drop_intermediate=True)` (its default). The area
    /// is unchanged; plots get far fewer points on long videos.
    Corners,
}

/// A ROC curve in sklearn's order: the first point is (0, 0) at threshold `+inf`, then one
/// point per kept distinct score, thresholds decreasing, ending at (1, 1).
#[derive(Debug, Clone, PartialEq)]
pub struct RocCurve {
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    pub thresholds: Vec<f64>,
}

impl RocCurve {
    /// Trapezoidal area under the curve, as `sklearn.metrics.auc(fpr, tpr)`.
    pub fn auc(&self) -> f64 {
        trapezoid_area(&self.fpr, &self.tpr)
    }
}

/// A precision-recall curve in `sklearn.metrics.precision_recall_curve`'s order: thresholds
/// increasing (one per distinct score), recall decreasing, and a final point
/// (recall 0, precision 1) that has no threshold, so `thresholds.len() + 1 == recall.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrCurve {
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    pub thresholds: Vec<f64>,
}

impl PrCurve {
    /// Trapezoidal area, as `sklearn.metrics.auc(recall, precision)`: what RTFM reports for
    /// XD-Violence. Linear interpolation between PR points is optimistic; see
    /// [`PrCurve::average_precision`] for the step-wise number some successors print.
    pub fn auc(&self) -> f64 {
        trapezoid_area(&self.recall, &self.precision)
    }

    /// Step-wise average precision, `sum_n (R_n - R_{n-1}) P_n`, as
    /// `sklearn.metrics.average_precision_score`.
    pub fn average_precision(&self) -> f64 {
        // Recall runs from 1 down to 0 here, so each step (R[i+1] - R[i]) is <= 0 and is paired
        // with the precision where the step starts; negating the sum gives the area.
        let terms: Vec<f64> = self.recall.windows(2).zip(&self.precision).map(|(r, &p)| (r[1] - r[0]) * p).collect();
        let ap = -pairwise_sum(&terms);
        // Rounding can leave -0.0 (or a hair below zero) when every step is zero-weighted;
        // sklearn clips at 0 and so do we.
        if ap > 0.0 {
            ap
        } else {
            0.0
        }
    }
}

/// Frame-level ROC AUC, as `sklearn.metrics.roc_auc_score` (binary case).
///
/// Tied scores form one operating point, so a tie between classes contributes a trapezoid
/// (half credit), not an arbitrary order.
pub fn roc_auc(labels: &[f64], scores: &[f64]) -> Result<f64, MetricError> {
    // roc_auc_score integrates the corner-only curve; dropping collinear points does not change
    // the area but does change which terms are summed, so use the same points for bit parity.
    Ok(roc_curve_with(labels, scores, RocPoints::Corners)?.auc())
}

/// The full ROC curve, as `sklearn.metrics.roc_curve(..., drop_intermediate=False)`.
pub fn roc_curve(labels: &[f64], scores: &[f64]) -> Result<RocCurve, MetricError> {
    roc_curve_with(labels, scores, RocPoints::All)
}

/// The ROC curve with a choice of points (see [`RocPoints`]).
pub fn roc_curve_with(labels: &[f64], scores: &[f64], points: RocPoints) -> Result<RocCurve, MetricError> {
    let classes = validate(labels, scores)?;
    if classes.positives == 0 || classes.negatives == 0 {
        return Err(MetricError::SingleClass { positives: classes.positives, negatives: classes.negatives });
    }
    let counts = Counts::new(labels, scores);
    let keep: Vec<usize> = match points {
        RocPoints::All => (0..counts.len()).collect(),
        RocPoints::Corners => counts.corner_indices(),
    };
    // The totals are the last cumulative counts; as integers < 2^53 they are exact in f64.
    let total_pos = classes.positives as f64;
    let total_neg = classes.negatives as f64;
    let len = keep.len() + 1;
    let mut curve =
        RocCurve { fpr: Vec::with_capacity(len), tpr: Vec::with_capacity(len), thresholds: Vec::with_capacity(len) };
    // The (0, 0) start: a threshold above every score flags nothing.
    curve.fpr.push(0.0);
    curve.tpr.push(0.0);
    curve.thresholds.push(f64::INFINITY);
    for i in keep {
        curve.fpr.push(counts.fps[i] / total_neg);
        curve.tpr.push(counts.tps[i] / total_pos);
        curve.thresholds.push(counts.thresholds[i]);
    }
    Ok(curve)
}

/// The precision-recall curve, as `sklearn.metrics.precision_recall_curve`
/// (`drop_intermediate=False`, its default). Needs at least one anomalous frame; all-anomalous
/// gt is fine (precision is 1 everywhere).
pub fn pr_curve(labels: &[f64], scores: &[f64]) -> Result<PrCurve, MetricError> {
    let classes = validate(labels, scores)?;
    if classes.positives == 0 {
        return Err(MetricError::NoPositives { negatives: classes.negatives });
    }
    let counts = Counts::new(labels, scores);
    let total_pos = classes.positives as f64;
    let len = counts.len() + 1;
    let mut curve = PrCurve {
        precision: Vec::with_capacity(len),
        recall: Vec::with_capacity(len),
        thresholds: Vec::with_capacity(counts.len()),
    };
    // sklearn lists PR points from the lowest threshold (recall 1) up, the reverse of the
    // descending-score sweep that produced the counts.
    for i in (0..counts.len()).rev() {
        let (tp, fp) = (counts.tps[i], counts.fps[i]);
        // tp + fp >= 1: every distinct-score point flags at least the frames holding that score.
        curve.precision.push(tp / (tp + fp));
        curve.recall.push(tp / total_pos);
        curve.thresholds.push(counts.thresholds[i]);
    }
    // The end point above every threshold: nothing flagged, recall 0, precision 1 by convention.
    curve.precision.push(1.0);
    curve.recall.push(0.0);
    Ok(curve)
}

/// Trapezoidal area under the PR curve, as `sklearn.metrics.auc(recall, precision)` on
/// [`pr_curve`]: the XD-Violence number RTFM reports ("PR AUC", not average precision).
pub fn pr_auc(labels: &[f64], scores: &[f64]) -> Result<f64, MetricError> {
    Ok(pr_curve(labels, scores)?.auc())
}

/// Step-wise average precision, as `sklearn.metrics.average_precision_score` (binary case).
/// A different number from [`pr_auc`]; print it under its own name.
pub fn average_precision(labels: &[f64], scores: &[f64]) -> Result<f64, MetricError> {
    Ok(pr_curve(labels, scores)?.average_precision())
}

/// Repeat each snippet score `frames_per_snippet` times (the protocol uses
/// [`RTFM_FRAMES_PER_SNIPPET`]), giving one score per frame. f32 -> f64 is exact and
/// order-preserving, so metrics equal those sklearn computes on the float32 array.
pub fn expand_snippet_scores(scores: &[f32], frames_per_snippet: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(scores.len() * frames_per_snippet);
    extend_expanded(&mut out, scores, frames_per_snippet);
    out
}

/// Expand every video's snippet scores and concatenate them in the given (test-list) order:
/// the score vector that is compared against the concatenated gt.
pub fn expand_videos<I>(videos: I, frames_per_snippet: usize) -> Vec<f64>
where
    I: IntoIterator,
    I::Item: AsRef<[f32]>,
{
    let mut out = Vec::new();
    for video in videos {
        extend_expanded(&mut out, video.as_ref(), frames_per_snippet);
    }
    out
}

fn extend_expanded(out: &mut Vec<f64>, scores: &[f32], frames_per_snippet: usize) {
    out.reserve(scores.len() * frames_per_snippet);
    for &s in scores {
        out.extend(std::iter::repeat_n(f64::from(s), frames_per_snippet));
    }
}

struct ClassCounts {
    positives: usize,
    negatives: usize,
}

/// Check alignment, gt values and score finiteness once, before any sorting.
fn validate(labels: &[f64], scores: &[f64]) -> Result<ClassCounts, MetricError> {
    if labels.len() != scores.len() {
        return Err(MetricError::LengthMismatch { labels: labels.len(), scores: scores.len() });
    }
    if labels.is_empty() {
        return Err(MetricError::Empty);
    }
    let mut positives = 0;
    for (index, &value) in labels.iter().enumerate() {
        // Exact comparison on purpose: RTFM gt files hold 0 and 1, and anything else (0.5,
        // 255, NaN) means the wrong file or a broken conversion, not a soft label.
        if value == 1.0 {
            positives += 1;
        } else if value != 0.0 {
            return Err(MetricError::InvalidLabel { index, value });
        }
    }
    if let Some((index, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(MetricError::NonFiniteScore { index, value });
    }
    Ok(ClassCounts { positives, negatives: labels.len() - positives })
}

/// Cumulative true/false positive counts at each distinct score, scores descending: point `i`
/// flags every frame scoring >= `thresholds[i]`.
struct Counts {
    tps: Vec<f64>,
    fps: Vec<f64>,
    thresholds: Vec<f64>,
}

impl Counts {
    /// Inputs must have passed [`validate`] (same length, finite scores, 0/1 labels).
    fn new(labels: &[f64], scores: &[f64]) -> Counts {
        // `+ 0.0` turns -0.0 into 0.0, so the two zeros are one distinct score as they are for
        // NumPy's comparisons (total_cmp alone would order them apart).
        let mut frames: Vec<(f64, bool)> = scores.iter().zip(labels).map(|(&s, &l)| (s + 0.0, l == 1.0)).collect();
        // O(n log n); the order within a tie is irrelevant because only a tie's end is recorded.
        frames.sort_unstable_by(|a, b| descending(a.0, b.0));
        let mut counts = Counts { tps: Vec::new(), fps: Vec::new(), thresholds: Vec::new() };
        // Integer counts, converted when recorded: sklearn's f64 cumulative sums of 0/1 are
        // exact below 2^53, so these are the same values.
        let (mut tp, mut fp) = (0_u64, 0_u64);
        for (i, &(score, positive)) in frames.iter().enumerate() {
            if positive {
                tp += 1;
            } else {
                fp += 1;
            }
            let tie_continues = frames.get(i + 1).is_some_and(|next| next.0 == score);
            if !tie_continues {
                counts.tps.push(tp as f64);
                counts.fps.push(fp as f64);
                counts.thresholds.push(score);
            }
        }
        counts
    }

    fn len(&self) -> usize {
        self.thresholds.len()
    }

    /// sklearn's `drop_intermediate`: keep the first and last points and every point where
    /// the step in (fp, tp) counts changes; a point reached and left by the same step lies
    /// on a straight, evenly spaced run and adds nothing to the area.
    fn corner_indices(&self) -> Vec<usize> {
        let n = self.len();
        if n <= 2 {
            return (0..n).collect();
        }
        let mut keep = Vec::with_capacity(n);
        keep.push(0);
        for i in 1..n - 1 {
            let fp_bend = (self.fps[i + 1] - self.fps[i]) - (self.fps[i] - self.fps[i - 1]);
            let tp_bend = (self.tps[i + 1] - self.tps[i]) - (self.tps[i] - self.tps[i - 1]);
            if fp_bend != 0.0 || tp_bend != 0.0 {
                keep.push(i);
            }
        }
        keep.push(n - 1);
        keep
    }
}

fn descending(a: f64, b: f64) -> Ordering {
    b.total_cmp(&a)
}

/// Trapezoidal rule along a monotone `x`, sign fixed so the area is positive whichever way `x`
/// runs (ROC runs left to right, PR right to left), as `sklearn.metrics.auc` does.
fn trapezoid_area(x: &[f64], y: &[f64]) -> f64 {
    // Each term is written as dx * (y0 + y1) / 2.0 in that order, the grouping NumPy/SciPy use,
    // so each term rounds identically.
    let terms: Vec<f64> =
        x.windows(2).zip(y.windows(2)).map(|(xs, ys)| (xs[1] - xs[0]) * (ys[1] + ys[0]) / 2.0).collect();
    let area = pairwise_sum(&terms);
    match (x.first(), x.last()) {
        (Some(first), Some(last)) if first > last => -area,
        _ => area,
    }
}

/// NumPy's summation order for a contiguous f64 array (`np.sum`): blocks of up to 128 summed
/// with eight interleaved accumulators, larger arrays split in halves (at a multiple of 8).
/// Besides matching sklearn's sums bit for bit, it keeps the error at O(log n) ulps on the
/// 1.1 M-frame UCF-Crime curve where a running sum would drift.
fn pairwise_sum(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        return a.iter().fold(0.0, |acc, &v| acc + v);
    }
    if n <= BLOCK {
        let mut r = [0.0_f64; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (acc, &v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[whole..] {
            res += v;
        }
        return res;
    }
    let mut half = n / 2;
    half -= half % 8;
    pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    const TOL: f64 = 1e-9;

    #[derive(Deserialize)]
    struct Fixture {
        sklearn_version: String,
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        name: String,
        labels: Vec<f64>,
        scores: Option<Vec<f64>>,
        snippets: Option<Snippets>,
        bits: Bits,
        roc: Option<JsonRoc>,
        roc_dropped: Option<JsonRoc>,
        pr: Option<JsonPr>,
    }

    /// Expected scalars as IEEE-754 bit patterns: exact, whatever the JSON float parser does
    /// with 17-digit decimals. ROC entries are absent where sklearn raises (one class).
    #[derive(Deserialize)]
    struct Bits {
        roc_auc_score: Option<u64>,
        roc_auc_trapz: Option<u64>,
        pr_auc: u64,
        average_precision: u64,
    }

    #[derive(Deserialize)]
    struct Snippets {
        frames_per_snippet: usize,
        videos: Vec<Vec<f32>>,
    }

    /// JSON has no infinity: the generator writes sklearn's +inf first threshold as null.
    #[derive(Deserialize)]
    struct JsonRoc {
        fpr: Vec<f64>,
        tpr: Vec<f64>,
        thresholds: Vec<Option<f64>>,
    }

    #[derive(Deserialize)]
    struct JsonPr {
        precision: Vec<f64>,
        recall: Vec<f64>,
        thresholds: Vec<f64>,
    }

    fn fixture() -> Fixture {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/metrics/cases.json");
        let text = std::fs::read_to_string(path).expect("fixture exists (scripts/make_metric_fixtures.py)");
        serde_json::from_str(&text).expect("fixture is valid JSON")
    }

    impl Case {
        fn scores(&self) -> Vec<f64> {
            match (&self.scores, &self.snippets) {
                (Some(s), _) => s.clone(),
                (None, Some(sn)) => expand_videos(&sn.videos, sn.frames_per_snippet),
                (None, None) => panic!("case {} has no scores", self.name),
            }
        }
    }

    fn close(what: &str, case: &str, got: f64, want: f64) {
        assert!(
            (got - want).abs() <= TOL || (got.is_infinite() && got == want),
            "{case}: {what}: got {got:e}, sklearn {want:e} (diff {:e})",
            got - want
        );
    }

    fn close_vec(what: &str, case: &str, got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{case}: {what}: length");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            close(&format!("{what}[{i}]"), case, g, w);
        }
    }

    fn check_roc(case: &str, what: &str, got: &RocCurve, want: &JsonRoc) {
        close_vec(&format!("{what}.fpr"), case, &got.fpr, &want.fpr);
        close_vec(&format!("{what}.tpr"), case, &got.tpr, &want.tpr);
        let thresholds: Vec<f64> = want.thresholds.iter().map(|t| t.unwrap_or(f64::INFINITY)).collect();
        close_vec(&format!("{what}.thresholds"), case, &got.thresholds, &thresholds);
    }

    /// Compare one scalar: within 1e-9 (the contract), and count exact bit agreement.
    struct Scalars {
        compared: usize,
        bit_exact: usize,
    }

    impl Scalars {
        fn check(&mut self, case: &str, what: &str, got: f64, want: f64) {
            close(what, case, got, want);
            self.compared += 1;
            self.bit_exact += usize::from(got.to_bits() == want.to_bits());
        }
    }

    #[test]
    fn matches_sklearn_on_every_fixture_case() {
        let fx = fixture();
        assert!(fx.cases.len() >= 12, "fixture has {} cases", fx.cases.len());
        let mut scalars = Scalars { compared: 0, bit_exact: 0 };
        for c in &fx.cases {
            let name = c.name.as_str();
            let scores = c.scores();
            assert_eq!(scores.len(), c.labels.len(), "{name}: expanded scores cover gt");

            match c.bits.roc_auc_score {
                Some(want) => {
                    let got = roc_auc(&c.labels, &scores).expect("two classes");
                    scalars.check(name, "roc_auc_score", got, f64::from_bits(want));
                    let full = roc_curve(&c.labels, &scores).expect("two classes");
                    let want = c.bits.roc_auc_trapz.expect("present with roc_auc_score");
                    scalars.check(name, "auc(roc_curve)", full.auc(), f64::from_bits(want));
                    if let Some(want) = &c.roc {
                        check_roc(name, "roc", &full, want);
                    }
                    if let Some(want) = &c.roc_dropped {
                        let corners = roc_curve_with(&c.labels, &scores, RocPoints::Corners).expect("two classes");
                        check_roc(name, "roc_dropped", &corners, want);
                    }
                }
                None => assert!(
                    matches!(roc_auc(&c.labels, &scores), Err(MetricError::SingleClass { .. })),
                    "{name}: sklearn raises, so must we"
                ),
            }

            let pr = pr_curve(&c.labels, &scores).expect("has positives");
            if let Some(want) = &c.pr {
                close_vec("precision", name, &pr.precision, &want.precision);
                close_vec("recall", name, &pr.recall, &want.recall);
                close_vec("pr thresholds", name, &pr.thresholds, &want.thresholds);
            }
            let got = pr_auc(&c.labels, &scores).expect("has positives");
            scalars.check(name, "auc(recall, precision)", got, f64::from_bits(c.bits.pr_auc));
            let got = average_precision(&c.labels, &scores).expect("has positives");
            let want = f64::from_bits(c.bits.average_precision);
            scalars.check(name, "average_precision_score", got, want);
        }
        // Not asserted (1e-9 is the contract), but worth seeing when sklearn or NumPy change.
        eprintln!(
            "sklearn {}: {}/{} scalar metrics bit-identical",
            fx.sklearn_version, scalars.bit_exact, scalars.compared
        );
    }

    #[test]
    fn rejects_length_mismatch() {
        assert_eq!(roc_auc(&[0.0, 1.0], &[0.1]), Err(MetricError::LengthMismatch { labels: 2, scores: 1 }));
    }

    #[test]
    fn rejects_empty_input() {
        assert_eq!(roc_auc(&[], &[]), Err(MetricError::Empty));
        assert_eq!(pr_auc(&[], &[]), Err(MetricError::Empty));
    }

    #[test]
    fn rejects_labels_other_than_zero_and_one() {
        for bad in [0.5, 2.0, -1.0, 255.0] {
            assert_eq!(
                roc_auc(&[0.0, 1.0, bad], &[0.1, 0.2, 0.3]),
                Err(MetricError::InvalidLabel { index: 2, value: bad })
            );
        }
        assert!(matches!(pr_curve(&[f64::NAN, 1.0], &[0.1, 0.2]), Err(MetricError::InvalidLabel { index: 0, .. })));
    }

    #[test]
    fn rejects_non_finite_scores() {
        assert!(matches!(
            roc_auc(&[0.0, 1.0, 1.0], &[0.1, f64::NAN, 0.3]),
            Err(MetricError::NonFiniteScore { index: 1, .. })
        ));
        assert_eq!(
            average_precision(&[0.0, 1.0], &[0.1, f64::INFINITY]),
            Err(MetricError::NonFiniteScore { index: 1, value: f64::INFINITY })
        );
    }

    #[test]
    fn roc_rejects_a_single_class() {
        assert_eq!(
            roc_auc(&[0.0, 0.0, 0.0], &[0.1, 0.2, 0.3]),
            Err(MetricError::SingleClass { positives: 0, negatives: 3 })
        );
        assert_eq!(roc_curve(&[1.0, 1.0], &[0.1, 0.2]), Err(MetricError::SingleClass { positives: 2, negatives: 0 }));
    }

    #[test]
    fn pr_rejects_no_positives_but_accepts_no_negatives() {
        assert_eq!(pr_auc(&[0.0, 0.0], &[0.1, 0.2]), Err(MetricError::NoPositives { negatives: 2 }));
        assert_eq!(average_precision(&[1.0, 1.0], &[0.1, 0.2]), Ok(1.0));
    }

    #[test]
    fn error_messages_name_the_input() {
        let msg = MetricError::InvalidLabel { index: 7, value: 0.5 }.to_string();
        assert!(msg.contains("frame 7") && msg.contains("0.5"), "{msg}");
        let msg = MetricError::LengthMismatch { labels: 160, scores: 144 }.to_string();
        assert!(msg.contains("160") && msg.contains("144"), "{msg}");
    }

    #[test]
    fn negative_zero_and_zero_are_one_threshold() {
        let curve = roc_curve(&[0.0, 1.0], &[-0.0, 0.0]).expect("two classes");
        assert_eq!(curve.thresholds.len(), 2, "{curve:?}");
        assert_eq!(roc_auc(&[0.0, 1.0], &[-0.0, 0.0]), Ok(0.5));
    }

    #[test]
    fn expand_repeats_each_snippet_and_concatenates_in_order() {
        assert_eq!(expand_snippet_scores(&[0.5, 0.25], 3), vec![0.5, 0.5, 0.5, 0.25, 0.25, 0.25]);
        let frames = expand_videos([vec![1.0_f32], vec![], vec![0.0, 0.5]], RTFM_FRAMES_PER_SNIPPET);
        assert_eq!(frames.len(), 3 * 16);
        assert!(frames[..16].iter().all(|&v| v == 1.0));
        assert!(frames[16..32].iter().all(|&v| v == 0.0));
        assert!(frames[32..].iter().all(|&v| v == 0.5));
        assert!(expand_snippet_scores(&[0.3], 0).is_empty());
    }

    /// Independent definition: AUC is the Mann-Whitney U statistic over n_pos * n_neg, with
    /// tied scores given their average rank (a tie between classes counts one half).
    fn mann_whitney_auc(labels: &[f64], scores: &[f64]) -> f64 {
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let mut rank_sum_pos = 0.0_f64;
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
                j += 1;
            }
            // Ranks i+1 ..= j+1 share their mean.
            let mean_rank = (i + j + 2) as f64 / 2.0;
            let pos_in_tie = idx[i..=j].iter().filter(|&&k| labels[k] == 1.0).count();
            rank_sum_pos += mean_rank * pos_in_tie as f64;
            i = j + 1;
        }
        let n_pos = labels.iter().filter(|&&l| l == 1.0).count() as f64;
        let n_neg = labels.len() as f64 - n_pos;
        (rank_sum_pos - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
    }

    /// A fixed LCG (Numerical Recipes constants) so the large case needs no stored input.
    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn ucf_crime_sized_input_agrees_with_mann_whitney() {
        // ~1.1 M frames like the UCF-Crime test gt, scores quantised to 1/1000 so there are
        // heavy ties, ~8% anomalous frames as in the dataset.
        let n = 1_100_000;
        let mut seed = 42;
        let mut labels = Vec::with_capacity(n);
        let mut scores = Vec::with_capacity(n);
        for _ in 0..n {
            let anomalous = lcg(&mut seed) < 0.08;
            labels.push(if anomalous { 1.0 } else { 0.0 });
            let s = lcg(&mut seed) * 0.8 + if anomalous { 0.2 * lcg(&mut seed) } else { 0.0 };
            scores.push((s * 1000.0).round() / 1000.0);
        }
        let auc = roc_auc(&labels, &scores).expect("two classes");
        let reference = mann_whitney_auc(&labels, &scores);
        assert!((auc - reference).abs() < 1e-9, "{auc} vs {reference}");
        assert!((roc_curve(&labels, &scores).expect("two classes").auc() - auc).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn roc_auc_equals_mann_whitney_with_ties(
            data in proptest::collection::vec((0u8..2, 0u8..12), 2..200)
        ) {
            let labels: Vec<f64> = data.iter().map(|&(l, _)| f64::from(l)).collect();
            let scores: Vec<f64> = data.iter().map(|&(_, s)| f64::from(s) / 11.0).collect();
            let pos = labels.iter().filter(|&&l| l == 1.0).count();
            prop_assume!(pos > 0 && pos < labels.len());
            let auc = roc_auc(&labels, &scores).expect("two classes");
            prop_assert!((auc - mann_whitney_auc(&labels, &scores)).abs() < 1e-12);
            // Corner-dropping keeps the area.
            let full = roc_curve(&labels, &scores).expect("two classes").auc();
            prop_assert!((auc - full).abs() < 1e-12);
            // Reversing the scores mirrors the curve.
            let neg: Vec<f64> = scores.iter().map(|s| -s).collect();
            let flipped = roc_auc(&labels, &neg).expect("two classes");
            prop_assert!((auc + flipped - 1.0).abs() < 1e-12);
            // Step-wise AP never exceeds 1 and PR curve ends at (0, 1).
            let pr = pr_curve(&labels, &scores).expect("has positives");
            prop_assert_eq!(pr.recall.last().copied(), Some(0.0));
            prop_assert_eq!(pr.precision.last().copied(), Some(1.0));
            prop_assert!(pr.average_precision() <= 1.0 + 1e-12);
        }
    }
}
