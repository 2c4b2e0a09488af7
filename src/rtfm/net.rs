//! The RTFM network as candle operations: the multiscale temporal block ("Aggregate") and the
//! snippet classifier head, built from a `VarBuilder` so inference and training share one
//! definition and gradients flow to the weights. This module owns the forward pass and the
//! safetensors weight format (reference tensor names); it does not parse PyTorch files (that is
//! `checkpoint`) and knows nothing about windows or streaming (that is `scorer`).
//!
//! Layout: the reference runs its convolutions channels-first `[N, D, T]`; here the activations
//! stay channels-last `[N, T, D]` and every convolution is an im2col (shifted slices concatenated
//! along the channel axis) followed by one matrix product. The arithmetic is the same, but the
//! head's fully connected layers, the magnitudes and the residual need no transposes, and one
//! large GEMM per layer is far faster on a CPU than candle's generic conv1d at these sizes.

use super::{RtfmError, RtfmWidths};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use ndarray::ArrayView3;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// BatchNorm1d's default epsilon in the reference.
const BN_EPS: f64 = 1e-5;
/// Dropout probability between the head's layers, applied in training only.
pub const DROPOUT: f32 = 0.7;
/// Name of the source in errors about tensors that did not come from a file.
const IN_MEMORY: &str = "(in-memory tensors)";

/// Per-snippet outputs for one video.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOutput {
    /// Mean over crops of the per-crop sigmoid score, one per snippet.
    pub scores: Vec<f32>,
    /// Mean over crops of the L2 norm of the temporal block's output, one per snippet.
    pub magnitudes: Vec<f32>,
}

/// One BatchNorm layer's statistics over a training batch, for the running-statistics update
/// (PyTorch: `running = (1 - momentum) * running + momentum * batch`, with the UNBIASED batch
/// variance). The forward pass itself never updates them: candle has no in-place buffers, so the
/// training loop owns the update (`train::bn`).
pub struct BatchStats {
    /// The layer's reference name prefix, e.g. `Aggregate.conv_5.2`.
    pub prefix: String,
    /// `[C]` batch mean over (N, T), detached.
    pub mean: Tensor,
    /// `[C]` unbiased batch variance over (N, T), detached.
    pub var: Tensor,
}

/// The dropout masks of the head for one training pass, `[N, T, head[0]]` and `[N, T, head[1]]`
/// with `N = B * crops`: 0 or `1 / (1 - p)`. Supplied by the caller because candle's CPU random
/// numbers cannot be seeded, and training must be reproducible.
pub struct DropoutMasks {
    pub fc1: Tensor,
    pub fc2: Tensor,
}

/// Valid lengths of a zero-padded training batch (`vigil train --short-videos pad`): row `n` of
/// the `[N, T, D]` input holds `len[n]` real snippets followed by padding. The training forward
/// pass then computes at the valid positions what the network computes on each video alone at
/// its own length: BatchNorm statistics count valid positions only, the non-local block averages
/// over a video's own snippets and divides by its own length, and the branch outputs are zeroed
/// on the padding before `conv_5`, which therefore sees the zeros its own padding supplies at
/// inference. Built by [`PadMask::new`].
pub struct PadMask {
    /// `[N, T, 1]`: 1 at valid positions, 0 on the padding.
    positions: Tensor,
    /// `[1, N * T]`: the same, as a row for the BatchNorm sums.
    row: Tensor,
    /// Valid positions in the batch.
    count: usize,
    /// `[N, 1, 1]`: 1 / len[n].
    inv_len: Tensor,
}

impl PadMask {
    /// `lens[n]` (1..=t) valid snippets in row `n` of an `[N, t, D]` batch.
    pub fn new(lens: &[usize], t: usize) -> candle_core::Result<Self> {
        let n = lens.len();
        if lens.iter().any(|&l| l == 0 || l > t) {
            candle_core::bail!("valid lengths must be in 1..={t}, got {lens:?}");
        }
        let mut m = Vec::with_capacity(n * t);
        for &l in lens {
            m.extend((0..t).map(|i| if i < l { 1f32 } else { 0f32 }));
        }
        let positions = Tensor::from_vec(m, (n, t, 1), &Device::Cpu)?;
        let row = positions.reshape((1, n * t))?;
        let inv: Vec<f32> = lens.iter().map(|&l| 1.0 / l as f32).collect();
        let inv_len = Tensor::from_vec(inv, (n, 1, 1), &Device::Cpu)?;
        Ok(PadMask { positions, row, count: lens.iter().sum(), inv_len })
    }

    /// `[N, T, 1]` mask of the valid positions.
    pub fn positions(&self) -> &Tensor {
        &self.positions
    }
}

/// Outputs of a batched forward pass (training and inference share it).
pub struct ForwardOutput {
    /// `[B, T]` scores averaged over crops.
    pub scores: Tensor,
    /// `[B * crops, T]` per-crop scores.
    pub crop_scores: Tensor,
    /// `[B * crops, T, D]` temporal-block features.
    pub features: Tensor,
    /// `[B * crops, T]` feature magnitudes.
    pub magnitudes: Tensor,
}

/// How the head's dropout runs in one forward pass.
#[derive(Clone, Copy)]
enum Dropout<'a> {
    Off,
    /// candle's own (unseeded) dropout.
    Random,
    Masks(&'a DropoutMasks),
}

/// A Conv1d over channels-last input, computed as im2col + GEMM.
struct Conv1d {
    /// `[out, in, kernel]`, the PyTorch layout, kept as is so the tensor saved is the tensor read.
    weight: Tensor,
    bias: Option<Tensor>,
    /// Dilation; padding equals it for kernel 3, which keeps T unchanged as in the reference.
    dilation: usize,
}

impl Conv1d {
    /// `x`: `[N, T, in]` -> `[N, T, out]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, t, c_in) = x.dims3()?;
        let (c_out, w_in, k) = self.weight.dims3()?;
        if w_in != c_in {
            candle_core::bail!("conv input has {c_in} channels, its weight expects {w_in}");
        }
        let y = if k == 1 {
            let w = self.weight.squeeze(2)?.t()?;
            x.reshape((n * t, c_in))?.matmul(&w)?
        } else {
            // Column j * c_in + c holds x[t + (j - k/2) * dilation, c]. Each shifted slice is
            // made contiguous before the concatenation along the channel axis: candle's `cat`
            // (and `stack`) of strided views falls back to a transpose-and-copy path that is
            // several times slower than the copy itself, which dominated training time. The
            // weight [out, in, k] is permuted to [out, k, in] to match (a copy of the weight, far
            // smaller than the columns). Zero padding of `dilation * (k/2)` on both sides
            // reproduces PyTorch's `padding = dilation` for k = 3 at any T, even when the
            // dilation exceeds T.
            let d = self.dilation;
            let half = k / 2;
            let xp = x.pad_with_zeros(1, d * half, d * half)?;
            let slices = (0..k).map(|j| xp.narrow(1, j * d, t)).collect::<candle_core::Result<Vec<_>>>()?;
            let cols = Tensor::stack(&slices, 3)?.reshape((n * t, c_in * k))?;
            let w = self.weight.reshape((c_out, c_in * k))?.t()?;
            cols.matmul(&w)?
        };
        let y = y.reshape((n, t, c_out))?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// A fully connected layer over the last axis.
struct Linear {
    /// `[out, in]`.
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, t, c_in) = x.dims3()?;
        let c_out = self.weight.dim(0)?;
        x.reshape((n * t, c_in))?.matmul(&self.weight.t()?)?.reshape((n, t, c_out))?.broadcast_add(&self.bias)
    }
}

/// BatchNorm1d over the channel (last) axis.
struct BatchNorm {
    prefix: String,
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl BatchNorm {
    /// Inference normalises with the running statistics. Training normalises with the batch's
    /// own statistics over (N, T), biased variance as PyTorch does; the running statistics are
    /// NOT updated here: when `stats` is given the batch statistics are pushed to it so the
    /// training loop can update them (without that, a trained model would keep the initial
    /// running statistics, mean 0 and variance 1, and score wrongly at inference).
    fn forward(
        &self,
        x: &Tensor,
        train: bool,
        stats: Option<&mut Vec<BatchStats>>,
        pad: Option<&PadMask>,
    ) -> candle_core::Result<Tensor> {
        if train {
            // Column sums and row broadcasts are products with a ones vector: candle reduces
            // over a leading axis (and back-propagates a broadcast) with a slow strided loop,
            // while a GEMM does the same arithmetic several times faster, in both passes. With a
            // padding mask the sums run over the valid positions only (the mask is the row).
            let (n, t, c) = x.dims3()?;
            let rows = n * t;
            let flat = x.reshape((rows, c))?;
            let ones_row = Tensor::ones((1, rows), x.dtype(), x.device())?;
            let ones_col = ones_row.t()?;
            let (sum_row, count) = match pad {
                Some(p) => (p.row.clone(), p.count),
                None => (ones_row, rows),
            };
            let mean = (sum_row.matmul(&flat)? / count as f64)?; // [1, C]
            let centred = (&flat - ones_col.matmul(&mean)?)?;
            let var = (sum_row.matmul(&centred.sqr()?)? / count as f64)?;
            if let Some(stats) = stats {
                let count = count as f64;
                let unbiased = if count > 1.0 { (var.detach() * (count / (count - 1.0)))? } else { var.detach() };
                stats.push(BatchStats {
                    prefix: self.prefix.clone(),
                    mean: mean.detach().squeeze(0)?,
                    var: unbiased.squeeze(0)?,
                });
            }
            let scale = (var + BN_EPS)?.sqrt()?.recip()?.mul(&self.weight.unsqueeze(0)?)?;
            let scaled = centred.mul(&ones_col.matmul(&scale)?)?;
            (scaled + ones_col.matmul(&self.bias.unsqueeze(0)?)?)?.reshape((n, t, c))
        } else {
            // Fold into one scale and shift per channel: two passes over [N, T, C] instead of four.
            let scale = self.weight.div(&(&self.running_var + BN_EPS)?.sqrt()?)?;
            let shift = self.bias.sub(&self.running_mean.mul(&scale)?)?;
            x.broadcast_mul(&scale)?.broadcast_add(&shift)
        }
    }
}

/// The RTFM network.
pub struct Rtfm {
    widths: RtfmWidths,
    dilated: [(Conv1d, BatchNorm); 3],
    conv4: Conv1d,
    theta: Conv1d,
    phi: Conv1d,
    g: Conv1d,
    nl_w: Conv1d,
    nl_bn: BatchNorm,
    conv5: Conv1d,
    bn5: BatchNorm,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    /// Every tensor under its reference name, for `save` and `named_tensors`.
    named: Vec<(String, Tensor)>,
}

/// How a freshly created tensor is initialised: Xavier-uniform weights, zero biases,
/// identity BatchNorm (weight 1, bias 0, running mean 0, running variance 1).
fn init_for(name: &str, shape: &[usize]) -> Init {
    if name.ends_with("running_var") || (shape.len() == 1 && name.ends_with(".weight")) {
        Init::Const(1.0)
    } else if shape.len() >= 2 {
        let receptive: usize = shape[2..].iter().product();
        let fan_in = shape[1] * receptive;
        let fan_out = shape[0] * receptive;
        let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
        Init::Uniform { lo: -bound, up: bound }
    } else {
        Init::Const(0.0)
    }
}

/// Checks names and shapes of a tensor set against the widths' table; `num_batches_tracked`
/// entries are ignored. Returns a reason naming the first offending tensor(s).
fn check_names_shapes<'a>(
    widths: &RtfmWidths,
    tensors: impl Iterator<Item = (&'a str, Vec<usize>)>,
) -> Result<(), String> {
    widths.validate()?;
    let expected: HashMap<String, Vec<usize>> = widths.tensor_shapes().into_iter().collect();
    let mut seen = HashSet::new();
    let mut extra = Vec::new();
    for (name, shape) in tensors {
        if name.ends_with(".num_batches_tracked") {
            continue;
        }
        match expected.get(name) {
            None => extra.push(name.to_string()),
            Some(want) if *want != shape => {
                return Err(format!("tensor {name} has shape {shape:?}, expected {want:?} for widths {widths:?}"));
            }
            Some(_) => {
                seen.insert(name.to_string());
            }
        }
    }
    if !extra.is_empty() {
        extra.sort();
        return Err(format!("unexpected tensors {extra:?}"));
    }
    let mut missing: Vec<&String> = expected.keys().filter(|k| !seen.contains(*k)).collect();
    if !missing.is_empty() {
        missing.sort();
        return Err(format!("missing tensors {missing:?}"));
    }
    Ok(())
}

/// A small deterministic generator (SplitMix64) so `new_random` is reproducible: candle's CPU
/// device cannot be seeded.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Rtfm {
    /// Builds the network from a `VarBuilder` under the reference tensor names. With
    /// `VarBuilder::from_varmap` missing tensors are created (Xavier-uniform weights, zero biases,
    /// identity BatchNorm) and the network trains through the `VarMap`'s variables.
    pub fn new(vb: VarBuilder, widths: &RtfmWidths) -> candle_core::Result<Self> {
        widths.validate().map_err(candle_core::Error::Msg)?;
        let mut named = Vec::new();
        let shapes: HashMap<String, Vec<usize>> = widths.tensor_shapes().into_iter().collect();
        let mut get = |name: &str| -> candle_core::Result<Tensor> {
            let shape = shapes
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {name} in the RTFM layout")))?;
            let t = vb.get_with_hints(shape.as_slice(), name, init_for(name, shape))?;
            named.push((name.to_string(), t.clone()));
            Ok(t)
        };
        let conv = |get: &mut dyn FnMut(&str) -> candle_core::Result<Tensor>,
                    prefix: &str,
                    bias: bool,
                    dilation: usize|
         -> candle_core::Result<Conv1d> {
            let weight = get(&format!("{prefix}.weight"))?;
            let bias = if bias { Some(get(&format!("{prefix}.bias"))?) } else { None };
            Ok(Conv1d { weight, bias, dilation })
        };
        let bn = |get: &mut dyn FnMut(&str) -> candle_core::Result<Tensor>,
                  prefix: &str|
         -> candle_core::Result<BatchNorm> {
            Ok(BatchNorm {
                prefix: prefix.to_string(),
                weight: get(&format!("{prefix}.weight"))?,
                bias: get(&format!("{prefix}.bias"))?,
                running_mean: get(&format!("{prefix}.running_mean"))?,
                running_var: get(&format!("{prefix}.running_var"))?,
            })
        };
        let linear =
            |get: &mut dyn FnMut(&str) -> candle_core::Result<Tensor>, prefix: &str| -> candle_core::Result<Linear> {
                Ok(Linear { weight: get(&format!("{prefix}.weight"))?, bias: get(&format!("{prefix}.bias"))? })
            };
        let dilated = [
            (conv(&mut get, "Aggregate.conv_1.0", true, 1)?, bn(&mut get, "Aggregate.conv_1.2")?),
            (conv(&mut get, "Aggregate.conv_2.0", true, 2)?, bn(&mut get, "Aggregate.conv_2.2")?),
            (conv(&mut get, "Aggregate.conv_3.0", true, 4)?, bn(&mut get, "Aggregate.conv_3.2")?),
        ];
        let conv4 = conv(&mut get, "Aggregate.conv_4.0", false, 1)?;
        let theta = conv(&mut get, "Aggregate.non_local.theta", true, 1)?;
        let phi = conv(&mut get, "Aggregate.non_local.phi", true, 1)?;
        let g = conv(&mut get, "Aggregate.non_local.g", true, 1)?;
        let nl_w = conv(&mut get, "Aggregate.non_local.W.0", true, 1)?;
        let nl_bn = bn(&mut get, "Aggregate.non_local.W.1")?;
        let conv5 = conv(&mut get, "Aggregate.conv_5.0", false, 1)?;
        let bn5 = bn(&mut get, "Aggregate.conv_5.2")?;
        let fc1 = linear(&mut get, "fc1")?;
        let fc2 = linear(&mut get, "fc2")?;
        let fc3 = linear(&mut get, "fc3")?;
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { widths: *widths, dilated, conv4, theta, phi, g, nl_w, nl_bn, conv5, bn5, fc1, fc2, fc3, named })
    }

    /// Builds the network from named tensors (the importer's output): every reference tensor
    /// must be present with its exact shape, `num_batches_tracked` is ignored, anything else is
    /// rejected. Floating-point tensors of any precision are converted to f32 on the CPU.
    pub fn from_tensors(widths: &RtfmWidths, tensors: Vec<(String, Tensor)>) -> Result<Self, RtfmError> {
        Self::from_named(widths, tensors, IN_MEMORY)
    }

    fn from_named(widths: &RtfmWidths, tensors: Vec<(String, Tensor)>, source: &str) -> Result<Self, RtfmError> {
        let weights_err = |reason: String| RtfmError::Weights { path: source.to_string(), reason };
        check_names_shapes(widths, tensors.iter().map(|(n, t)| (n.as_str(), t.dims().to_vec())))
            .map_err(weights_err)?;
        let mut map = HashMap::with_capacity(tensors.len());
        for (name, t) in tensors {
            if name.ends_with(".num_batches_tracked") {
                continue;
            }
            if !t.dtype().is_float() {
                return Err(weights_err(format!(
                    "tensor {name} has dtype {:?}, expected a floating-point type",
                    t.dtype()
                )));
            }
            let t = t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
            map.insert(name, t);
        }
        let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
        Ok(Self::new(vb, widths)?)
    }

    /// Loads weights from a safetensors file stored under the reference tensor names.
    pub fn load(path: &Path, widths: &RtfmWidths) -> Result<Self, RtfmError> {
        let shown = path.display().to_string();
        let weights_err = |reason: String| RtfmError::Weights { path: shown.clone(), reason };
        let bytes = std::fs::read(path).map_err(|e| weights_err(format!("cannot read: {e}")))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| weights_err(format!("not a valid safetensors file: {e}")))?;
        // Check names and shapes before converting anything, so the error names the tensor.
        check_names_shapes(widths, st.tensors().iter().map(|(n, v)| (n.as_str(), v.shape().to_vec())))
            .map_err(weights_err)?;
        let mut tensors = Vec::new();
        for (name, view) in st.tensors() {
            if name.ends_with(".num_batches_tracked") {
                continue;
            }
            let dtype = match view.dtype() {
                safetensors::Dtype::F32 => DType::F32,
                safetensors::Dtype::F64 => DType::F64,
                safetensors::Dtype::F16 => DType::F16,
                safetensors::Dtype::BF16 => DType::BF16,
                other => {
                    return Err(weights_err(format!(
                        "tensor {name} has dtype {other:?}, expected F32, F64, F16 or BF16"
                    )))
                }
            };
            let t = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), &Device::Cpu)
                .map_err(|e| weights_err(format!("tensor {name}: {e}")))?;
            tensors.push((name, t));
        }
        Self::from_named(widths, tensors, &shown)
    }

    /// Writes the weights as f32 safetensors under the reference tensor names.
    pub fn save(&self, path: &Path) -> Result<(), RtfmError> {
        let map: HashMap<String, Tensor> = self.named.iter().cloned().collect();
        candle_core::safetensors::save(&map, path)
            .map_err(|e| RtfmError::Weights { path: path.display().to_string(), reason: format!("cannot write: {e}") })
    }

    /// A network with reproducible random weights (Xavier-uniform, zero biases, identity BN).
    pub fn new_random(widths: &RtfmWidths, seed: u64) -> Result<Self, RtfmError> {
        let tensors = random_tensors(widths, seed)?;
        Self::from_tensors(widths, tensors)
    }

    /// A trainable network: its tensors are the variables of the returned `VarMap` (seeded as
    /// in `new_random`), so an optimiser over `varmap.all_vars()` trains it.
    pub fn trainable(widths: &RtfmWidths, seed: u64) -> Result<(Self, VarMap), RtfmError> {
        let varmap = VarMap::new();
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| RtfmError::Compute(candle_core::Error::Msg("VarMap lock poisoned".into())))?;
            for (name, t) in random_tensors(widths, seed)? {
                data.insert(name, Var::from_tensor(&t)?);
            }
        }
        let net = Self::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), widths)?;
        Ok((net, varmap))
    }

    pub fn widths(&self) -> &RtfmWidths {
        &self.widths
    }

    /// Every tensor under its reference name, sorted by name.
    pub fn named_tensors(&self) -> &[(String, Tensor)] {
        &self.named
    }

    /// The batched forward pass over `x: [B, crops, T, D]`. `train` switches BatchNorm to batch
    /// statistics and enables dropout in the head (candle's unseeded random numbers; training
    /// uses [`Rtfm::forward_train`] instead).
    pub fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<ForwardOutput> {
        let dropout = if train { Dropout::Random } else { Dropout::Off };
        self.forward_impl(x, train, dropout, None, None)
    }

    /// A training forward pass with the caller's dropout masks; also returns every BatchNorm
    /// layer's batch statistics for the running-statistics update. `pad` marks a zero-padded
    /// batch (rows of `B * crops`, see [`PadMask`]); outputs on the padding are meaningless
    /// (features and magnitudes there are 0) and the loss must ignore them.
    pub fn forward_train(
        &self,
        x: &Tensor,
        masks: &DropoutMasks,
        pad: Option<&PadMask>,
    ) -> candle_core::Result<(ForwardOutput, Vec<BatchStats>)> {
        let mut stats = Vec::with_capacity(5);
        let out = self.forward_impl(x, true, Dropout::Masks(masks), Some(&mut stats), pad)?;
        Ok((out, stats))
    }

    fn forward_impl(
        &self,
        x: &Tensor,
        train: bool,
        dropout: Dropout,
        mut stats: Option<&mut Vec<BatchStats>>,
        pad: Option<&PadMask>,
    ) -> candle_core::Result<ForwardOutput> {
        let (b, crops, t, d) = x.dims4()?;
        if let Some(p) = pad {
            if p.positions.dims3()? != (b * crops, t, 1) {
                candle_core::bail!(
                    "padding mask {:?} does not fit a batch of {} rows of {t}",
                    p.positions.dims(),
                    b * crops
                );
            }
        }
        if d != self.widths.feature_dim {
            candle_core::bail!("input feature dimension {d}, the network expects {}", self.widths.feature_dim);
        }
        // Crops are independent samples of the same video until the final average.
        let x = x.reshape((b * crops, t, d))?;
        let mut branches = Vec::with_capacity(4);
        for (conv, bn) in &self.dilated {
            branches.push(bn.forward(&conv.forward(&x)?.relu()?, train, stats.as_deref_mut(), pad)?);
        }
        branches.push(self.non_local(&self.conv4.forward(&x)?.relu()?, train, stats.as_deref_mut(), pad)?);
        let mut cat = Tensor::cat(&branches, 2)?;
        if let Some(p) = pad {
            // conv_5 must see zeros beyond a video's end, as its own padding gives at inference.
            cat = cat.broadcast_mul(&p.positions)?;
        }
        let mut features = (self.bn5.forward(&self.conv5.forward(&cat)?.relu()?, train, stats, pad)? + &x)?;
        if let Some(p) = pad {
            features = features.broadcast_mul(&p.positions)?;
        }
        // No epsilon, as the reference: the magnitude is an exact L2 norm.
        let magnitudes = features.sqr()?.sum(2)?.sqrt()?;

        let drop = |h: Tensor, mask: fn(&DropoutMasks) -> &Tensor| match dropout {
            Dropout::Off => Ok(h),
            Dropout::Random => candle_nn::ops::dropout(&h, DROPOUT),
            Dropout::Masks(m) => h.mul(mask(m)),
        };
        let h = drop(self.fc1.forward(&features)?.relu()?, |m| &m.fc1)?;
        let h = drop(self.fc2.forward(&h)?.relu()?, |m| &m.fc2)?;
        let crop_scores = candle_nn::ops::sigmoid(&self.fc3.forward(&h)?)?.squeeze(2)?;
        let scores = crop_scores.reshape((b, crops, t))?.mean(1)?;
        Ok(ForwardOutput { scores, crop_scores, features, magnitudes })
    }

    /// The non-local block on `h: [N, T, C]`. Without a softmax, (theta^T phi / T) g equals
    /// theta (phi^T g) / T, which costs O(T * NL^2) and never builds the T x T matrix.
    /// With a padding mask, each row sums over its own valid positions and divides by its own
    /// length.
    fn non_local(
        &self,
        h: &Tensor,
        train: bool,
        stats: Option<&mut Vec<BatchStats>>,
        pad: Option<&PadMask>,
    ) -> candle_core::Result<Tensor> {
        let t = h.dim(1)?;
        let theta = self.theta.forward(h)?;
        let phi = self.phi.forward(h)?;
        let mut g = self.g.forward(h)?;
        if let Some(p) = pad {
            g = g.broadcast_mul(&p.positions)?;
        }
        let pg = phi.transpose(1, 2)?.contiguous()?.matmul(&g)?; // [N, NL, NL]
        let y = match pad {
            Some(p) => theta.matmul(&pg)?.broadcast_mul(&p.inv_len)?,
            None => (theta.matmul(&pg)? / t as f64)?,
        };
        let wy = self.nl_bn.forward(&self.nl_w.forward(&y)?, train, stats, pad)?;
        wy + h
    }

    /// Scores one video's features `[T, crops, D]` (any T >= 1).
    pub fn score(&self, feats: ArrayView3<f32>) -> Result<ScoreOutput, RtfmError> {
        let &[t, crops, d] = feats.shape() else {
            return Err(RtfmError::Input { got: feats.shape().to_vec(), dim: self.widths.feature_dim });
        };
        if t == 0 || crops == 0 || d != self.widths.feature_dim {
            return Err(RtfmError::Input { got: vec![t, crops, d], dim: self.widths.feature_dim });
        }
        // Reorder to [crops, T, D] while copying, so no transpose runs inside candle.
        let mut data = Vec::with_capacity(t * crops * d);
        for c in 0..crops {
            for ti in 0..t {
                data.extend(feats.slice(ndarray::s![ti, c, ..]).iter().copied());
            }
        }
        let x = Tensor::from_vec(data, (1, crops, t, d), &Device::Cpu)?;
        let out = self.forward(&x, false)?;
        let scores = out.scores.squeeze(0)?.to_vec1::<f32>()?;
        let magnitudes = out.magnitudes.mean(0)?.to_vec1::<f32>()?;
        Ok(ScoreOutput { scores, magnitudes })
    }
}

/// Seeded tensors for every reference name, initialised as `init_for` says.
fn random_tensors(widths: &RtfmWidths, seed: u64) -> Result<Vec<(String, Tensor)>, RtfmError> {
    widths.validate().map_err(|reason| RtfmError::Weights { path: IN_MEMORY.into(), reason })?;
    let mut rng = SplitMix64(seed);
    let mut out = Vec::new();
    for (name, shape) in widths.tensor_shapes() {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = match init_for(&name, &shape) {
            Init::Const(v) => vec![v as f32; n],
            Init::Uniform { lo, up } => (0..n).map(|_| (lo + (up - lo) * rng.next_f64()) as f32).collect(),
            // init_for only yields the two kinds above.
            _ => vec![0.0; n],
        };
        out.push((name, Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: RtfmWidths = RtfmWidths { feature_dim: 16, temporal_width: 4, nonlocal_width: 3, head: [8, 5] };

    fn feats(t: usize, crops: usize, d: usize) -> ndarray::Array3<f32> {
        ndarray::Array3::from_shape_fn((t, crops, d), |(a, b, c)| ((a * 7 + b * 3 + c) as f32 * 0.37).sin().abs() * 2.0)
    }

    #[test]
    fn tensor_table_has_42_float_tensors() {
        // 47 in the checkpoint, less the five BatchNorm num_batches_tracked counters.
        assert_eq!(RtfmWidths::REFERENCE.tensor_shapes().len(), 42);
        let params: usize = RtfmWidths::REFERENCE
            .tensor_shapes()
            .iter()
            .filter(|(n, _)| !n.contains("running_"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(params, 24_718_849, "RTFM.md's parameter count");
    }

    #[test]
    fn scores_short_inputs() {
        let net = Rtfm::new_random(&SMALL, 1).unwrap();
        for t in [1, 2, 3, 7] {
            let out = net.score(feats(t, 2, 16).view()).unwrap();
            assert_eq!(out.scores.len(), t);
            assert_eq!(out.magnitudes.len(), t);
            assert!(out.scores.iter().all(|s| s.is_finite() && *s > 0.0 && *s < 1.0), "{out:?}");
            assert!(out.magnitudes.iter().all(|m| m.is_finite() && *m > 0.0), "{out:?}");
        }
    }

    #[test]
    fn score_rejects_wrong_feature_dim_and_empty_input() {
        let net = Rtfm::new_random(&SMALL, 1).unwrap();
        assert!(matches!(net.score(feats(4, 1, 15).view()), Err(RtfmError::Input { dim: 16, .. })));
        assert!(matches!(net.score(feats(0, 1, 16).view()), Err(RtfmError::Input { .. })));
        assert!(matches!(net.score(feats(3, 0, 16).view()), Err(RtfmError::Input { .. })));
    }

    #[test]
    fn crops_are_averaged() {
        let net = Rtfm::new_random(&SMALL, 3).unwrap();
        let f = feats(5, 3, 16);
        let all = net.score(f.view()).unwrap();
        let mut sum_s = [0.0f32; 5];
        let mut sum_m = [0.0f32; 5];
        for c in 0..3 {
            let one = net.score(f.slice(ndarray::s![.., c..c + 1, ..])).unwrap();
            for t in 0..5 {
                sum_s[t] += one.scores[t] / 3.0;
                sum_m[t] += one.magnitudes[t] / 3.0;
            }
        }
        for t in 0..5 {
            assert!((all.scores[t] - sum_s[t]).abs() < 1e-5);
            assert!((all.magnitudes[t] - sum_m[t]).abs() < 1e-4 * sum_m[t]);
        }
    }

    #[test]
    fn invalid_widths_are_rejected() {
        let bad = RtfmWidths { feature_dim: 16, temporal_width: 5, nonlocal_width: 3, head: [8, 5] };
        assert!(matches!(Rtfm::new_random(&bad, 0), Err(RtfmError::Weights { .. })));
        let zero = RtfmWidths { head: [0, 5], ..SMALL };
        assert!(Rtfm::new_random(&zero, 0).is_err());
    }

    #[test]
    fn save_load_round_trip_and_shape_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let net = Rtfm::new_random(&SMALL, 5).unwrap();
        net.save(&path).unwrap();
        let back = Rtfm::load(&path, &SMALL).unwrap();
        let f = feats(6, 2, 16);
        assert_eq!(net.score(f.view()).unwrap(), back.score(f.view()).unwrap());

        let other = RtfmWidths { nonlocal_width: 2, ..SMALL };
        let err = Rtfm::load(&path, &other).err().unwrap().to_string();
        assert!(err.contains("w.safetensors") && err.contains("non_local") && err.contains("expected"), "{err}");
    }

    #[test]
    fn load_converts_f64_and_rejects_extra_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let net = Rtfm::new_random(&SMALL, 5).unwrap();
        let mut map: HashMap<String, Tensor> =
            net.named_tensors().iter().map(|(n, t)| (n.clone(), t.to_dtype(DType::F64).unwrap())).collect();
        map.insert("fc1.num_batches_tracked".into(), Tensor::new(3i64, &Device::Cpu).unwrap());
        let p64 = dir.path().join("f64.safetensors");
        candle_core::safetensors::save(&map, &p64).unwrap();
        let back = Rtfm::load(&p64, &SMALL).unwrap();
        let f = feats(4, 1, 16);
        let (a, b) = (net.score(f.view()).unwrap(), back.score(f.view()).unwrap());
        assert!(a.scores.iter().zip(&b.scores).all(|(x, y)| (x - y).abs() < 1e-6));

        map.insert("fc4.weight".into(), Tensor::zeros((1, 1), DType::F32, &Device::Cpu).unwrap());
        let pextra = dir.path().join("extra.safetensors");
        candle_core::safetensors::save(&map, &pextra).unwrap();
        let err = Rtfm::load(&pextra, &SMALL).err().unwrap().to_string();
        assert!(err.contains("fc4.weight") && err.contains("extra.safetensors"), "{err}");

        map.remove("fc4.weight");
        map.remove("fc2.bias");
        let pmiss = dir.path().join("missing.safetensors");
        candle_core::safetensors::save(&map, &pmiss).unwrap();
        let err = Rtfm::load(&pmiss, &SMALL).err().unwrap().to_string();
        assert!(err.contains("missing") && err.contains("fc2.bias"), "{err}");
    }

    #[test]
    fn non_local_matches_explicit_t_by_t_product() {
        // The reassociated product must equal the reference's (theta^T phi / T) g.
        let net = Rtfm::new_random(&SMALL, 9).unwrap();
        let h = Tensor::from_vec(
            (0..2 * 5 * 4).map(|i| (i as f32 * 0.3).cos()).collect::<Vec<_>>(),
            (2, 5, 4),
            &Device::Cpu,
        )
        .unwrap();
        let fast = net.non_local(&h, false, None, None).unwrap();
        let theta = net.theta.forward(&h).unwrap();
        let phi = net.phi.forward(&h).unwrap();
        let g = net.g.forward(&h).unwrap();
        let f = (theta.matmul(&phi.transpose(1, 2).unwrap()).unwrap() / 5.0).unwrap(); // [N, T, T]
        let y = f.matmul(&g).unwrap();
        let slow = (net.nl_bn.forward(&net.nl_w.forward(&y).unwrap(), false, None, None).unwrap() + &h).unwrap();
        let diff = (fast - slow).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "{diff}");
    }

    /// Rows `[N, t, D]` of `feats` at `lens[n]` snippets each, zero-padded to `t`.
    fn padded_rows(lens: &[usize], t: usize, d: usize) -> Tensor {
        let mut v = Vec::new();
        for (n, &l) in lens.iter().enumerate() {
            let f = feats(l, 1, d + n);
            for i in 0..t {
                for c in 0..d {
                    v.push(if i < l { f[[i, 0, c + n]] } else { 0.0 });
                }
            }
        }
        Tensor::from_vec(v, (lens.len(), 1, t, d), &Device::Cpu).unwrap()
    }

    fn ones_masks(n: usize, t: usize) -> DropoutMasks {
        let ones = |h: usize| Tensor::ones((n, t, h), DType::F32, &Device::Cpu).unwrap();
        DropoutMasks { fc1: ones(SMALL.head[0]), fc2: ones(SMALL.head[1]) }
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn padded_training_pass_equals_the_videos_at_their_own_length() {
        // Two videos of 5 snippets: batched alone at T = 5, and zero-padded to 32 with a mask.
        // Every output at the valid positions and every BatchNorm statistic must agree.
        let net = Rtfm::new_random(&SMALL, 5).unwrap();
        let (t, d) = (5, SMALL.feature_dim);
        let short = padded_rows(&[t, t], t, d);
        let long = padded_rows(&[t, t], 32, d);
        let (a, stats_a) = net.forward_train(&short, &ones_masks(2, t), None).unwrap();
        let pad = PadMask::new(&[t, t], 32).unwrap();
        let (b, stats_b) = net.forward_train(&long, &ones_masks(2, 32), Some(&pad)).unwrap();
        assert!(max_diff(&a.scores, &b.scores.narrow(1, 0, t).unwrap()) < 1e-5);
        assert!(max_diff(&a.features, &b.features.narrow(1, 0, t).unwrap()) < 1e-4);
        assert_eq!(stats_a.len(), stats_b.len());
        for (x, y) in stats_a.iter().zip(&stats_b) {
            assert_eq!(x.prefix, y.prefix);
            assert!(max_diff(&x.mean, &y.mean) < 1e-4, "{} mean", x.prefix);
            assert!(max_diff(&x.var, &y.var) < 1e-3, "{} var", x.prefix);
        }
        // Padding carries no magnitude (the loss never picks it).
        let tail = b.magnitudes.narrow(1, t, 32 - t).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(tail.to_scalar::<f32>().unwrap(), 0.0);
        // Without the mask the padded pass differs (the test can fail).
        let (c, _) = net.forward_train(&long, &ones_masks(2, 32), None).unwrap();
        assert!(max_diff(&a.scores, &c.scores.narrow(1, 0, t).unwrap()) > 1e-3);
    }

    #[test]
    fn padded_non_local_averages_each_row_over_its_own_length() {
        // Rows of 3 and 7 valid positions in one padded batch against each row alone.
        let net = Rtfm::new_random(&SMALL, 8).unwrap();
        let c = SMALL.temporal_width;
        let row = |l: usize, k: usize| -> Vec<f32> { (0..l * c).map(|i| ((i + 5 * k) as f32 * 0.3).cos()).collect() };
        let mut v = Vec::new();
        for (k, l) in [3usize, 7].into_iter().enumerate() {
            v.extend(row(l, k));
            v.extend(std::iter::repeat_n(0f32, (10 - l) * c));
        }
        let h = Tensor::from_vec(v, (2, 10, c), &Device::Cpu).unwrap();
        let pad = PadMask::new(&[3, 7], 10).unwrap();
        let both = net.non_local(&h, false, None, Some(&pad)).unwrap();
        for (k, l) in [3usize, 7].into_iter().enumerate() {
            let alone = Tensor::from_vec(row(l, k), (1, l, c), &Device::Cpu).unwrap();
            let want = net.non_local(&alone, false, None, None).unwrap();
            let got = both.narrow(0, k, 1).unwrap().narrow(1, 0, l).unwrap();
            assert!(max_diff(&want, &got) < 1e-5, "row {k}");
        }
        assert!(PadMask::new(&[0, 3], 10).is_err());
        assert!(PadMask::new(&[11], 10).is_err());
    }

    #[test]
    fn train_batch_norm_matches_definition_and_reports_stats() {
        let dev = Device::Cpu;
        let x: Vec<f32> = (0..2 * 3 * 4).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
        let bn = BatchNorm {
            prefix: "bn".into(),
            weight: Tensor::new(&[1.5f32, -0.5, 2.0, 1.0], &dev).unwrap(),
            bias: Tensor::new(&[0.1f32, 0.2, -0.3, 0.0], &dev).unwrap(),
            running_mean: Tensor::zeros(4, DType::F32, &dev).unwrap(),
            running_var: Tensor::ones(4, DType::F32, &dev).unwrap(),
        };
        let mut stats = Vec::new();
        let xt = Tensor::from_vec(x.clone(), (2, 3, 4), &dev).unwrap();
        let y = bn.forward(&xt, true, Some(&mut stats), None).unwrap();
        let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (w, b) = ([1.5f32, -0.5, 2.0, 1.0], [0.1f32, 0.2, -0.3, 0.0]);
        let mean_got = stats[0].mean.to_vec1::<f32>().unwrap();
        let var_got = stats[0].var.to_vec1::<f32>().unwrap();
        for c in 0..4 {
            let col: Vec<f32> = (0..6).map(|r| x[r * 4 + c]).collect();
            let mean = col.iter().sum::<f32>() / 6.0;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 6.0;
            for r in 0..6 {
                let want = (x[r * 4 + c] - mean) / (var + 1e-5).sqrt() * w[c] + b[c];
                assert!((y[r * 4 + c] - want).abs() < 1e-5, "{c} {r}");
            }
            assert!((mean_got[c] - mean).abs() < 1e-5);
            assert!((var_got[c] - var * 6.0 / 5.0).abs() < 1e-4, "unbiased variance");
        }
    }

    #[test]
    fn conv_matches_direct_sum() {
        // im2col against the textbook definition, dilation 2 with zero padding 2.
        let w: Vec<f32> = (0..3 * 2 * 3).map(|i| (i as f32 * 0.7).sin()).collect();
        let conv = Conv1d {
            weight: Tensor::from_vec(w.clone(), (3, 2, 3), &Device::Cpu).unwrap(),
            bias: Some(Tensor::new(&[0.1f32, -0.2, 0.3], &Device::Cpu).unwrap()),
            dilation: 2,
        };
        let (t, cin) = (5, 2);
        let x: Vec<f32> = (0..t * cin).map(|i| (i as f32 * 0.45).cos()).collect();
        let out = conv.forward(&Tensor::from_vec(x.clone(), (1, t, cin), &Device::Cpu).unwrap()).unwrap();
        let out = out.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        let bias = [0.1f32, -0.2, 0.3];
        for (ti, row) in out.iter().enumerate() {
            for (o, &b) in bias.iter().enumerate() {
                let mut s = b;
                for k in 0..3 {
                    let src = ti as isize + (k as isize - 1) * 2;
                    if src < 0 || src >= t as isize {
                        continue;
                    }
                    for c in 0..cin {
                        s += w[o * 6 + c * 3 + k] * x[src as usize * cin + c];
                    }
                }
                assert!((row[o] - s).abs() < 1e-5, "t {ti} o {o}: {} vs {s}", row[o]);
            }
        }
    }

    #[test]
    fn gradients_reach_conv_weights() {
        let (net, varmap) = Rtfm::trainable(&SMALL, 2).unwrap();
        let x = Tensor::from_vec(
            feats(6, 2, 16).permuted_axes([1, 0, 2]).iter().copied().collect::<Vec<_>>(),
            (1, 2, 6, 16),
            &Device::Cpu,
        )
        .unwrap();
        let out = net.forward(&x, true).unwrap();
        let loss = (out.scores.sum_all().unwrap() + out.magnitudes.mean_all().unwrap()).unwrap();
        let grads = loss.backward().unwrap();
        let data = varmap.data().lock().unwrap();
        for name in
            ["Aggregate.conv_1.0.weight", "Aggregate.conv_5.0.weight", "Aggregate.non_local.theta.weight", "fc1.weight"]
        {
            let g = grads.get(data[name].as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm.is_finite() && norm > 0.0, "{name}: {norm}");
        }
    }
}
