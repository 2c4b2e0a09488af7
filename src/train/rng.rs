//! The trainer's only source of randomness: a seeded SplitMix64 passed by `&mut`, never global,
//! so a seed fixes every batch, dropout mask and top-k mask (candle's CPU random numbers cannot
//! be seeded, which is why the trainer makes its own).

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, passes BigCrush; plenty for sampling.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// An independent stream derived from this seed and a label (for per-purpose generators).
    pub fn derive(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits (exact in f32).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform integer in 0..n (n >= 1), by Lemire's multiply-shift (bias < n / 2^64).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    /// `nn.Dropout(p)` applied to a tensor of ones: each entry is 0 with probability `p`,
    /// otherwise `1 / (1 - p)`.
    pub fn dropout_ones(&mut self, len: usize, p: f32) -> Vec<f32> {
        let keep = 1.0 / (1.0 - p);
        (0..len).map(|_| if self.next_f32() < p { 0.0 } else { keep }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_in_range() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| r.below(7) < 7));
        let m = r.dropout_ones(10_000, 0.7);
        let kept = m.iter().filter(|v| **v > 0.0).count();
        assert!((2700..3300).contains(&kept), "{kept}");
        assert!(m.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.3).abs() < 1e-6));
        assert_ne!(Rng::derive(1, 1).next_u64(), Rng::derive(1, 2).next_u64());
    }
}
