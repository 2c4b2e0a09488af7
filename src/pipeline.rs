//! The replay pipeline: the only module that knows threads. One named thread per heavy stage,
//! joined by bounded channels that block when full (replay loses nothing; the decoder simply
//! waits), so memory stays bounded whatever the video length:
//!
//! ```text
//! decode ──frames(32)──> preprocess+snippets ──snippets(4)──> features ──feats(16)──> caller:
//!                                                                         scorer -> alerts
//! ```
//!
//! Shutdown is by dropping senders: when the decoder ends (or fails) every later stage drains
//! and ends. A stage that fails records its error and drops its channels; the first error wins.

use crate::alert::{AlertEvent, AlertMachine, AlertPolicy, Observation};
use crate::error::InputError;
use crate::features::FeatureExtractor;
use crate::output::ScoreRecord;
use crate::preprocess::{Preprocessor, Recipe, SnippetAssembler};
use crate::scorer::{Scored, ScorerConfig, SnippetScorer, StreamScorer};
use crate::source::{FrameSource, SourceInfo};
use crate::stats::StageTimes;
use anyhow::Context;
use crossbeam_channel::{bounded, Receiver};
use ndarray::{s, Array2, Array5, Axis};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Queue sizes: small, so a slow stage back-pressures the decoder instead of buffering video.
const FRAME_QUEUE: usize = 32;
const SNIPPET_QUEUE: usize = 4;
const FEATURE_QUEUE: usize = 16;

/// What a replay needs besides the video.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub recipe: Recipe,
    pub crops: usize,
    pub dim: usize,
    pub max_batch: usize,
    pub scorer: ScorerConfig,
    pub policy: AlertPolicy,
}

impl ReplayOptions {
    /// The options a model directory implies: its recipe, widths, batch and alert policy, with
    /// the given scorer settings. Errors for a score-only model (no extractor).
    pub fn from_model(model: &crate::model::ModelDir, scorer: ScorerConfig) -> Result<Self, crate::model::ModelError> {
        let (spec, recipe) = model.extractor_parts()?;
        Ok(ReplayOptions {
            recipe: recipe.clone(),
            crops: model.manifest.features.crops,
            dim: model.manifest.features.dim,
            max_batch: spec.max_batch,
            scorer,
            policy: model.manifest.alert,
        })
    }
}

/// Timing and position of one snippet, carried alongside its features.
#[derive(Debug, Clone, Copy)]
struct SnippetMeta {
    index: u64,
    first_frame: u64,
    last_frame: u64,
    start_ms: f64,
    end_ms: f64,
}

/// Everything a replay of one video produced.
#[derive(Debug, Clone)]
pub struct ReplayResult {
    pub info: SourceInfo,
    pub records: Vec<ScoreRecord>,
    pub events: Vec<AlertEvent>,
    pub frames: u64,
    pub wall: Duration,
    pub times: StageTimes,
}

/// Progress callback: frames scored so far.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Replays one opened source through preprocess, features, scorer and alerts.
/// `on_event` sees each alert event as soon as it happens.
pub fn replay<S: FrameSource>(
    mut source: S,
    extractor: &mut dyn FeatureExtractor,
    scorer: &dyn SnippetScorer,
    opts: &ReplayOptions,
    on_event: &mut dyn FnMut(&AlertEvent),
    progress: Progress<'_>,
) -> anyhow::Result<ReplayResult> {
    let info = source.info().clone();
    let name = info.name.clone();
    // With a frame stride, a snippet's last kept frame stands for `stride` decoded frames.
    let frame_ms = opts.recipe.frame_stride.max(1) as f64 * 1000.0 / info.frame_rate();
    let started = Instant::now();
    let (frame_tx, frame_rx) = bounded(FRAME_QUEUE);
    let (snip_tx, snip_rx) = bounded(SNIPPET_QUEUE);
    let (feat_tx, feat_rx) = bounded::<(Vec<SnippetMeta>, Array2<f32>)>(FEATURE_QUEUE);
    let mut times = StageTimes::default();

    std::thread::scope(|scope| -> anyhow::Result<ReplayResult> {
        let decode = std::thread::Builder::new().name("decode".into()).spawn_scoped(scope, move || {
            let mut samples = crate::stats::Samples::default();
            let mut frames = 0u64;
            loop {
                let t0 = Instant::now();
                match source.next_frame() {
                    Ok(Some(f)) => {
                        samples.push(t0.elapsed());
                        frames += 1;
                        if frame_tx.send(f).is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        drop(frame_tx);
                        return Err(anyhow::Error::new(e));
                    }
                }
            }
            drop(frame_tx);
            Ok((frames, samples))
        })?;

        let recipe = opts.recipe.clone();
        let prep_name = name.clone();
        let prep = std::thread::Builder::new().name("preprocess".into()).spawn_scoped(scope, move || {
            let pre = Preprocessor::new(recipe.clone());
            let mut asm = SnippetAssembler::new(recipe);
            let mut samples = crate::stats::Samples::default();
            for frame in frame_rx.iter() {
                let t0 = Instant::now();
                let prepared =
                    pre.prepare(&frame).map_err(|source| InputError::Preprocess { name: prep_name.clone(), source })?;
                let snippet = asm.push(prepared);
                samples.push(t0.elapsed());
                if let Some(s) = snippet {
                    if snip_tx.send(s).is_err() {
                        return Ok(samples);
                    }
                }
            }
            if let Some(s) = asm.finish() {
                let _ = snip_tx.send(s);
            }
            Ok::<_, anyhow::Error>(samples)
        })?;

        let max_batch = opts.max_batch.max(1);
        let crops = opts.crops;
        let feat = std::thread::Builder::new().name("features".into()).spawn_scoped(scope, move || {
            let mut samples = crate::stats::Samples::default();
            while let Ok(first) = snip_rx.recv() {
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match snip_rx.try_recv() {
                        Ok(s) => batch.push(s),
                        Err(_) => break,
                    }
                }
                let views: Vec<_> = batch.iter().map(|s| s.clip.view()).collect();
                // [crops, C, T, H, W] per snippet -> [n * crops, C, T, H, W]
                let clips: Array5<f32> = ndarray::concatenate(Axis(0), &views).context("stacking snippet clips")?;
                let t0 = Instant::now();
                let feats = extractor.extract(clips.view())?;
                let per = t0.elapsed() / batch.len() as u32;
                for _ in 0..batch.len() {
                    samples.push(per);
                }
                if feats.nrows() != batch.len() * crops {
                    anyhow::bail!("extractor returned {} rows for {} clips", feats.nrows(), batch.len() * crops);
                }
                let metas = batch
                    .iter()
                    .map(|s| SnippetMeta {
                        index: s.index,
                        first_frame: s.first_frame,
                        last_frame: s.last_frame,
                        start_ms: s.start_ms,
                        end_ms: s.end_ms,
                    })
                    .collect();
                if feat_tx.send((metas, feats)).is_err() {
                    break;
                }
            }
            Ok::<_, anyhow::Error>(samples)
        })?;

        let out = score_stream(&name, feat_rx, scorer, opts, frame_ms, on_event, progress, &mut times);

        let decoded = join(decode, "decode")?;
        let prep_samples = join(prep, "preprocess")?;
        let feat_samples = join(feat, "features")?;
        let (records, events) = out?;
        let (frames, decode_samples) = decoded;
        times.decode = decode_samples;
        times.preprocess = prep_samples;
        times.features = feat_samples;
        let needed = opts.recipe.snippet_frames * opts.recipe.frame_stride.max(1);
        if frames < needed as u64 {
            return Err(InputError::TooShort { name: name.clone(), frames, needed }.into());
        }
        Ok(ReplayResult { info: info.clone(), records, events, frames, wall: started.elapsed(), times: times.clone() })
    })
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, anyhow::Result<T>>, stage: &str) -> anyhow::Result<T> {
    match h.join() {
        Ok(r) => r,
        Err(_) => anyhow::bail!("the {stage} thread panicked (a bug: please report it)"),
    }
}

#[allow(clippy::too_many_arguments)]
fn score_stream(
    name: &str,
    feat_rx: Receiver<(Vec<SnippetMeta>, Array2<f32>)>,
    scorer: &dyn SnippetScorer,
    opts: &ReplayOptions,
    frame_ms: f64,
    on_event: &mut dyn FnMut(&AlertEvent),
    progress: Progress<'_>,
    times: &mut StageTimes,
) -> anyhow::Result<(Vec<ScoreRecord>, Vec<AlertEvent>)> {
    let mut stream = StreamScorer::new(scorer, opts.scorer, opts.crops, opts.dim);
    let mut alerts = AlertMachine::new(name, opts.policy);
    let mut pending: VecDeque<SnippetMeta> = VecDeque::new();
    let mut records = Vec::new();
    let mut events = Vec::new();
    let mut handle = |scored: Vec<Scored>,
                      pending: &mut VecDeque<SnippetMeta>,
                      records: &mut Vec<ScoreRecord>,
                      events: &mut Vec<AlertEvent>,
                      times: &mut StageTimes| {
        for s in scored {
            let Some(meta) = pending.pop_front() else {
                continue;
            };
            debug_assert_eq!(meta.index, s.index);
            // `end_ms` is the last real frame's timestamp; the snippet lasts until the next frame.
            let end_ms = meta.end_ms + frame_ms;
            let t0 = Instant::now();
            let evs = alerts.update(Observation {
                snippet: s.index,
                first_frame: meta.first_frame,
                last_frame: meta.last_frame,
                start_ms: meta.start_ms,
                end_ms,
                score: s.score,
            });
            times.alert.push(t0.elapsed());
            for e in evs {
                on_event(&e);
                events.push(e);
            }
            records.push(ScoreRecord {
                source: name.to_string(),
                snippet: s.index,
                frame_start: meta.first_frame,
                frame_end: meta.last_frame,
                time_start_s: meta.start_ms / 1000.0,
                time_end_s: end_ms / 1000.0,
                score: s.score,
                magnitude: s.magnitude,
            });
            progress(meta.last_frame + 1);
        }
    };
    for (metas, feats) in feat_rx.iter() {
        for (k, meta) in metas.into_iter().enumerate() {
            let rows = feats.slice(s![k * opts.crops..(k + 1) * opts.crops, ..]);
            pending.push_back(meta);
            let t0 = Instant::now();
            let scored = stream.push(rows)?;
            times.scorer.push(t0.elapsed());
            handle(scored, &mut pending, &mut records, &mut events, times);
        }
    }
    let scored = stream.finish()?;
    handle(scored, &mut pending, &mut records, &mut events, times);
    if let Some(e) = alerts.finish() {
        on_event(&e);
        events.push(e);
    }
    Ok((records, events))
}
