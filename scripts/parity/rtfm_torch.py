"""Independent PyTorch implementation of the RTFM network's inference path.

Written from /work/shared/RTFM.md (the description of the method), not from the
public reference code. It exists only to produce parity fixtures and
checkpoint files for the Rust engine's tests.

Also holds the deterministic weight / feature formula shared with the Rust
tests (see tests/fixtures/parity/FORMULA.md, which must stay in sync).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

# --------------------------------------------------------------------------
# Widths
# --------------------------------------------------------------------------

SMALL = {"feature_dim": 64, "temporal_width": 16, "nonlocal_width": 8, "head": [32, 16]}
REFERENCE = {"feature_dim": 2048, "temporal_width": 512, "nonlocal_width": 256, "head": [512, 128]}
WIDTH_SETS = {"small": SMALL, "reference": REFERENCE}

BN_EPS = 1e-5


# --------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------


class NonLocal1d(nn.Module):
    """Dot-product non-local block, 1-D, no softmax, f scaled by 1/T.

    theta, phi, g: Conv1d C->NL kernel 1 with bias.
    f = theta^T phi / T   (T x T);  y = f g;  out = BN(W(y)) + x.
    """

    def __init__(self, channels: int, inter: int):
        super().__init__()
        self.g = nn.Conv1d(channels, inter, kernel_size=1, bias=True)
        self.theta = nn.Conv1d(channels, inter, kernel_size=1, bias=True)
        self.phi = nn.Conv1d(channels, inter, kernel_size=1, bias=True)
        self.W = nn.Sequential(
            nn.Conv1d(inter, channels, kernel_size=1, bias=True),
            nn.BatchNorm1d(channels, eps=BN_EPS),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, C, T]
        t = x.shape[2]
        g_x = self.g(x).permute(0, 2, 1)  # [N, T, NL]
        theta_x = self.theta(x).permute(0, 2, 1)  # [N, T, NL]
        phi_x = self.phi(x)  # [N, NL, T]
        f = torch.matmul(theta_x, phi_x) / t  # [N, T, T]
        y = torch.matmul(f, g_x)  # [N, T, NL]
        y = y.permute(0, 2, 1).contiguous()  # [N, NL, T]
        return self.W(y) + x


class Aggregate(nn.Module):
    """Multiscale temporal block. Input/output [N, D, T]."""

    def __init__(self, d: int, c: int, nl: int):
        super().__init__()
        # Sequential index 0 = conv, 1 = ReLU, 2 = BatchNorm (BN after ReLU).
        self.conv_1 = nn.Sequential(
            nn.Conv1d(d, c, kernel_size=3, stride=1, dilation=1, padding=1, bias=True),
            nn.ReLU(),
            nn.BatchNorm1d(c, eps=BN_EPS),
        )
        self.conv_2 = nn.Sequential(
            nn.Conv1d(d, c, kernel_size=3, stride=1, dilation=2, padding=2, bias=True),
            nn.ReLU(),
            nn.BatchNorm1d(c, eps=BN_EPS),
        )
        self.conv_3 = nn.Sequential(
            nn.Conv1d(d, c, kernel_size=3, stride=1, dilation=4, padding=4, bias=True),
            nn.ReLU(),
            nn.BatchNorm1d(c, eps=BN_EPS),
        )
        self.conv_4 = nn.Sequential(
            nn.Conv1d(d, c, kernel_size=1, stride=1, padding=0, bias=False),
            nn.ReLU(),
        )
        self.conv_5 = nn.Sequential(
            nn.Conv1d(4 * c, d, kernel_size=3, stride=1, padding=1, bias=False),
            nn.ReLU(),
            nn.BatchNorm1d(d, eps=BN_EPS),
        )
        self.non_local = NonLocal1d(c, nl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, D, T]
        out1 = self.conv_1(x)
        out2 = self.conv_2(x)
        out3 = self.conv_3(x)
        out_nl = self.non_local(self.conv_4(x))
        cat = torch.cat([out1, out2, out3, out_nl], dim=1)  # [N, 4C, T]
        return self.conv_5(cat) + x


class RTFM(nn.Module):
    def __init__(self, feature_dim: int, temporal_width: int, nonlocal_width: int, head):
        super().__init__()
        h1, h2 = head
        self.Aggregate = Aggregate(feature_dim, temporal_width, nonlocal_width)
        self.fc1 = nn.Linear(feature_dim, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc3 = nn.Linear(h2, 1)
        self.relu = nn.ReLU()
        self.sigmoid = nn.Sigmoid()

    @classmethod
    def from_widths(cls, w: dict) -> "RTFM":
        return cls(w["feature_dim"], w["temporal_width"], w["nonlocal_width"], w["head"])

    def forward(self, inputs: torch.Tensor):
        """inputs [B, crops, T, D] -> (scores [B, T], magnitudes [B, T]). Inference only."""
        b, ncrops, t, d = inputs.shape
        x = inputs.reshape(b * ncrops, t, d).permute(0, 2, 1)  # [N, D, T]
        feat = self.Aggregate(x).permute(0, 2, 1)  # [N, T, D]
        # Dropout(0.7) between the FC layers is training-only; eval() = identity.
        h = self.relu(self.fc1(feat))
        h = self.relu(self.fc2(h))
        s = self.sigmoid(self.fc3(h)).squeeze(-1)  # [N, T]
        scores = s.reshape(b, ncrops, t).mean(dim=1)
        mags = torch.linalg.vector_norm(feat, ord=2, dim=2)  # [N, T], no epsilon
        mags = mags.reshape(b, ncrops, t).mean(dim=1)
        return scores, mags


# --------------------------------------------------------------------------
# Deterministic formula (keep in sync with tests/fixtures/parity/FORMULA.md)
# --------------------------------------------------------------------------

W_PHASE = 0.5
W_STEP = 0.731
W_TENSOR = 1.37
BIAS_SCALE = 0.05
BN_WEIGHT_SCALE = 0.1
BN_BIAS_SCALE = 0.1
BN_MEAN_SCALE = 0.1
BN_VAR_SCALE = 0.5
FC3_SCALE = 1.0  # see FORMULA.md; 1.0 means "not used"

F_T = 0.9
F_C = 1.7
F_D = 0.23
F_TD = 0.001
F_AMP = 2.0

BN_MODULES = (
    "Aggregate.conv_1.2",
    "Aggregate.conv_2.2",
    "Aggregate.conv_3.2",
    "Aggregate.conv_5.2",
    "Aggregate.non_local.W.1",
)


def formula_constants() -> dict:
    return {
        "weight_value": "v = sin((0.5 + 0.731*i) + 1.37*k) in float64, i = flat C-order index, "
        "k = index of the tensor in sorted(float tensor names)",
        "w_phase": W_PHASE,
        "w_step": W_STEP,
        "w_tensor": W_TENSOR,
        "conv_linear_weight": "v * sqrt(2 / fan_in), fan_in = numel / shape[0]",
        "conv_linear_bias_scale": BIAS_SCALE,
        "bn_weight": "1 + 0.1*v",
        "bn_bias": "0.1*v",
        "bn_running_mean": "0.1*v",
        "bn_running_var": "1 + 0.5*|v|",
        "bn_weight_scale": BN_WEIGHT_SCALE,
        "bn_bias_scale": BN_BIAS_SCALE,
        "bn_mean_scale": BN_MEAN_SCALE,
        "bn_var_scale": BN_VAR_SCALE,
        "bn_eps": BN_EPS,
        "bn_modules": list(BN_MODULES),
        "num_batches_tracked": 0,
        "fc3_scale": FC3_SCALE,
        "feature_value": "x[t,c,d] = 2 * |sin(((0.9*t + 1.7*c) + 0.23*d) + (0.001*t)*d)| in float64",
        "f_t": F_T,
        "f_c": F_C,
        "f_d": F_D,
        "f_td": F_TD,
        "f_amp": F_AMP,
        "cast": "all values computed in float64 then cast to float32 (round to nearest)",
        "sin": "libm sin (Python math.sin == Rust f64::sin on glibc)",
    }


def _sin_array(args: np.ndarray) -> np.ndarray:
    # math.sin (the C library's sin, same as Rust's f64::sin) rather than
    # numpy's vectorised sin, which may differ in the last float64 ulp.
    flat = args.ravel()
    out = np.fromiter(map(math.sin, flat.tolist()), dtype=np.float64, count=flat.size)
    return out.reshape(args.shape)


def float_tensor_names(model: nn.Module) -> list:
    return sorted(n for n in model.state_dict().keys() if not n.endswith("num_batches_tracked"))


def formula_tensor(name: str, shape, k: int) -> np.ndarray:
    numel = int(np.prod(shape)) if len(shape) else 1
    i = np.arange(numel, dtype=np.float64)
    arg = (W_PHASE + W_STEP * i) + W_TENSOR * float(k)
    v = _sin_array(arg).reshape(shape)
    module, _, leaf = name.rpartition(".")
    if module in BN_MODULES:
        if leaf == "weight":
            out = 1.0 + BN_WEIGHT_SCALE * v
        elif leaf == "bias":
            out = BN_BIAS_SCALE * v
        elif leaf == "running_mean":
            out = BN_MEAN_SCALE * v
        elif leaf == "running_var":
            out = 1.0 + BN_VAR_SCALE * np.abs(v)
        else:
            raise ValueError(name)
    elif len(shape) >= 2:
        fan_in = numel // shape[0]
        out = v * math.sqrt(2.0 / fan_in)
        if name == "fc3.weight":
            out = out * FC3_SCALE
    elif len(shape) == 1 and leaf == "bias":
        out = BIAS_SCALE * v
    else:
        raise ValueError(f"unexpected tensor {name} {shape}")
    return out.astype(np.float32)


def formula_state_dict(model: nn.Module) -> dict:
    sd = model.state_dict()
    names = float_tensor_names(model)
    new = {}
    for name, tensor in sd.items():
        if name.endswith("num_batches_tracked"):
            new[name] = torch.tensor(0, dtype=torch.int64)
    for k, name in enumerate(names):
        shape = tuple(sd[name].shape)
        new[name] = torch.from_numpy(formula_tensor(name, shape, k))
    # keep the model's own key order
    return {n: new[n] for n in sd.keys()}


def build_model(widths: dict) -> RTFM:
    torch.manual_seed(0)
    model = RTFM.from_widths(widths)
    model.load_state_dict(formula_state_dict(model), strict=True)
    model.eval()
    return model


def formula_features(t: int, crops: int, d: int) -> np.ndarray:
    """[T, crops, D] float32, as a feature .npy file would hold it."""
    tt = np.arange(t, dtype=np.float64)[:, None, None]
    cc = np.arange(crops, dtype=np.float64)[None, :, None]
    dd = np.arange(d, dtype=np.float64)[None, None, :]
    arg = ((F_T * tt + F_C * cc) + F_D * dd) + (F_TD * tt) * dd
    x = F_AMP * np.abs(_sin_array(arg))
    return x.astype(np.float32)


@torch.no_grad()
def run(model: RTFM, feats_tcd: np.ndarray, dtype=torch.float32):
    """feats [T, crops, D] -> (scores [T], magnitudes [T]) as numpy arrays."""
    x = torch.from_numpy(np.ascontiguousarray(feats_tcd)).to(dtype)
    x = x.permute(1, 0, 2).unsqueeze(0)  # [1, crops, T, D]
    m = model.to(dtype)
    s, mg = m(x)
    return s[0].numpy(), mg[0].numpy()
