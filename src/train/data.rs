//! Training data: the segment resampling of the reference, the in-memory training set and the
//! seeded batch sampler. Pure (no candle, no files except in `load_split`), so every rule here is
//! unit-tested on hand-computed cases.

use super::rng::Rng;
use crate::lists::{Label, ListEntry};
use anyhow::Context as _;
use ndarray::{Array3, ArrayView3};
use std::path::Path;

/// Segments per training video (the reference's `32`).
pub const SEGMENTS: usize = 32;

/// Boundaries of `segments` segments over `t` snippets: `floor(linspace(0, t, segments + 1))`.
pub fn boundaries(t: usize, segments: usize) -> Vec<usize> {
    (0..=segments)
        .map(|i| {
            // linspace computes start + i * step in floating point; for the integers involved
            // (t < 2^24, segments <= 2^10) i * t / segments in f64 gives the same floor.
            ((i as f64) * (t as f64) / (segments as f64)).floor() as usize
        })
        .collect()
}

/// Resamples one video `[T, crops, D]` to `[crops, segments, D]` (crop-major, the order the
/// network's input wants): segment `i` is the mean of snippets `b[i]..b[i+1]`, or snippet `b[i]`
/// alone when that slice is empty (T < segments), as the reference's `process_feat`.
pub fn resample(feats: ArrayView3<f32>, segments: usize) -> Array3<f32> {
    let (t, crops, d) = feats.dim();
    let b = boundaries(t, segments);
    let mut out = Array3::<f32>::zeros((crops, segments, d));
    for c in 0..crops {
        for i in 0..segments {
            let (lo, hi) = (b[i], b[i + 1]);
            let mut dst = out.slice_mut(ndarray::s![c, i, ..]);
            if hi > lo {
                // Sum in f32 in snippet order then divide, as numpy's mean over axis 0 of a
                // float32 array (pairwise summation differs only beyond 8 snippets per segment
                // and by rounding; exactness to numpy is not needed here).
                for s in lo..hi {
                    dst += &feats.slice(ndarray::s![s, c, ..]);
                }
                dst /= (hi - lo) as f32;
            } else {
                // lo < t always holds: lo = floor(i * t / segments) with i < segments.
                dst.assign(&feats.slice(ndarray::s![lo.min(t - 1), c, ..]));
            }
        }
    }
    out
}

/// How a training video shorter than [`SEGMENTS`] snippets becomes `SEGMENTS` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShortVideos {
    /// The reference: resampled like every video, so each snippet repeats about
    /// `SEGMENTS / T` times (the network trains on a stretched timeline).
    #[default]
    Stretch,
    /// Its `T` snippets, then zeros; the training pass masks the padding ([`crate::rtfm::PadMask`])
    /// so the network sees the timeline it scores at inference. Videos of `SEGMENTS` snippets or
    /// more are resampled as the reference does.
    Pad,
}

/// Copies a video `[T, crops, D]` with `T < segments` into `[crops, segments, D]`, zeros after
/// its `T` snippets.
pub fn pad(feats: ArrayView3<f32>, segments: usize) -> Array3<f32> {
    let (t, crops, d) = feats.dim();
    let mut out = Array3::<f32>::zeros((crops, segments, d));
    for c in 0..crops {
        for s in 0..t.min(segments) {
            out.slice_mut(ndarray::s![c, s, ..]).assign(&feats.slice(ndarray::s![s, c, ..]));
        }
    }
    out
}

/// One class of the training set, each video `[crops, SEGMENTS, D]` flattened, with the number
/// of valid segments (`SEGMENTS` unless padded).
#[derive(Debug, Default)]
pub struct Videos {
    pub data: Vec<Vec<f32>>,
    pub lens: Vec<usize>,
}

impl Videos {
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The training set in memory: resampled normal and abnormal videos.
#[derive(Debug)]
pub struct TrainSet {
    pub normal: Videos,
    pub abnormal: Videos,
    pub crops: usize,
    pub dim: usize,
    /// Mean L2 norm of the raw snippet features (all videos, all crops): the scale the default
    /// magnitude margin is derived from.
    pub mean_snippet_norm: f64,
    /// Whether some video is padded (only with [`ShortVideos::Pad`]).
    pub padded: bool,
}

impl TrainSet {
    /// Builds a training set from in-memory videos `[T, crops, D]` (every video the same crops
    /// and D; checked by the caller).
    pub fn from_videos(videos: &[(Array3<f32>, Label)], short: ShortVideos) -> Self {
        let (crops, dim) = videos.first().map(|(f, _)| (f.dim().1, f.dim().2)).unwrap_or((1, 0));
        let mut set = TrainSet {
            normal: Videos::default(),
            abnormal: Videos::default(),
            crops,
            dim,
            mean_snippet_norm: 0.0,
            padded: false,
        };
        let mut norm_sum = 0.0f64;
        let mut norm_count = 0usize;
        for (f, label) in videos {
            for row in f.rows() {
                norm_sum += row.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
                norm_count += 1;
            }
            let t = f.dim().0;
            let (r, len) = if short == ShortVideos::Pad && t < SEGMENTS {
                set.padded = true;
                (pad(f.view(), SEGMENTS), t)
            } else {
                (resample(f.view(), SEGMENTS), SEGMENTS)
            };
            let class = match label {
                Label::Normal => &mut set.normal,
                Label::Abnormal => &mut set.abnormal,
            };
            class.data.push(r.into_raw_vec_and_offset().0);
            class.lens.push(len);
        }
        set.mean_snippet_norm = if norm_count > 0 { norm_sum / norm_count as f64 } else { 0.0 };
        set
    }
}

/// Reads every feature file of a list (width `dim`), naming the list file and line on error.
/// All files must have the same crop count.
pub fn load_features(list: &Path, entries: &[ListEntry], dim: usize) -> anyhow::Result<Vec<Array3<f32>>> {
    let mut out: Vec<Array3<f32>> = Vec::with_capacity(entries.len());
    for e in entries {
        let f = crate::npy::read_features(&e.path, Some(dim))
            .with_context(|| format!("{}:{}: feature file", list.display(), e.line))?;
        if let Some(first) = out.first() {
            if first.dim().1 != f.dim().1 {
                return Err(super::TrainError::Crops {
                    list: list.to_path_buf(),
                    line: e.line,
                    path: e.path.clone(),
                    got: f.dim().1,
                    expected: first.dim().1,
                }
                .into());
            }
        }
        out.push(f);
    }
    Ok(out)
}

/// Epoch-wise shuffled sampling of one class, `batch` videos at a time, dropping the last
/// partial batch (the reference's `DataLoader(shuffle=True, drop_last=True)`, restarted when
/// exhausted as its loop does).
#[derive(Debug)]
pub struct Sampler {
    order: Vec<usize>,
    pos: usize,
    batch: usize,
}

impl Sampler {
    /// `batch` must be in 1..=n.
    pub fn new(n: usize, batch: usize) -> Self {
        Sampler {
            order: (0..n).collect(),
            pos: n, // forces a shuffle on the first draw
            batch,
        }
    }

    /// The next batch of indices.
    pub fn next(&mut self, rng: &mut Rng) -> &[usize] {
        if self.pos + self.batch > self.order.len() {
            rng.shuffle(&mut self.order);
            self.pos = 0;
        }
        let s = &self.order[self.pos..self.pos + self.batch];
        self.pos += self.batch;
        s
    }
}

/// Copies the chosen videos (normal first, then abnormal) into one `[2B, crops, SEGMENTS, D]`
/// buffer; also returns each video's valid length, in the same order.
pub fn assemble(set: &TrainSet, normal: &[usize], abnormal: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let per = set.crops * SEGMENTS * set.dim;
    let mut buf = Vec::with_capacity((normal.len() + abnormal.len()) * per);
    let mut lens = Vec::with_capacity(normal.len() + abnormal.len());
    for &i in normal {
        buf.extend_from_slice(&set.normal.data[i]);
        lens.push(set.normal.lens[i]);
    }
    for &i in abnormal {
        buf.extend_from_slice(&set.abnormal.data[i]);
        lens.push(set.abnormal.lens[i]);
    }
    (buf, lens)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Video whose snippet t, crop c, dim k holds 100 * c + t (+ k / 10).
    fn video(t: usize, crops: usize, d: usize) -> Array3<f32> {
        Array3::from_shape_fn((t, crops, d), |(ti, c, k)| 100.0 * c as f32 + ti as f32 + k as f32 / 10.0)
    }

    /// The value of segment i computed by hand from the boundaries (snippet index only).
    fn expected(t: usize, i: usize) -> f32 {
        let b = boundaries(t, 32);
        if b[i + 1] > b[i] {
            (b[i]..b[i + 1]).map(|s| s as f32).sum::<f32>() / (b[i + 1] - b[i]) as f32
        } else {
            b[i] as f32
        }
    }

    #[test]
    fn short_videos_pad_keeps_snippets_and_zero_fills() {
        let v = video(5, 2, 3);
        let p = pad(v.view(), 32);
        assert_eq!(p.dim(), (2, 32, 3));
        for c in 0..2 {
            for s in 0..5 {
                assert_eq!(p.slice(ndarray::s![c, s, ..]), v.slice(ndarray::s![s, c, ..]));
            }
            assert!(p.slice(ndarray::s![c, 5.., ..]).iter().all(|x| *x == 0.0));
        }
        // Pad mode pads only videos under 32 snippets; stretch never pads.
        let videos = vec![(video(5, 1, 3), Label::Normal), (video(40, 1, 3), Label::Abnormal)];
        let set = TrainSet::from_videos(&videos, ShortVideos::Pad);
        assert!(set.padded);
        assert_eq!((set.normal.lens.clone(), set.abnormal.lens.clone()), (vec![5], vec![32]));
        assert_eq!(set.abnormal.data[0], resample(videos[1].0.view(), 32).into_raw_vec_and_offset().0);
        let (buf, lens) = assemble(&set, &[0], &[0]);
        assert_eq!((buf.len(), lens), (2 * 32 * 3, vec![5, 32]));
        let set = TrainSet::from_videos(&videos, ShortVideos::Stretch);
        assert!(!set.padded);
        assert_eq!(set.normal.lens, vec![32]);
        assert_eq!(set.normal.data[0], resample(videos[0].0.view(), 32).into_raw_vec_and_offset().0);
    }

    #[test]
    fn boundaries_match_numpy_linspace_floor() {
        // np.floor(np.linspace(0, 5, 33)).astype(int)
        let b5 = boundaries(5, 32);
        assert_eq!(
            b5,
            vec![0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5]
        );
        assert_eq!(boundaries(1, 32)[..32], [0; 32]);
        assert_eq!(boundaries(1, 32)[32], 1);
        assert_eq!(boundaries(32, 32), (0..=32).collect::<Vec<_>>());
        // 33: floor(i * 33 / 32) = i + floor(i / 32)
        let b33 = boundaries(33, 32);
        assert_eq!(b33[..32], (0..32).collect::<Vec<_>>()[..]);
        assert_eq!(b33[32], 33);
        let b100 = boundaries(100, 32);
        assert_eq!(&b100[..5], &[0, 3, 6, 9, 12]);
        assert_eq!(b100[31], 96);
        assert_eq!(b100[32], 100);
    }

    #[test]
    fn resample_hand_computed_cases() {
        // T = 1: every segment is the only snippet.
        let r = resample(video(1, 2, 3).view(), 32);
        assert_eq!(r.dim(), (2, 32, 3));
        assert!(r.slice(ndarray::s![0, .., 0]).iter().all(|v| *v == 0.0));
        assert!(r.slice(ndarray::s![1, .., 2]).iter().all(|v| (*v - 100.2).abs() < 1e-5));
        // T = 5 (numpy: the boundaries above): segments 0..=5 are empty slices at 0 and take
        // snippet 0, segment 6 is [0, 1) -> 0, segments 7..=11 empty at 1 -> 1, 12 is [1, 2) ...
        let r = resample(video(5, 1, 1).view(), 32);
        let got: Vec<f32> = r.iter().copied().collect();
        let want: Vec<f32> = vec![
            0., 0., 0., 0., 0., 0., 0., 1., 1., 1., 1., 1., 1., 2., 2., 2., 2., 2., 2., 2., 3., 3., 3., 3., 3., 3., 4.,
            4., 4., 4., 4., 4.,
        ];
        assert_eq!(got, want);
        // T = 31: boundaries floor(i * 31 / 32) = i - 1 for i >= 1 except i = 0, 32.
        let r = resample(video(31, 1, 1).view(), 32);
        assert_eq!(r[[0, 0, 0]], 0.0); // [0, 0) empty -> snippet 0
        assert_eq!(r[[0, 1, 0]], 0.0); // [0, 1)
        assert_eq!(r[[0, 31, 0]], 30.0); // [30, 31)
                                         // T = 32: identity.
        let v = video(32, 2, 2);
        let r = resample(v.view(), 32);
        for c in 0..2 {
            for t in 0..32 {
                assert_eq!(r[[c, t, 1]], v[[t, c, 1]]);
            }
        }
        // T = 33: the last segment averages snippets 31 and 32.
        let r = resample(video(33, 1, 1).view(), 32);
        assert_eq!(r[[0, 30, 0]], 30.0);
        assert_eq!(r[[0, 31, 0]], 31.5);
        // T = 100: segment 0 = mean(0, 1, 2) = 1; segment 31 = mean(96..100) = 97.5.
        let r = resample(video(100, 3, 2).view(), 32);
        assert!((r[[0, 0, 0]] - 1.0).abs() < 1e-5);
        assert!((r[[0, 31, 0]] - 97.5).abs() < 1e-5);
        assert!((r[[2, 31, 1]] - 297.6).abs() < 1e-3);
        for t in [1, 5, 31, 32, 33, 100] {
            let r = resample(video(t, 1, 1).view(), 32);
            for i in 0..32 {
                assert!((r[[0, i, 0]] - expected(t, i)).abs() < 1e-4, "T {t} seg {i}");
            }
        }
    }

    #[test]
    fn sampler_covers_each_epoch_and_is_seeded() {
        let mut rng = Rng::new(7);
        let mut s = Sampler::new(10, 3);
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.extend_from_slice(s.next(&mut rng));
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9, "one epoch draws without replacement");
        let mut a = Sampler::new(10, 4);
        let mut b = Sampler::new(10, 4);
        let (mut ra, mut rb) = (Rng::new(3), Rng::new(3));
        for _ in 0..5 {
            assert_eq!(a.next(&mut ra).to_vec(), b.next(&mut rb).to_vec());
        }
    }
}
