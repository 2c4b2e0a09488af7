//! `vigil eval`: a list of videos or of feature files, and the frame-level ground truth, in; the
//! RTFM protocol's numbers (ROC AUC, PR AUC, average precision), a per-video table, time to detect
//! and false alerts per hour out, as text or one JSON object, with optional plots.
//! Every video is scored whole (offline mode), as the reference evaluates, for the curves; alerts
//! (time to detect, false alerts) come from the scores the deployed model gives, in the
//! manifest's scorer mode (a sliding window in the shipped model), which is what the model's
//! thresholds were set on and what an operator sees.

use crate::alert::spans;
use crate::cli::EvalArgs;
use crate::error::GtError;
use crate::eval::extract::{extract_video, ExtractSpec};
use crate::eval::metrics::{self, RTFM_FRAMES_PER_SNIPPET};
use crate::eval::run::{evaluate, Sources, VideoScores};
use crate::lists::{labels, read_list, ListEntry, ListError};
use crate::output::{plot_scores, OutputError, PlotInput};
use anyhow::Context;
use std::io::IsTerminal;
use std::path::Path;

/// Frame rate assumed for feature files that carry none (UCF-Crime's).
const DEFAULT_FEATURE_FPS: f64 = 30.0;

fn is_features(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let entries = read_list(&args.list, &args.remap)?;
    check_entries(&args.list, &entries)?;
    let labels = labels(&args.list, &entries, None)?;
    let gt = crate::npy::read_vector(&args.gt)
        .map_err(|e| GtError::Invalid { path: args.gt.display().to_string(), reason: e.to_string() })?;
    let gt = gt.to_vec();
    let model = super::load_model(&args.model)?;
    let rtfm = model.load_rtfm()?;
    if !model.manifest.rtfm.trained {
        tracing::warn!(model = %model.dir.display(), "the model's RTFM weights are untrained: the numbers are not meaningful");
    }
    let policy = model.manifest.alert;
    let at = |e: &ListEntry| format!("{}:{}", args.list.display(), e.line);
    let show = !args.no_progress && std::io::stderr().is_terminal();
    let bar = super::features::count_bar(show, Some(entries.len() as u64), "eval", "videos");

    let deployed = model.manifest.scorer;
    let mut videos = Vec::with_capacity(entries.len());
    let mut score = |e: &ListEntry, label, feats: ndarray::Array3<f32>, fps: f64| -> anyhow::Result<()> {
        let what = || format!("{}: scoring {}", at(e), e.path.display());
        let offline = rtfm.score(feats.view()).with_context(what)?;
        let alert_scores = crate::scorer::deployed_scores(&rtfm, deployed, &feats).with_context(what)?;
        videos.push(VideoScores {
            name: e.path.display().to_string(),
            line: e.line,
            label,
            scores: offline.scores,
            alert_scores,
            fps,
        });
        bar.inc(1);
        Ok(())
    };
    if is_features(&entries[0].path) {
        let dim = model.manifest.features.dim;
        let mut assumed = 0usize;
        for (e, label) in entries.iter().zip(&labels) {
            let feats =
                crate::npy::read_features(&e.path, Some(dim)).with_context(|| format!("{}: feature file", at(e)))?;
            let fps = match args.fps {
                Some(f) => f,
                None => match crate::eval::meta::read(&e.path).with_context(|| at(e))? {
                    Some(m) => m.fps,
                    None => {
                        assumed += 1;
                        DEFAULT_FEATURE_FPS
                    }
                },
            };
            score(e, *label, feats, fps)?;
        }
        if assumed > 0 {
            tracing::warn!(
                "{assumed} of {} feature files have no .json sidecar with their frame rate: \
                 times assume {DEFAULT_FEATURE_FPS} fps (set --fps)",
                entries.len()
            );
        }
    } else {
        let spec = ExtractSpec::from_model(&model)?;
        let mut extractor = model.load_extractor(args.threads.max(1))?;
        for (e, label) in entries.iter().zip(&labels) {
            let v = extract_video(&e.path, &mut extractor, &spec)
                .with_context(|| format!("{}: video {}", at(e), e.path.display()))?;
            let fps = v.info.frame_rate();
            score(e, *label, v.features, fps)?;
        }
    }
    bar.finish_and_clear();

    let alert_scoring = deployed.describe();
    let src = Sources { list: &args.list, gt: &args.gt, model: &model.manifest.name, alert_scoring: &alert_scoring };
    let (report, details) = evaluate(src, &gt, &videos, policy)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.to_text());
    }

    if let Some(dir) = &args.plot {
        std::fs::create_dir_all(dir).map_err(|e| OutputError::write(dir, e))?;
        let frame_scores = metrics::expand_videos(videos.iter().map(|v| v.scores.as_slice()), RTFM_FRAMES_PER_SNIPPET);
        let curve = metrics::roc_curve(&gt, &frame_scores)
            .map_err(|e| GtError::Invalid { path: args.gt.display().to_string(), reason: e.to_string() })?;
        let title =
            format!("ROC, frame-level AUC = {:.4} ({} videos, {})", report.auc, report.videos, model.manifest.name);
        crate::eval::plots::roc_svg(&dir.join("roc.svg"), &curve, &title)?;
        let per = RTFM_FRAMES_PER_SNIPPET as f64;
        for (v, d) in videos.iter().zip(&details) {
            let stem = Path::new(&v.name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("line{}", v.line));
            // The scores the alerts and thresholds belong to (the deployed scorer's).
            let input = PlotInput {
                title: format!("{} ({}, {} scores)", v.name, model.manifest.name, alert_scoring),
                snippets: v
                    .alert_scores
                    .iter()
                    .enumerate()
                    .map(|(k, &s)| (k as f64 * per / v.fps, (k + 1) as f64 * per / v.fps, s))
                    .collect(),
                alerts: spans(&d.events),
                ground_truth: d.ground_truth.clone(),
                thresholds: Some((policy.on, policy.off)),
            };
            plot_scores(&dir.join(format!("{stem}.svg")), &input)?;
        }
    }
    Ok(())
}

/// Every entry exists, and the list is all feature files or all videos.
fn check_entries(list: &Path, entries: &[ListEntry]) -> Result<(), ListError> {
    let first_is_npy = entries.first().is_some_and(|e| is_features(&e.path));
    for e in entries {
        if is_features(&e.path) != first_is_npy {
            let (this, other) =
                if first_is_npy { ("a video", "feature files (.npy)") } else { ("a feature file", "videos") };
            return Err(ListError::Line {
                path: list.to_path_buf(),
                line: e.line,
                reason: format!(
                    "{} is {this}, but the list starts with {other}; a list holds one kind, not both",
                    e.path.display()
                ),
            });
        }
        if !e.path.is_file() {
            return Err(ListError::Line {
                path: list.to_path_buf(),
                line: e.line,
                reason: format!("{} does not exist", e.path.display()),
            });
        }
    }
    Ok(())
}
