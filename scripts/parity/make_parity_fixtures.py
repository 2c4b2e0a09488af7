#!/usr/bin/env python3
"""Regenerate tests/fixtures/parity/{small,reference}.json.

Usage (from the repository root):
    python3 scripts/parity/make_parity_fixtures.py            # write fixtures
    python3 scripts/parity/make_parity_fixtures.py --out DIR  # write elsewhere
    python3 scripts/parity/make_parity_fixtures.py --check    # regenerate into a
        temporary directory and require byte-identical files to the committed ones

Needs numpy and torch (CPU). Runs single-threaded so results are reproducible.
"""

from __future__ import annotations

import argparse
import copy
import filecmp
import json
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rtfm_torch as R  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "parity")

T_VALUES = [1, 2, 3, 4, 5, 7, 16, 31, 32, 33, 64, 100, 257, 500]
CROPS = [1, 10]


def fmt_list(a) -> str:
    # repr of the float64 that exactly equals each float32 value: parsing it as
    # f64 and casting to f32 gives the float32 back bit-for-bit.
    return "[" + ",".join(repr(float(v)) for v in np.asarray(a, dtype=np.float32)) + "]"


def make_one(name: str, widths: dict) -> str:
    model32 = R.build_model(widths)
    model64 = copy.deepcopy(model32).to(torch.float64)
    header = {
        "widths": widths,
        "formula": R.formula_constants(),
        "float_tensor_order": R.float_tensor_names(model32),
        "notes": {
            "generator": "scripts/parity/make_parity_fixtures.py (PyTorch float32, CPU, 1 thread)",
            "input": "features [T, crops, D] from the formula, fed as [1, crops, T, D]",
            "scores": "mean over crops of sigmoid(fc3(...)), length T",
            "magnitudes": "mean over crops of the L2 norm over channels of the temporal block output, length T",
            "f64_max_abs_diff": "max |float32 result - float64 result| of the same network (weights and "
            "features are the float32 values, upcast) -- a lower bound for a sensible tolerance",
        },
    }
    lines = ["{"]
    for key in ("widths", "formula", "float_tensor_order", "notes"):
        lines.append(f' "{key}": {json.dumps(header[key], sort_keys=True)},')
    lines.append(' "cases": [')
    cases = []
    for crops in CROPS:
        for t in T_VALUES:
            feats = R.formula_features(t, crops, widths["feature_dim"])
            s32, m32 = R.run(model32, feats, torch.float32)
            s64, m64 = R.run(model64, feats, torch.float64)
            diff = {
                "scores": float(np.max(np.abs(s32.astype(np.float64) - s64))),
                "magnitudes": float(np.max(np.abs(m32.astype(np.float64) - m64))),
            }
            # round the diagnostic so tiny platform noise does not churn the file
            diff = {k: float(f"{v:.2e}") for k, v in diff.items()}
            cases.append(
                f'  {{"T": {t}, "crops": {crops}, "f64_max_abs_diff": {json.dumps(diff, sort_keys=True)},'
                f'\n   "scores": {fmt_list(s32)},\n   "magnitudes": {fmt_list(m32)}}}'
            )
            print(
                f"{name} T={t:4d} crops={crops:2d} scores [{s32.min():.4f}, {s32.max():.4f}] "
                f"mags [{m32.min():.3f}, {m32.max():.3f}] f64diff {diff}",
                flush=True,
            )
    lines.append(",\n".join(cases))
    lines.append(" ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # must be valid JSON
    return text


def generate(out_dir: str) -> None:
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    for name in ("small", "reference"):
        text = make_one(name, R.WIDTH_SETS[name])
        with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="ascii", newline="\n") as f:
            f.write(text)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if not args.check:
        generate(args.out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp)
        bad = [
            n
            for n in ("small.json", "reference.json")
            if not filecmp.cmp(os.path.join(tmp, n), os.path.join(args.out, n), shallow=False)
        ]
    if bad:
        print("MISMATCH:", bad)
        return 1
    print("OK: regenerated fixtures are byte-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
