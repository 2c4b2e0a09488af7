//! Scoring snippet features as they arrive. Pure: no threads, no I/O.
//!
//! `offline` keeps every snippet and scores the whole video once at the end: exactly the
//! reference protocol. `window` keeps the newest `window` snippets in a ring buffer and, once
//! snippet `t + lookahead` has arrived, scores the buffer and emits snippet `t`. The lookahead
//! lets the dilated convolutions (which see +-5 snippets) see some future context; the window
//! bounds the cost per snippet and the non-local block's 1/T normalisation.
//!
//! Emission depends only on the sequence of snippets, never on how it was split into pushes.

use crate::rtfm::{Rtfm, RtfmError, ScoreOutput};
use ndarray::{Array3, ArrayView2, ArrayView3};
use ringbuf::traits::{Consumer, Observer, RingBuffer};
use ringbuf::HeapRb;
use serde::{Deserialize, Serialize};

/// How snippets are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScoreMode {
    /// The whole video at once when it ends (the reference numbers).
    Offline,
    /// A ring buffer of the newest `window` snippets, `lookahead` snippets of delay.
    #[default]
    Window,
}

impl std::str::FromStr for ScoreMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "offline" => Ok(ScoreMode::Offline),
            "window" => Ok(ScoreMode::Window),
            other => Err(format!("unknown scorer mode '{other}' (expected offline or window)")),
        }
    }
}

/// The `[scorer]` section of a manifest (and of the daemon config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScorerConfig {
    /// Default `window`.
    pub mode: ScoreMode,
    /// Snippets kept in the ring buffer (default 32, about 51 s at 10 fps, 17 s at 30 fps).
    pub window: usize,
    /// Snippets of future context before a snippet is scored (default 2).
    pub lookahead: usize,
}

impl Default for ScorerConfig {
    fn default() -> Self {
        Self { mode: ScoreMode::Window, window: 32, lookahead: 2 }
    }
}

impl ScorerConfig {
    /// Checks the window holds the lookahead; returns (key, reason) on failure.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.window == 0 {
            return Err(("window", "must be at least 1".into()));
        }
        if self.lookahead >= self.window {
            return Err(("lookahead", format!("({}) must be smaller than window ({})", self.lookahead, self.window)));
        }
        Ok(())
    }

    /// How scores are made, for reports: "offline (whole video)" or
    /// "window (32 snippets, lookahead 2)".
    pub fn describe(&self) -> String {
        match self.mode {
            ScoreMode::Offline => "offline (whole video)".to_string(),
            ScoreMode::Window => format!("window ({} snippets, lookahead {})", self.window, self.lookahead),
        }
    }
}

/// Scores of one whole video `[T, crops, D]` as a deployed model produces them: through the
/// streaming scorer with `config` (window mode scores differ from whole-video scores because
/// the non-local block sees only the window), one per snippet in order. Alert thresholds are set
/// on these (`vigil train`) and alerts are judged on them (`vigil eval`).
pub fn deployed_scores(net: &Rtfm, config: ScorerConfig, video: &Array3<f32>) -> Result<Vec<f32>, RtfmError> {
    let (_, crops, dim) = video.dim();
    let mut scorer = StreamScorer::new(net, config, crops, dim);
    let mut out = scorer.push_chunk(video.view())?;
    out.extend(scorer.finish()?);
    out.sort_by_key(|s| s.index);
    Ok(out.into_iter().map(|s| s.score).collect())
}

/// Anything that scores a whole feature sequence `[T, crops, D]`.
pub trait SnippetScorer {
    fn score(&self, feats: ArrayView3<f32>) -> Result<ScoreOutput, RtfmError>;
}

impl SnippetScorer for Rtfm {
    fn score(&self, feats: ArrayView3<f32>) -> Result<ScoreOutput, RtfmError> {
        Rtfm::score(self, feats)
    }
}

impl<S: SnippetScorer + ?Sized> SnippetScorer for &S {
    fn score(&self, feats: ArrayView3<f32>) -> Result<ScoreOutput, RtfmError> {
        (**self).score(feats)
    }
}

/// One scored snippet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// 0-based snippet index in the stream.
    pub index: u64,
    pub score: f32,
    pub magnitude: f32,
}

/// Streaming scorer over a ring buffer of snippet features.
pub struct StreamScorer<S> {
    scorer: S,
    config: ScorerConfig,
    crops: usize,
    dim: usize,
    /// Window mode: the newest `window` snippets, each `[crops * dim]`.
    ring: HeapRb<Vec<f32>>,
    /// Offline mode: every snippet.
    all: Vec<f32>,
    pushed: u64,
    next_emit: u64,
}

impl<S: SnippetScorer> StreamScorer<S> {
    pub fn new(scorer: S, config: ScorerConfig, crops: usize, dim: usize) -> Self {
        let cap = match config.mode {
            ScoreMode::Window => config.window.max(1),
            ScoreMode::Offline => 1,
        };
        Self { scorer, config, crops, dim, ring: HeapRb::new(cap), all: Vec::new(), pushed: 0, next_emit: 0 }
    }

    pub fn config(&self) -> &ScorerConfig {
        &self.config
    }

    /// Snippets pushed so far.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Adds one snippet's features `[crops, D]`; returns the snippets that became final.
    pub fn push(&mut self, feat: ArrayView2<f32>) -> Result<Vec<Scored>, RtfmError> {
        if feat.shape() != [self.crops, self.dim] {
            return Err(RtfmError::Input { got: feat.shape().to_vec(), dim: self.dim });
        }
        let flat: Vec<f32> = feat.iter().copied().collect();
        self.pushed += 1;
        match self.config.mode {
            ScoreMode::Offline => {
                self.all.extend_from_slice(&flat);
                Ok(Vec::new())
            }
            ScoreMode::Window => {
                self.ring.push_overwrite(flat);
                let newest = self.pushed - 1;
                if newest >= self.next_emit + self.config.lookahead as u64 {
                    self.emit_from_ring(1)
                } else {
                    Ok(Vec::new())
                }
            }
        }
    }

    /// Adds a chunk `[n, crops, D]` of snippets; equivalent to `n` single pushes.
    pub fn push_chunk(&mut self, feats: ArrayView3<f32>) -> Result<Vec<Scored>, RtfmError> {
        let mut out = Vec::new();
        for f in feats.outer_iter() {
            out.extend(self.push(f)?);
        }
        Ok(out)
    }

    /// Ends the stream: scores and returns every snippet not yet emitted.
    pub fn finish(&mut self) -> Result<Vec<Scored>, RtfmError> {
        match self.config.mode {
            ScoreMode::Offline => {
                let t = self.pushed as usize;
                if t == 0 {
                    return Ok(Vec::new());
                }
                let arr = Array3::from_shape_vec((t, self.crops, self.dim), std::mem::take(&mut self.all))
                    .map_err(|_| RtfmError::Input { got: vec![t, self.crops, self.dim], dim: self.dim })?;
                let out = self.scorer.score(arr.view())?;
                self.next_emit = self.pushed;
                Ok(zip_scores(0, &out, 0..t))
            }
            ScoreMode::Window => {
                let remaining = (self.pushed - self.next_emit) as usize;
                if remaining == 0 {
                    return Ok(Vec::new());
                }
                self.emit_from_ring(remaining)
            }
        }
    }

    /// Scores the ring's content and emits the next `count` snippets from it.
    fn emit_from_ring(&mut self, count: usize) -> Result<Vec<Scored>, RtfmError> {
        let len = self.ring.occupied_len();
        let mut data = Vec::with_capacity(len * self.crops * self.dim);
        for snip in self.ring.iter() {
            data.extend_from_slice(snip);
        }
        let arr = Array3::from_shape_vec((len, self.crops, self.dim), data)
            .map_err(|_| RtfmError::Input { got: vec![len, self.crops, self.dim], dim: self.dim })?;
        let out = self.scorer.score(arr.view())?;
        let first_in_ring = self.pushed - len as u64;
        let start = (self.next_emit - first_in_ring) as usize;
        let res = zip_scores(first_in_ring, &out, start..start + count);
        self.next_emit += count as u64;
        Ok(res)
    }
}

fn zip_scores(base: u64, out: &ScoreOutput, range: std::ops::Range<usize>) -> Vec<Scored> {
    range
        .filter_map(|i| {
            Some(Scored { index: base + i as u64, score: *out.scores.get(i)?, magnitude: *out.magnitudes.get(i)? })
        })
        .collect()
}

/// Scores a whole feature sequence in one call: the offline protocol.
pub fn score_offline<S: SnippetScorer>(scorer: &S, feats: ArrayView3<f32>) -> Result<ScoreOutput, RtfmError> {
    scorer.score(feats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array3};
    use proptest::prelude::*;

    /// A scorer whose output at t depends on the whole window (like the non-local block) and on
    /// its position, so any misalignment or wrong window shows up.
    struct WholeWindow;
    impl SnippetScorer for WholeWindow {
        fn score(&self, feats: ArrayView3<f32>) -> Result<ScoreOutput, RtfmError> {
            let t = feats.shape()[0];
            let mean: f32 = feats.iter().sum::<f32>() / feats.len() as f32;
            let scores = (0..t).map(|i| feats[[i, 0, 0]] + mean + i as f32 * 1e-3).collect();
            let magnitudes =
                (0..t).map(|i| feats.slice(s![i, .., ..]).iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
            Ok(ScoreOutput { scores, magnitudes })
        }
    }

    fn seq(t: usize, crops: usize, dim: usize, seed: u64) -> Array3<f32> {
        Array3::from_shape_fn((t, crops, dim), |(a, b, c)| {
            (((a as u64 * 31 + b as u64 * 7 + c as u64 * 3 + seed) % 97) as f32) / 97.0
        })
    }

    fn run_chunks(feats: &Array3<f32>, cfg: ScorerConfig, cuts: &[usize]) -> Vec<Scored> {
        let mut sc = StreamScorer::new(WholeWindow, cfg, feats.shape()[1], feats.shape()[2]);
        let mut out = Vec::new();
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&feats.shape()[0])) {
            let end = c.clamp(start, feats.shape()[0]);
            out.extend(sc.push_chunk(feats.slice(s![start..end, .., ..])).unwrap());
            start = end;
        }
        out.extend(sc.finish().unwrap());
        out
    }

    /// The window semantics written the slow, obvious way.
    fn naive_window(feats: &Array3<f32>, w: usize, l: usize) -> Vec<Scored> {
        let n = feats.shape()[0];
        (0..n)
            .map(|t| {
                let newest = (t + l).min(n - 1);
                let first = (newest + 1).saturating_sub(w);
                let out = WholeWindow.score(feats.slice(s![first..=newest, .., ..])).unwrap();
                Scored { index: t as u64, score: out.scores[t - first], magnitude: out.magnitudes[t - first] }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn window_with_full_buffer_equals_offline(t in 1usize..60, cuts in proptest::collection::vec(0usize..60, 0..8)) {
            let feats = seq(t, 2, 3, 5);
            let mut cuts = cuts;
            cuts.sort();
            let cfg = ScorerConfig { mode: ScoreMode::Window, window: t + 1, lookahead: t };
            let got = run_chunks(&feats, cfg, &cuts);
            let off = WholeWindow.score(feats.view()).unwrap();
            prop_assert_eq!(got.len(), t);
            for (i, s) in got.iter().enumerate() {
                prop_assert_eq!(s.index, i as u64);
                prop_assert_eq!(s.score, off.scores[i]);
                prop_assert_eq!(s.magnitude, off.magnitudes[i]);
            }
        }

        #[test]
        fn offline_mode_equals_one_call(t in 1usize..60, cuts in proptest::collection::vec(0usize..60, 0..8)) {
            let feats = seq(t, 1, 4, 9);
            let mut cuts = cuts;
            cuts.sort();
            let cfg = ScorerConfig { mode: ScoreMode::Offline, window: 1, lookahead: 0 };
            let got = run_chunks(&feats, cfg, &cuts);
            let off = WholeWindow.score(feats.view()).unwrap();
            let scores: Vec<f32> = got.iter().map(|s| s.score).collect();
            prop_assert_eq!(scores, off.scores);
        }

        #[test]
        fn window_mode_is_chunking_invariant_and_matches_naive(
            t in 1usize..50, w in 1usize..12, l in 0usize..12,
            cuts in proptest::collection::vec(0usize..50, 0..8),
        ) {
            prop_assume!(l < w);
            let feats = seq(t, 1, 2, 3);
            let mut cuts = cuts;
            cuts.sort();
            let cfg = ScorerConfig { mode: ScoreMode::Window, window: w, lookahead: l };
            let chunked = run_chunks(&feats, cfg, &cuts);
            let single = run_chunks(&feats, cfg, &[]);
            prop_assert_eq!(&chunked, &single);
            prop_assert_eq!(chunked, naive_window(&feats, w, l));
        }
    }

    fn real_rtfm() -> Rtfm {
        let widths = crate::rtfm::RtfmWidths { feature_dim: 16, temporal_width: 4, nonlocal_width: 2, head: [8, 4] };
        Rtfm::new_random(&widths, 7).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The real network, not a mock: any split into pushes, with the window covering the
        /// sequence, gives the offline numbers bit for bit.
        #[test]
        fn real_rtfm_streaming_equals_offline(t in 1usize..40, crops in 1usize..3, cuts in proptest::collection::vec(0usize..40, 0..6)) {
            let rtfm = real_rtfm();
            let feats = seq(t, crops, 16, 11);
            let mut cuts = cuts;
            cuts.sort();
            let cfg = ScorerConfig { mode: ScoreMode::Window, window: t.max(1) + 3, lookahead: t };
            let mut sc = StreamScorer::new(&rtfm, cfg, crops, 16);
            let mut got = Vec::new();
            let mut start = 0;
            for &c in cuts.iter().chain(std::iter::once(&t)) {
                let end = c.clamp(start, t);
                got.extend(sc.push_chunk(feats.slice(s![start..end, .., ..])).unwrap());
                start = end;
            }
            got.extend(sc.finish().unwrap());
            let off = rtfm.score(feats.view()).unwrap();
            prop_assert_eq!(got.len(), t);
            for (i, g) in got.iter().enumerate() {
                prop_assert_eq!(g.score, off.scores[i]);
                prop_assert_eq!(g.magnitude, off.magnitudes[i]);
            }
        }
    }

    #[test]
    fn emits_after_lookahead() {
        let feats = seq(5, 1, 2, 1);
        let cfg = ScorerConfig { mode: ScoreMode::Window, window: 4, lookahead: 2 };
        let mut sc = StreamScorer::new(WholeWindow, cfg, 1, 2);
        assert!(sc.push(feats.slice(s![0, .., ..])).unwrap().is_empty());
        assert!(sc.push(feats.slice(s![1, .., ..])).unwrap().is_empty());
        let third = sc.push(feats.slice(s![2, .., ..])).unwrap();
        assert_eq!(third.iter().map(|s| s.index).collect::<Vec<_>>(), vec![0]);
        let rest = sc.finish().unwrap();
        assert_eq!(rest.iter().map(|s| s.index).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn wrong_width_rejected() {
        let mut sc = StreamScorer::new(WholeWindow, ScorerConfig::default(), 1, 4);
        let bad = ndarray::Array2::<f32>::zeros((1, 3));
        assert!(matches!(sc.push(bad.view()), Err(RtfmError::Input { .. })));
    }

    #[test]
    fn config_validation() {
        assert!(ScorerConfig { mode: ScoreMode::Window, window: 0, lookahead: 0 }.validate().is_err());
        assert!(ScorerConfig { mode: ScoreMode::Window, window: 4, lookahead: 4 }.validate().is_err());
        assert!(ScorerConfig::default().validate().is_ok());
    }
}
