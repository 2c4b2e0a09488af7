//! `vigil score`: feature files in, per-snippet scores and magnitudes out.

use crate::cli::{ScoreArgs, ScorerArgs};
use crate::npy;
use crate::scorer::{ScoreMode, StreamScorer};
use std::io::Write;

pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    let model = super::load_model(&args.model)?;
    let cfg = super::scorer_config(
        &model,
        &ScorerArgs { mode: Some(args.mode), window: args.window, lookahead: args.lookahead },
    )?;
    let rtfm = model.load_rtfm()?;
    let dim = model.manifest.features.dim;
    if !model.manifest.rtfm.trained {
        tracing::warn!(model = %model.dir.display(), "the model's RTFM weights are untrained: scores are not meaningful");
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in &args.features {
        let feats = npy::read_features(path, Some(dim))?;
        let (t, crops) = (feats.shape()[0], feats.shape()[1]);
        let (scores, mags): (Vec<f32>, Vec<f32>) = match cfg.mode {
            ScoreMode::Offline => {
                let o = rtfm.score(feats.view())?;
                (o.scores, o.magnitudes)
            }
            ScoreMode::Window => {
                let mut s = StreamScorer::new(&rtfm, cfg, crops, dim);
                let mut all = s.push_chunk(feats.view())?;
                all.extend(s.finish()?);
                all.iter().map(|x| (x.score, x.magnitude)).unzip()
            }
        };
        if args.json {
            let obj = serde_json::json!({
                "file": path.display().to_string(),
                "snippets": t,
                "crops": crops,
                "scores": scores,
                "magnitudes": mags,
            });
            writeln!(out, "{obj}")?;
        } else {
            let (peak_i, peak) =
                scores.iter().copied().enumerate().fold((0, f32::MIN), |a, (i, v)| if v > a.1 { (i, v) } else { a });
            let mean = scores.iter().sum::<f32>() / t as f32;
            writeln!(
                out,
                "{}\tsnippets={t}\tcrops={crops}\tmean={mean:.4}\tmax={peak:.4}\tmax_at_snippet={peak_i}",
                path.display()
            )?;
        }
    }
    Ok(())
}
