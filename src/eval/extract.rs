//! Offline feature extraction for `vigil features`: one video in, one RTFM feature array
//! `[T, crops, D]` out, T = ceil(frames / snippet_frames) with the last snippet loop-padded
//! (exactly what [`SnippetAssembler`] produces), and a small worker pool that runs several videos
//! at once, each worker with its own extractor session (never shared).
//!
//! Each video is decoded, prepared and extracted alone, so videos of different frame sizes may
//! share a batch: the recipe resizes every frame to the model's input size. This module does not
//! score, write files or know list syntax; the command does.

use crate::error::InputError;
use crate::features::FeatureExtractor;
use crate::preprocess::{Preprocessor, Recipe, Snippet, SnippetAssembler};
use crate::source::{FrameSource, OpenCvSource, SourceInfo};
use anyhow::Context;
use crossbeam_channel::bounded;
use ndarray::{Array3, Array5, Axis};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// What extraction needs from a model.
#[derive(Debug, Clone)]
pub struct ExtractSpec {
    pub recipe: Recipe,
    pub crops: usize,
    pub dim: usize,
    pub max_batch: usize,
}

impl ExtractSpec {
    /// What a model directory's extractor needs; errors for a score-only model.
    pub fn from_model(model: &crate::model::ModelDir) -> Result<Self, crate::model::ModelError> {
        let (spec, recipe) = model.extractor_parts()?;
        Ok(ExtractSpec {
            recipe: recipe.clone(),
            crops: model.manifest.features.crops,
            dim: model.manifest.features.dim,
            max_batch: spec.max_batch,
        })
    }
}

/// One video's features.
#[derive(Debug, Clone)]
pub struct VideoFeatures {
    pub info: SourceInfo,
    pub frames: u64,
    /// `[T, crops, D]`.
    pub features: Array3<f32>,
}

/// Extracts the features of one video file, sequentially on the calling thread.
pub fn extract_video(
    path: &Path,
    extractor: &mut dyn FeatureExtractor,
    spec: &ExtractSpec,
) -> anyhow::Result<VideoFeatures> {
    let mut source = OpenCvSource::open_file(path)?;
    let info = source.info().clone();
    let pre = Preprocessor::new(spec.recipe.clone());
    let mut asm = SnippetAssembler::new(spec.recipe.clone());
    let max_batch = spec.max_batch.max(1);
    let mut pending: Vec<Snippet> = Vec::with_capacity(max_batch);
    let mut rows: Vec<f32> = Vec::new();
    let mut snippets = 0usize;
    let mut frames = 0u64;
    let mut flush = |pending: &mut Vec<Snippet>, rows: &mut Vec<f32>| -> anyhow::Result<usize> {
        if pending.is_empty() {
            return Ok(0);
        }
        let views: Vec<_> = pending.iter().map(|s| s.clip.view()).collect();
        let clips: Array5<f32> = ndarray::concatenate(Axis(0), &views).context("stacking snippet clips")?;
        let feats = extractor.extract(clips.view())?;
        let want = pending.len() * spec.crops;
        if feats.nrows() != want || feats.ncols() != spec.dim {
            anyhow::bail!(
                "extractor returned [{}, {}] for {} clips of width {}",
                feats.nrows(),
                feats.ncols(),
                want,
                spec.dim
            );
        }
        rows.extend(feats.iter());
        let n = pending.len();
        pending.clear();
        Ok(n)
    };
    while let Some(frame) = source.next_frame()? {
        frames += 1;
        if !asm.keeps(frame.index) {
            continue;
        }
        let prepared =
            pre.prepare(&frame).map_err(|source| InputError::Preprocess { name: info.name.clone(), source })?;
        if let Some(s) = asm.push(prepared) {
            pending.push(s);
            if pending.len() >= max_batch {
                snippets += flush(&mut pending, &mut rows)?;
            }
        }
    }
    let needed = spec.recipe.snippet_frames * spec.recipe.frame_stride.max(1);
    if frames < needed as u64 {
        return Err(InputError::TooShort { name: info.name.clone(), frames, needed }.into());
    }
    if let Some(s) = asm.finish() {
        pending.push(s);
    }
    snippets += flush(&mut pending, &mut rows)?;
    let features =
        Array3::from_shape_vec((snippets, spec.crops, spec.dim), rows).context("assembling the feature array")?;
    Ok(VideoFeatures { info, frames, features })
}

/// Extracts `videos` on `jobs` worker threads. Workers pull videos from a bounded queue, each
/// with the extractor `make_extractor` gives it; `on_done(index, result)` runs on the calling
/// thread as each video finishes (in completion order) and may return an error to stop the
/// pool: videos not yet started are skipped and the first error is returned.
pub fn extract_parallel<E, F>(
    videos: &[PathBuf],
    jobs: usize,
    spec: &ExtractSpec,
    make_extractor: F,
    on_done: &mut dyn FnMut(usize, VideoFeatures) -> anyhow::Result<()>,
) -> Result<(), (usize, anyhow::Error)>
where
    E: FeatureExtractor,
    F: Fn() -> anyhow::Result<E> + Sync,
{
    let jobs = jobs.clamp(1, videos.len().max(1));
    let (job_tx, job_rx) = bounded::<usize>(jobs);
    let (done_tx, done_rx) = bounded::<(usize, anyhow::Result<VideoFeatures>)>(jobs);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for w in 0..jobs {
            let (job_rx, done_tx, stop, make) = (job_rx.clone(), done_tx.clone(), &stop, &make_extractor);
            let spawned = std::thread::Builder::new().name(format!("features-{w}")).spawn_scoped(scope, move || {
                let mut extractor = match make() {
                    Ok(e) => e,
                    Err(e) => {
                        // Report against the first video this worker would have taken.
                        if let Ok(i) = job_rx.recv() {
                            let _ = done_tx.send((i, Err(e)));
                        }
                        return;
                    }
                };
                for i in job_rx.iter() {
                    if stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    let r = extract_video(&videos[i], &mut extractor, spec);
                    if done_tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => return Err((0, anyhow::Error::new(e).context("starting a feature worker"))),
            }
        }
        drop(done_tx);
        drop(job_rx);
        // Feed the queue from its own thread so this one can drain results meanwhile.
        let feeder_stop = &stop;
        let count = videos.len();
        let feeder = std::thread::Builder::new().name("features-feed".into()).spawn_scoped(scope, move || {
            for i in 0..count {
                if feeder_stop.load(Ordering::Relaxed) || job_tx.send(i).is_err() {
                    break;
                }
            }
        });
        if let Err(e) = feeder {
            stop.store(true, Ordering::Relaxed);
            return Err((0, anyhow::Error::new(e).context("starting the feature feeder")));
        }
        let mut first_err: Option<(usize, anyhow::Error)> = None;
        let mut finished = 0usize;
        for (i, r) in done_rx.iter() {
            finished += 1;
            if first_err.is_some() {
                continue;
            }
            let r = r.and_then(|f| on_done(i, f));
            if let Err(e) = r {
                stop.store(true, Ordering::Relaxed);
                first_err = Some((i, e));
            }
        }
        let panicked = handles.into_iter().map(|h| h.join()).filter(Result::is_err).count();
        if let Some(e) = first_err {
            return Err(e);
        }
        if panicked > 0 || finished < count {
            return Err((
                finished.min(count.saturating_sub(1)),
                anyhow::anyhow!(
                    "{panicked} feature worker(s) panicked; {finished} of {count} videos finished (a bug: please report it)"
                ),
            ));
        }
        Ok(())
    })
}
