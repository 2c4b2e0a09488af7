#!/usr/bin/env python3
"""Sanity check: do the default extractor's features separate abnormal motion from normal?

Decodes a real clip with ffmpeg (gray, 128x96, area scaling - the engine's preprocessing),
cuts it into consecutive 16-frame clips and compares the features of

  normal    the clips as recorded (pedestrians walking)
  speed4x   the same clips played 4x faster (every 4th frame)
  blob      a bright disc crossing the frame fast (~10 px/frame at 128x96)
  mirror    horizontally mirrored clips (should look like normal in magnitude)
  jitter    one 32x32 region shaken randomly by up to +-4 px every frame (erratic motion)
  shake     the whole frame shifted randomly by up to +-3 px every frame (camera shake)
  occlude   a dark rectangle covering the left third from frame 8 on (tampering)
  flicker   every other frame 40 % darker (lighting / camera flicker)

For every set it prints the mean L2 norm of the features, the RMS z-score distance to the
normal mean (normal clips themselves scored leave-one-out, so the baseline is honest),
the fraction of clips beyond the largest normal leave-one-out distance, the same RMS z
distance on the 10 block means ("profile z", blind to where and which way things move,
so a mirror should leave it near the normal baseline), and the feature blocks that
moved most. Needs numpy, onnxruntime and an ffmpeg binary on PATH.

    python models/check_default_model.py [--video PATH] [--model models/default/extractor.onnx]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_default_model import FEATURE_LAYOUT, IN_H, IN_W, T_FRAMES  # noqa: E402

DEFAULT_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
SIGMA_FLOOR = 0.05  # z-scores of near-constant normal dimensions would otherwise explode


def decode(video: Path) -> np.ndarray:
    """[F, 96, 128] float32 in 0..1, exactly as the engine prepares frames."""
    if shutil.which("ffmpeg") is None:
        raise SystemExit("error: ffmpeg not found on PATH")
    cmd = ["ffmpeg", "-v", "error", "-i", str(video), "-vf", f"scale={IN_W}:{IN_H}:flags=area",
           "-pix_fmt", "gray", "-f", "rawvideo", "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"error: ffmpeg failed: {proc.stderr.decode(errors='replace').strip()}")
    raw = np.frombuffer(proc.stdout, dtype=np.uint8)
    if raw.size == 0 or raw.size % (IN_H * IN_W):
        raise SystemExit(f"error: ffmpeg returned {raw.size} bytes, not whole {IN_W}x{IN_H} frames")
    return raw.reshape(-1, IN_H, IN_W).astype(np.float32) / 255.0


def shifted(frame: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The frame moved by (dy, dx), borders filled by edge replication (no wrap-around)."""
    p = 8
    big = np.pad(frame, p, mode="edge")
    return big[p - dy:p - dy + frame.shape[0], p - dx:p - dx + frame.shape[1]]


def make_sets(frames: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    starts = range(0, len(frames) - T_FRAMES + 1, T_FRAMES)
    normal = np.stack([frames[s:s + T_FRAMES] for s in starts])
    sets = {"normal": normal}
    sets["speed4x"] = np.stack([frames[s:s + 4 * T_FRAMES:4]
                                for s in starts if s + 4 * T_FRAMES <= len(frames)])

    ys, xs = np.mgrid[0:IN_H, 0:IN_W]
    blob = normal.copy()
    for clip in blob:
        y0, x0, vx = rng.uniform(20, IN_H - 20), rng.uniform(-20, 0), 10.0
        for t in range(T_FRAMES):
            disc = (ys - y0) ** 2 + (xs - (x0 + vx * t)) ** 2 <= 6 ** 2
            clip[t][disc] = 1.0
    sets["blob"] = blob

    sets["mirror"] = normal[:, :, :, ::-1].copy()

    jitter = normal.copy()
    y0, x0, size = 40, 48, 32
    for clip in jitter:
        for t in range(T_FRAMES):
            dy, dx = rng.integers(-4, 5, size=2)
            clip[t, y0:y0 + size, x0:x0 + size] = shifted(clip[t], dy, dx)[y0:y0 + size, x0:x0 + size]
    sets["jitter"] = jitter

    shake = normal.copy()
    for clip in shake:
        for t in range(T_FRAMES):
            dy, dx = rng.integers(-3, 4, size=2)
            clip[t] = shifted(clip[t], dy, dx)
    sets["shake"] = shake

    occlude = normal.copy()
    occlude[:, T_FRAMES // 2:, :, : IN_W // 3] = 0.05
    sets["occlude"] = occlude

    flicker = normal.copy()
    flicker[:, 1::2] *= 0.6
    sets["flicker"] = flicker
    return sets


def extract(model: Path, clips: np.ndarray, batch: int = 8) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    out = []
    for i in range(0, len(clips), batch):
        x = clips[i:i + batch, None].astype(np.float32)
        out.append(sess.run(["features"], {"clip": x})[0])
    return np.concatenate(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--model", type=Path, default=HERE / "default" / "extractor.onnx")
    args = ap.parse_args()
    for p in (args.video, args.model):
        if not p.is_file():
            print(f"error: {p} not found", file=sys.stderr)
            return 1

    frames = decode(args.video)
    sets = make_sets(frames)
    feats = {name: extract(args.model, clips) for name, clips in sets.items()}
    for name, f in feats.items():
        if not np.all(np.isfinite(f)):
            print(f"error: non-finite features in set {name}", file=sys.stderr)
            return 1

    normal = feats["normal"]
    mu, sd = normal.mean(0), np.maximum(normal.std(0), SIGMA_FLOOR)
    # Leave-one-out distances for the normal clips themselves.
    loo = []
    for i in range(len(normal)):
        rest = np.delete(normal, i, axis=0)
        z = (normal[i] - rest.mean(0)) / np.maximum(rest.std(0), SIGMA_FLOOR)
        loo.append(np.sqrt(np.mean(z ** 2)))
    loo = np.array(loo)
    threshold = loo.max()

    bounds, start = [], 0
    for name, size, _ in FEATURE_LAYOUT:
        bounds.append((name, start, start + size))
        start += size

    # Block profile: the mean of each of the 10 blocks. A horizontal mirror only permutes
    # cells and directions inside a block, so this profile is what "similar in magnitude"
    # means for the mirrored set.
    def profile(f: np.ndarray) -> np.ndarray:
        return np.stack([f[:, a:b].mean(1) for _, a, b in bounds], axis=1)

    prof_n = profile(normal)
    prof_loo = []
    for i in range(len(normal)):
        rest = np.delete(prof_n, i, axis=0)
        z = (prof_n[i] - rest.mean(0)) / np.maximum(rest.std(0), SIGMA_FLOOR)
        prof_loo.append(np.sqrt(np.mean(z ** 2)))
    prof_mu, prof_sd = prof_n.mean(0), np.maximum(prof_n.std(0), SIGMA_FLOOR)

    print(f"video {args.video}: {len(frames)} frames, {len(normal)} normal clips of {T_FRAMES}")
    print(f"normal features: mean {normal.mean():.3f}, min {normal.min():.3f}, "
          f"max {normal.max():.3f}")
    print(f"{'set':8} {'clips':>5} {'|f|':>6} {'max f':>6} {'RMS z':>6} {'>normal max':>11} "
          f"{'profile z':>9}  "
          "blocks with largest mean |z|")
    for name, f in feats.items():
        if name == "normal":
            dist, pdist = loo, np.array(prof_loo)
        else:
            dist = np.sqrt(np.mean(((f - mu) / sd) ** 2, axis=1))
            pdist = np.sqrt(np.mean(((profile(f) - prof_mu) / prof_sd) ** 2, axis=1))
        z_abs = np.abs((f - mu) / sd).mean(0)
        top = sorted(((z_abs[a:b].mean(), n) for n, a, b in bounds), reverse=True)[:3]
        beyond = np.mean(dist > threshold) if name != "normal" else 0.0
        print(f"{name:8} {len(f):5d} {np.linalg.norm(f, axis=1).mean():6.2f} {f.max():6.2f} "
              f"{dist.mean():6.2f} {beyond:11.0%} {pdist.mean():9.2f}  " +
              ", ".join(f"{n} {v:.1f}" for v, n in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
