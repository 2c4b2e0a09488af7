//! Frame-level ground truth in the RTFM layout: one vector over all test frames, videos
//! concatenated in list order, each padded to T * 16 frames. This module checks that a vector
//! fits a list (naming the first video where it stops fitting), cuts it into per-video slices,
//! and turns labels into time spans for plots. Pure: it reads no file.

use crate::error::GtError;
use std::ops::Range;
use std::path::Path;

/// One video as the layout sees it.
#[derive(Debug, Clone, Copy)]
pub struct GtVideo<'a> {
    /// Name used in messages (the path, with its list line when it has one).
    pub name: &'a str,
    pub snippets: usize,
}

/// Checks that `len` frames of ground truth are exactly the videos' `snippets * per_snippet`
/// frames and returns each video's frame range in the vector.
pub fn split(
    path: &Path,
    len: usize,
    videos: &[GtVideo<'_>],
    per_snippet: usize,
) -> Result<Vec<Range<usize>>, GtError> {
    let expected: usize = videos.iter().map(|v| v.snippets * per_snippet).sum();
    let snippets: usize = videos.iter().map(|v| v.snippets).sum();
    let mut ranges = Vec::with_capacity(videos.len());
    let mut offset = 0;
    let mut broken: Option<String> = None;
    for (i, v) in videos.iter().enumerate() {
        let end = offset + v.snippets * per_snippet;
        if end > len && broken.is_none() {
            broken = Some(format!(
                "; it stops fitting at video #{} {} (frames {}..{} of the vector, {} snippets)",
                i + 1,
                v.name,
                offset,
                end,
                v.snippets
            ));
        }
        ranges.push(offset..end);
        offset = end;
    }
    if len != expected {
        let detail =
            broken.unwrap_or_else(|| format!("; {} frames are left over after the last video", len - expected));
        return Err(GtError::Invalid {
            path: path.display().to_string(),
            reason: format!(
                "has {len} frames but {expected} were expected: the list's {} videos have {snippets} snippets of {per_snippet} frames{detail}",
                videos.len()
            ),
        });
    }
    Ok(ranges)
}

/// Checks that every value is 0 or 1 (the metrics need both, and nothing else).
pub fn check_values(path: &Path, gt: &[f64]) -> Result<(), GtError> {
    match gt.iter().position(|&v| v != 0.0 && v != 1.0) {
        Some(i) => Err(GtError::Invalid {
            path: path.display().to_string(),
            reason: format!("value {} at frame {i} is not 0 or 1", gt[i]),
        }),
        None => Ok(()),
    }
}

/// Runs of frames with a label above 0.5, as (start_s, end_s).
pub fn frame_spans(labels: &[f64], fps: f64) -> Vec<(f64, f64)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, &v) in labels.iter().chain(std::iter::once(&0.0)).enumerate() {
        match (v > 0.5, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s as f64 / fps, i as f64 / fps));
                start = None;
            }
            _ => {}
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_labels() {
        assert_eq!(frame_spans(&[0.0, 1.0, 1.0, 0.0, 1.0], 10.0), vec![(0.1, 0.3), (0.4, 0.5)]);
        assert!(frame_spans(&[0.0; 4], 10.0).is_empty());
    }

    #[test]
    fn split_names_the_first_video_that_does_not_fit() {
        let v = [GtVideo { name: "a.npy", snippets: 2 }, GtVideo { name: "b.npy", snippets: 3 }];
        let p = Path::new("gt.npy");
        assert_eq!(split(p, 80, &v, 16).unwrap(), vec![0..32, 32..80]);
        let e = split(p, 64, &v, 16).unwrap_err().to_string();
        assert!(e.contains("gt.npy") && e.contains("64") && e.contains("80") && e.contains("b.npy"), "{e}");
        let e = split(p, 90, &v, 16).unwrap_err().to_string();
        assert!(e.contains("10 frames are left over"), "{e}");
    }

    #[test]
    fn values_must_be_binary() {
        assert!(check_values(Path::new("g"), &[0.0, 1.0]).is_ok());
        let e = check_values(Path::new("g"), &[0.0, 0.5]).unwrap_err().to_string();
        assert!(e.contains("frame 1"), "{e}");
    }
}
