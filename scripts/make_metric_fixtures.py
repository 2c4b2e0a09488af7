#!/usr/bin/env python3
"""Write tests/fixtures/metrics/cases.json: scikit-learn's answers for src/eval/metrics.rs.

Run from the repository root:  python3 scripts/make_metric_fixtures.py
Deterministic (seeded numpy). sklearn is used only to produce expected values; the Rust code
implements the metrics from their definitions.

Encoding choices, so the Rust side reads back exactly the inputs sklearn saw:
- scores are rounded to 9 decimals (or are multiples of 2**-12 for the snippet case), so every
  JSON number has at most ~12 significant digits and parses to the identical f64 with any
  correctly-rounding-on-the-fast-path JSON reader (serde_json's default float parser included);
- the first ROC threshold is +inf in sklearn >= 1.3; JSON has no inf, so it is written as null;
- expected scalars are also written as their IEEE-754 bit patterns ("bits", u64 integers), because
  17-significant-digit decimals (e.g. 0.9999999999999999) may be read back 1 ulp off by a
  fast, not correctly rounding, float parser, and the test reports exact agreement.
"""
import json
import os
import struct
import sys

import numpy as np
import sklearn
from sklearn.metrics import (
    auc,
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

OUT = os.path.join("tests", "fixtures", "metrics", "cases.json")
# Curves (arrays) are stored only for cases up to this size, to keep the file small.
CURVE_MAX_N = 2500


def floats(a):
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=np.float64)]


def bits(v):
    return struct.unpack("<Q", struct.pack("<d", float(v)))[0]


def case(name, labels, scores, snippets=None):
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores)
    both = labels.min() == 0 and labels.max() == 1
    out = {"name": name, "n": int(len(labels)), "labels": labels.tolist()}
    if snippets is None:
        out["scores"] = floats(scores)
    else:
        # The Rust test rebuilds `scores` with expand_videos(videos, 16).
        out["snippets"] = {
            "frames_per_snippet": 16,
            "videos": [floats(v) for v in snippets],
        }
    small = len(labels) <= CURVE_MAX_N
    if both:
        fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
        dfpr, dtpr, dthr = roc_curve(labels, scores, drop_intermediate=True)
        out["roc_auc_score"] = float(roc_auc_score(labels, scores))
        out["roc_auc_trapz"] = float(auc(fpr, tpr))
        if small:
            out["roc"] = {"fpr": floats(fpr), "tpr": floats(tpr), "thresholds": floats(thr)}
            out["roc_dropped"] = {"fpr": floats(dfpr), "tpr": floats(dtpr), "thresholds": floats(dthr)}
    else:
        out["roc_auc_score"] = None  # sklearn raises: only one class present
    prec, rec, pthr = precision_recall_curve(labels, scores)
    out["pr_auc"] = float(auc(rec, prec))
    out["average_precision"] = float(average_precision_score(labels, scores))
    out["bits"] = {
        k: bits(out[k])
        for k in ("roc_auc_score", "roc_auc_trapz", "pr_auc", "average_precision")
        if out.get(k) is not None
    }
    if small:
        out["pr"] = {"precision": floats(prec), "recall": floats(rec), "thresholds": floats(pthr)}
    return out


def main():
    rng = np.random.default_rng(20240611)
    cases = []

    n = 60
    y = (rng.random(n) < 0.4).astype(int)
    s = np.round(rng.random(n) + 0.3 * y, 9)
    cases.append(case("random_small", y, s))

    n = 300
    y = (rng.random(n) < 0.3).astype(int)
    s = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1), 1)
    cases.append(case("heavy_ties_1_decimal", y, s))

    n = 40
    y = (rng.random(n) < 0.5).astype(int)
    y[0], y[1] = 0, 1
    cases.append(case("all_equal_scores", y, np.full(n, 0.5)))

    n = 50
    y = np.array([0] * 30 + [1] * 20)
    s = np.round(np.concatenate([rng.random(30) * 0.4, 0.6 + rng.random(20) * 0.4]), 9)
    perm = rng.permutation(n)
    cases.append(case("perfectly_separated", y[perm], s[perm]))
    cases.append(case("perfectly_inverted", y[perm], np.round(1.0 - s[perm], 9)))

    cases.append(case("tiny_n2", [0, 1], [0.3, 0.7]))
    cases.append(case("tiny_n2_tied", [1, 0], [0.25, 0.25]))

    n = 2000
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, 20, replace=False)] = 1  # 1% positives
    s = np.round(rng.beta(2, 5, n) + 0.25 * y, 9)
    cases.append(case("imbalanced_1pct", y, s))

    n = 400
    y = (rng.random(n) < 0.5).astype(int)
    s = np.round(rng.normal(0.5 * y, 2.0), 9)  # logits: negative and positive scores
    cases.append(case("negative_scores_logits", y, s))

    n = 1200
    y = (rng.random(n) < 0.05).astype(int)
    s = np.round(np.clip(rng.normal(0.3 + 0.3 * y, 0.15), 0, 1), 2)
    cases.append(case("imbalanced_ties_2_decimals", y, s))

    # Protocol-shaped: per-video snippet scores (float32, as RTFM emits them), each repeated 16x,
    # concatenated in list order, against a frame-level gt vector.
    videos, gts = [], []
    for k, snips in enumerate([7, 12, 5, 9]):
        v = (rng.integers(0, 4097, snips) / 4096.0).astype(np.float32)
        g = np.zeros(snips * 16, dtype=int)
        if k % 2 == 0:
            a = int(rng.integers(0, snips * 16 - 20))
            g[a : a + int(rng.integers(10, 40))] = 1
            v[a // 16 : (a + 20) // 16 + 1] = np.minimum(
                v[a // 16 : (a + 20) // 16 + 1] + np.float32(0.25), np.float32(1.0)
            )
        videos.append(v)
        gts.append(g)
    expanded = np.repeat(np.concatenate(videos), 16)  # float32, exactly as RTFM's test does
    cases.append(case("snippet_expanded_x16", np.concatenate(gts), expanded, snippets=videos))

    n = 20000
    y = (rng.random(n) < 0.2).astype(int)
    s = np.round(rng.random(n) * 0.8 + 0.2 * y * rng.random(n), 9)
    cases.append(case("large_n20000", y, s))

    # PR metrics are defined with no negatives; ROC is not (sklearn raises) -> roc_auc_score null.
    cases.append(case("all_positive_pr_only", [1, 1, 1, 1], [0.1, 0.4, 0.4, 0.9]))

    doc = {
        "generator": "scripts/make_metric_fixtures.py",
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes, {len(cases)} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()
