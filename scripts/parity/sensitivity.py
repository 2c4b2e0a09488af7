#!/usr/bin/env python3
"""Informational: how far plausible implementation mistakes move the fixture outputs,
compared with float32 noise (f64_max_abs_diff in the fixtures). Not needed to regenerate anything."""
import os, sys
import numpy as np
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rtfm_torch as R

def agg_forward(self, x, bn_first=False, order=(0, 1, 2, 3), residual=True):
    def blk(seq, x):
        conv, relu, bn = seq[0], seq[1], seq[2]
        return relu(bn(conv(x))) if bn_first else bn(relu(conv(x)))
    outs = [blk(self.conv_1, x), blk(self.conv_2, x), blk(self.conv_3, x), self.non_local(self.conv_4(x))]
    h = blk(self.conv_5, torch.cat([outs[i] for i in order], 1))
    return h + x if residual else h

def nl_forward(self, x, softmax=False, scale=True, residual=True):
    t = x.shape[2]
    g = self.g(x).permute(0, 2, 1); th = self.theta(x).permute(0, 2, 1); ph = self.phi(x)
    f = th @ ph
    f = torch.softmax(f, -1) if softmax else (f / t if scale else f)
    y = self.W((f @ g).permute(0, 2, 1).contiguous())
    return y + x if residual else y

MUTANTS = {
    "bn_before_relu": ("agg", dict(bn_first=True)),
    "concat_nl_first": ("agg", dict(order=(3, 0, 1, 2))),
    "concat_d4_d2_d1": ("agg", dict(order=(2, 1, 0, 3))),
    "no_block_residual": ("agg", dict(residual=False)),
    "nl_softmax": ("nl", dict(softmax=True)),
    "nl_no_1_over_T": ("nl", dict(scale=False)),
    "nl_no_residual": ("nl", dict(residual=False)),
}

torch.set_num_threads(2)
for wname, t, crops in [("small", 33, 1), ("small", 7, 10), ("reference", 33, 1), ("reference", 64, 10)]:
    w = R.WIDTH_SETS[wname]
    model = R.build_model(w)
    feats = R.formula_features(t, crops, w["feature_dim"])
    s0, m0 = R.run(model, feats)
    print(f"{wname} T={t} crops={crops}: score range {s0.min():.5f}..{s0.max():.5f}")
    for mname, (where, kw) in MUTANTS.items():
        if where == "agg":
            model.Aggregate.forward = lambda x, kw=kw, a=model.Aggregate: agg_forward(a, x, **kw)
        else:
            model.Aggregate.non_local.forward = lambda x, kw=kw, n=model.Aggregate.non_local: nl_forward(n, x, **kw)
        s, m = R.run(model, feats)
        for mod in (model.Aggregate, model.Aggregate.non_local):
            mod.__dict__.pop("forward", None)
        print(f"  {mname:18s} max|dscore| {np.abs(s - s0).max():.2e}  max|dmag| {np.abs(m - m0).max():.2e}")
