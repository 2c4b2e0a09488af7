#!/usr/bin/env python3
"""Write the small PyTorch checkpoints used by the Rust importer tests.

Usage (from the repository root):
    python3 scripts/parity/make_checkpoints.py [--out DIR]

All checkpoints hold the `small` widths (D=64, C=16, NL=8, head [32, 16]) with the formula
weights of tests/fixtures/parity/FORMULA.md, saved with torch.save(state_dict).
Also writes expected_small.json (scores/magnitudes for crops=1, T=7).

Note: torch.save's zip format embeds a per-file record name derived from the file name
(e.g. "small_zip/data.pkl"); the files are otherwise deterministic.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rtfm_torch as R  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "checkpoints")


def save(sd, path, legacy=False):
    if legacy:
        torch.save(sd, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(sd, path)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)

    model = R.build_model(R.SMALL)
    base = model.state_dict()  # OrderedDict, the model's own order, 47 entries
    assert len(base) == 47

    def od(items):
        return collections.OrderedDict(items)

    variants = {}
    variants["small_zip.pt"] = (od(base.items()), False)
    variants["small_legacy.pt"] = (od(base.items()), True)
    variants["small_missing.pt"] = (od((k, v) for k, v in base.items() if k != "fc3.bias"), False)
    extra = od(base.items())
    # shape (4, 4), values from the same sin pattern with k = 42 (one past the last tensor)
    extra["extra.weight"] = torch.from_numpy(
        np.array([np.sin(0.5 + 0.731 * i + 1.37 * 42) for i in range(16)], dtype=np.float32).reshape(4, 4)
    )
    variants["small_extra.pt"] = (extra, False)
    bad = od(base.items())
    bad["fc2.weight"] = base["fc2.weight"].t().contiguous()  # (32, 16) instead of (16, 32)
    variants["small_badshape.pt"] = (bad, False)
    variants["small_module_prefix.pt"] = (od(("module." + k, v) for k, v in base.items()), False)
    variants["small_float64.pt"] = (
        od((k, v.to(torch.float64) if v.is_floating_point() else v) for k, v in base.items()),
        False,
    )

    for name, (sd, legacy) in variants.items():
        path = os.path.join(out, name)
        save(sd, path, legacy)
        # sanity: round-trips
        back = torch.load(path, map_location="cpu", weights_only=True)
        assert list(back.keys()) == list(sd.keys()), name
        for k in sd:
            assert back[k].dtype == sd[k].dtype and torch.equal(back[k], sd[k]), (name, k)
        print(f"{name}: {len(sd)} tensors, {os.path.getsize(path)} bytes")

    # A good checkpoint must load strictly into a fresh model and score identically.
    fresh = R.RTFM.from_widths(R.SMALL)
    fresh.load_state_dict(torch.load(os.path.join(out, "small_zip.pt"), weights_only=True), strict=True)
    fresh.eval()
    feats = R.formula_features(7, 1, R.SMALL["feature_dim"])
    s, m = R.run(fresh, feats)
    s_ref, m_ref = R.run(model, feats)
    assert np.array_equal(s, s_ref) and np.array_equal(m, m_ref)

    # float64 checkpoint evaluated in float64, for information
    m64 = R.RTFM.from_widths(R.SMALL).to(torch.float64)
    m64.load_state_dict(torch.load(os.path.join(out, "small_float64.pt"), weights_only=True), strict=True)
    m64.eval()
    s64, mg64 = R.run(m64, feats, torch.float64)

    def fl(a):
        return [float(v) for v in np.asarray(a, dtype=np.float32)]

    expected = {
        "widths": R.SMALL,
        "checkpoint": "small_zip.pt (same weights in every variant that loads)",
        "features": "tests/fixtures/parity/FORMULA.md feature formula, T=7, crops=1, D=64",
        "T": 7,
        "crops": 1,
        "scores": fl(s),
        "magnitudes": fl(m),
        "float64_eval": {
            "note": "small_float64.pt evaluated in float64 (informational)",
            "scores": [float(v) for v in s64],
            "magnitudes": [float(v) for v in mg64],
        },
    }
    with open(os.path.join(out, "expected_small.json"), "w", encoding="ascii", newline="\n") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print("scores", s, "magnitudes", m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
