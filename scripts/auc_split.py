#!/usr/bin/env python3
"""Where a frame-level ROC AUC is lost: splits the negatives of a `vigil eval --json` report.

    python3 scripts/auc_split.py EVAL.json GT.npy

The protocol's AUC ranks every anomalous frame against every normal frame, and normal frames
come from two places: normal videos, and the parts of abnormal videos outside their event.
This prints the AUC of the anomalous frames against each kind separately, and the mean score of
each kind, so a model that tells events from normal videos but lets scores spill over the rest
of an abnormal video (temporal context) shows as a high first and a low second number.
Scores are the report's offline ones, repeated 16 times per snippet and cut to each video's
gt length, as `vigil eval` does. numpy only; the AUC is the Mann-Whitney statistic with average
ranks for ties (the same number as scikit-learn's roc_auc_score).
"""
import json
import sys

import numpy as np


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    scores = np.concatenate([pos, neg])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average rank over each run of tied scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    n_pos, n_neg = len(pos), len(neg)
    return (ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    report = json.load(open(sys.argv[1]))
    gt = np.load(sys.argv[2])
    at = 0
    normal, inside, outside, all_gt, all_scores = [], [], [], [], []
    for v in report["per_video"]:
        n = v["frames"]
        g = gt[at : at + n]
        at += n
        if len(g) != n:
            print(f"error: {sys.argv[2]} ends inside {v['name']} (needs {at} frames)", file=sys.stderr)
            return 1
        s = np.repeat(np.asarray(v["scores"], dtype=np.float64), 16)[:n]
        all_gt.append(g)
        all_scores.append(s)
        if g.sum() == 0:
            normal.append(s)
        else:
            inside.append(s[g > 0])
            outside.append(s[g == 0])
    if at != len(gt):
        print(f"error: {sys.argv[2]} has {len(gt)} frames, the report's videos {at}", file=sys.stderr)
        return 1
    if not (normal and inside and outside):
        print("error: needs normal videos and abnormal videos with frames outside the event", file=sys.stderr)
        return 1
    nor, ins, out = (np.concatenate(x) for x in (normal, inside, outside))
    total = auc(*(lambda g, s: (s[g > 0], s[g == 0]))(np.concatenate(all_gt), np.concatenate(all_scores)))
    print(f"frame ROC AUC, all frames:                          {total:.4f}")
    print(f"  event frames vs normal videos' frames:            {auc(ins, nor):.4f}")
    print(f"  event frames vs the rest of the abnormal videos:  {auc(ins, out):.4f}")
    print(f"mean score: event {ins.mean():.3f}, rest of abnormal videos {out.mean():.3f}, normal videos {nor.mean():.3f}")
    print(f"negatives from abnormal videos: {len(out) / (len(out) + len(nor)):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
