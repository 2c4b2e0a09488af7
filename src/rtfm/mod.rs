//! The RTFM network (Tian et al., ICCV 2021) in candle: one definition for inference and training,
//! widths taken from the model manifest, weights stored as safetensors under the reference
//! checkpoint's tensor names, and the importer for PyTorch checkpoints (zip and legacy formats).

mod checkpoint;
mod net;
mod pickle;

pub use checkpoint::{import_checkpoint, ImportedCheckpoint};
pub use net::{BatchStats, DropoutMasks, ForwardOutput, PadMask, Rtfm, ScoreOutput, DROPOUT};

use serde::{Deserialize, Serialize};

/// Works out once how many threads candle's matrix products may use, and leaves it in
/// `RAYON_NUM_THREADS` (unless that already holds a count). candle asks on every product and,
/// without the variable, counts physical cores by reading `/proc/cpuinfo` each time: the daemon
/// scores every snippet of every camera, and at 72 cameras about 1% of its CPU went to the kernel
/// formatting that file (`perf`, 2026-11-28). The count is candle's own, so nothing else changes.
/// Call at start-up, before any other thread exists (it sets an environment variable).
pub fn settle_thread_count() {
    let set = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).is_some_and(|n| n > 0);
    if !set {
        let n = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// The `[rtfm]` widths of `model.toml`. Reference values: 2048 / 512 / 256 / [512, 128].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtfmWidths {
    /// Feature dimension D (input and temporal-block output width).
    pub feature_dim: usize,
    /// Output channels of each of the three dilated convolutions and conv_4 (reference 512).
    pub temporal_width: usize,
    /// Inner width of the non-local block (reference 256).
    pub nonlocal_width: usize,
    /// Hidden widths of the head's fc1 and fc2 (reference [512, 128]).
    pub head: [usize; 2],
}

impl RtfmWidths {
    /// The published network's widths.
    pub const REFERENCE: RtfmWidths =
        RtfmWidths { feature_dim: 2048, temporal_width: 512, nonlocal_width: 256, head: [512, 128] };

    /// The residual add needs 4 * temporal_width == feature_dim; every width must be positive.
    pub fn validate(&self) -> Result<(), String> {
        if self.feature_dim == 0 || self.temporal_width == 0 || self.nonlocal_width == 0 || self.head.contains(&0) {
            return Err("every RTFM width must be positive".into());
        }
        if 4 * self.temporal_width != self.feature_dim {
            return Err(format!(
                "temporal_width ({}) times 4 must equal feature_dim ({}): the temporal block's concatenation is added to its input",
                self.temporal_width, self.feature_dim
            ));
        }
        Ok(())
    }

    /// Every float tensor of the reference checkpoint with its shape at these widths, sorted by
    /// name. BatchNorm's `num_batches_tracked` counters are left out: inference never reads them.
    /// This table is the single source of truth for loading, saving and importing weights.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, c, nl) = (self.feature_dim, self.temporal_width, self.nonlocal_width);
        let [h1, h2] = self.head;
        let mut out: Vec<(String, Vec<usize>)> = Vec::with_capacity(42);
        let mut push = |name: String, shape: Vec<usize>| out.push((name, shape));
        let bn = |push: &mut dyn FnMut(String, Vec<usize>), prefix: &str, width: usize| {
            for field in ["weight", "bias", "running_mean", "running_var"] {
                push(format!("{prefix}.{field}"), vec![width]);
            }
        };
        for i in 1..=3 {
            push(format!("Aggregate.conv_{i}.0.weight"), vec![c, d, 3]);
            push(format!("Aggregate.conv_{i}.0.bias"), vec![c]);
            bn(&mut push, &format!("Aggregate.conv_{i}.2"), c);
        }
        push("Aggregate.conv_4.0.weight".into(), vec![c, d, 1]);
        push("Aggregate.conv_5.0.weight".into(), vec![d, d, 3]);
        bn(&mut push, "Aggregate.conv_5.2", d);
        for branch in ["g", "theta", "phi"] {
            push(format!("Aggregate.non_local.{branch}.weight"), vec![nl, c, 1]);
            push(format!("Aggregate.non_local.{branch}.bias"), vec![nl]);
        }
        push("Aggregate.non_local.W.0.weight".into(), vec![c, nl, 1]);
        push("Aggregate.non_local.W.0.bias".into(), vec![c]);
        bn(&mut push, "Aggregate.non_local.W.1", c);
        push("fc1.weight".into(), vec![h1, d]);
        push("fc1.bias".into(), vec![h1]);
        push("fc2.weight".into(), vec![h2, h1]);
        push("fc2.bias".into(), vec![h2]);
        push("fc3.weight".into(), vec![1, h2]);
        push("fc3.bias".into(), vec![1]);
        out.sort();
        out
    }
}

/// Errors of loading, running or importing the network.
#[derive(Debug, thiserror::Error)]
pub enum RtfmError {
    #[error("RTFM weights {path}: {reason}")]
    Weights { path: String, reason: String },
    #[error("features have shape {got:?}; expected [T >= 1, crops >= 1, {dim}]")]
    Input { got: Vec<usize>, dim: usize },
    #[error("RTFM computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

/// Errors of importing a PyTorch checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("checkpoint {path}: missing tensors {missing:?}")]
    Missing { path: String, missing: Vec<String> },
    #[error("checkpoint {path}: unexpected tensors {extra:?}")]
    Extra { path: String, extra: Vec<String> },
    #[error("checkpoint {path}: tensor {name} has shape {got:?}, expected {expected:?}")]
    Shape { path: String, name: String, got: Vec<usize>, expected: Vec<usize> },
}
