#!/usr/bin/env python3
"""Generate the untrained base of vigil's default model (`models/train_default.sh` trains it).

Writes, deterministically (byte-identical on every run):

* ``extractor.onnx``   - a fixed (no learned weights) spatio-temporal feature extractor
  built to be scene-invariant (contrast-normalised motion energy, order statistics over
  cells, ratios): ``clip`` float32 [N, 1, 16, 96, 128] (0..1) -> ``features`` [N, 144].
* ``rtfm.safetensors`` - UNTRAINED RTFM weights at widths 144/36/18, head [128, 32],
  tensor names as in the reference checkpoint (without ``num_batches_tracked``).
* ``model.toml``       - the manifest, carrying the SHA-256 of ``extractor.onnx``.
* ``SHA256SUMS``       - checksums of the three files above.

``models/default/README.md`` (the model card) is written by hand; keep it in step
with ``FEATURE_LAYOUT`` below. The shipped ``models/default`` is this output trained by
``models/train_default.sh``, which calls this script with ``--out`` a work directory.

Usage::

    python models/make_default_model.py [--out DIR]          # build + self-test
    python models/make_default_model.py --out DIR --bench    # also time onnxruntime, 1 thread

DIR defaults to out/default-untrained.

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
FEATURE_DIM = 144
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
GRID_H, GRID_W = 6, 8   # 48 pooling cells (4x4 px of the 24x32 energy maps = 16x16 px at 128x96)
N_CELLS = GRID_H * GRID_W
# Ranks (0 = largest) read from the cells sorted by a quantity: order statistics over space, so a
# crop, mirror or shift of the scene moves no feature, only where in the ranking a cell falls.
RANKS8 = (0, 1, 3, 7, 15, 23, 35, 47)
RANKS6 = (0, 1, 3, 7, 15, 23)
RANKS4 = (0, 1, 3, 7)
RANKS3 = (0, 1, 3)
# Noise floors, in the units of the quantity they guard (calibrated on vtest.avi and the synth
# benchmark's normal clips, see README.md): a cell with less static contrast than C_STATIC is
# treated as flat, so MJPEG noise on a blank wall cannot look like fast motion.
C_STATIC = 1.0e-3      # static (spatial Gabor) energy per cell
C_MOTION = 2.0e-3      # contrast-normalised motion energy (a ratio, ~0.01..1 for walkers)
C_GRAD = 1.0e-4        # squared Sobel gradient per pixel at 128x96
C_LUMA = 0.05          # mean brightness (0..1)
K_REL = 200.0          # log(1 + K_REL x) for contrast-normalised motion energies
MIRROR_BINS = (        # screen directions merged with their mirror image (x -> -x)
    ("horizontal", (0, 4)), ("up_diagonal", (1, 3)), ("up", (2,)), ("down_diagonal", (5, 7)), ("down", (6,)))
SHARP_FRAMES = (0, 5, 10, 15)  # frames whose fine-scale sharpness is measured
SHARP_SCALE = 1.0

DIRECTIONS_DEG = tuple(ORIENTATIONS_DEG) + tuple(o + 180.0 for o in ORIENTATIONS_DEG)
SPEEDS = ("slow", "fast")

# Feature layout: (name, size, description). Every feature is either a ratio (log of one
# energy over another) or an order statistic over the 48 cells, so that the scene's lighting,
# texture, framing, crop and mirror image move the features as little as possible while
# events do. The graph's Concat follows this order; README.md documents the same table.
FEATURE_LAYOUT = (
    ("motion_ranked", 16, "contrast-normalised motion energy per cell (time mean), [speed, ranks 1,2,4,8,16,24,36,48 of 48 cells]"),
    ("motion_peak_ranked", 8, "the same, max over time, [speed, ranks 1,2,4,8]"),
    ("motion_mean", 2, "the same, mean over all cells, [speed]"),
    ("speed_ratio", 2, "log fast/slow motion energy: all cells, the cells at ranks 1,2,4,8 of each speed"),
    ("speed_ratio_ranked", 6, "log fast/slow motion energy per cell, ranks 1,2,4,8,16,24"),
    ("direction_mirror_hist", 10, "fraction of motion energy per direction, mirror pairs merged: [speed, horizontal, up-diagonal, up, down-diagonal, down]"),
    ("against_flow_ranked", 6, "per cell energy weighted by the clip's own flow histogram turned 180 deg, [speed, ranks 1,2,4]"),
    ("across_flow_ranked", 6, "the same turned +-90 deg, [speed, ranks 1,2,4]"),
    ("against_flow_ratio", 4, "log (against / along) and log (across / along) over all cells, [speed]"),
    ("vertical_excess_ranked", 6, "per cell max(0, vertical - horizontal motion energy), [speed, ranks 1,2,4]"),
    ("coherence", 8, "[mean over time, max over time] of |sum of cell velocities| / sum |cell velocity|, |clip mean velocity| / sum over time, log global speed; each [speed]"),
    ("motion_change_ranked", 8, "|log energy of second half / first half| per cell, [speed, ranks 1,2,4,8]"),
    ("motion_change_global", 4, "the same for the whole frame, and std/mean of whole-frame energy over the 8 time steps, [speed]"),
    ("opponency_ranked", 8, "min(energy towards, away) per orientation at each time step, per cell, [speed, ranks 1,2,4,8]"),
    ("reversal_ranked", 6, "the same on the clip's time means (back-and-forth motion), [speed, ranks 1,2,4]"),
    ("contrast_ranked", 8, "log static contrast energy per cell / the frame mean, ranks 1,2,4,8,16,24,36,48"),
    ("contrast_level", 1, "log static contrast of the whole frame"),
    ("contrast_change_ranked", 4, "|log contrast of last 4 frames / first 4| per cell, ranks 1,2,4,8"),
    ("contrast_change_global", 1, "the same for the whole frame"),
    ("sharpness_ranked", 4, "log fine-scale (128x96 Sobel) / Gabor-band energy per cell, ranks 1,2,4,8"),
    ("sharpness_global", 2, "the same for the whole frame: mean over frames 0,5,10,15, |last - first|"),
    ("brightness_change_ranked", 4, "|log mean brightness of last 4 frames / first 4| per cell, ranks 1,2,4,8"),
    ("coarse_motion_ranked", 8, "contrast-normalised motion energy per cell at the coarse scale (24x32 frame: things twice as large, speeds twice as high), [speed, ranks 1,2,4,8]"),
    ("coarse_motion_mean", 2, "the same, mean over all cells, [speed]"),
    ("coarse_speed_ratio", 2, "log fast/slow coarse motion energy: all cells, the cells at ranks 1,2,4,8 of each speed"),
    ("coarse_speed_ratio_ranked", 4, "log fast/slow coarse motion energy per cell, ranks 1,2,4,8"),
    ("scale_ratio_ranked", 4, "log coarse / fine motion energy per cell (large or fast movers), ranks 1,2,4,8"),
)

# Not models/default: that directory holds the trained model, made from this script's output
# by models/train_default.sh, and must not be overwritten with untrained weights.
OUT_DIR_DEFAULT = Path(__file__).resolve().parent.parent / "out" / "default-untrained"
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
    n_ori, n_dir, n_spd = len(ORIENTATIONS_DEG), len(DIRECTIONS_DEG), len(SPEEDS)
    ch, cw = gh // GRID_H, gw // GRID_W                       # 4 x 4 px cells
    blocks: dict[str, str] = {}

    def eps(tag: str, value: float) -> str:
        return g.const(f"eps_{tag}", np.array(value, dtype=np.float32))

    def ratio(num: str, den: str, floor: float, tag: str) -> str:
        """num / (den + floor)."""
        return g.op("Div", [num, g.op("Add", [den, eps(tag, floor)])])

    def log_ratio(num: str, den: str, floor: float, tag: str) -> str:
        """log((num + floor) / (den + floor)): signed, 0 when equal, finite for num, den >= 0."""
        f = eps(tag, floor)
        return g.op("Log", [g.op("Div", [g.op("Add", [num, f]), g.op("Add", [den, f])])])

    def ranked(x: str, ranks, tag: str) -> str:
        """Cells sorted in descending order (last axis), read at `ranks`."""
        k = g.ints(f"k_{tag}", [N_CELLS])
        name = g._name("TopK")
        vals = f"{name}_values"
        g.nodes.append(helper.make_node("TopK", [x, k], [vals, f"{name}_indices"], name=name,
                                        axis=-1, largest=1, sorted=1))
        return g.op("Gather", [vals, g.ints(f"ranks_{tag}", list(ranks))], axis=-1)

    def pool_cells(x: str, channels: int, tag: str) -> str:
        """[..., 24*32] maps -> [..., 48] cell means (channels = product of the leading axes but N)."""
        m = g.reshape(x, [-1, channels, gh, gw], f"{tag}_maps")
        m = g.op("AveragePool", [m], kernel_shape=[ch, cw], strides=[ch, cw])
        return m

    def emit(name: str, x: str) -> None:
        size = dict((n, s) for n, s, _ in FEATURE_LAYOUT)[name]
        blocks[name] = g.reshape(x, [-1, size], f"out_{name}")

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
    # Zero padding: the frame border is a static edge whose energy grows with the scene's
    # brightness. It damps the contrast-normalised motion of the border cells, where people
    # enter and leave; edge padding scored lower on the validation split (README.md).
    gabor = g.const("gabor_spatial", spatial_gabors())
    gabor_t = g.const("gabor_temporal", temporal_matrix())
    sp = g.op("Conv", [small, gabor],
              kernel_shape=[GABOR_SIZE, GABOR_SIZE], strides=[GABOR_STRIDE] * 2,
              pads=[GABOR_SIZE // 2] * 4)                                   # [N*16,8,24,32]
    sp_t = g.reshape(sp, [-1, T_FRAMES, 2 * n_ori * n_pix_e], "sp_time")
    y = g.op("MatMul", [gabor_t, sp_t])                                     # [N,32,8*768]
    # axes: N, speed, temporal even/odd, t, orientation, spatial even/odd, pixel
    y = g.reshape(y, [-1, n_spd, 2, N_T_OUT, n_ori, 2, n_pix_e], "y7")
    q = g.reduce("ReduceSumSquare", y, [2, 5], "q")                         # [N,2,8,4,768]
    te = g.slice(y, 0, 1, 2, "te")
    to = g.slice(y, 1, 2, 2, "to")
    te_swapped = g.op("Gather", [te, g.ints("swap_eo", [1, 0])], axis=5)    # [SoTe, SeTe]
    prod = g.op("Mul", [te_swapped, to])                                    # [SoTe*SeTo, SeTe*SoTo]
    x = g.op("Sub", [g.slice(prod, 0, 1, 5, "p0"), g.slice(prod, 1, 2, 5, "p1")])
    x2 = g.op("Mul", [g.reshape(x, [-1, n_spd, N_T_OUT, n_ori, n_pix_e], "x"),
                      g.const("two", np.array(2.0, dtype=np.float32))])
    # Relu: Q -/+ 2X is a squared modulus, but float rounding may leave it at -1e-12.
    e_fwd = g.op("Relu", [g.op("Sub", [q, x2])])
    e_bwd = g.op("Relu", [g.op("Add", [q, x2])])
    e = g.op("Concat", [e_fwd, e_bwd], axis=3)                              # [N,2,8,8,768]
    e = pool_cells(e, n_spd * N_T_OUT * n_dir, "e")
    ecell = g.reshape(e, [-1, n_spd, N_T_OUT, n_dir, N_CELLS], "ecell")    # [N,2,8t,8d,48]

    # --- static contrast: spatial quadrature energy of each frame, per cell ---------------
    # A moving pattern of contrast c gives motion energy ~ c^2 g(v)^2 and static energy ~ c^2,
    # so their ratio depends on the speed and direction only: lighting, exposure and scene
    # texture cancel out.
    sp_f = g.reshape(sp, [-1, T_FRAMES, n_ori * 2, n_pix_e], "sp_f")
    s_frame = g.reduce("ReduceSumSquare", sp_f, [2], "s_frame")            # [N,16,768]
    s_frame = g.reshape(pool_cells(s_frame, T_FRAMES, "s"), [-1, T_FRAMES, N_CELLS], "s_cell")
    s_cell = g.reduce("ReduceMean", s_frame, [1], "s_mean")                # [N,48]
    s_den = g.op("Add", [g.reshape(s_cell, [-1, 1, 1, 1, N_CELLS], "s_b"), eps("s", C_STATIC)])
    rel = g.op("Div", [ecell, s_den])                                      # [N,2,8t,8d,48]

    def lc(x: str, tag: str) -> str:
        return g.log_compress(x, K_REL, tag)

    # --- amount of motion, as order statistics over the cells ----------------------------
    m_t = g.reduce("ReduceSum", rel, [3], "m_t")                            # [N,2,8t,48]
    m = g.reduce("ReduceMean", m_t, [2], "m")                               # [N,2,48]
    emit("motion_ranked", lc(ranked(m, RANKS8, "m"), "m"))
    m_peak = g.reduce("ReduceMax", m_t, [2], "m_peak")
    emit("motion_peak_ranked", lc(ranked(m_peak, RANKS4, "mp"), "mp"))
    m_all = g.reduce("ReduceMean", m, [2], "m_all")                         # [N,2]
    emit("motion_mean", lc(m_all, "mall"))
    # Fast over slow energy: the speed of what moves, independent of how much moves.
    m_top = g.reduce("ReduceMean", ranked(m, RANKS4, "mtop"), [2], "m_top")  # [N,2]
    emit("speed_ratio", g.op("Concat", [log_ratio(g.slice(m_all, 1, 2, 1, "sr0f"),
                                                  g.slice(m_all, 0, 1, 1, "sr0s"), C_MOTION, "sr0"),
                                        log_ratio(g.slice(m_top, 1, 2, 1, "sr1f"),
                                                  g.slice(m_top, 0, 1, 1, "sr1s"), C_MOTION, "sr1")],
                             axis=1))

    # Per cell: is what moves here fast (runner, vehicle) rather than merely much (crowd)?
    m_slow = g.slice(m, 0, 1, 1, "m_slow")
    m_fast = g.slice(m, 1, 2, 1, "m_fast")
    emit("speed_ratio_ranked", ranked(log_ratio(m_fast, m_slow, C_MOTION, "srr"), RANKS6, "srr"))

    # --- direction: mirror-invariant histogram, flow against and across the clip's own flow
    rel_t = g.reduce("ReduceMean", rel, [2], "rel_t")                       # [N,2,8d,48]
    d_glob = g.reduce("ReduceSum", rel_t, [3], "d_glob")                     # [N,2,8]
    d_tot = g.reduce("ReduceSum", d_glob, [2], "d_tot", keepdims=1)          # [N,2,1]
    hist = ratio(d_glob, d_tot, N_CELLS * C_MOTION, "hist")                  # [N,2,8] fractions
    bins = np.zeros((n_dir, len(MIRROR_BINS)), np.float32)
    for j, (_, dirs) in enumerate(MIRROR_BINS):
        bins[list(dirs), j] = 1.0
    emit("direction_mirror_hist", g.op("MatMul", [hist, g.const("mirror_bins", bins)]))
    h_col = g.reshape(hist, [-1, n_spd, n_dir, 1], "h_col")
    opposite = g.op("Gather", [h_col, g.ints("opp", [(d + 4) % 8 for d in range(8)])], axis=2)
    across = g.op("Add", [g.op("Gather", [h_col, g.ints("left", [(d + 2) % 8 for d in range(8)])], axis=2),
                          g.op("Gather", [h_col, g.ints("right", [(d + 6) % 8 for d in range(8)])], axis=2)])
    along = g.reduce("ReduceSum", g.op("Mul", [rel_t, h_col]), [2], "along")      # [N,2,48]
    against = g.reduce("ReduceSum", g.op("Mul", [rel_t, opposite]), [2], "against")
    cross = g.reduce("ReduceSum", g.op("Mul", [rel_t, across]), [2], "cross")
    emit("against_flow_ranked", lc(ranked(against, RANKS3, "ag"), "ag"))
    emit("across_flow_ranked", lc(ranked(cross, RANKS3, "ac"), "ac"))
    # Per cell, against/along and across/along where the most motion is.
    emit("against_flow_ratio", g.op("Concat", [
        log_ratio(g.reduce("ReduceSum", against, [2], "ag_s"), g.reduce("ReduceSum", along, [2], "al_s"),
                  N_CELLS * C_MOTION, "agr"),
        log_ratio(g.reduce("ReduceSum", cross, [2], "ac_s"), g.reduce("ReduceSum", along, [2], "al_s2"),
                  N_CELLS * C_MOTION, "acr")], axis=1))

    # Vertical motion in excess of horizontal, per cell: walking across the usual (horizontal)
    # paths of a ground-plane view, falling, getting up.
    vert = g.reduce("ReduceSum", g.op("Gather", [rel_t, g.ints("vert_dirs", [2, 6])], axis=2), [2], "vert")
    horiz = g.reduce("ReduceSum", g.op("Gather", [rel_t, g.ints("horiz_dirs", [0, 4])], axis=2), [2], "horiz")
    emit("vertical_excess_ranked", lc(ranked(g.op("Relu", [g.op("Sub", [vert, horiz])]), RANKS3, "vx"), "vx"))

    # --- coherence: does the whole frame move one way (camera shake, pan)? -----------------
    dirs = np.array([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in DIRECTIONS_DEG],
                    np.float32)
    rel_last = g.op("Transpose", [rel], perm=[0, 1, 2, 4, 3])              # [N,2,8t,48,8d]
    v = g.op("MatMul", [rel_last, g.const("dir_vectors", dirs)])           # [N,2,8t,48,2]
    v_len = g.op("Sqrt", [g.reduce("ReduceSumSquare", v, [4], "v_len")])   # [N,2,8t,48]
    v_glob = g.reduce("ReduceSum", v, [3], "v_glob")                        # [N,2,8t,2]
    v_glob_len = g.op("Sqrt", [g.reduce("ReduceSumSquare", v_glob, [3], "vg_len")])  # [N,2,8t]
    v_sum_len = g.reduce("ReduceSum", v_len, [3], "v_sum_len")               # [N,2,8t]
    coh_t = ratio(v_glob_len, v_sum_len, N_CELLS * C_MOTION, "coh")
    v_clip = g.op("Sqrt", [g.reduce("ReduceSumSquare", g.reduce("ReduceSum", v_glob, [2], "v_clip"),
                                    [2], "v_clip_len")])                     # [N,2]
    steady = ratio(v_clip, g.reduce("ReduceSum", v_glob_len, [2], "vgl_s"), N_CELLS * C_MOTION, "steady")
    emit("coherence", g.op("Concat", [g.reduce("ReduceMean", coh_t, [2], "coh_m"),
                                      g.reduce("ReduceMax", coh_t, [2], "coh_x"), steady,
                                      lc(g.op("Div", [g.reduce("ReduceMean", v_glob_len, [2], "vgl_m"),
                                                      g.const("n_cells", np.array(N_CELLS, np.float32))]),
                                         "vgl")], axis=1))

    # --- temporal contrast inside the snippet: onsets, stops, jitter -----------------------
    half = N_T_OUT // 2
    m1 = g.reduce("ReduceMean", g.slice(m_t, 0, half, 2, "mh1"), [2], "m1")  # [N,2,48]
    m2 = g.reduce("ReduceMean", g.slice(m_t, half, N_T_OUT, 2, "mh2"), [2], "m2")
    emit("motion_change_ranked", ranked(g.op("Abs", [log_ratio(m2, m1, C_MOTION, "mch")]), RANKS4, "mch"))
    g_t = g.reduce("ReduceMean", m_t, [3], "g_t")                           # [N,2,8t]
    g_mean = g.reduce("ReduceMean", g_t, [2], "g_mean", keepdims=1)
    g_dev = g.op("Sub", [g_t, g_mean])
    g_std = g.op("Sqrt", [g.reduce("ReduceMean", g.op("Mul", [g_dev, g_dev]), [2], "g_var")])
    emit("motion_change_global", g.op("Concat", [
        g.op("Abs", [log_ratio(g.reduce("ReduceMean", m2, [2], "m2g"), g.reduce("ReduceMean", m1, [2], "m1g"),
                               C_MOTION, "mchg")]),
        ratio(g_std, g.reshape(g_mean, [-1, n_spd], "g_mean2"), C_MOTION, "gcv")], axis=1))

    # --- opponency: both directions of one axis in one place (flailing, jitter) ------------
    fwd_c = g.reshape(pool_cells(e_fwd, n_spd * N_T_OUT * n_ori, "ef"), [-1, n_spd, N_T_OUT, n_ori, N_CELLS], "efc")
    bwd_c = g.reshape(pool_cells(e_bwd, n_spd * N_T_OUT * n_ori, "eb"), [-1, n_spd, N_T_OUT, n_ori, N_CELLS], "ebc")
    s_den4 = g.reshape(s_den, [-1, 1, 1, 1, N_CELLS], "s_den4")
    opp_now = g.reduce("ReduceSum", g.op("Div", [g.op("Min", [fwd_c, bwd_c]), s_den4]), [3], "opp_now")
    emit("opponency_ranked", lc(ranked(g.reduce("ReduceMean", opp_now, [2], "opp_m"), RANKS4, "opn"), "opn"))
    opp_clip = g.reduce("ReduceSum", g.op("Div", [g.op("Min", [g.reduce("ReduceMean", fwd_c, [2], "fwd_t", 1),
                                                               g.reduce("ReduceMean", bwd_c, [2], "bwd_t", 1)]),
                                                  s_den4]), [2, 3], "opp_clip")  # [N,2,48]
    emit("reversal_ranked", lc(ranked(opp_clip, RANKS3, "opc"), "opc"))

    # --- static structure: flat areas (occlusion), changes of contrast over the clip -------
    s_mean_all = g.reduce("ReduceMean", s_cell, [1], "s_all", keepdims=1)   # [N,1]
    emit("contrast_ranked", log_ratio(ranked(s_cell, RANKS8, "sc"), s_mean_all, C_STATIC, "scr"))
    emit("contrast_level", g.log_compress(s_mean_all, 1.0 / C_STATIC, "slev"))
    s1 = g.reduce("ReduceMean", g.slice(s_frame, 0, 4, 1, "sf1"), [1], "s1")  # [N,48]
    s2 = g.reduce("ReduceMean", g.slice(s_frame, T_FRAMES - 4, T_FRAMES, 1, "sf2"), [1], "s2")
    emit("contrast_change_ranked", ranked(g.op("Abs", [log_ratio(s2, s1, C_STATIC, "sch")]), RANKS4, "sch"))
    emit("contrast_change_global", g.op("Abs", [log_ratio(g.reduce("ReduceMean", s2, [1], "s2g", 1),
                                                          g.reduce("ReduceMean", s1, [1], "s1g", 1),
                                                          C_STATIC, "schg")]))

    # --- sharpness: finest-scale gradient (128x96 Sobel) over the Gabor band (defocus) -----
    full = g.reshape("clip", [-1, T_FRAMES, IN_H, IN_W], "full")
    picked = g.op("Gather", [full, g.ints("sharp_frames", list(SHARP_FRAMES))], axis=1)
    picked = g.reshape(picked, [-1, 1, IN_H, IN_W], "picked")
    # Edge padding: zero padding would invent a strong edge along the frame border.
    padded = g.op("Pad", [picked, g.ints("grad_pads", [0, 0, 1, 1, 0, 0, 1, 1])], mode="edge")
    grad = g.op("Conv", [padded, g.const("sobel", gradient_filters())], kernel_shape=[3, 3])
    grad = g.reduce("ReduceSumSquare", grad, [1], "gradsq", keepdims=1)    # [N*4,1,96,128]
    grad = g.op("AveragePool", [grad], kernel_shape=[IN_H // GRID_H, IN_W // GRID_W],
                strides=[IN_H // GRID_H, IN_W // GRID_W])
    grad = g.reshape(grad, [-1, len(SHARP_FRAMES), N_CELLS], "gcell")       # [N,4,48]
    s_picked = g.op("Gather", [s_frame, g.ints("sharp_frames2", list(SHARP_FRAMES))], axis=1)
    sharp = log_ratio(grad, g.op("Mul", [s_picked, g.const("sharp_scale", np.array(SHARP_SCALE, np.float32))]),
                      C_GRAD, "sharp")                                       # [N,4,48]
    sharp_m = g.reduce("ReduceMean", sharp, [1], "sharp_m")                  # [N,48]
    emit("sharpness_ranked", ranked(sharp_m, RANKS4, "shp"))
    g_all = g.reduce("ReduceMean", grad, [2], "g_all")                       # [N,4]
    s_all4 = g.op("Mul", [g.reduce("ReduceMean", s_picked, [2], "sp_all"),
                          g.const("sharp_scale2", np.array(SHARP_SCALE, np.float32))])
    sharp_g = log_ratio(g_all, s_all4, C_GRAD, "sharpg")                     # [N,4]
    emit("sharpness_global", g.op("Concat", [
        g.reduce("ReduceMean", sharp_g, [1], "shg_m", 1),
        g.op("Abs", [g.op("Sub", [g.slice(sharp_g, len(SHARP_FRAMES) - 1, len(SHARP_FRAMES), 1, "shl"),
                                  g.slice(sharp_g, 0, 1, 1, "shf")])])], axis=1))

    # --- brightness changes over the clip (lights, covering the lens) ----------------------
    luma = g.reshape(small, [-1, T_FRAMES, WORK_H, WORK_W], "luma")
    luma = g.op("AveragePool", [luma], kernel_shape=[WORK_H // GRID_H, WORK_W // GRID_W],
                strides=[WORK_H // GRID_H, WORK_W // GRID_W])
    luma = g.reshape(luma, [-1, T_FRAMES, N_CELLS], "luma_c")
    l1 = g.reduce("ReduceMean", g.slice(luma, 0, 4, 1, "l1s"), [1], "l1")
    l2 = g.reduce("ReduceMean", g.slice(luma, T_FRAMES - 4, T_FRAMES, 1, "l2s"), [1], "l2")
    emit("brightness_change_ranked", ranked(g.op("Abs", [log_ratio(l2, l1, C_LUMA, "lch")]), RANKS4, "lch"))

    # --- coarse scale: the same motion energy on the frame pooled again 2x2 (24x32) --------
    # The fine scale cannot tell a near walker (large, many px/frame) from a far runner (small,
    # the same px/frame); at the coarse scale the near walker is slow and the runner is
    # blurred away, and their ratio per cell says which it is. Speeds in px/frame double.
    c_h, c_w = WORK_H // 2 // GABOR_STRIDE, WORK_W // 2 // GABOR_STRIDE  # 12 x 16 maps
    n_pix_c = c_h * c_w
    coarse = g.op("AveragePool", [small], kernel_shape=[2, 2], strides=[2, 2])  # [N*16,1,24,32]
    spc = g.op("Conv", [coarse, gabor], kernel_shape=[GABOR_SIZE, GABOR_SIZE], strides=[GABOR_STRIDE] * 2,
               pads=[GABOR_SIZE // 2] * 4)                                  # [N*16,8,12,16]
    yc = g.op("MatMul", [gabor_t, g.reshape(spc, [-1, T_FRAMES, 2 * n_ori * n_pix_c], "spc_time")])
    yc = g.reshape(yc, [-1, n_spd, 2, N_T_OUT, n_ori, 2, n_pix_c], "yc7")
    qc = g.reduce("ReduceSumSquare", yc, [2, 5], "qc")                       # [N,2,8,4,192]
    tec = g.slice(yc, 0, 1, 2, "tec")
    toc = g.slice(yc, 1, 2, 2, "toc")
    prodc = g.op("Mul", [g.op("Gather", [tec, "swap_eo"], axis=5), toc])
    xc = g.op("Sub", [g.slice(prodc, 0, 1, 5, "pc0"), g.slice(prodc, 1, 2, 5, "pc1")])
    xc2 = g.op("Mul", [g.reshape(xc, [-1, n_spd, N_T_OUT, n_ori, n_pix_c], "xc"), "two"])
    ec = g.op("Concat", [g.op("Relu", [g.op("Sub", [qc, xc2])]), g.op("Relu", [g.op("Add", [qc, xc2])])], axis=3)
    ec = g.reshape(ec, [-1, n_spd * N_T_OUT * n_dir, c_h, c_w], "ec_maps")
    ec = g.op("AveragePool", [ec], kernel_shape=[c_h // GRID_H, c_w // GRID_W],
              strides=[c_h // GRID_H, c_w // GRID_W])
    ec = g.reshape(ec, [-1, n_spd, N_T_OUT, n_dir, N_CELLS], "eccell")     # [N,2,8t,8d,48]
    sc_frame = g.reduce("ReduceSumSquare", g.reshape(spc, [-1, T_FRAMES, n_ori * 2, n_pix_c], "spc_f"), [2],
                        "sc_frame")                                         # [N,16,192]
    sc_frame = g.reshape(sc_frame, [-1, T_FRAMES, c_h, c_w], "sc_maps")
    sc_frame = g.op("AveragePool", [sc_frame], kernel_shape=[c_h // GRID_H, c_w // GRID_W],
                    strides=[c_h // GRID_H, c_w // GRID_W])
    sc_cell = g.reduce("ReduceMean", g.reshape(sc_frame, [-1, T_FRAMES, N_CELLS], "sc_cell16"), [1], "sc_mean")
    relc = g.op("Div", [ec, g.op("Add", [g.reshape(sc_cell, [-1, 1, 1, 1, N_CELLS], "sc_b"), eps("sc", C_STATIC)])])
    mc = g.reduce("ReduceMean", g.reduce("ReduceSum", relc, [3], "mc_t"), [2], "mc")   # [N,2,48]
    emit("coarse_motion_ranked", lc(ranked(mc, RANKS4, "mc"), "mc"))
    mc_all = g.reduce("ReduceMean", mc, [2], "mc_all")                       # [N,2]
    emit("coarse_motion_mean", lc(mc_all, "mcall"))
    mc_top = g.reduce("ReduceMean", ranked(mc, RANKS4, "mctop"), [2], "mc_top")
    emit("coarse_speed_ratio", g.op("Concat", [
        log_ratio(g.slice(mc_all, 1, 2, 1, "csr0f"), g.slice(mc_all, 0, 1, 1, "csr0s"), C_MOTION, "csr0"),
        log_ratio(g.slice(mc_top, 1, 2, 1, "csr1f"), g.slice(mc_top, 0, 1, 1, "csr1s"), C_MOTION, "csr1")], axis=1))
    emit("coarse_speed_ratio_ranked",
         ranked(log_ratio(g.slice(mc, 1, 2, 1, "mc_fast"), g.slice(mc, 0, 1, 1, "mc_slow"), C_MOTION, "csrr"),
                RANKS4, "csrr"))
    emit("scale_ratio_ranked", ranked(log_ratio(g.reduce("ReduceSum", mc, [1], "mc_sum"),
                                                g.reduce("ReduceSum", m, [1], "m_sum"), C_MOTION, "scr2"),
                                      RANKS4, "scr2"))

    order = [name for name, _, _ in FEATURE_LAYOUT]
    if sorted(order) != sorted(blocks):
        raise BuildError(f"graph blocks and FEATURE_LAYOUT disagree: {sorted(set(order) ^ set(blocks))}")
    g.op("Concat", [blocks[n] for n in order], out="features", axis=1)

    graph = helper.make_graph(
        g.nodes, f"vigil_motion_invariant_{FEATURE_DIM}",
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
                        f"clip [N,1,16,96,128] gray 0..1 -> features [N,{FEATURE_DIM}]. See README.md.")
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    out_shape = [d.dim_param or d.dim_value
                 for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    if out_shape != ["N", FEATURE_DIM]:
        raise BuildError(f"features shape inferred as {out_shape}, expected ['N', {FEATURE_DIM}]")
    if sum(size for _, size, _ in FEATURE_LAYOUT) != FEATURE_DIM:
        raise BuildError(f"FEATURE_LAYOUT does not add up to {FEATURE_DIM}")
    return model


# ---------------------------------------------------------------------------
# FLOP count (analytic, from shapes inferred at N = 1)
# ---------------------------------------------------------------------------
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Min", "Sqrt", "Relu", "Log", "Abs"}


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
RTFM_FEATURE_DIM = FEATURE_DIM
RTFM_TEMPORAL = FEATURE_DIM // 4
RTFM_NONLOCAL = FEATURE_DIM // 8
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
name = "vigil-motion-invariant-{FEATURE_DIM}"
description = "Fixed scene-invariant motion features (contrast-normalised direction-selective motion energy, 2 speeds, ranked over 48 cells; flow, coherence, opponency, contrast, sharpness; no learned weights) with an UNTRAINED RTFM head (models/train_default.sh trains it)"

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
    f = run(np.zeros((1, 1, T_FRAMES, IN_H, IN_W), np.float32))
    if not np.all(np.isfinite(f)) or np.abs(f).max() > 1e-4:
        raise BuildError(f"black clip: features not all ~0 (max {np.abs(f).max()})")
    # A uniform bright clip: no motion (the zero-padded border only adds static contrast).
    f = run(np.full((1, 1, T_FRAMES, IN_H, IN_W), 1.0, np.float32))[0]
    still = [blocks[n] for n in ("motion_ranked", "motion_mean", "opponency_ranked", "contrast_change_global",
                                 "coarse_motion_ranked", "coarse_motion_mean")]
    if not np.all(np.isfinite(f)) or max(np.abs(f[b]).max() for b in still) > 1e-4:
        raise BuildError("uniform clip: motion features not all ~0")
    motion = [blocks[n] for n in ("motion_ranked", "motion_peak_ranked", "motion_mean", "coarse_motion_ranked",
                                  "coarse_motion_mean")]
    # A static textured scene must give no motion energy at all, and high contrast everywhere.
    rng = np.random.default_rng(0)
    static = np.repeat(rng.uniform(0, 1, (1, 1, 1, IN_H, IN_W)).astype(np.float32), T_FRAMES, 2)
    f = run(static)[0]
    if max(np.abs(f[b]).max() for b in motion) > 1e-3 or f[blocks["contrast_level"]][0] < 0.3:
        raise BuildError("static texture: motion blocks should be ~0 and the contrast level high")
    # Direction: a grating moving up, down or sideways must put most of its energy in its
    # own mirror bin, at both speeds.
    hist = blocks["direction_mirror_hist"]
    bin_of = {0.0: 0, 180.0: 0, 90.0: 2, 270.0: 4, 45.0: 1, 135.0: 1, 225.0: 3, 315.0: 3}
    for deg, want in bin_of.items():
        for spd, speed_px in enumerate((1.5, 4.5)):  # px/frame at 128x96
            h = run(moving_grating(deg, speed_px))[0][hist].reshape(2, len(MIRROR_BINS))[spd]
            if int(np.argmax(h)) != want or h[want] < 0.5:
                raise BuildError(f"direction test failed for {deg} deg at {speed_px} px/frame: {h}")
    # Contrast invariance: halving the contrast of a moving grating barely moves the motion
    # features (they are normalised by the static contrast). The border cells are exempt: the
    # zero-padded frame edge adds a static contrast that does not halve with the grating.
    full_c = run(moving_grating(0.0, 2.0))[0]
    half_c = run(0.5 + 0.5 * (moving_grating(0.0, 2.0) - 0.5))[0]
    top = np.concatenate([np.arange(b.start, b.stop).reshape(2, -1)[:, :6].ravel() for b in motion[:1]] +
                         [np.arange(b.start, b.stop) for b in (blocks["motion_peak_ranked"], blocks["speed_ratio"])])
    moved = np.abs(full_c[top] - half_c[top]).max()
    if moved > 0.15:
        raise BuildError(f"contrast invariance failed: motion features moved by {moved}")
    # Mirror invariance: a mirrored clip gives nearly the same features. Not exactly: the
    # stride-2 Gabor grid samples a mirrored frame at odd instead of even columns.
    clip = moving_grating(30.0, 2.0, 24.0)
    clip[..., 30:60, 40:70] = moving_grating(100.0, 4.0)[..., 30:60, 40:70]
    moved = np.abs(run(np.ascontiguousarray(clip[..., ::-1]))[0] - run(clip)[0]).max()
    if moved > 0.3:
        raise BuildError(f"mirror invariance failed: features moved by {moved}")
    # Speed: the fast/slow ratio must grow with the grating's speed.
    ratio_at = lambda v: run(moving_grating(0.0, v))[0][blocks["speed_ratio"]][0]  # noqa: E731
    if not ratio_at(5.0) > ratio_at(1.0) + 1.0:
        raise BuildError(f"speed test failed: fast/slow {ratio_at(1.0)} at 1 px/frame, {ratio_at(5.0)} at 5")
    # The coarse scale sees speeds twice as high: a coarse grating (wavelength 32 px at 128x96)
    # at 10 px/frame is fast there, at 2 px/frame slow; and a large slow pattern moves more
    # energy at the coarse scale than at the fine one, relative to a fine fast one.
    coarse_ratio = lambda v: run(moving_grating(0.0, v, 32.0))[0][blocks["coarse_speed_ratio"]][0]  # noqa: E731
    if not coarse_ratio(10.0) > coarse_ratio(2.0) + 1.0:
        raise BuildError(f"coarse speed test failed: {coarse_ratio(2.0)} at 2 px/frame, {coarse_ratio(10.0)} at 10")
    scale_of = lambda clip: run(clip)[0][blocks["scale_ratio_ranked"]][0]  # noqa: E731
    if not scale_of(moving_grating(0.0, 2.0, 32.0)) > scale_of(moving_grating(0.0, 2.0, 10.0)) + 1.0:
        raise BuildError("scale test failed: a coarse pattern must move more energy at the coarse scale")
    # Values stay bounded even for a maximal-contrast flickering input.
    flicker = np.zeros((1, 1, T_FRAMES, IN_H, IN_W), np.float32)
    flicker[:, :, ::2] = 1.0
    noise = rng.uniform(0, 1, (1, 1, T_FRAMES, IN_H, IN_W)).astype(np.float32)
    for name, clip in (("flicker", flicker), ("noise", noise)):
        f = run(clip)
        if not np.all(np.isfinite(f)) or np.abs(f).max() > 20.0:
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
                print("self-test passed (shapes, constant clips, static texture, directions, contrast and mirror invariance, speed)")
        if args.bench:
            for batch, ms in bench(onnx_path).items():
                print(f"onnxruntime 1 thread, batch {batch}: {ms:.2f} ms per clip")
    except (BuildError, onnx.checker.ValidationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
