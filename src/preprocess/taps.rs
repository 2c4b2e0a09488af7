//! Resampling taps for `Preprocessor`'s separable resize: which source samples each output
//! sample reads and with what weights, for bilinear and area filters (OpenCV's conventions).

use super::Interpolation;

/// Resampling taps along one axis: output `i` reads source samples `start[i]..` weighted by
/// `weights[offsets[i]..offsets[i + 1]]`. Taps are contiguous for both filters.
pub(super) struct Taps {
    start: Vec<usize>,
    offsets: Vec<usize>,
    weights: Vec<f32>,
}

impl Taps {
    fn with_capacity(n: usize) -> Self {
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        Self { start: Vec::with_capacity(n), offsets, weights: Vec::with_capacity(n * 2) }
    }

    fn push(&mut self, start: usize, weights: &[f64]) {
        self.start.push(start);
        self.weights.extend(weights.iter().map(|w| *w as f32));
        self.offsets.push(self.weights.len());
    }

    #[inline]
    pub(super) fn get(&self, i: usize) -> (usize, &[f32]) {
        (self.start[i], &self.weights[self.offsets[i]..self.offsets[i + 1]])
    }

    pub(super) fn new(filter: Interpolation, src: usize, dst: usize) -> Self {
        match filter {
            Interpolation::Bilinear => Self::bilinear(src, dst),
            Interpolation::Area if src >= dst => Self::area_down(src, dst),
            // OpenCV's INTER_AREA enlarges with its own linear-like weights.
            Interpolation::Area => Self::area_up(src, dst),
        }
    }

    /// Two-tap interpolation between `sx` and `sx + 1` with weight `f` on the second, clamped at
    /// the borders exactly as OpenCV does (the edge sample is replicated).
    fn push_linear(&mut self, sx: i64, f: f64, src: usize) {
        let last = src as i64 - 1;
        let (sx, f) = if sx < 0 {
            (0, 0.0)
        } else if sx >= last {
            (last, 0.0)
        } else {
            (sx, f)
        };
        if f == 0.0 {
            self.push(sx as usize, &[1.0]);
        } else {
            self.push(sx as usize, &[1.0 - f, f]);
        }
    }

    /// Half-pixel-centre bilinear: output `d` samples source coordinate `(d + 0.5) * s - 0.5`.
    fn bilinear(src: usize, dst: usize) -> Self {
        let scale = src as f64 / dst as f64;
        let mut taps = Self::with_capacity(dst);
        for d in 0..dst {
            let x = (d as f64 + 0.5) * scale - 0.5;
            let sx = x.floor();
            taps.push_linear(sx as i64, x - sx, src);
        }
        taps
    }

    /// Box average (OpenCV INTER_AREA for shrinking): output `d` covers source interval
    /// `[d * s, (d + 1) * s)` and each source sample weighs by the length it overlaps.
    fn area_down(src: usize, dst: usize) -> Self {
        let scale = src as f64 / dst as f64;
        let mut taps = Self::with_capacity(dst);
        let mut w = Vec::new();
        for d in 0..dst {
            let lo = d as f64 * scale;
            let hi = ((d + 1) as f64 * scale).min(src as f64);
            let first = lo.floor() as usize;
            let last = (hi.ceil() as usize).min(src).max(first + 1);
            w.clear();
            for sx in first..last {
                let overlap = (hi.min(sx as f64 + 1.0) - lo.max(sx as f64)).max(0.0);
                w.push(overlap);
            }
            // Renormalise so a constant image stays constant despite float rounding of `scale`.
            let sum: f64 = w.iter().sum();
            w.iter_mut().for_each(|v| *v /= sum);
            taps.push(first, &w);
        }
        taps
    }

    /// OpenCV INTER_AREA when enlarging: `sx = floor(d * s)`,
    /// `f = (d + 1) - (sx + 1) / s`, kept only for its fractional part.
    fn area_up(src: usize, dst: usize) -> Self {
        let scale = src as f64 / dst as f64;
        let mut taps = Self::with_capacity(dst);
        for d in 0..dst {
            let sx = (d as f64 * scale).floor();
            let f = (d as f64 + 1.0) - (sx + 1.0) / scale;
            let f = if f <= 0.0 { 0.0 } else { f - f.floor() };
            taps.push_linear(sx as i64, f, src);
        }
        taps
    }
}
