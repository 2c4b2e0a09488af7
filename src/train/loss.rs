//! The RTFM training objective on one batch of `B` normal then `B` abnormal videos.
//!
//! Choices follow the reference code (RTFM.md "Training"), where it and the paper differ:
//! - Top-k selection: the per-snippet magnitudes are averaged over crops first (`[2B, T]`), as
//!   the reference does, multiplied by a dropout(0.7) mask of ones, and the k = 3 largest chosen
//!   per VIDEO; every crop of that video uses the same k snippets. The classification score is
//!   the mean over those k snippets of the crop-averaged score, so BCE sees one probability per
//!   video ("averaged over crops" before the loss, not one BCE per crop). With one crop (the
//!   default model) the two readings coincide.
//! - Magnitude term: feature rows are per crop; abnormal video j crop c is paired with normal
//!   video j crop c. Reference: `mean((|m - ||mean_k F_a||| + ||mean_k F_n||)^2)`; paper:
//!   hinge `mean(max(0, m - ||mean_k F_a|| + ||mean_k F_n||))`.
//! - Sparsity on all abnormal snippet scores of the batch: reference L2 norm, paper L1 norm.
//! - Smoothness: the reference flattens the abnormal scores `[B, T]` into one vector and sums
//!   squared differences of neighbours, so B - 1 terms span the boundary between two videos;
//!   kept as is (with 32 segments per video the cross-video terms are 1/32 of the sum).

use super::rng::Rng;
use candle_core::{DType, Device, Tensor};

/// Which formulation of the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// The reference code: squared magnitude loss with |m - ||a|||, L2 sparsity.
    Reference,
    /// The paper: hinge magnitude loss, L1 sparsity.
    Paper,
}

/// Weights and constants of the objective.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LossConfig {
    pub kind: LossKind,
    /// Top-k snippets per video (reference 3 = 32 // 10).
    pub k: usize,
    /// Magnitude margin m (reference 100, for I3D features).
    pub margin: f32,
    /// Weight of the magnitude term (reference 1e-4).
    pub alpha: f32,
    /// Weight of the sparsity term (reference 8e-3).
    pub sparsity: f32,
    /// Weight of the smoothness term (reference 8e-4).
    pub smoothness: f32,
    /// Dropout probability of the top-k selection mask (reference 0.7).
    pub select_dropout: f32,
}

impl LossConfig {
    pub fn reference(margin: f32) -> Self {
        LossConfig {
            kind: LossKind::Reference,
            k: 3,
            margin,
            alpha: 1e-4,
            sparsity: 8e-3,
            smoothness: 8e-4,
            select_dropout: 0.7,
        }
    }
}

/// The loss of one step: the differentiable total and each weighted term's value.
pub struct LossTerms {
    pub total: Tensor,
    pub values: LossValues,
}

/// Each term's value, already weighted (they sum to the total).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LossValues {
    pub total: f32,
    pub classification: f32,
    pub magnitude: f32,
    pub sparsity: f32,
    pub smoothness: f32,
}

impl LossValues {
    pub fn add(&mut self, o: &LossValues) {
        self.total += o.total;
        self.classification += o.classification;
        self.magnitude += o.magnitude;
        self.sparsity += o.sparsity;
        self.smoothness += o.smoothness;
    }
    pub fn scale(&self, f: f32) -> LossValues {
        LossValues {
            total: self.total * f,
            classification: self.classification * f,
            magnitude: self.magnitude * f,
            sparsity: self.sparsity * f,
            smoothness: self.smoothness * f,
        }
    }
}

/// Indices of the `k` largest entries of `values * mask` per row of `[rows, t]`, ties broken by
/// the lower index (torch.topk leaves tie order unspecified). Returned row-major `[rows, k]`.
/// With `t < k` the indices repeat cyclically (never happens for 32 segments).
pub fn topk_indices(values: &[f32], mask: &[f32], t: usize, k: usize) -> Vec<u32> {
    let rows = values.len() / t.max(1);
    let mut out = Vec::with_capacity(rows * k);
    let mut order: Vec<usize> = Vec::with_capacity(t);
    for r in 0..rows {
        let v: Vec<f32> = (0..t).map(|i| values[r * t + i] * mask[r * t + i]).collect();
        order.clear();
        order.extend(0..t);
        // Stable sort, descending: equal values keep ascending index order.
        order.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
        for j in 0..k {
            out.push(order[j % t] as u32);
        }
    }
    out
}

/// The top-k of each padded video (`vigil train --short-videos pad`): row `r` of `[rows, t]`
/// holds `lens[r]` valid entries; the `k_r = clamp(k * lens[r] / t, 1, k)` largest of
/// `values * mask` among them are chosen (ties to the lower index), so a video of 32 snippets
/// keeps the reference's k and a short one selects as large a share of itself as the
/// reference's 3 of 32 stretched segments do. Returns each row's indices.
pub fn topk_valid(values: &[f32], mask: &[f32], t: usize, lens: &[usize], k: usize) -> Vec<Vec<u32>> {
    let mut out = Vec::with_capacity(lens.len());
    for (r, &len) in lens.iter().enumerate() {
        let len = len.clamp(1, t);
        let kr = (k * len / t).clamp(1, k.max(1));
        let v: Vec<f32> = (0..len).map(|i| values[r * t + i] * mask[r * t + i]).collect();
        let mut order: Vec<usize> = (0..len).collect();
        order.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
        out.push((0..kr).map(|j| order[j % len] as u32).collect());
    }
    out
}

/// Smallest probability the log sees in [`bce`].
const BCE_EPS: f32 = 1e-12;

/// Binary cross-entropy, mean over entries. PyTorch's `BCELoss` clamps each log at -100 and
/// guards its gradient with an epsilon of 1e-12; here the probability is clamped to
/// [1e-12, 1] before the log, so the gradient is finite where an f32 sigmoid saturates to
/// exactly 0 or 1 (a clamped log would give 0 * inf = NaN), and a certain wrong answer costs
/// -ln(1e-12) = 27.6 instead of 100. Elsewhere the two agree.
pub fn bce(probs: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let log_p = probs.clamp(BCE_EPS, 1f32)?.log()?;
    let log_1p = probs.affine(-1.0, 1.0)?.clamp(BCE_EPS, 1f32)?.log()?;
    let one_minus_y = labels.affine(-1.0, 1.0)?;
    let ll = (labels.mul(&log_p)? + one_minus_y.mul(&log_1p)?)?;
    ll.mean_all()?.neg()
}

/// The (unweighted) magnitude term over paired norms `[n]` of the mean selected features.
pub fn magnitude_term(
    kind: LossKind,
    normal_norms: &Tensor,
    abnormal_norms: &Tensor,
    margin: f32,
) -> candle_core::Result<Tensor> {
    match kind {
        LossKind::Reference => {
            let abn = abnormal_norms.affine(-1.0, f64::from(margin))?.abs()?;
            (abn + normal_norms)?.sqr()?.mean_all()
        }
        LossKind::Paper => {
            let d = (normal_norms - abnormal_norms)?.affine(1.0, f64::from(margin))?;
            d.relu()?.mean_all()
        }
    }
}

/// The (unweighted) sparsity term over every abnormal snippet score: L2 norm (reference) or L1
/// norm (paper; scores are positive, so their sum).
pub fn sparsity_term(kind: LossKind, abnormal_scores: &Tensor) -> candle_core::Result<Tensor> {
    match kind {
        LossKind::Reference => abnormal_scores.sqr()?.sum_all()?.sqrt(),
        LossKind::Paper => abnormal_scores.abs()?.sum_all(),
    }
}

/// The (unweighted) smoothness term: sum of squared differences of neighbours in the flattened
/// abnormal scores (see the module note on video boundaries).
pub fn smoothness_term(abnormal_scores: &Tensor) -> candle_core::Result<Tensor> {
    let flat = abnormal_scores.flatten_all()?;
    let n = flat.dim(0)?;
    if n < 2 {
        return Tensor::zeros((), DType::F32, flat.device());
    }
    (flat.narrow(0, 1, n - 1)? - flat.narrow(0, 0, n - 1)?)?.sqr()?.sum_all()
}

/// The whole objective for one forward pass over `[2B, crops, T, D]` (normal first).
/// `scores: [2B, T]`, `magnitudes: [2B * crops, T]`, `features: [2B * crops, T, D]`.
/// `lens`: each video's valid length when the batch is zero-padded (see [`rtfm_loss_padded`]).
pub fn rtfm_loss(
    cfg: &LossConfig,
    scores: &Tensor,
    magnitudes: &Tensor,
    features: &Tensor,
    crops: usize,
    lens: Option<&[usize]>,
    rng: &mut Rng,
) -> candle_core::Result<LossTerms> {
    if let Some(lens) = lens {
        return rtfm_loss_padded(cfg, scores, magnitudes, features, crops, lens, rng);
    }
    let (videos, t) = scores.dims2()?;
    let b = videos / 2;
    let d = features.dim(2)?;
    let dev = Device::Cpu;
    // Top-k indices from crop-averaged magnitudes (no gradient flows through the choice).
    let mags = magnitudes.detach().reshape((videos, crops, t))?.mean(1)?.flatten_all()?.to_vec1::<f32>()?;
    let mask = rng.dropout_ones(videos * t, cfg.select_dropout);
    let idx = topk_indices(&mags, &mask, t, cfg.k);
    let k = cfg.k;

    // Scores of the chosen snippets: rows v * T + idx of the flattened [2B * T] scores.
    let score_rows: Vec<u32> = idx.iter().enumerate().map(|(j, &i)| (j / k * t) as u32 + i).collect();
    let score_rows = Tensor::from_vec(score_rows, videos * k, &dev)?;
    let top_scores = scores.flatten_all()?.index_select(&score_rows, 0)?.reshape((videos, k))?.mean(1)?; // [2B]
    let mut labels = vec![0f32; b];
    labels.extend(std::iter::repeat_n(1f32, videos - b));
    let labels = Tensor::from_vec(labels, videos, &dev)?;
    let cls = bce(&top_scores, &labels)?;

    // Features of the chosen snippets, per crop: row (v * crops + c) * T + idx[v].
    let mut feat_rows = Vec::with_capacity(videos * crops * k);
    for v in 0..videos {
        for c in 0..crops {
            for j in 0..k {
                feat_rows.push(((v * crops + c) * t) as u32 + idx[v * k + j]);
            }
        }
    }
    let n_rows = feat_rows.len();
    let feat_rows = Tensor::from_vec(feat_rows, n_rows, &dev)?;
    let norms = features
        .reshape((videos * crops * t, d))?
        .index_select(&feat_rows, 0)?
        .reshape((videos * crops, k, d))?
        .mean(1)?
        .sqr()?
        .sum(1)?
        .sqrt()?; // [2B * crops]
    let half = b * crops;
    let mag = magnitude_term(cfg.kind, &norms.narrow(0, 0, half)?, &norms.narrow(0, half, half)?, cfg.margin)?;

    let abnormal_scores = scores.narrow(0, b, videos - b)?;
    let sparse = sparsity_term(cfg.kind, &abnormal_scores)?;
    let smooth = smoothness_term(&abnormal_scores)?;

    combine(cfg, cls, mag, sparse, smooth)
}

/// Weights the four terms and sums them.
fn combine(
    cfg: &LossConfig,
    cls: Tensor,
    mag: Tensor,
    sparse: Tensor,
    smooth: Tensor,
) -> candle_core::Result<LossTerms> {
    let mag_w = (mag * f64::from(cfg.alpha))?;
    let sparse_w = (sparse * f64::from(cfg.sparsity))?;
    let smooth_w = (smooth * f64::from(cfg.smoothness))?;
    let total = (((&cls + &mag_w)? + &sparse_w)? + &smooth_w)?;
    let values = LossValues {
        total: total.to_scalar::<f32>()?,
        classification: cls.to_scalar::<f32>()?,
        magnitude: mag_w.to_scalar::<f32>()?,
        sparsity: sparse_w.to_scalar::<f32>()?,
        smoothness: smooth_w.to_scalar::<f32>()?,
    };
    Ok(LossTerms { total, values })
}

/// [`rtfm_loss`] on a zero-padded batch: video `v` holds `lens[v]` valid snippets. The same
/// terms, each restricted to valid snippets: the top-k of [`topk_valid`] (the selection's
/// dropout mask drawn as in the reference), sparsity over valid abnormal scores, smoothness
/// over neighbours inside each video (the reference's flattened vector would pair a video's
/// last snippet with padding).
pub fn rtfm_loss_padded(
    cfg: &LossConfig,
    scores: &Tensor,
    magnitudes: &Tensor,
    features: &Tensor,
    crops: usize,
    lens: &[usize],
    rng: &mut Rng,
) -> candle_core::Result<LossTerms> {
    let (videos, t) = scores.dims2()?;
    if lens.len() != videos {
        candle_core::bail!("{} valid lengths for {videos} videos", lens.len());
    }
    let b = videos / 2;
    let dev = Device::Cpu;
    let mags = magnitudes.detach().reshape((videos, crops, t))?.mean(1)?.flatten_all()?.to_vec1::<f32>()?;
    let mask = rng.dropout_ones(videos * t, cfg.select_dropout);
    let chosen = topk_valid(&mags, &mask, t, lens, cfg.k);
    // Selection as weights: 1 / k_v at the chosen snippets of video v, so the mean over the
    // chosen ones is a weighted sum whatever k_v is.
    let mut w = vec![0f32; videos * t];
    for (v, idx) in chosen.iter().enumerate() {
        for &i in idx {
            w[v * t + i as usize] += 1.0 / idx.len() as f32;
        }
    }
    let w = Tensor::from_vec(w, (videos, t), &dev)?;
    let top_scores = scores.mul(&w)?.sum(1)?; // [2B]
    let mut labels = vec![0f32; b];
    labels.extend(std::iter::repeat_n(1f32, videos - b));
    let labels = Tensor::from_vec(labels, videos, &dev)?;
    let cls = bce(&top_scores, &labels)?;

    // Mean chosen feature per crop: [2B * crops, 1, T] x [2B * crops, T, D].
    let wc = w.unsqueeze(1)?.repeat((1, crops, 1))?.reshape((videos * crops, 1, t))?;
    let norms = wc.matmul(features)?.squeeze(1)?.sqr()?.sum(1)?.sqrt()?; // [2B * crops]
    let half = b * crops;
    let mag = magnitude_term(cfg.kind, &norms.narrow(0, 0, half)?, &norms.narrow(0, half, half)?, cfg.margin)?;

    let valid: Vec<f32> =
        lens[b..].iter().flat_map(|&l| (0..t).map(move |i| if i < l { 1f32 } else { 0f32 })).collect();
    let valid = Tensor::from_vec(valid, (videos - b, t), &dev)?;
    let abnormal_scores = scores.narrow(0, b, videos - b)?.mul(&valid)?;
    let sparse = sparsity_term(cfg.kind, &abnormal_scores)?;
    let smooth = if t < 2 {
        Tensor::zeros((), DType::F32, &dev)?
    } else {
        let pairs: Vec<f32> =
            lens[b..].iter().flat_map(|&l| (0..t - 1).map(move |i| if i + 1 < l { 1f32 } else { 0f32 })).collect();
        let pairs = Tensor::from_vec(pairs, (videos - b, t - 1), &dev)?;
        let d = (abnormal_scores.narrow(1, 1, t - 1)? - abnormal_scores.narrow(1, 0, t - 1)?)?;
        d.sqr()?.mul(&pairs)?.sum_all()?
    };
    combine(cfg, cls, mag, sparse, smooth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t1(v: &[f32]) -> Tensor {
        Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu).unwrap()
    }

    fn scalar(t: &Tensor) -> f32 {
        t.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn topk_respects_mask_and_ties() {
        let v = [1.0, 5.0, 3.0, 4.0, 2.0, /* row 2 */ 1.0, 1.0, 1.0, 1.0, 1.0];
        let ones = [1.0; 10];
        assert_eq!(topk_indices(&v, &ones, 5, 3), vec![1, 3, 2, 0, 1, 2]);
        // Masking snippet 1 and 3 out: 2, 4, then the zeros tie -> lowest index (1).
        let mask = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        assert_eq!(topk_indices(&v, &mask, 5, 3)[..3], [2, 4, 0]);
        assert_eq!(topk_indices(&[2.0, 1.0], &[1.0, 1.0], 2, 3), vec![0, 1, 0]);
    }

    #[test]
    fn topk_valid_skips_padding_and_scales_k() {
        let v = [
            1.0, 5.0, 3.0, 4.0, 99.0, 99.0, /* */ 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, /* */ 7.0, 99.0, 99.0, 99.0,
            99.0, 99.0,
        ];
        let ones = [1.0; 18];
        // k = 3 of 6: 4 valid -> k = 2 (the padding's 99s never chosen); 6 valid -> 3, ties to
        // the lower index; 1 valid -> at least 1.
        assert_eq!(topk_valid(&v, &ones, 6, &[4, 6, 1], 3), vec![vec![1, 3], vec![0, 1, 2], vec![0]]);
        let mut mask = ones;
        mask[1] = 0.0;
        assert_eq!(topk_valid(&v, &mask, 6, &[4, 6, 1], 3)[0], vec![3, 2]);
    }

    #[test]
    fn bce_hand_computed() {
        // -(ln(1 - 0.2) + ln(0.9)) / 2
        let got = scalar(&bce(&t1(&[0.2, 0.9]), &t1(&[0.0, 1.0])).unwrap());
        let want = -((0.8f32).ln() + (0.9f32).ln()) / 2.0;
        assert!((got - want).abs() < 1e-6, "{got} {want}");
        // A certain wrong answer costs -ln(1e-12), with a finite gradient.
        let p = candle_core::Var::new(&[1.0f32, 0.0], &Device::Cpu).unwrap();
        let l = bce(p.as_tensor(), &t1(&[0.0, 1.0])).unwrap();
        assert!((scalar(&l) - 27.631).abs() < 1e-3, "{}", scalar(&l));
        let g = l.backward().unwrap();
        let g = g.get(p.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    }

    #[test]
    fn magnitude_terms_hand_computed() {
        let n = t1(&[2.0, 1.0]);
        let a = t1(&[7.0, 12.0]);
        // reference, m = 10: (|10 - 7| + 2)^2 = 25, (|10 - 12| + 1)^2 = 9 -> mean 17
        let r = scalar(&magnitude_term(LossKind::Reference, &n, &a, 10.0).unwrap());
        assert!((r - 17.0).abs() < 1e-5, "{r}");
        // paper: max(0, 10 - 7 + 2) = 5, max(0, 10 - 12 + 1) = 0 -> 2.5
        let p = scalar(&magnitude_term(LossKind::Paper, &n, &a, 10.0).unwrap());
        assert!((p - 2.5).abs() < 1e-6, "{p}");
    }

    #[test]
    fn sparsity_and_smoothness_hand_computed() {
        let s = Tensor::from_vec(vec![0.3f32, 0.4, 0.0, 1.2], (2, 2), &Device::Cpu).unwrap();
        // L2: sqrt(0.09 + 0.16 + 0 + 1.44) = 1.3
        let l2 = scalar(&sparsity_term(LossKind::Reference, &s).unwrap());
        assert!((l2 - 1.3).abs() < 1e-6, "{l2}");
        let l1 = scalar(&sparsity_term(LossKind::Paper, &s).unwrap());
        assert!((l1 - 1.9).abs() < 1e-6, "{l1}");
        // Flattened: (0.4-0.3)^2 + (0-0.4)^2 + (1.2-0)^2 = 0.01 + 0.16 + 1.44 = 1.61
        let sm = scalar(&smoothness_term(&s).unwrap());
        assert!((sm - 1.61).abs() < 1e-5, "{sm}");
        assert_eq!(scalar(&smoothness_term(&t1(&[0.5])).unwrap()), 0.0);
    }

    #[test]
    fn whole_objective_on_a_tiny_batch() {
        // B = 1, crops = 1, T = 4, D = 2, k = 2 and a keep-everything mask (dropout 0).
        let cfg = LossConfig { k: 2, margin: 10.0, select_dropout: 0.0, ..LossConfig::reference(10.0) };
        let scores = Tensor::from_vec(vec![0.1f32, 0.2, 0.3, 0.4, 0.5, 0.9, 0.7, 0.1], (2, 4), &Device::Cpu).unwrap();
        // Normal features: norms 1, 2, 3, 4 -> top 2 are snippets 3, 2.
        // Abnormal: snippet 1 = (6, 8) norm 10, snippet 0 = (3, 4) norm 5, others small.
        let feats: Vec<f32> = vec![
            1., 0., 0., 2., 3., 0., 0., 4., // normal
            3., 4., 6., 8., 0., 1., 1., 0., // abnormal
        ];
        let features = Tensor::from_vec(feats, (2, 4, 2), &Device::Cpu).unwrap();
        let mags = features.sqr().unwrap().sum(2).unwrap().sqrt().unwrap();
        let mut rng = Rng::new(0);
        let l = rtfm_loss(&cfg, &scores, &mags, &features, 1, None, &mut rng).unwrap();
        // normal: mean score of snippets 3, 2 = 0.35; abnormal: snippets 1, 0 -> 0.7.
        let cls = -((1.0f32 - 0.35).ln() + (0.7f32).ln()) / 2.0;
        // normal mean feature of snippets 3, 2: (1.5, 2) norm 2.5; abnormal of 1, 0: (4.5, 6)
        // norm 7.5; (|10 - 7.5| + 2.5)^2 = 25, times 1e-4.
        let mag = 25.0 * 1e-4;
        let sparse = (0.25f32 + 0.81 + 0.49 + 0.01).sqrt() * 8e-3;
        let smooth = (0.16f32 + 0.04 + 0.36) * 8e-4;
        assert_tiny_batch_terms(&l.values);
        let v = l.values;
        assert!((v.total - (cls + mag + sparse + smooth)).abs() < 1e-6, "{v:?}");
    }

    /// The hand-computed terms of `whole_objective_on_a_tiny_batch` (see its comments).
    fn assert_tiny_batch_terms(v: &LossValues) {
        let cls = -((1.0f32 - 0.35).ln() + (0.7f32).ln()) / 2.0;
        let mag = 25.0 * 1e-4;
        let sparse = (0.25f32 + 0.81 + 0.49 + 0.01).sqrt() * 8e-3;
        let smooth = (0.16f32 + 0.04 + 0.36) * 8e-4;
        assert!((v.classification - cls).abs() < 1e-6, "{v:?}");
        assert!((v.magnitude - mag).abs() < 1e-7, "{v:?}");
        assert!((v.sparsity - sparse).abs() < 1e-7, "{v:?}");
        assert!((v.smoothness - smooth).abs() < 1e-7, "{v:?}");
    }

    #[test]
    fn padded_objective_ignores_the_padding() {
        // The batch of `whole_objective_on_a_tiny_batch` padded from 4 to 6 snippets with large
        // scores and features; k = 3 of 6 gives each 4-snippet video k = 2 as there. Every term
        // must equal that test's hand-computed value.
        let cfg = LossConfig { k: 3, margin: 10.0, select_dropout: 0.0, ..LossConfig::reference(10.0) };
        let scores = Tensor::from_vec(
            vec![0.1f32, 0.2, 0.3, 0.4, 0.99, 0.99, 0.5, 0.9, 0.7, 0.1, 0.99, 0.99],
            (2, 6),
            &Device::Cpu,
        )
        .unwrap();
        let feats: Vec<f32> = vec![
            1., 0., 0., 2., 3., 0., 0., 4., 50., 50., 50., 50., // normal
            3., 4., 6., 8., 0., 1., 1., 0., 50., 50., 50., 50., // abnormal
        ];
        let features = Tensor::from_vec(feats, (2, 6, 2), &Device::Cpu).unwrap();
        let mags = features.sqr().unwrap().sum(2).unwrap().sqrt().unwrap();
        let mut rng = Rng::new(0);
        let l = rtfm_loss(&cfg, &scores, &mags, &features, 1, Some(&[4, 4]), &mut rng).unwrap();
        assert_tiny_batch_terms(&l.values);
        assert!(rtfm_loss(&cfg, &scores, &mags, &features, 1, Some(&[4]), &mut rng).is_err());
    }
}
