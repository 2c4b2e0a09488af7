//! RTFM training (`vigil train`): weakly supervised, from feature files labelled only normal or
//! abnormal per video, as the reference code trains (RTFM.md "Training"). This module owns the
//! training loop, validation-based model selection and the alert thresholds derived from
//! validation data; the objective is in [`loss`], the data rules in [`data`], the optimiser in
//! [`optim`]. It reads no files except through [`data::load_features`] and writes none: the
//! `train` command does the wiring (lists, model directory, log file, progress bar).
//!
//! Reproducibility: one seed fixes the initial weights, the batches, the head's dropout masks
//! and the top-k masks (all drawn from [`rng::Rng`], never from candle's unseeded generator), so
//! the same seed on the same machine gives the same weights bit for bit.

pub mod data;
pub mod loss;
pub mod optim;
pub mod rng;

use crate::eval::metrics::{expand_videos, roc_auc};
use crate::lists::Label;
use crate::rtfm::{DropoutMasks, PadMask, Rtfm, RtfmWidths, DROPOUT};
use candle_core::{Device, Tensor};
use data::{Sampler, TrainSet, SEGMENTS};
use loss::{LossConfig, LossValues};
use ndarray::Array3;
use optim::{Adam, AdamConfig, WeightAverage};
use rng::Rng;
use std::path::PathBuf;
use std::time::Instant;

/// Frames per snippet in the RTFM ground-truth layout.
pub const FRAMES_PER_SNIPPET: usize = 16;

/// Errors of training inputs not covered by the list and `.npy` errors.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}:{line}: feature file {} has {got} crops, but the first file has {expected}", list.display(), path.display())]
    Crops { list: PathBuf, line: usize, path: PathBuf, got: usize, expected: usize },
    #[error("features have {got} crops but the base model {model} expects {expected} (features.crops)")]
    ModelCrops { model: PathBuf, got: usize, expected: usize },
}

/// Everything the loop needs besides data.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainOptions {
    pub iterations: usize,
    /// Videos per class per step; `None`: min(32, normal videos, abnormal videos).
    pub batch: Option<usize>,
    pub seed: u64,
    pub loss: LossConfig,
    pub adam: AdamConfig,
    /// Evaluate (and log) every this many iterations, and after the last one.
    pub eval_every: usize,
    /// Decay of an exponential moving average of the weights; when set, validation, model
    /// selection and the saved model use the average instead of the raw weights.
    pub ema: Option<f64>,
    /// How videos shorter than 32 snippets enter a batch (the training set was built with it).
    pub short_videos: data::ShortVideos,
}

/// Validation videos (whole, not resampled) and how to judge them.
#[derive(Debug, Clone)]
pub struct Validation {
    /// `[T, crops, D]` per video, in list order.
    pub videos: Vec<Array3<f32>>,
    pub labels: Vec<Label>,
    /// Frame-level ground truth (RTFM layout) when available: frame-level ROC AUC; otherwise the
    /// video-level ROC AUC of each video's maximum snippet score.
    pub gt: Option<Vec<f64>>,
}

/// Which metric the validation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValMetric {
    FrameAuc,
    VideoAuc,
}

impl Validation {
    pub fn metric_kind(&self) -> ValMetric {
        if self.gt.is_some() {
            ValMetric::FrameAuc
        } else {
            ValMetric::VideoAuc
        }
    }

    /// Scores every validation video whole (offline, as the evaluation protocol scores).
    pub fn score(&self, net: &Rtfm) -> anyhow::Result<Vec<Vec<f32>>> {
        self.videos.iter().map(|v| Ok(net.score(v.view())?.scores)).collect()
    }

    /// The validation metric of these per-video scores.
    pub fn metric(&self, scores: &[Vec<f32>]) -> anyhow::Result<f64> {
        match &self.gt {
            Some(gt) => {
                let frames = expand_videos(scores, FRAMES_PER_SNIPPET);
                if frames.len() != gt.len() {
                    return Err(crate::error::GtError::Invalid {
                        path: "--val-gt".into(),
                        reason: format!(
                            "has {} frames but the validation videos have {} (snippets x {FRAMES_PER_SNIPPET})",
                            gt.len(),
                            frames.len()
                        ),
                    }
                    .into());
                }
                Ok(roc_auc(gt, &frames)?)
            }
            None => {
                let labels: Vec<f64> = self.labels.iter().map(|l| f64::from(u8::from(*l == Label::Abnormal))).collect();
                let max: Vec<f64> =
                    scores.iter().map(|s| f64::from(s.iter().copied().fold(f32::MIN, f32::max))).collect();
                Ok(roc_auc(&labels, &max)?)
            }
        }
    }

    /// Indices of the videos known to be normal: from the gt (no anomalous frame) when given,
    /// else from the labels.
    pub fn normal_videos(&self) -> Vec<usize> {
        match &self.gt {
            Some(gt) => {
                let mut start = 0;
                let mut out = Vec::new();
                for (i, v) in self.videos.iter().enumerate() {
                    let end = (start + v.dim().0 * FRAMES_PER_SNIPPET).min(gt.len());
                    if gt[start..end].iter().all(|g| *g == 0.0) {
                        out.push(i);
                    }
                    start = end;
                }
                out
            }
            None => (0..self.labels.len()).filter(|&i| self.labels[i] == Label::Normal).collect(),
        }
    }
}

/// One line of `train_log.jsonl`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogRecord {
    pub iteration: usize,
    /// Loss terms averaged over the iterations since the previous record.
    pub loss: LossValues,
    /// Validation metric at this iteration (absent without a validation list).
    pub val_metric: Option<f64>,
    pub elapsed_s: f64,
}

/// What the loop reports as it goes.
pub enum Event<'a> {
    Step(usize),
    Eval(&'a LogRecord),
}

/// The result of a run.
pub struct TrainOutcome {
    /// The selected weights (best validation metric, or the last ones without validation).
    pub net: Rtfm,
    /// Iteration of the selected weights.
    pub best_iteration: usize,
    pub best_metric: Option<f64>,
    pub metric_kind: Option<ValMetric>,
    /// Whole-video validation scores of the selected weights.
    pub val_scores: Option<Vec<Vec<f32>>>,
    pub log: Vec<LogRecord>,
    pub batch: usize,
    pub seconds: f64,
    pub iterations_per_s: f64,
}

/// The batch size a run uses.
pub fn batch_size(set: &TrainSet, requested: Option<usize>) -> usize {
    requested.unwrap_or(32).min(set.normal.len()).min(set.abnormal.len()).max(1)
}

/// Trains a fresh network at `widths` on `set`. `on_event` is told about every step and every
/// evaluation; an error it returns stops training.
pub fn train(
    widths: &RtfmWidths,
    set: &TrainSet,
    val: Option<&Validation>,
    opts: &TrainOptions,
    on_event: &mut dyn FnMut(Event) -> anyhow::Result<()>,
) -> anyhow::Result<TrainOutcome> {
    if set.normal.is_empty() || set.abnormal.is_empty() {
        anyhow::bail!("training needs normal and abnormal videos");
    }
    let started = Instant::now();
    let (net, varmap) = Rtfm::trainable(widths, opts.seed)?;
    let params: Vec<_> = {
        let data = varmap.data().lock().map_err(|_| anyhow::anyhow!("VarMap lock poisoned"))?;
        let mut named: Vec<_> =
            data.iter().filter(|(n, _)| !n.contains(".running_")).map(|(n, v)| (n.clone(), v.clone())).collect();
        // HashMap order is random: sort so every run updates in the same order.
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named.into_iter().map(|(_, v)| v).collect()
    };
    let mut adam = Adam::new(params, opts.adam)?;
    let b = batch_size(set, opts.batch);
    let crops = set.crops;
    let mut batch_rng = Rng::derive(opts.seed, 1);
    let mut drop_rng = Rng::derive(opts.seed, 2);
    let mut select_rng = Rng::derive(opts.seed, 3);
    let mut normal = Sampler::new(set.normal.len(), b);
    let mut abnormal = Sampler::new(set.abnormal.len(), b);
    let n_rows = 2 * b * crops;
    let [h1, h2] = widths.head;

    let mut log = Vec::new();
    let mut acc = LossValues::default();
    let mut acc_n = 0usize;
    let mut best: Option<Best> = None;
    let mut average = opts.ema.map(|decay| WeightAverage::new(decay, net.named_tensors())).transpose()?;
    let eval_every = opts.eval_every.max(1);
    for it in 1..=opts.iterations {
        let nb = normal.next(&mut batch_rng).to_vec();
        let ab = abnormal.next(&mut batch_rng);
        let (buf, lens) = data::assemble(set, &nb, ab);
        let x = Tensor::from_vec(buf, (2 * b, crops, SEGMENTS, set.dim), &Device::Cpu)?;
        // A padded batch: the mask has one row per video and crop.
        let pad = if set.padded {
            let rows: Vec<usize> = lens.iter().flat_map(|&l| std::iter::repeat_n(l, crops)).collect();
            Some(PadMask::new(&rows, SEGMENTS)?)
        } else {
            None
        };
        let masks = DropoutMasks {
            fc1: Tensor::from_vec(
                drop_rng.dropout_ones(n_rows * SEGMENTS * h1, DROPOUT),
                (n_rows, SEGMENTS, h1),
                &Device::Cpu,
            )?,
            fc2: Tensor::from_vec(
                drop_rng.dropout_ones(n_rows * SEGMENTS * h2, DROPOUT),
                (n_rows, SEGMENTS, h2),
                &Device::Cpu,
            )?,
        };
        let (out, stats) = net.forward_train(&x, &masks, pad.as_ref())?;
        let lens = pad.as_ref().map(|_| lens.as_slice());
        let terms =
            loss::rtfm_loss(&opts.loss, &out.scores, &out.magnitudes, &out.features, crops, lens, &mut select_rng)?;
        if !terms.values.total.is_finite() {
            anyhow::bail!("the loss became {} at iteration {it}", terms.values.total);
        }
        let grads = terms.total.backward()?;
        adam.step(&grads)?;
        optim::update_running_stats(&varmap, &stats)?;
        if let Some(avg) = average.as_mut() {
            avg.update(net.named_tensors())?;
        }
        acc.add(&terms.values);
        acc_n += 1;
        on_event(Event::Step(it))?;

        if it % eval_every == 0 || it == opts.iterations {
            let mut val_metric = None;
            if let Some(v) = val {
                let (scores, tensors) = match &average {
                    Some(avg) => {
                        let tensors = avg.tensors()?;
                        // Tensors are shared handles: the network reads the same fresh copies.
                        (v.score(&Rtfm::from_tensors(widths, tensors.clone())?)?, tensors)
                    }
                    None => (v.score(&net)?, snapshot(&net)?),
                };
                let m = v.metric(&scores)?;
                val_metric = Some(m);
                if best.as_ref().is_none_or(|b| m > b.metric) {
                    best = Some(Best { metric: m, iteration: it, tensors, scores });
                }
            }
            let rec = LogRecord {
                iteration: it,
                loss: acc.scale(1.0 / acc_n as f32),
                val_metric,
                elapsed_s: started.elapsed().as_secs_f64(),
            };
            on_event(Event::Eval(&rec))?;
            log.push(rec);
            acc = LossValues::default();
            acc_n = 0;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (net, best_iteration, best_metric, val_scores) = match best {
        Some(b) => (Rtfm::from_tensors(widths, b.tensors)?, b.iteration, Some(b.metric), Some(b.scores)),
        None => {
            let tensors = match &average {
                Some(avg) => avg.tensors()?,
                None => snapshot(&net)?,
            };
            let last = Rtfm::from_tensors(widths, tensors)?;
            let scores = val.map(|v| v.score(&last)).transpose()?;
            (last, opts.iterations, None, scores)
        }
    };
    Ok(TrainOutcome {
        net,
        best_iteration,
        best_metric,
        metric_kind: val.map(Validation::metric_kind),
        val_scores,
        log,
        batch: b,
        seconds,
        iterations_per_s: opts.iterations as f64 / seconds.max(1e-9),
    })
}

/// The best evaluation so far: its metric, iteration, weights and validation scores.
struct Best {
    metric: f64,
    iteration: usize,
    tensors: Vec<(String, Tensor)>,
    scores: Vec<Vec<f32>>,
}

/// Deep copies of every tensor (the variables keep changing).
fn snapshot(net: &Rtfm) -> candle_core::Result<Vec<(String, Tensor)>> {
    net.named_tensors().iter().map(|(n, t)| Ok((n.clone(), t.copy()?))).collect()
}

/// Alert thresholds from the snippet scores of normal validation videos: `on` sits just above
/// the 99.9th percentile of normal scores (plus 0.02), so on data like the validation set almost
/// no normal snippet can start an alert; `off` is the 95th percentile, where an alert ends once
/// the score is back among typical normal scores, kept at least 0.05 below `on` for hysteresis.
/// Clamped to [0.05, 0.99]. `None` without normal validation snippets.
pub fn alert_thresholds(normal_scores: &[&[f32]]) -> Option<(f32, f32)> {
    let mut all: Vec<f32> = normal_scores.iter().flat_map(|s| s.iter().copied()).collect();
    if all.is_empty() {
        return None;
    }
    all.sort_by(f32::total_cmp);
    let q = |p: f64| all[((p * (all.len() - 1) as f64).ceil() as usize).min(all.len() - 1)];
    let on = (q(0.999) + 0.02).clamp(0.05, 0.99);
    let off = q(0.95).min(on - 0.05).max(0.0);
    Some((on, off))
}

/// Where `on` leaves the validation videos (deployed scores): how many normal and other videos
/// reach it anywhere, and the highest per-video maxima of the normal ones, which show whether
/// `on` rests on one outlier video. "Reaching `on`" ignores the minimum duration, so it bounds
/// the alerts from above.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OperatingPoint {
    pub normal_videos: usize,
    pub normal_videos_reaching_on: usize,
    /// At most three, highest first.
    pub highest_normal_video_maxima: Vec<f32>,
    pub abnormal_videos: usize,
    pub abnormal_videos_reaching_on: usize,
}

impl OperatingPoint {
    pub fn new(normal: &[&[f32]], other: &[&[f32]], on: f32) -> Self {
        let max = |s: &[f32]| s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let reaching = |v: &[&[f32]]| v.iter().filter(|s| max(s) >= on).count();
        let mut maxima: Vec<f32> = normal.iter().map(|s| max(s)).filter(|m| m.is_finite()).collect();
        maxima.sort_by(|a, b| b.total_cmp(a));
        maxima.truncate(3);
        OperatingPoint {
            normal_videos: normal.len(),
            normal_videos_reaching_on: reaching(normal),
            highest_normal_video_maxima: maxima,
            abnormal_videos: other.len(),
            abnormal_videos_reaching_on: reaching(other),
        }
    }

    /// "`on` is reached by 0 of 20 normal and 8 of 20 abnormal validation videos (highest
    /// normal video maxima 0.747, 0.595, 0.501)".
    pub fn sentence(&self) -> String {
        let maxima: Vec<String> = self.highest_normal_video_maxima.iter().map(|m| format!("{m:.3}")).collect();
        format!(
            "`on` is reached by {} of {} normal and {} of {} abnormal validation videos (highest normal video maxima {})",
            self.normal_videos_reaching_on,
            self.normal_videos,
            self.abnormal_videos_reaching_on,
            self.abnormal_videos,
            if maxima.is_empty() { "none".to_string() } else { maxima.join(", ") }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operating_point_counts_videos_reaching_on() {
        let (n1, n2, n3) = ([0.1f32, 0.2].as_slice(), [0.5f32, 0.3].as_slice(), [0.7f32].as_slice());
        let (a1, a2) = ([0.2f32, 0.9].as_slice(), [0.4f32].as_slice());
        let p = serde_json::to_value(OperatingPoint::new(&[n1, n2, n3], &[a1, a2], 0.6)).unwrap();
        assert_eq!(p["normal_videos"], 3);
        assert_eq!(p["normal_videos_reaching_on"], 1);
        assert_eq!(p["abnormal_videos"], 2);
        assert_eq!(p["abnormal_videos_reaching_on"], 1);
        let m: Vec<f64> =
            p["highest_normal_video_maxima"].as_array().unwrap().iter().filter_map(|v| v.as_f64()).collect();
        assert_eq!(m.len(), 3);
        assert!((m[0] - 0.7).abs() < 1e-6 && (m[1] - 0.5).abs() < 1e-6 && (m[2] - 0.2).abs() < 1e-6, "{m:?}");
        // An empty video has no maximum and is not counted as reaching on.
        let p = serde_json::to_value(OperatingPoint::new(&[&[]], &[], 0.1)).unwrap();
        assert_eq!(p["normal_videos_reaching_on"], 0);
        assert_eq!(p["highest_normal_video_maxima"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn thresholds_sit_above_normal_scores() {
        let a: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0 * 0.3).collect();
        let (on, off) = alert_thresholds(&[&a]).unwrap();
        assert!(on > 0.3 && on < 0.33, "{on}");
        assert!(off > 0.25 && off <= on - 0.05, "{off}");
        let (on, off) = alert_thresholds(&[&[0.995f32]]).unwrap();
        assert_eq!(on, 0.99);
        assert!((off - 0.94).abs() < 1e-6);
        assert!(alert_thresholds(&[]).is_none());
    }

    fn tiny_set(seed: u64) -> TrainSet {
        let mut rng = Rng::new(seed);
        let videos: Vec<(Array3<f32>, Label)> = (0..8)
            .map(|i| {
                let label = if i < 4 { Label::Abnormal } else { Label::Normal };
                let t = 10 + rng.below(30);
                let scale = if label == Label::Abnormal { 3.0 } else { 1.0 };
                let f = Array3::from_shape_simple_fn((t, 1, 8), || rng.next_f32() * scale);
                (f, label)
            })
            .collect();
        TrainSet::from_videos(&videos, data::ShortVideos::Stretch)
    }

    #[test]
    fn running_statistics_are_learned_and_saved() {
        // Bug guard: the forward pass does not update BatchNorm's running statistics, so a
        // trainer that forgot to would save the initial mean 0 / variance 1.
        let widths = RtfmWidths { feature_dim: 8, temporal_width: 2, nonlocal_width: 2, head: [4, 3] };
        let opts = TrainOptions {
            iterations: 5,
            batch: Some(2),
            seed: 1,
            loss: LossConfig::reference(10.0),
            adam: AdamConfig::default(),
            eval_every: 5,
            ema: None,
            short_videos: data::ShortVideos::Stretch,
        };
        let out = train(&widths, &tiny_set(3), None, &opts, &mut |_| Ok(())).unwrap();
        for (name, t) in out.net.named_tensors() {
            if name.contains("running_") {
                let v = t.to_vec1::<f32>().unwrap();
                let init = if name.ends_with("running_var") { 1.0 } else { 0.0 };
                assert!(v.iter().any(|x| (x - init).abs() > 1e-3), "{name} never updated: {v:?}");
            }
        }
        // 5 steps with momentum 0.1 move a statistic 1 - 0.9^5 = 41% of the way to the batch's.
        assert_eq!(out.best_iteration, 5);
        assert!(out.best_metric.is_none());
    }

    #[test]
    fn trains_on_multi_crop_features_with_validation() {
        // Ten-crop layout (as published I3D features), at a tiny width.
        let widths = RtfmWidths { feature_dim: 8, temporal_width: 2, nonlocal_width: 2, head: [4, 3] };
        let mut rng = Rng::new(5);
        let mut make = |label: Label| {
            let t = 3 + rng.below(40);
            let scale = if label == Label::Abnormal { 3.0 } else { 1.0 };
            (Array3::from_shape_simple_fn((t, 10, 8), || rng.next_f32() * scale), label)
        };
        let videos: Vec<_> = (0..6).map(|i| make(if i % 2 == 0 { Label::Abnormal } else { Label::Normal })).collect();
        let set = TrainSet::from_videos(&videos, data::ShortVideos::Stretch);
        assert_eq!((set.crops, set.dim, set.normal.len()), (10, 8, 3));
        assert_eq!(set.normal.data[0].len(), 10 * SEGMENTS * 8);
        let val = Validation {
            videos: videos.iter().map(|(v, _)| v.clone()).collect(),
            labels: videos.iter().map(|(_, l)| *l).collect(),
            gt: None,
        };
        let opts = TrainOptions {
            iterations: 4,
            batch: None,
            seed: 2,
            loss: LossConfig::reference(10.0),
            adam: AdamConfig::default(),
            eval_every: 2,
            ema: None,
            short_videos: data::ShortVideos::Stretch,
        };
        let mut evals = 0;
        let out = train(&widths, &set, Some(&val), &opts, &mut |e| {
            if let Event::Eval(r) = e {
                assert!(r.loss.total.is_finite() && r.val_metric.is_some());
                evals += 1;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(evals, 2);
        assert_eq!(out.batch, 3, "min(32, normal, abnormal)");
        assert_eq!(out.metric_kind, Some(ValMetric::VideoAuc));
        assert!(out.best_metric.is_some());
    }

    #[test]
    fn weight_average_is_what_gets_saved() {
        let widths = RtfmWidths { feature_dim: 8, temporal_width: 2, nonlocal_width: 2, head: [4, 3] };
        let run = |ema: Option<f64>| {
            let opts = TrainOptions {
                iterations: 6,
                batch: Some(2),
                seed: 4,
                loss: LossConfig::reference(10.0),
                adam: AdamConfig::default(),
                eval_every: 3,
                ema,
                short_videos: data::ShortVideos::Stretch,
            };
            let out = train(&widths, &tiny_set(3), None, &opts, &mut |_| Ok(())).unwrap();
            out.net
                .named_tensors()
                .iter()
                .map(|(n, t)| (n.clone(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
                .collect::<Vec<_>>()
        };
        let raw = run(None);
        // Decay 0 keeps only the latest weights: the raw network exactly.
        assert_eq!(run(Some(0.0)), raw);
        // A slow average stays between the initial and the trained weights: it differs.
        let slow = run(Some(0.9));
        let moved = raw.iter().zip(&slow).any(|((_, a), (_, b))| a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-6));
        assert!(moved, "the average must not equal the raw weights");
    }
}
