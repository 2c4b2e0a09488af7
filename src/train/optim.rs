//! `torch.optim.Adam` with COUPLED weight decay (the L2 term is added to the gradient before the
//! moments, as the reference's `Adam(weight_decay=5e-3)` does; candle-nn's `AdamW` decouples
//! it, which is a different optimiser), and the BatchNorm running-statistics update.

use candle_core::{backprop::GradStore, Tensor, Var};
use candle_nn::VarMap;

/// Adam's hyper-parameters (PyTorch defaults for betas and eps).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AdamConfig {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, weight_decay: 5e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

struct Slot {
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// Adam over a fixed list of variables.
pub struct Adam {
    cfg: AdamConfig,
    slots: Vec<Slot>,
    step: u32,
}

impl Adam {
    pub fn new(vars: Vec<Var>, cfg: AdamConfig) -> candle_core::Result<Self> {
        let slots = vars
            .into_iter()
            .map(|var| {
                let m = var.as_tensor().zeros_like()?;
                let v = m.clone();
                Ok(Slot { var, m, v })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Adam { cfg, slots, step: 0 })
    }

    /// One step. Variables without a gradient are skipped (as PyTorch skips `grad is None`).
    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.step += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            let p = s.var.as_tensor();
            let g = if c.weight_decay != 0.0 { (g + (p * c.weight_decay)?)? } else { g.clone() };
            s.m = ((&s.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            s.v = ((&s.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            // PyTorch: denom = sqrt(v) / sqrt(bc2) + eps; p -= lr / bc1 * m / denom.
            let denom = ((s.v.sqrt()? / bc2.sqrt())? + c.eps)?;
            let update = ((&s.m / denom)? * (c.lr / bc1))?;
            s.var.set(&(p - update)?)?;
        }
        Ok(())
    }
}

/// PyTorch's BatchNorm momentum for the running statistics.
pub const BN_MOMENTUM: f64 = 0.1;

/// `running = (1 - momentum) * running + momentum * batch` for every layer's statistics.
pub fn update_running_stats(varmap: &VarMap, stats: &[crate::rtfm::BatchStats]) -> candle_core::Result<()> {
    let data = varmap.data().lock().map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
    for s in stats {
        for (field, batch) in [("running_mean", &s.mean), ("running_var", &s.var)] {
            let name = format!("{}.{field}", s.prefix);
            let var = data.get(&name).ok_or_else(|| candle_core::Error::Msg(format!("no variable {name}")))?;
            let old = var.as_tensor();
            let new = ((old * (1.0 - BN_MOMENTUM))? + (batch * BN_MOMENTUM)?)?;
            var.set(&new)?;
        }
    }
    Ok(())
}

/// Exponential moving average of a network's tensors (Polyak averaging): after every step,
/// `avg = decay * avg + (1 - decay) * current`, running statistics included. Validation and the
/// saved model use the average, which is much less noisy from one evaluation to the next than
/// the raw weights of a small, heavily regularised network.
pub struct WeightAverage {
    decay: f64,
    tensors: Vec<(String, Tensor)>,
}

impl WeightAverage {
    /// Starts the average at `tensors` (deep copies).
    pub fn new(decay: f64, tensors: &[(String, Tensor)]) -> candle_core::Result<Self> {
        let tensors = tensors.iter().map(|(n, t)| Ok((n.clone(), t.copy()?))).collect::<candle_core::Result<_>>()?;
        Ok(WeightAverage { decay, tensors })
    }

    /// Folds in the current values; `current` must list the same names in the same order.
    pub fn update(&mut self, current: &[(String, Tensor)]) -> candle_core::Result<()> {
        if current.len() != self.tensors.len() {
            return Err(candle_core::Error::Msg("weight average: tensor list changed".into()));
        }
        for ((name, avg), (cur_name, cur)) in self.tensors.iter_mut().zip(current) {
            if name != cur_name {
                return Err(candle_core::Error::Msg(format!("weight average: {name} != {cur_name}")));
            }
            *avg = ((&*avg * self.decay)? + (cur * (1.0 - self.decay))?)?;
        }
        Ok(())
    }

    /// Deep copies of the averaged tensors.
    pub fn tensors(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        self.tensors.iter().map(|(n, t)| Ok((n.clone(), t.copy()?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn adam_matches_torch_with_coupled_decay() {
        // torch: p = tensor([1.0, -2.0], requires_grad=True);
        // opt = Adam([p], lr=0.1, weight_decay=0.5); loss = (p ** 2).sum() twice.
        // step 1: g = 2p + 0.5p = 2.5p; m/bc1 = g, v/bc2 = g^2 -> p -= 0.1 * sign(g) (eps small)
        //   -> [0.9, -1.9]
        // step 2: g = 2.5 * [0.9, -1.9] = [2.25, -4.75]; m = 0.9*0.25*[10,-20]... computed below.
        let var = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let cfg = AdamConfig { lr: 0.1, weight_decay: 0.5, ..Default::default() };
        let mut opt = Adam::new(vec![var.clone()], cfg).unwrap();
        let mut p = [1.0f64, -2.0];
        let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
        for step in 1..=3 {
            let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads).unwrap();
            for i in 0..2 {
                let g = 2.0 * p[i] + 0.5 * p[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let bc1 = 1.0 - 0.9f64.powi(step);
                let bc2 = 1.0 - 0.999f64.powi(step);
                p[i] -= 0.1 / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + 1e-8);
            }
            let got = var.as_tensor().to_vec1::<f32>().unwrap();
            for i in 0..2 {
                assert!((f64::from(got[i]) - p[i]).abs() < 1e-5, "step {step}: {got:?} {p:?}");
            }
        }
        assert!((p[0] - 0.9).abs() > 0.05, "moved over three steps");
    }

    #[test]
    fn running_stats_follow_pytorch_momentum() {
        let varmap = VarMap::new();
        {
            let mut d = varmap.data().lock().unwrap();
            d.insert("bn.running_mean".into(), Var::new(&[0.0f32, 1.0], &Device::Cpu).unwrap());
            d.insert("bn.running_var".into(), Var::new(&[1.0f32, 1.0], &Device::Cpu).unwrap());
        }
        let stats = vec![crate::rtfm::BatchStats {
            prefix: "bn".into(),
            mean: Tensor::new(&[2.0f32, 3.0], &Device::Cpu).unwrap(),
            var: Tensor::new(&[5.0f32, 0.0], &Device::Cpu).unwrap(),
        }];
        update_running_stats(&varmap, &stats).unwrap();
        let d = varmap.data().lock().unwrap();
        let mean = d["bn.running_mean"].as_tensor().to_vec1::<f32>().unwrap();
        let var = d["bn.running_var"].as_tensor().to_vec1::<f32>().unwrap();
        assert!((mean[0] - 0.2).abs() < 1e-6 && (mean[1] - 1.2).abs() < 1e-6, "{mean:?}");
        assert!((var[0] - 1.4).abs() < 1e-6 && (var[1] - 0.9).abs() < 1e-6, "{var:?}");
    }

    #[test]
    fn weight_average_follows_the_decay() {
        let t = |v: f32| vec![("w".to_string(), Tensor::new(&[v, 2.0 * v], &Device::Cpu).unwrap())];
        let mut avg = WeightAverage::new(0.9, &t(1.0)).unwrap();
        avg.update(&t(2.0)).unwrap();
        avg.update(&t(3.0)).unwrap();
        // 0.9 * (0.9 * 1 + 0.1 * 2) + 0.1 * 3 = 1.29
        let got = avg.tensors().unwrap()[0].1.to_vec1::<f32>().unwrap();
        assert!((got[0] - 1.29).abs() < 1e-6 && (got[1] - 2.58).abs() < 1e-6, "{got:?}");
        let other = vec![("v".to_string(), Tensor::new(&[0.0f32, 0.0], &Device::Cpu).unwrap())];
        assert!(avg.update(&other).is_err(), "names must match");
    }
}
