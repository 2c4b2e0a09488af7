#!/usr/bin/env python3
"""Build the ResNet-50 I3D feature extractor RTFM uses, as a complete vigil model directory.

The network is written straight into an ONNX graph with ``onnx`` and ``numpy`` (no torch), exactly
as /work/shared/RTFM.md ("Upstream feature extractor") and the public pytorch-resnet3d port
(``i3res50``, no non-local blocks) define it:

* stem: Conv3d 3->64 k(5,7,7) s(2,2,2) p(2,3,3) no bias, BN, ReLU;
  MaxPool3d k(2,3,3) s(2,2,2) p(0,0,0) (the port's padding; the weights were trained with it);
* layer1: 3 bottlenecks, temporal kernels [3,3,3], width 64;
  MaxPool3d k(2,1,1) s(2,1,1);
* layer2: 4 blocks, spatial stride 2, [3,1,3,1], width 128;
* layer3: 6 blocks, spatial stride 2, [3,1,3,1,3,1], width 256;
* layer4: 3 blocks, spatial stride 2, [1,3,1], width 512;
* bottleneck: Conv3d (t,1,1) p(t//2,0,0) -> Conv3d (1,3,3) s(1,s,s) p(0,1,1) -> Conv3d 1x1x1 x4,
  BN after each, ReLU after the first two and after the residual add; Conv3d 1x1x1 s(1,s,s)+BN
  downsample on each layer's first block;
* AdaptiveAvgPool3d(1) -> ``features`` [N, 2048].

For a 16x224x224 clip: stem [64, 8, 112, 112], maxpool [64, 4, 55, 55], layer1 [256, 4, 55, 55],
maxpool2 [256, 2, 55, 55], layer2 [512, 2, 28, 28], layer3 [1024, 2, 14, 14], layer4
[2048, 2, 7, 7] (checked below by shape inference). A padding of 1 on the first max pool would
also end at 7x7 (56 -> 28), but the port uses 0.

Every BatchNorm (eps 1e-5, running statistics) is folded into the preceding convolution's weight
and bias, so the graph is Conv/Relu/MaxPool/Add/GlobalAveragePool/Flatten only.

Weights: random (He-normal, fixed seed; the residual branch's last conv scaled down so activations
stay finite over 16 blocks) by default, or a Kinetics-400 PyTorch state_dict of the port
(``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight``, ..., ``layerN.0.downsample.{0,1}.*``)
loaded by name with ``--weights FILE`` (needs torch, imported only then).

The output directory gets extractor.onnx (~110 MB), model.toml (RTFM.md's I3D preprocessing:
shorter side 256 bilinear, ten-crop or centre crop 224, RGB, mean 114.75, std 57.375, 16 frames at
the native rate), rtfm.safetensors (UNTRAINED RTFM head at the reference widths 2048/512/256/
[512,128], ~99 MB) and README.md. Nothing here is committed: run the script.

Usage: python3 models/i3d/make_i3d.py --out DIR [--crop ten|center] [--weights STATE_DICT.pth]
       [--seed N] [--force]
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
except ImportError as exc:  # pragma: no cover - message for users
    print(f"error: the 'onnx' Python package is required ({exc}); pip install onnx", file=sys.stderr)
    sys.exit(2)

OPSET = 17
BN_EPS = 1e-5
CLIP = (3, 16, 224, 224)
FEATURE_DIM = 2048
# (name, blocks, width, spatial stride, temporal kernels)
LAYERS = (
    ("layer1", 3, 64, 1, (3, 3, 3)),
    ("layer2", 4, 128, 2, (3, 1, 3, 1)),
    ("layer3", 6, 256, 2, (3, 1, 3, 1, 3, 1)),
    ("layer4", 3, 512, 2, (1, 3, 1)),
)
EXPANSION = 4
# RTFM reference widths (RTFM.md).
RTFM_WIDTHS = dict(feature_dim=2048, temporal_width=512, nonlocal_width=256, head=(512, 128))


class BuildError(RuntimeError):
    """A generated artefact failed a check; the message says which."""


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------
class RandomWeights:
    """He-normal conv weights and identity BatchNorm from a fixed seed."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def conv(self, name: str, shape: tuple[int, ...], gain: float = 1.0) -> np.ndarray:
        fan_in = int(np.prod(shape[1:]))
        std = gain * math.sqrt(2.0 / fan_in)
        return (self.rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)

    def bn(self, name: str, ch: int) -> tuple[np.ndarray, ...]:
        return (np.ones(ch, np.float32), np.zeros(ch, np.float32), np.zeros(ch, np.float32),
                np.ones(ch, np.float32))


class StateDictWeights:
    """Tensors of the port's state_dict, looked up by name and checked for shape."""

    def __init__(self, path: Path) -> None:
        try:
            import torch  # noqa: PLC0415 - lazy: only this path needs torch
        except ImportError as exc:
            raise BuildError(f"--weights needs PyTorch to read {path} ({exc}); pip install torch") from exc
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise BuildError(f"{path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}")
        self.tensors = {k.removeprefix("module."): v.detach().float().numpy() for k, v in obj.items()
                        if hasattr(v, "detach")}
        self.used: set[str] = set()
        self.path = path

    def _get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in self.tensors:
            raise BuildError(f"{self.path}: tensor `{name}` is missing (is this the pytorch-resnet3d i3res50 port?)")
        t = self.tensors[name]
        if tuple(t.shape) != tuple(shape):
            raise BuildError(f"{self.path}: tensor `{name}` has shape {tuple(t.shape)}, expected {tuple(shape)}")
        self.used.add(name)
        return np.ascontiguousarray(t, dtype=np.float32)

    def conv(self, name: str, shape: tuple[int, ...], gain: float = 1.0) -> np.ndarray:
        return self._get(f"{name}.weight", shape)

    def bn(self, name: str, ch: int) -> tuple[np.ndarray, ...]:
        return tuple(self._get(f"{name}.{p}", (ch,)) for p in ("weight", "bias", "running_mean", "running_var"))

    def unused(self) -> list[str]:
        return sorted(k for k in self.tensors if k not in self.used and not k.endswith("num_batches_tracked")
                      and not k.startswith("fc."))


def fold(w: np.ndarray, bn: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    gamma, beta, mean, var = bn
    scale = gamma / np.sqrt(var + BN_EPS)
    return (w * scale[:, None, None, None, None]).astype(np.float32), (beta - mean * scale).astype(np.float32)


# ---------------------------------------------------------------------------
# Graph
# ---------------------------------------------------------------------------
class Graph:
    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.macs = 0
        self.shape: dict[str, tuple[int, ...]] = {}  # per-clip [C, T, H, W] of each value

    def conv_bn(self, x: str, name: str, bn_name: str, w: np.ndarray, bnp, stride, pad, relu: bool) -> str:
        wf, bf = fold(w, bnp)
        self.inits += [numpy_helper.from_array(wf, f"{name}.w"), numpy_helper.from_array(bf, f"{name}.b")]
        k = w.shape[2:]
        out = f"{name}.out"
        self.nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [out], name=name,
                                           kernel_shape=list(k), strides=list(stride),
                                           pads=list(pad) + list(pad)))
        c, t, h, wd = self.shape[x]
        dims = [(n + 2 * p - kk) // s + 1 for n, p, kk, s in zip((t, h, wd), pad, k, stride)]
        self.shape[out] = (w.shape[0], *dims)
        self.macs += int(np.prod(self.shape[out])) * int(np.prod(w.shape[1:]))
        if relu:
            self.nodes.append(helper.make_node("Relu", [out], [f"{name}.relu"], name=f"{name}.relu"))
            self.shape[f"{name}.relu"] = self.shape[out]
            return f"{name}.relu"
        return out

    def maxpool(self, x: str, name: str, k, s) -> str:
        self.nodes.append(helper.make_node("MaxPool", [x], [name], name=name, kernel_shape=list(k), strides=list(s),
                                           pads=[0] * 6))
        c, *dims = self.shape[x]
        self.shape[name] = (c, *[(n - kk) // ss + 1 for n, kk, ss in zip(dims, k, s)])
        return name


def build(weights, log=print) -> tuple[onnx.ModelProto, dict[str, tuple[int, ...]], int]:
    g = Graph()
    g.shape["clip"] = CLIP
    x = g.conv_bn("clip", "conv1", "bn1", weights.conv("conv1", (64, 3, 5, 7, 7)), weights.bn("bn1", 64),
                  (2, 2, 2), (2, 3, 3), relu=True)
    stages = {"stem": g.shape[x]}
    x = g.maxpool(x, "maxpool1", (2, 3, 3), (2, 2, 2))
    stages["maxpool1"] = g.shape[x]
    inplanes = 64
    for lname, blocks, width, stride, temporal in LAYERS:
        for i in range(blocks):
            t = temporal[i]
            s = stride if i == 0 else 1
            p = f"{lname}.{i}"
            out_ch = width * EXPANSION
            y = g.conv_bn(x, f"{p}.conv1", f"{p}.bn1", weights.conv(f"{p}.conv1", (width, inplanes, t, 1, 1)),
                          weights.bn(f"{p}.bn1", width), (1, 1, 1), (t // 2, 0, 0), relu=True)
            y = g.conv_bn(y, f"{p}.conv2", f"{p}.bn2", weights.conv(f"{p}.conv2", (width, width, 1, 3, 3)),
                          weights.bn(f"{p}.bn2", width), (1, s, s), (0, 1, 1), relu=True)
            # gain 0.2: a random residual branch stays small against the identity path.
            y = g.conv_bn(y, f"{p}.conv3", f"{p}.bn3", weights.conv(f"{p}.conv3", (out_ch, width, 1, 1, 1), 0.2),
                          weights.bn(f"{p}.bn3", out_ch), (1, 1, 1), (0, 0, 0), relu=False)
            if i == 0:
                shortcut = g.conv_bn(x, f"{p}.downsample", f"{p}.downsample.1",
                                     weights.conv(f"{p}.downsample.0", (out_ch, inplanes, 1, 1, 1)),
                                     weights.bn(f"{p}.downsample.1", out_ch), (1, s, s), (0, 0, 0), relu=False)
            else:
                shortcut = x
            if g.shape[y] != g.shape[shortcut]:
                raise BuildError(f"{p}: residual shapes differ {g.shape[y]} vs {g.shape[shortcut]}")
            g.nodes.append(helper.make_node("Add", [y, shortcut], [f"{p}.add"], name=f"{p}.add"))
            g.nodes.append(helper.make_node("Relu", [f"{p}.add"], [f"{p}.out"], name=f"{p}.out"))
            g.shape[f"{p}.out"] = g.shape[y]
            x = f"{p}.out"
            inplanes = out_ch
        stages[lname] = g.shape[x]
        if lname == "layer1":
            x = g.maxpool(x, "maxpool2", (2, 1, 1), (2, 1, 1))
            stages["maxpool2"] = g.shape[x]
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="avgpool"))
    g.nodes.append(helper.make_node("Flatten", ["pool"], ["features"], name="flatten", axis=1))
    if stages["layer4"] != (2048, 2, 7, 7):
        raise BuildError(f"layer4 gives {stages['layer4']} for a 16x224x224 clip; RTFM.md says (2048, 2, 7, 7)")

    graph = helper.make_graph(
        g.nodes, "i3d_resnet50",
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["N", *CLIP])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", FEATURE_DIM])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="vigil models/i3d/make_i3d.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    inferred = onnx.shape_inference.infer_shapes(model)
    out = [d.dim_param or d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    if out != ["N", FEATURE_DIM]:
        raise BuildError(f"output shape {out}, expected [N, {FEATURE_DIM}]")
    return model, stages, g.macs


# ---------------------------------------------------------------------------
# RTFM head (untrained, reference widths)
# ---------------------------------------------------------------------------
def rtfm_weights(seed: int) -> dict[str, np.ndarray]:
    """PyTorch-default-like init (U(+-1/sqrt(fan_in))), BN identity; RTFM.md tensor names."""
    rng = np.random.default_rng(seed)
    d, c, nl = RTFM_WIDTHS["feature_dim"], RTFM_WIDTHS["temporal_width"], RTFM_WIDTHS["nonlocal_width"]
    h1, h2 = RTFM_WIDTHS["head"]
    t: dict[str, np.ndarray] = {}

    def uniform(shape, fan_in):
        b = 1.0 / math.sqrt(fan_in)
        return rng.uniform(-b, b, size=shape).astype(np.float32)

    def conv(name, o, i, k, bias=True):
        t[f"{name}.weight"] = uniform((o, i, k), i * k)
        if bias:
            t[f"{name}.bias"] = uniform((o,), i * k)

    def linear(name, o, i):
        t[f"{name}.weight"] = uniform((o, i), i)
        t[f"{name}.bias"] = uniform((o,), i)

    def bn(name, ch):
        t[f"{name}.weight"] = np.ones(ch, np.float32)
        t[f"{name}.bias"] = np.zeros(ch, np.float32)
        t[f"{name}.running_mean"] = np.zeros(ch, np.float32)
        t[f"{name}.running_var"] = np.ones(ch, np.float32)

    for i in (1, 2, 3):
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
    return t


# ---------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------
def manifest(crop: str, sha: str, weights_desc: str) -> str:
    crops = 10 if crop == "ten" else 1
    max_batch = 10 if crop == "ten" else 4
    h1, h2 = RTFM_WIDTHS["head"]
    return f"""\
# vigil model manifest (generated by models/i3d/make_i3d.py; do not edit by hand)
name = "i3d-resnet50-{crop}crop"
description = "ResNet-50 I3D ({weights_desc}), RTFM.md preprocessing, {crop}-crop; UNTRAINED RTFM head at the reference widths"

[extractor]
file = "extractor.onnx"
sha256 = "{sha}"
input = "clip"
output = "features"
input_shape = [-1, 3, 16, 224, 224]
output_shape = [-1, {FEATURE_DIM}]
max_batch = {max_batch}
# provider = "cpu"          # cpu | cuda | tensorrt | auto; --provider overrides
# allow_fallback = false    # run on CPU (with a warning) if the GPU provider is unusable
# tensorrt_fp16 = false
# cache_dir = "~/.cache/vigil/tensorrt"

[preprocess]
snippet_frames = 16
frame_stride = 1
color = "rgb"
interpolation = "bilinear"
resize = {{ mode = "shorter_side", size = 256 }}
crop = "{crop if crop == 'ten' else 'center'}"
crop_width = 224
crop_height = 224
mean = [114.75]
std = [57.375]

[features]
dim = {FEATURE_DIM}
crops = {crops}

[rtfm]
weights = "rtfm.safetensors"
trained = false
feature_dim = {RTFM_WIDTHS['feature_dim']}
temporal_width = {RTFM_WIDTHS['temporal_width']}
nonlocal_width = {RTFM_WIDTHS['nonlocal_width']}
head = [{h1}, {h2}]
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="model directory to write")
    ap.add_argument("--crop", choices=("ten", "center"), default="ten")
    ap.add_argument("--weights", type=Path, help="Kinetics-400 state_dict of the pytorch-resnet3d i3res50 port")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights (I3D and RTFM head)")
    ap.add_argument("--force", action="store_true", help="overwrite files in an existing directory")
    args = ap.parse_args(argv)

    out: Path = args.out
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"error: {out} exists and is not empty (use --force)", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        if args.weights:
            weights = StateDictWeights(args.weights)
            desc = f"weights from {args.weights.name}"
        else:
            weights = RandomWeights(args.seed)
            desc = f"RANDOM weights, seed {args.seed}"
        model, stages, macs = build(weights)
        if isinstance(weights, StateDictWeights) and weights.unused():
            print(f"note: tensors not used: {', '.join(weights.unused()[:10])}", file=sys.stderr)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    data = model.SerializeToString()
    sha = hashlib.sha256(data).hexdigest()
    (out / "extractor.onnx").write_bytes(data)
    try:
        from safetensors.numpy import save_file
    except ImportError as exc:
        print(f"error: the 'safetensors' package is required ({exc}); pip install safetensors", file=sys.stderr)
        return 2
    save_file(rtfm_weights(args.seed), str(out / "rtfm.safetensors"))
    (out / "model.toml").write_text(manifest(args.crop, sha, desc))
    params = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    (out / "README.md").write_text(
        f"# {out.name}\n\nGenerated by `python3 models/i3d/make_i3d.py --out {out} --crop {args.crop}"
        f"{' --weights ' + str(args.weights) if args.weights else ''}` ({desc}).\n"
        f"ResNet-50 I3D, BN folded, {params:,} parameters, {macs / 1e9:.2f} GMAC "
        f"({2 * macs / 1e9:.1f} GFLOP as 2 x MAC) per 16x224x224 crop. The RTFM head is UNTRAINED.\n"
        f"extractor.onnx sha256 {sha}\n")
    for name, shape in stages.items():
        print(f"  {name:<9} {list(shape)}")
    print(f"wrote {out}: {len(data) / 1e6:.0f} MB ONNX, {params:,} parameters, "
          f"FLOPs per clip (one crop, 16x224x224): {macs / 1e9:.2f} GMAC = {2 * macs / 1e9:.1f} GFLOP "
          f"(RTFM.md: about 32.8 GFLOPs per crop), {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
