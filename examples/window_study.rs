//! How far `window` mode scores are from `offline` scores, and what each window costs, on real
//! features: the snippets of a video (default: vtest.avi) through the default model's
//! extractor. This is the measurement behind the default window and lookahead in README.md.
//!
//! `cargo run --release --example window_study [VIDEO] [MODEL_DIR]`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a study that cannot set up should stop

use ndarray::{Array3, Axis};
use std::path::PathBuf;
use std::time::Instant;
use vigil::features::FeatureExtractor;
use vigil::model::ModelDir;
use vigil::preprocess::{Preprocessor, SnippetAssembler};
use vigil::scorer::{ScoreMode, ScorerConfig, StreamScorer};
use vigil::source::{FrameSource, OpenCvSource};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let video =
        PathBuf::from(args.get(1).map(String::as_str).unwrap_or("/usr/share/doc/opencv-doc/examples/data/vtest.avi"));
    let model_dir = PathBuf::from(args.get(2).map(String::as_str).unwrap_or("models/default"));
    let model = ModelDir::load(&model_dir)?;
    let recipe = model.extractor_parts()?.1.clone();
    let mut ex = model.load_extractor(1)?;
    let rtfm = model.load_rtfm()?;
    let dim = model.manifest.features.dim;
    let crops = model.manifest.features.crops;

    let mut src = OpenCvSource::open_file(&video)?;
    let pre = Preprocessor::new(recipe.clone());
    let mut asm = SnippetAssembler::new(recipe);
    let mut rows = Vec::new();
    let mut push = |clip: &ndarray::Array5<f32>, ex: &mut dyn FeatureExtractor| -> anyhow::Result<()> {
        rows.push(ex.extract(clip.view())?);
        Ok(())
    };
    while let Some(f) = src.next_frame()? {
        if let Some(s) = asm.push(pre.prepare(&f)?) {
            push(&s.clip, &mut ex)?;
        }
    }
    if let Some(s) = asm.finish() {
        push(&s.clip, &mut ex)?;
    }
    let views: Vec<_> = rows.iter().map(|r| r.view().insert_axis(Axis(0))).collect();
    let feats: Array3<f32> = ndarray::concatenate(Axis(0), &views)?;
    let t = feats.shape()[0];
    let offline = rtfm.score(feats.view())?;
    println!("video {} ({t} snippets), model {}", video.display(), model.manifest.name);
    println!("{:>6} {:>9} {:>14} {:>14} {:>16}", "window", "lookahead", "mean |diff|", "max |diff|", "ms per snippet");
    for window in [8usize, 16, 32, 64] {
        for lookahead in [0usize, 1, 2, 4] {
            if lookahead >= window {
                continue;
            }
            let cfg = ScorerConfig { mode: ScoreMode::Window, window, lookahead };
            let mut s = StreamScorer::new(&rtfm, cfg, crops, dim);
            let t0 = Instant::now();
            let mut out = s.push_chunk(feats.view())?;
            out.extend(s.finish()?);
            let ms = t0.elapsed().as_secs_f64() * 1000.0 / t as f64;
            let diffs: Vec<f32> = out.iter().map(|o| (o.score - offline.scores[o.index as usize]).abs()).collect();
            let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
            let max = diffs.iter().copied().fold(0.0f32, f32::max);
            println!("{window:>6} {lookahead:>9} {mean:>14.5} {max:>14.5} {ms:>16.3}");
        }
    }
    Ok(())
}
