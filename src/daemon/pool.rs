//! The shared feature pool: `workers.count` threads, each owning its own ONNX Runtime session,
//! take snippets from every camera off one bounded queue and run them in batches of up to
//! `max_batch` clips, waiting at most `max_wait` after the first for the batch to fill. Results go
//! back on the camera's own (unbounded) reply channel, so a worker never blocks on a camera; the
//! shared queue is bounded, so a camera that outruns the pool blocks, its frame queue fills and its
//! capture thread drops the oldest frames (live) or waits (files played fast).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ndarray::{s, Array2, Array5, Axis};

use crate::features::FeatureExtractor;
use crate::telemetry::{Metrics, Stage};

/// A snippet's place in its camera's stream.
#[derive(Debug, Clone, Copy)]
pub struct SnippetMeta {
    /// The camera's own running snippet number (continues across reconnects).
    pub index: u64,
    pub first_frame: u64,
    pub last_frame: u64,
    pub start_ms: f64,
    pub end_ms: f64,
    /// Capture instant of the snippet's newest frame.
    pub captured: Instant,
}

impl SnippetMeta {
    /// The metadata of `s`, numbered `index` in its camera's stream.
    pub fn of(index: u64, s: &crate::preprocess::Snippet) -> SnippetMeta {
        SnippetMeta {
            index,
            first_frame: s.first_frame,
            last_frame: s.last_frame,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            captured: s.captured,
        }
    }

    /// Media time just after the snippet's last frame: its last timestamp plus one frame
    /// interval (measured inside the snippet; 100 ms for a one-frame snippet).
    pub fn until_ms(&self) -> f64 {
        let frames = self.last_frame.saturating_sub(self.first_frame);
        if frames > 0 {
            self.end_ms + (self.end_ms - self.start_ms) / frames as f64
        } else {
            self.end_ms + 100.0
        }
    }
}

/// One snippet for extraction.
pub struct Job {
    pub meta: SnippetMeta,
    /// `[crops, C, T, H, W]`.
    pub clip: Array5<f32>,
    pub reply: Sender<Reply>,
}

/// A snippet's features `[crops, D]`, or why there are none.
pub struct Reply {
    pub meta: SnippetMeta,
    pub feats: Result<Array2<f32>, String>,
}

/// Runs one worker until the job queue closes (every camera thread hung up).
pub fn run_worker(
    mut extractor: Box<dyn FeatureExtractor + Send>,
    jobs: Receiver<Job>,
    max_batch: usize,
    max_wait: Duration,
    crops: usize,
    metrics: Arc<Metrics>,
) {
    let max_batch = max_batch.max(1);
    while let Ok(first) = jobs.recv() {
        let deadline = Instant::now() + max_wait;
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match jobs.recv_deadline(deadline) {
                Ok(j) => batch.push(j),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let views: Vec<_> = batch.iter().map(|j| j.clip.view()).collect();
        let result = ndarray::concatenate(Axis(0), &views)
            .map_err(|e| format!("stacking {} clips: {e}", batch.len()))
            .and_then(|clips| extractor.extract(clips.view()).map_err(|e| e.to_string()))
            .and_then(|f| {
                if f.nrows() == batch.len() * crops {
                    Ok(f)
                } else {
                    Err(format!("extractor returned {} rows for {} clips", f.nrows(), batch.len() * crops))
                }
            });
        if let Err(e) = &result {
            tracing::error!("feature extraction of {} snippets failed (they are skipped): {e}", batch.len());
        }
        for (k, job) in batch.into_iter().enumerate() {
            metrics.observe_since(Stage::Features, job.meta.captured);
            let feats = match &result {
                Ok(f) => Ok(f.slice(s![k * crops..(k + 1) * crops, ..]).to_owned()),
                Err(e) => Err(e.clone()),
            };
            // A camera that already stopped no longer wants its reply.
            let _ = job.reply.send(Reply { meta: job.meta, feats });
        }
    }
}
