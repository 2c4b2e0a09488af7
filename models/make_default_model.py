#!/usr/bin/env python3
"""Generate vigil's shipped default model directory, `models/default/`.

Writes, deterministically (byte-identical on every run):

* ``extractor.onnx``   - a fixed (no learned weights) spatio-temporal motion-energy
  feature extractor: ``clip`` float32 [N, 1, 16, 96, 128] (0..1) -> ``features`` [N, 256].
* ``rtfm.safetensors`` - UNTRAINED RTFM weights at widths 256/64/32, head [128, 32],
  tensor names as in the reference checkpoint (without ``num_batches_tracked``).
* ``model.toml``       - the manifest, carrying the SHA-256 of ``extractor.onnx``.
* ``SHA256SUMS``       - checksums of the three files above.

``models/default/README.md`` (the model card) is written by hand; keep it in step
with ``FEATURE_LAYOUT`` below.

Usage::

    python models/make_default_model.py            # build + self-test
    python models/make_default_model.py --bench    # also time onnxruntime, 1 thread

Needs only numpy, onnx and safetensors to build; onnxruntime for the self-test and
the benchmark (skipped with a warning if it is missing, unless --bench is given).
Exits non-zero with a message on any failure.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from pathlib import Path

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as exc:  # pragma: no cover - environment problem
    sys.exit(f"error: the 'onnx' package is required ({exc}); pip install -r requirements.txt")

# ---------------------------------------------------------------------------
# Contract (shared with model.toml and the engine's preprocessing).
# ---------------------------------------------------------------------------
T_FRAMES = 16          # frames per snippet
IN_H, IN_W = 96, 128   # engine resizes every frame to 128x96 (area), gray, /255
FEATURE_DIM = 256
OPSET = 17

# ---------------------------------------------------------------------------
# Extractor design constants. Everything is expressed at the internal working
# resolution of 48x64 (the 96x128 input average-pooled 2x2).
# ---------------------------------------------------------------------------
WORK_H, WORK_W = 48, 64
# Spatial Gabor quadrature pairs. Wavelength 8 px at 48x64 (16 px at 128x96) suits
# objects the size of a person in a surveillance view, and keeps temporal aliasing
# (wagon-wheel reversal) away until 4 px/frame at 48x64 = 8 px/frame at 128x96.
GABOR_LAMBDA = 8.0
GABOR_SIGMA = 3.2       # ~0.4 wavelength: a bandwidth of about 1.4 octaves
GABOR_SIZE = 11         # +-5 taps covers +-1.6 sigma; the tail is negligible after DC removal
GABOR_STRIDE = 2        # energy maps at 24x32: the carrier (8 px) is still sampled above Nyquist
ORIENTATIONS_DEG = (0.0, 45.0, 90.0, 135.0)  # each gives two opposite motion directions
# Temporal Gabor quadrature pairs: 9 taps, two (frequency, envelope sigma) = two speeds.
# Preferred speed = omega / (2 pi / lambda): slow ~1.1 px/frame, fast ~2.4 px/frame at 48x64
# (2.2 and 4.9 px/frame at 128x96); half-power bands 0.5..1.25 and 1.2..2.5 rad/frame, so
# together they cover 0.6..3.2 px/frame at 48x64 and their ratio encodes the speed. The
# slow filter needs sigma 2 (and hence 9 taps): with a shorter envelope its DC-corrected
# even part is no longer in quadrature with the odd part and direction selectivity drops
# from >100:1 to ~5:1 (checked by self_test()).
TEMPORAL_TAPS = 9
TEMPORAL_FILTERS = ((0.8, 2.0), (1.9, 1.8))  # (omega rad/frame, sigma frames): (slow, fast)
N_T_OUT = T_FRAMES - TEMPORAL_TAPS + 1  # 8 valid time steps, together they cover all 16 frames
GRID = 4                # 4x4 spatial pooling cells (12x16 px each at 48x64)
# log(1 + k x) compression gains, chosen on vtest.avi so normal-scene features sit around
# 0.1..3 and strong events reach ~5..10 without overflow.
K_MOTION = 1.0e5       # directional / non-directional motion energy
K_FRAMEDIFF = 1000.0     # squared frame difference
K_GRADIENT = 1000.0      # squared spatial gradient

DIRECTIONS_DEG = tuple(ORIENTATIONS_DEG) + tuple(o + 180.0 for o in ORIENTATIONS_DEG)
SPEEDS = ("slow", "fast")

# Feature layout: (name, size, description). The graph's Concat follows this order and
# build_extractor() asserts the sizes; README.md documents the same table.
FEATURE_LAYOUT = (
    ("dir_energy_2x2_mean", 64,
     "directional motion energy, [speed(2), direction(8), cell 2x2 row-major], mean over time"),
    ("dir_energy_global_max", 16,
     "directional motion energy, [speed, direction], whole frame, max over time"),
    ("dir_energy_cellmax", 16,
     "directional motion energy, [speed, direction], max over the 4x4 cells of the time mean"),
    ("motion_energy_4x4_mean", 32,
     "non-directional motion energy (mean of the 8 directions), [speed, cell 4x4], mean over time"),
    ("motion_energy_4x4_max", 32,
     "non-directional motion energy, [speed, cell 4x4], max over time"),
    ("motion_energy_4x4_change", 32,
     "|log energy of second half - log energy of first half| of the clip, [speed, cell 4x4]"),
    ("framediff_4x4_mean", 16,
     "squared frame difference, [cell 4x4], mean over the 15 frame pairs"),
    ("framediff_4x4_max", 16,
     "squared frame difference, [cell 4x4], max over the 15 frame pairs"),
    ("gradient_4x4", 16,
     "spatial gradient energy of the clip's mean frame, [cell 4x4]"),
    ("gradient_4x4_change", 16,
     "|log gradient energy of mean(last 4 frames) - of mean(first 4 frames)|, [cell 4x4]"),
)

OUT_DIR_DEFAULT = Path(__file__).resolve().parent / "default"
EXTRACTOR_FILE = "extractor.onnx"
WEIGHTS_FILE = "rtfm.safetensors"
MANIFEST_FILE = "model.toml"


class BuildError(RuntimeError):
    """A generated artefact failed a check; the message says which."""


# ---------------------------------------------------------------------------
# Fixed filters
# ---------------------------------------------------------------------------
def spatial_gabors() -> np.ndarray:
    """Conv weight [8, 1, S, S]: for each orientation an (even, odd) quadrature pair.

    Orientation theta is the direction of the carrier's wave vector on screen,
    0 deg = right, 90 deg = up (image rows grow downwards, hence the minus sign on y).
    The Gaussian envelope is normalised to sum 1 and the even filter has its DC
    removed, so uniform brightness (and its flicker) gives no motion energy.
    """
    half = GABOR_SIZE // 2
    ys, xs = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    env = np.exp(-(xs ** 2 + ys ** 2) / (2.0 * GABOR_SIGMA ** 2))
    env /= env.sum()
    kappa = 2.0 * math.pi / GABOR_LAMBDA
    out = []
    for deg in ORIENTATIONS_DEG:
        th = math.radians(deg)
        phase = kappa * (math.cos(th) * xs - math.sin(th) * ys)
        even = env * np.cos(phase)
        even -= env * (even.sum() / env.sum())
        odd = env * np.sin(phase)  # odd-symmetric: zero DC by construction
        out += [even, odd]
    return np.stack(out)[:, None].astype(np.float32)


def temporal_gabors() -> np.ndarray:
    """[4, TAPS]: rows (slow even, slow odd, fast even, fast odd); DC-free."""
    half = TEMPORAL_TAPS // 2
    tau = np.arange(-half, half + 1, dtype=np.float64)
    rows = []
    for omega, sigma in TEMPORAL_FILTERS:
        env = np.exp(-tau ** 2 / (2.0 * sigma ** 2))
        env /= env.sum()
        even = env * np.cos(omega * tau)
        even -= env * (even.sum() / env.sum())
        odd = env * np.sin(omega * tau)
        rows += [even, odd]
    return np.stack(rows)


def temporal_matrix() -> np.ndarray:
    """[4 * N_T_OUT, 16]: row (filter, t) correlates frames t..t+TAPS-1 with the filter.

    Applying time filters as one MatMul over the frame axis avoids transposing the
    [N, 16, C, H, W] activations into a Conv-friendly layout.
    """
    filt = temporal_gabors()
    m = np.zeros((filt.shape[0] * N_T_OUT, T_FRAMES), dtype=np.float64)
    for f in range(filt.shape[0]):
        for t in range(N_T_OUT):
            m[f * N_T_OUT + t, t:t + TEMPORAL_TAPS] = filt[f]
    return m.astype(np.float32)


def frame_diff_matrix() -> np.ndarray:
    """[15, 16]: row t gives frame[t+1] - frame[t]."""
    m = np.zeros((T_FRAMES - 1, T_FRAMES), dtype=np.float32)
    for t in range(T_FRAMES - 1):
        m[t, t] = -1.0
        m[t, t + 1] = 1.0
    return m


def frame_means_matrix() -> np.ndarray:
    """[3, 16]: mean of all frames, of the first 4 and of the last 4."""
    m = np.zeros((3, T_FRAMES), dtype=np.float32)
    m[0, :] = 1.0 / T_FRAMES
    m[1, :4] = 0.25
    m[2, -4:] = 0.25
    return m


def gradient_filters() -> np.ndarray:
    """Conv weight [2, 1, 3, 3]: Sobel d/dx and d/dy, scaled to unit gain on a ramp."""
    sx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32) / 8.0
    return np.stack([sx, sx.T])[:, None]


# ---------------------------------------------------------------------------
# ONNX graph
# ---------------------------------------------------------------------------
class GraphBuilder:
    """Small helper that names nodes and constants deterministically."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def _name(self, op: str) -> str:
        self._n += 1
        return f"{op.lower()}_{self._n}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def ints(self, name: str, values) -> str:
        return self.const(name, np.asarray(values, dtype=np.int64))

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        name = self._name(op_type)
        out = out or name
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name, **attrs))
        return out

    # conveniences ---------------------------------------------------------
    def reshape(self, x: str, shape, tag: str) -> str:
        return self.op("Reshape", [x, self.ints(f"shape_{tag}", shape)])

    def reduce(self, op_type: str, x: str, axes, tag: str, keepdims: int = 0) -> str:
        # Opset 17: ReduceSum takes axes as an input, the other reductions as an attribute.
        if op_type == "ReduceSum":
            return self.op(op_type, [x, self.ints(f"axes_{tag}", axes)], keepdims=keepdims)
        return self.op(op_type, [x], axes=list(axes), keepdims=keepdims)

    def slice(self, x: str, start: int, end: int, axis: int, tag: str) -> str:
        return self.op("Slice", [x, self.ints(f"starts_{tag}", [start]),
                                 self.ints(f"ends_{tag}", [end]), self.ints(f"axes_{tag}", [axis])])

    def log_compress(self, x: str, k: float, tag: str) -> str:
        """log(1 + k x); x >= 0 everywhere it is used, so the result is finite and >= 0."""
        scaled = self.op("Mul", [x, self.const(f"gain_{tag}", np.array(k, dtype=np.float32))])
        return self.op("Log", [self.op("Add", [scaled, "one"])])


def build_extractor() -> onnx.ModelProto:
    g = GraphBuilder()
    g.const("one", np.array(1.0, dtype=np.float32))
    gh, gw = WORK_H // GABOR_STRIDE, WORK_W // GABOR_STRIDE   # 24 x 32 energy maps
    n_pix_e = gh * gw
    n_pix_w = WORK_H * WORK_W
    n_dir, n_spd = len(DIRECTIONS_DEG), len(SPEEDS)
    blocks: list[str] = []

    # --- shared front end: every frame as its own image, 2x2 area pooled to 48x64 --------
    frames = g.reshape("clip", [-1, 1, IN_H, IN_W], "frames")                 # [N*16,1,96,128]
    small = g.op("AveragePool", [frames], kernel_shape=[2, 2], strides=[2, 2])  # [N*16,1,48,64]

    # --- direction-selective motion energy (Adelson & Bergen 1985) ------------------------
    # Separable quadrature filters: spatial (Se, So) per orientation, temporal (Te, To) per
    # speed. The complex products (Se + iSo)(Te -/+ iTo) are space-time oriented filters
    # tuned to motion along +/- the carrier direction; their squared moduli are
    #   E(+theta) = Q - 2X,  E(theta + 180) = Q + 2X,
    #   Q = SeTe^2 + SoTo^2 + SoTe^2 + SeTo^2,  X = SoTe*SeTo - SeTe*SoTo,
    # which needs only the 4 separable responses (cheap) instead of 16 full 3-D kernels.
    sp = g.op("Conv", [small, g.const("gabor_spatial", spatial_gabors())],
              kernel_shape=[GABOR_SIZE, GABOR_SIZE], strides=[GABOR_STRIDE] * 2,
              pads=[GABOR_SIZE // 2] * 4)                                   # [N*16,8,24,32]
    sp = g.reshape(sp, [-1, T_FRAMES, 2 * len(ORIENTATIONS_DEG) * n_pix_e], "sp_time")
    y = g.op("MatMul", [g.const("gabor_temporal", temporal_matrix()), sp])  # [N,32,8*768]
    # axes: N, speed, temporal even/odd, t, orientation, spatial even/odd, pixel
    y = g.reshape(y, [-1, n_spd, 2, N_T_OUT, len(ORIENTATIONS_DEG), 2, n_pix_e], "y7")
    q = g.reduce("ReduceSumSquare", y, [2, 5], "q")                         # [N,2,8,4,768]
    te = g.slice(y, 0, 1, 2, "te")
    to = g.slice(y, 1, 2, 2, "to")
    te_swapped = g.op("Gather", [te, g.ints("swap_eo", [1, 0])], axis=5)    # [SoTe, SeTe]
    prod = g.op("Mul", [te_swapped, to])                                    # [SoTe*SeTo, SeTe*SoTo]
    x = g.op("Sub", [g.slice(prod, 0, 1, 5, "p0"), g.slice(prod, 1, 2, 5, "p1")])
    x2 = g.op("Mul", [g.reshape(x, [-1, n_spd, N_T_OUT, len(ORIENTATIONS_DEG), n_pix_e], "x"),
                      g.const("two", np.array(2.0, dtype=np.float32))])
    # Relu: Q -/+ 2X is a squared modulus, but float rounding may leave it at -1e-12.
    e_fwd = g.op("Relu", [g.op("Sub", [q, x2])])
    e_bwd = g.op("Relu", [g.op("Add", [q, x2])])
    e = g.op("Concat", [e_fwd, e_bwd], axis=3)                              # [N,2,8,8,768]
    e = g.reshape(e, [-1, n_spd * N_T_OUT * n_dir, gh, gw], "e_maps")
    e = g.op("AveragePool", [e], kernel_shape=[gh // GRID, gw // GRID],
             strides=[gh // GRID, gw // GRID])                              # [N,128,4,4]
    ecell = g.reshape(e, [-1, n_spd, N_T_OUT, n_dir, GRID * GRID], "ecell")  # [N,2,8,8,16]

    cm = g.reduce("ReduceMean", ecell, [2], "cm")                           # [N,2,8,16] time mean
    b = g.reshape(cm, [-1, n_spd * n_dir, GRID, GRID], "cm4")
    b = g.op("AveragePool", [b], kernel_shape=[2, 2], strides=[2, 2])      # 2x2 grid
    blocks.append(g.log_compress(g.reshape(b, [-1, 64], "b1"), K_MOTION, "b1"))
    b = g.reduce("ReduceMax", g.reduce("ReduceMean", ecell, [4], "glob"), [2], "globmax")
    blocks.append(g.log_compress(g.reshape(b, [-1, 16], "b2"), K_MOTION, "b2"))
    b = g.reduce("ReduceMax", cm, [3], "cellmax")
    blocks.append(g.log_compress(g.reshape(b, [-1, 16], "b3"), K_MOTION, "b3"))

    nd = g.reduce("ReduceMean", ecell, [3], "nd")                           # [N,2,8,16]
    b = g.reduce("ReduceMean", nd, [2], "ndmean")
    blocks.append(g.log_compress(g.reshape(b, [-1, 32], "b4"), K_MOTION, "b4"))
    b = g.reduce("ReduceMax", nd, [2], "ndmax")
    blocks.append(g.log_compress(g.reshape(b, [-1, 32], "b5"), K_MOTION, "b5"))
    half = N_T_OUT // 2
    first = g.log_compress(g.reduce("ReduceMean", g.slice(nd, 0, half, 2, "h1"), [2], "h1m"),
                           K_MOTION, "h1")
    second = g.log_compress(g.reduce("ReduceMean", g.slice(nd, half, N_T_OUT, 2, "h2"), [2], "h2m"),
                            K_MOTION, "h2")
    b = g.op("Abs", [g.op("Sub", [second, first])])
    blocks.append(g.reshape(b, [-1, 32], "b6"))

    # --- plain temporal difference: flicker, tampering, anything too fast for the Gabors ---
    flat = g.reshape(small, [-1, T_FRAMES, n_pix_w], "flat")                # [N,16,3072]
    d = g.op("MatMul", [g.const("frame_diff", frame_diff_matrix()), flat])  # [N,15,3072]
    d = g.op("Mul", [d, d])
    d = g.reshape(d, [-1, T_FRAMES - 1, WORK_H, WORK_W], "d_maps")
    d = g.op("AveragePool", [d], kernel_shape=[WORK_H // GRID, WORK_W // GRID],
             strides=[WORK_H // GRID, WORK_W // GRID])
    d = g.reshape(d, [-1, T_FRAMES - 1, GRID * GRID], "dcell")              # [N,15,16]
    blocks.append(g.log_compress(g.reduce("ReduceMean", d, [1], "dmean"), K_FRAMEDIFF, "b7"))
    blocks.append(g.log_compress(g.reduce("ReduceMax", d, [1], "dmax"), K_FRAMEDIFF, "b8"))

    # --- static structure: gradient energy of averaged frames (occlusion, defocus, cover) ---
    means = g.op("MatMul", [g.const("frame_means", frame_means_matrix()), flat])  # [N,3,3072]
    means = g.reshape(means, [-1, 1, WORK_H, WORK_W], "means")
    # Edge padding: zero padding would invent a strong edge along the frame border.
    padded = g.op("Pad", [means, g.ints("grad_pads", [0, 0, 1, 1, 0, 0, 1, 1])], mode="edge")
    grad = g.op("Conv", [padded, g.const("sobel", gradient_filters())], kernel_shape=[3, 3])
    grad = g.reduce("ReduceSumSquare", grad, [1], "gradsq", keepdims=1)    # [N*3,1,48,64]
    grad = g.op("AveragePool", [grad], kernel_shape=[WORK_H // GRID, WORK_W // GRID],
                strides=[WORK_H // GRID, WORK_W // GRID])
    grad = g.log_compress(g.reshape(grad, [-1, 3, GRID * GRID], "gcell"), K_GRADIENT, "grad")
    blocks.append(g.reshape(g.slice(grad, 0, 1, 1, "gall"), [-1, 16], "b9"))
    change = g.op("Abs", [g.op("Sub", [g.slice(grad, 2, 3, 1, "glast"),
                                       g.slice(grad, 1, 2, 1, "gfirst")])])
    blocks.append(g.reshape(change, [-1, 16], "b10"))

    if len(blocks) != len(FEATURE_LAYOUT):
        raise BuildError("graph blocks and FEATURE_LAYOUT disagree")
    g.op("Concat", blocks, out="features", axis=1)

    graph = helper.make_graph(
        g.nodes, "vigil_motion_energy_256",
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["N", 1, T_FRAMES, IN_H, IN_W])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", FEATURE_DIM])],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="vigil/models/make_default_model.py",
                              producer_version="1")
    # Pin the IR version so a newer onnx package does not silently change the bytes or
    # produce a file an older runtime refuses.
    model.ir_version = 8
    model.doc_string = ("Fixed spatio-temporal motion-energy features (no learned weights). "
                        "clip [N,1,16,96,128] gray 0..1 -> features [N,256]. See README.md.")
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    out_shape = [d.dim_param or d.dim_value
                 for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    if out_shape != ["N", FEATURE_DIM]:
        raise BuildError(f"features shape inferred as {out_shape}, expected ['N', 256]")
    if sum(size for _, size, _ in FEATURE_LAYOUT) != FEATURE_DIM:
        raise BuildError("FEATURE_LAYOUT does not add up to 256")
    return model


# ---------------------------------------------------------------------------
# FLOP count (analytic, from shapes inferred at N = 1)
# ---------------------------------------------------------------------------
ELEMENTWISE = {"Add", "Sub", "Mul", "Relu", "Log", "Abs"}


def count_flops(model: onnx.ModelProto) -> dict[str, int]:
    """FLOPs per clip, a multiply-add counted as 2; reshapes, slices and copies as 0."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.input[0].type.tensor_type.shape.dim[0].ClearField("dim_param")
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output)}
    for init in m.graph.initializer:
        shapes[init.name] = list(init.dims)
    per_op: dict[str, int] = {}
    for node in m.graph.node:
        out = shapes[node.output[0]]
        if any(v <= 0 for v in out):
            raise BuildError(f"FLOP count: unknown shape for {node.name}")
        n_out = int(np.prod(out))
        if node.op_type == "Conv":
            w = shapes[node.input[1]]
            flops = 2 * n_out * int(np.prod(w[1:]))
        elif node.op_type == "MatMul":
            flops = 2 * n_out * shapes[node.input[0]][-1]
        elif node.op_type == "AveragePool":
            k = next(a.ints for a in node.attribute if a.name == "kernel_shape")
            flops = n_out * int(np.prod(k))
        elif node.op_type.startswith("Reduce"):
            flops = int(np.prod(shapes[node.input[0]])) * (2 if "Square" in node.op_type else 1)
        elif node.op_type in ELEMENTWISE:
            flops = n_out
        else:
            flops = 0
        per_op[node.op_type] = per_op.get(node.op_type, 0) + flops
    per_op["total"] = sum(per_op.values())
    return per_op


# ---------------------------------------------------------------------------
# RTFM weights (untrained)
# ---------------------------------------------------------------------------
RTFM_FEATURE_DIM = 256
RTFM_TEMPORAL = 64
RTFM_NONLOCAL = 32
RTFM_HEAD = (128, 32)


def rtfm_weights() -> dict[str, np.ndarray]:
    """PyTorch-default-like init from numpy seed 0, in a fixed name order.

    Conv1d/Linear weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = in_channels * kernel; BatchNorm weight 1, bias 0, mean 0, var 1.
    """
    rng = np.random.default_rng(0)
    d, c, nl = RTFM_FEATURE_DIM, RTFM_TEMPORAL, RTFM_NONLOCAL
    h1, h2 = RTFM_HEAD
    tensors: dict[str, np.ndarray] = {}

    def uniform(shape, fan_in):
        bound = 1.0 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    def conv(name, out_ch, in_ch, k, bias=True):
        tensors[f"{name}.weight"] = uniform((out_ch, in_ch, k), in_ch * k)
        if bias:
            tensors[f"{name}.bias"] = uniform((out_ch,), in_ch * k)

    def linear(name, out_f, in_f):
        tensors[f"{name}.weight"] = uniform((out_f, in_f), in_f)
        tensors[f"{name}.bias"] = uniform((out_f,), in_f)

    def bn(name, ch):
        tensors[f"{name}.weight"] = np.ones(ch, np.float32)
        tensors[f"{name}.bias"] = np.zeros(ch, np.float32)
        tensors[f"{name}.running_mean"] = np.zeros(ch, np.float32)
        tensors[f"{name}.running_var"] = np.ones(ch, np.float32)

    for i in (1, 2, 3):                      # dilations 1, 2, 4
        conv(f"Aggregate.conv_{i}.0", c, d, 3)
        bn(f"Aggregate.conv_{i}.2", c)
    conv("Aggregate.conv_4.0", c, d, 1, bias=False)
    conv("Aggregate.conv_5.0", d, 4 * c, 3, bias=False)
    bn("Aggregate.conv_5.2", d)
    for part in ("g", "theta", "phi"):
        conv(f"Aggregate.non_local.{part}", nl, c, 1)
    conv("Aggregate.non_local.W.0", c, nl, 1)
    bn("Aggregate.non_local.W.1", c)
    linear("fc1", h1, d)
    linear("fc2", h2, h1)
    linear("fc3", 1, h2)
    if 4 * c != d:
        raise BuildError("temporal_width * 4 must equal feature_dim (residual connection)")
    return tensors


# ---------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------
def manifest(extractor_sha: str) -> str:
    return f"""\
# vigil model manifest (generated by models/make_default_model.py; do not edit by hand)
name = "vigil-motion-energy-256"
description = "Fixed direction-selective motion-energy features (8 directions x 2 speeds, frame difference, gradient; no learned weights) with an UNTRAINED RTFM head"

[extractor]
file = "{EXTRACTOR_FILE}"
sha256 = "{extractor_sha}"
input = "clip"
output = "features"
input_shape = [-1, 1, {T_FRAMES}, {IN_H}, {IN_W}]
output_shape = [-1, {FEATURE_DIM}]
max_batch = 8

[preprocess]
snippet_frames = {T_FRAMES}
frame_stride = 1
color = "gray"
interpolation = "area"
resize = {{ mode = "exact", width = {IN_W}, height = {IN_H} }}
crop = "none"
crop_width = {IN_W}
crop_height = {IN_H}
mean = [0.0]
std = [255.0]

[features]
dim = {FEATURE_DIM}
crops = 1

[rtfm]
weights = "{WEIGHTS_FILE}"
trained = false
feature_dim = {RTFM_FEATURE_DIM}
temporal_width = {RTFM_TEMPORAL}
nonlocal_width = {RTFM_NONLOCAL}
head = [{RTFM_HEAD[0]}, {RTFM_HEAD[1]}]

[scorer]
mode = "window"
window = 32
lookahead = 2

[alert]
on = 0.6
off = 0.4
min_duration_s = 0.8
hold_s = 2.0
cooldown_s = 10.0
"""


# ---------------------------------------------------------------------------
# Self-test with onnxruntime
# ---------------------------------------------------------------------------
def moving_grating(direction_deg: float, speed: float, wavelength: float = 16.0) -> np.ndarray:
    """[1,1,16,96,128] sinusoidal grating moving at `speed` px/frame (at 128x96)."""
    th = math.radians(direction_deg)
    ys, xs = np.mgrid[0:IN_H, 0:IN_W].astype(np.float64)
    pos = math.cos(th) * xs - math.sin(th) * ys            # screen-up is -y
    t = np.arange(T_FRAMES)[:, None, None]
    clip = 0.5 + 0.4 * np.cos(2 * math.pi / wavelength * (pos[None] - speed * t))
    return clip[None, None].astype(np.float32)


def block_slices() -> dict[str, slice]:
    out, start = {}, 0
    for name, size, _ in FEATURE_LAYOUT:
        out[name] = slice(start, start + size)
        start += size
    return out


def self_test(path: Path) -> None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    run = lambda clip: sess.run(["features"], {"clip": clip})[0]  # noqa: E731
    blocks = block_slices()

    for n in (1, 3):
        f = run(np.full((n, 1, T_FRAMES, IN_H, IN_W), 0.5, np.float32))
        if f.shape != (n, FEATURE_DIM):
            raise BuildError(f"batch {n}: features shape {f.shape}")
    for value in (0.0, 1.0):
        f = run(np.full((1, 1, T_FRAMES, IN_H, IN_W), value, np.float32))
        if not np.all(np.isfinite(f)) or np.abs(f).max() > 1e-5:
            raise BuildError(f"constant clip {value}: features not all ~0 (max {np.abs(f).max()})")
    # A static textured scene must give no motion energy at all, only gradient energy.
    rng = np.random.default_rng(0)
    static = np.repeat(rng.uniform(0, 1, (1, 1, 1, IN_H, IN_W)).astype(np.float32), T_FRAMES, 2)
    f = run(static)[0]
    if np.abs(f[:blocks["gradient_4x4"].start]).max() > 1e-3 or f[blocks["gradient_4x4"]].min() < 0.5:
        raise BuildError("static texture: motion blocks should be ~0 and gradient blocks large")
    # Direction selectivity: a grating moving towards each of the 8 directions must win in
    # its own channel (both speeds), and the opposite direction must be clearly weaker.
    dirs = blocks["dir_energy_global_max"]
    for want, deg in enumerate(DIRECTIONS_DEG):
        for spd, speed_px in enumerate((1.5, 4.5)):  # px/frame at 128x96
            e = run(moving_grating(deg, speed_px))[0][dirs].reshape(2, 8)[spd]
            opposite = (want + 4) % 8
            if int(np.argmax(e)) != want or e[want] < e[opposite] + 1.0:
                raise BuildError(f"direction test failed for {deg} deg at {speed_px} px/frame: {e}")
    # Speed: the fast channel must respond relatively more to the faster grating.
    slow_g = run(moving_grating(0.0, 1.0))[0][blocks["motion_energy_4x4_mean"]].reshape(2, 16).mean(1)
    fast_g = run(moving_grating(0.0, 5.0))[0][blocks["motion_energy_4x4_mean"]].reshape(2, 16).mean(1)
    if not (slow_g[0] - slow_g[1]) > (fast_g[0] - fast_g[1]) + 1.0:
        raise BuildError(f"speed test failed: slow grating {slow_g}, fast grating {fast_g}")
    # Values stay bounded even for a maximal-contrast flickering input.
    flicker = np.zeros((1, 1, T_FRAMES, IN_H, IN_W), np.float32)
    flicker[:, :, ::2] = 1.0
    noise = rng.uniform(0, 1, (1, 1, T_FRAMES, IN_H, IN_W)).astype(np.float32)
    for name, clip in (("flicker", flicker), ("noise", noise)):
        f = run(clip)
        if not np.all(np.isfinite(f)) or f.max() > 20.0 or f.min() < 0.0:
            raise BuildError(f"{name}: features out of range [{f.min()}, {f.max()}]")


def bench(path: Path, repeats: int = 30) -> dict[int, float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    out = {}
    for batch in (1, 8):
        clip = rng.uniform(0, 1, (batch, 1, T_FRAMES, IN_H, IN_W)).astype(np.float32)
        for _ in range(3):
            sess.run(["features"], {"clip": clip})
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            sess.run(["features"], {"clip": clip})
            times.append(time.perf_counter() - t0)
        out[batch] = 1000.0 * float(np.median(times)) / batch
    return out


# ---------------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR_DEFAULT, help="output directory")
    ap.add_argument("--bench", action="store_true",
                    help="time onnxruntime (1 thread) at batch 1 and 8, in ms per clip")
    ap.add_argument("--no-self-test", action="store_true", help="skip the onnxruntime checks")
    args = ap.parse_args()

    try:
        from safetensors.numpy import save_file
    except ImportError as exc:
        print(f"error: the 'safetensors' package is required ({exc})", file=sys.stderr)
        return 2

    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        model = build_extractor()
        onnx_path = out / EXTRACTOR_FILE
        onnx_path.write_bytes(model.SerializeToString())
        flops = count_flops(model)

        weights = rtfm_weights()
        weights_path = out / WEIGHTS_FILE
        save_file(weights, str(weights_path),
                  metadata={"trained": "false", "source": "models/make_default_model.py"})

        onnx_sha = sha256_of(onnx_path)
        manifest_path = out / MANIFEST_FILE
        manifest_path.write_text(manifest(onnx_sha), encoding="utf-8", newline="\n")
        sums = "".join(f"{sha256_of(p)}  {p.name}\n" for p in (onnx_path, weights_path, manifest_path))
        (out / "SHA256SUMS").write_text(sums, encoding="utf-8", newline="\n")

        print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes, sha256 {onnx_sha})")
        print(f"wrote {weights_path} ({len(weights)} tensors, "
              f"{sum(w.size for w in weights.values())} parameters, untrained)")
        print(f"wrote {manifest_path} and {out / 'SHA256SUMS'}")
        print(f"extractor FLOPs per clip: {flops['total'] / 1e6:.2f} M  (" +
              ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in sorted(flops.items())
                        if k != "total" and v) + ")")

        if not args.no_self_test:
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                if args.bench:
                    raise BuildError("--bench needs onnxruntime")
                print("warning: onnxruntime not installed, self-test skipped", file=sys.stderr)
            else:
                self_test(onnx_path)
                print("self-test passed (shapes, constant clips, static texture, 8 directions, speed)")
        if args.bench:
            for batch, ms in bench(onnx_path).items():
                print(f"onnxruntime 1 thread, batch {batch}: {ms:.2f} ms per clip")
    except (BuildError, onnx.checker.ValidationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
