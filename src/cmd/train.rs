//! `vigil train`: lists and feature files in, a complete model directory out (weights, manifest
//! with the base model's extractor and recipe, alert thresholds from validation, a loss log and
//! a training record). Wiring only: the loop, the objective and the thresholds are in `train`.

use crate::cli::{LossArg, TrainArgs};
use crate::error::GtError;
use crate::lists::{self, Label, ListError};
use crate::model::{default_model_dir, Manifest, ModelDir, RtfmSection, MANIFEST};
use crate::output::OutputError;
use crate::train::{
    self, data, loss::LossConfig, loss::LossKind, optim::AdamConfig, Event, TrainError, TrainOptions, Validation,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

const WEIGHTS: &str = "rtfm.safetensors";
const LOG: &str = "train_log.jsonl";
const RECORD: &str = "training.json";
/// The reference margin, tuned to ten-crop I3D feature norms.
const REFERENCE_MARGIN: f32 = 100.0;
/// For other features: the margin as a multiple of the mean snippet feature norm (the
/// reference's 100 is about 3x the norm of typical I3D snippet features).
const MARGIN_PER_NORM: f64 = 3.0;

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let base_dir = args.model.clone().unwrap_or_else(default_model_dir);
    let base = ModelDir::load(&base_dir)?;
    let widths = base.manifest.rtfm.widths();
    let dim = widths.feature_dim;

    let (train_entries, train_labels) = read_labelled(&args.list, &args.remap, args.abnormal)?;
    for (want, name) in [(Label::Normal, "normal"), (Label::Abnormal, "abnormal")] {
        if !train_labels.contains(&want) {
            return Err(ListError::Invalid {
                path: args.list.clone(),
                reason: format!(
                    "has no {name} videos: label lines with `,0`/`,1`, pass --abnormal N, or name normal videos `...normal...`"
                ),
            }
            .into());
        }
    }
    let feats = data::load_features(&args.list, &train_entries, dim)?;
    let crops = feats.first().map(|f| f.dim().1).unwrap_or(1);
    if crops != base.manifest.features.crops {
        return Err(TrainError::ModelCrops {
            model: base.dir.clone(),
            got: crops,
            expected: base.manifest.features.crops,
        }
        .into());
    }
    let videos: Vec<_> = feats.into_iter().zip(train_labels.iter().copied()).collect();
    let set = data::TrainSet::from_videos(&videos, args.short_videos.into());
    drop(videos);

    let val = match &args.val_list {
        Some(path) => {
            let (entries, labels) = read_labelled(path, &args.remap, args.val_abnormal)?;
            let videos = data::load_features(path, &entries, dim)?;
            if let Some(bad) = videos.iter().position(|v| v.dim().1 != crops) {
                return Err(TrainError::Crops {
                    list: path.clone(),
                    line: entries[bad].line,
                    path: entries[bad].path.clone(),
                    got: videos[bad].dim().1,
                    expected: crops,
                }
                .into());
            }
            let gt = match &args.val_gt {
                Some(g) => Some(read_val_gt(g, &videos)?),
                None => {
                    // The video-level AUC needs both classes; fail now, not at the first
                    // evaluation.
                    if !(labels.contains(&Label::Normal) && labels.contains(&Label::Abnormal)) {
                        return Err(ListError::Invalid {
                            path: path.clone(),
                            reason: "validation needs normal and abnormal videos (or --val-gt)".into(),
                        }
                        .into());
                    }
                    None
                }
            };
            Some(Validation { videos, labels, gt })
        }
        None => None,
    };

    let margin = args.margin.unwrap_or_else(|| default_margin(dim, set.mean_snippet_norm));
    let kind = match args.loss {
        LossArg::Reference => LossKind::Reference,
        LossArg::Paper => LossKind::Paper,
    };
    let opts = TrainOptions {
        iterations: args.iterations,
        batch: args.batch,
        seed: args.seed,
        loss: LossConfig {
            kind,
            alpha: args.alpha,
            sparsity: args.sparsity,
            smoothness: args.smoothness,
            ..LossConfig::reference(margin)
        },
        adam: AdamConfig { lr: args.lr, weight_decay: args.weight_decay, ..Default::default() },
        eval_every: args.eval_every,
        ema: args.ema,
        short_videos: args.short_videos.into(),
    };
    if args.iterations == 0 {
        anyhow::bail!("--iterations must be at least 1");
    }
    if let Some(d) = args.ema {
        if !(0.0..1.0).contains(&d) {
            anyhow::bail!("--ema must be in [0, 1), got {d}");
        }
    }

    let out = &args.out;
    super::prepare_out_dir(out, args.force)?;
    let log_path = out.join(LOG);
    let mut log_file =
        std::io::BufWriter::new(std::fs::File::create(&log_path).map_err(|e| OutputError::write(&log_path, e))?);
    tracing::info!(
        normal = set.normal.len(),
        abnormal = set.abnormal.len(),
        crops,
        dim,
        margin,
        batch = train::batch_size(&set, args.batch),
        iterations = args.iterations,
        "training"
    );
    let bar = progress_bar(!args.no_progress && std::io::stderr().is_terminal(), args.iterations);
    let outcome = train::train(&widths, &set, val.as_ref(), &opts, &mut |ev| {
        match ev {
            Event::Step(_) => bar.inc(1),
            Event::Eval(rec) => {
                let line = serde_json::to_string(rec)?;
                writeln!(log_file, "{line}").map_err(|e| OutputError::write(&log_path, e))?;
                log_file.flush().map_err(|e| OutputError::write(&log_path, e))?;
                bar.set_message(match rec.val_metric {
                    Some(m) => format!("loss {:.4} val {m:.4}", rec.loss.total),
                    None => format!("loss {:.4}", rec.loss.total),
                });
                tracing::debug!(iteration = rec.iteration, loss = rec.loss.total, val = ?rec.val_metric, "eval");
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();

    // Alert thresholds from the normal validation videos' scores of the selected weights.
    let mut alert = base.manifest.alert;
    let mut thresholds_from = "base model (no normal validation videos)";
    let mut operating_point = None;
    if let Some(v) = &val {
        let deployed = (0..v.videos.len())
            .map(|i| crate::scorer::deployed_scores(&outcome.net, base.manifest.scorer, &v.videos[i]))
            .collect::<Result<Vec<_>, _>>()?;
        let normal_idx = v.normal_videos();
        let normal: Vec<&[f32]> = normal_idx.iter().map(|&i| deployed[i].as_slice()).collect();
        if let Some((on, off)) = train::alert_thresholds(&normal) {
            alert.on = on;
            alert.off = off;
            thresholds_from = "validation: scores of the normal validation videos under the manifest's scorer settings; on = their 99.9th percentile + 0.02, off = their 95th percentile (at least 0.05 below on)";
        }
        let other: Vec<&[f32]> =
            (0..deployed.len()).filter(|i| !normal_idx.contains(i)).map(|i| deployed[i].as_slice()).collect();
        operating_point = Some(train::OperatingPoint::new(&normal, &other, alert.on));
    }

    let weights_path = out.join(WEIGHTS);
    outcome.net.save(&weights_path).map_err(|e| OutputError::write(&weights_path, e))?;
    let mut manifest: Manifest = base.manifest.clone();
    manifest.name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "vigil-trained".into());
    manifest.description = format!(
        "RTFM trained by `vigil train` on {} ({} normal, {} abnormal videos) from base model {}",
        args.list.display(),
        set.normal.len(),
        set.abnormal.len(),
        base.manifest.name
    );
    manifest.rtfm = RtfmSection { weights: WEIGHTS.into(), trained: true, ..base.manifest.rtfm.clone() };
    manifest.alert = alert;
    if let Some(spec) = &mut manifest.extractor {
        let file = spec.file.file_name().map(PathBuf::from).unwrap_or_default();
        let dst = out.join(&file);
        std::fs::copy(base.dir.join(&spec.file), &dst).map_err(|e| OutputError::write(&dst, e))?;
        spec.file = file;
    }
    let manifest_path = out.join(MANIFEST);
    let text = toml::to_string_pretty(&manifest)?;
    std::fs::write(
        &manifest_path,
        format!("# vigil model manifest, written by `vigil train` (see training.json)\n{text}"),
    )
    .map_err(|e| OutputError::write(&manifest_path, e))?;

    let record = serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "base_model": base.dir,
        "train_list": args.list,
        "train_videos": { "normal": set.normal.len(), "abnormal": set.abnormal.len() },
        "val_list": args.val_list,
        "val_gt": args.val_gt,
        "seed": args.seed,
        "iterations": args.iterations,
        "batch_per_class": outcome.batch,
        "options": opts,
        "mean_snippet_norm": set.mean_snippet_norm,
        "seconds": outcome.seconds,
        "iterations_per_s": outcome.iterations_per_s,
        "selected_iteration": outcome.best_iteration,
        "val_metric": outcome.metric_kind,
        "best_val_metric": outcome.best_metric,
        "alert": { "on": alert.on, "off": alert.off, "from": thresholds_from, "validation": operating_point },
    });
    let record_path = out.join(RECORD);
    std::fs::write(&record_path, serde_json::to_string_pretty(&record)?)
        .map_err(|e| OutputError::write(&record_path, e))?;
    write_card(out, &manifest, &record, operating_point.as_ref())?;

    // Prove the directory loads the way `score` and `replay` will load it.
    let check = ModelDir::load(out)?;
    check.load_rtfm()?;
    eprintln!(
        "wrote {} ({} iterations in {:.1} s, {:.2} it/s; selected iteration {}{})",
        out.display(),
        args.iterations,
        outcome.seconds,
        outcome.iterations_per_s,
        outcome.best_iteration,
        outcome.best_metric.map(|m| format!(", validation {m:.4}")).unwrap_or_default()
    );
    if let Some(p) = &operating_point {
        eprintln!("alert thresholds on {:.4} / off {:.4}: {}", alert.on, alert.off, p.sentence());
    }
    Ok(())
}

/// The margin when `--margin` is not given (see the flag's help).
pub fn default_margin(dim: usize, mean_snippet_norm: f64) -> f32 {
    if dim == crate::rtfm::RtfmWidths::REFERENCE.feature_dim || mean_snippet_norm <= 0.0 {
        REFERENCE_MARGIN
    } else {
        (MARGIN_PER_NORM * mean_snippet_norm) as f32
    }
}

/// Reads the validation gt and checks it against the videos (T * 16 frames each) and for both
/// classes, so a mismatch fails before training rather than at the first evaluation.
fn read_val_gt(path: &Path, videos: &[ndarray::Array3<f32>]) -> anyhow::Result<Vec<f64>> {
    let gt = crate::npy::read_vector(path)?.to_vec();
    let frames: usize = videos.iter().map(|v| v.dim().0 * train::FRAMES_PER_SNIPPET).sum();
    let invalid = |reason: String| GtError::Invalid { path: path.display().to_string(), reason };
    if gt.len() != frames {
        return Err(invalid(format!(
            "has {} frames but the validation list's videos have {frames} (snippets x {})",
            gt.len(),
            train::FRAMES_PER_SNIPPET
        ))
        .into());
    }
    if !(gt.contains(&0.0) && gt.iter().any(|g| *g != 0.0)) {
        return Err(invalid("needs both normal (0) and anomalous frames".into()).into());
    }
    Ok(gt)
}

fn read_labelled(
    path: &Path,
    remaps: &[lists::Remap],
    abnormal_first: Option<usize>,
) -> Result<(Vec<lists::ListEntry>, Vec<Label>), ListError> {
    let entries = lists::read_list(path, remaps)?;
    let labels = lists::labels(path, &entries, abnormal_first)?;
    Ok((entries, labels))
}

fn progress_bar(show: bool, iterations: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(iterations as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} it {per_sec} eta {eta} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// A short model card: what was trained on what, and where the thresholds came from.
fn write_card(
    out: &Path,
    m: &Manifest,
    record: &serde_json::Value,
    point: Option<&train::OperatingPoint>,
) -> Result<(), OutputError> {
    let path = out.join("README.md");
    let text = format!(
        "# {name}\n\n{desc}\n\n\
         Trained by `vigil train` (RTFM, reference-code objective unless `options.loss.kind` in\n\
         `training.json` says otherwise). `training.json` records the command, seed, lists,\n\
         iterations, time taken and the best validation metric; `train_log.jsonl` holds the loss\n\
         terms and the validation metric at every evaluation.\n\n\
         ## Alert thresholds\n\n\
         `on = {on}`, `off = {off}`: {from}.{point} Validation videos are not the camera: check\n\
         the thresholds on a recording of the scene before relying on them.\n\n\
         ## Model selection\n\n\
         The weights are those of the evaluation with the best validation metric ({metric});\n\
         no test list is ever read during training.\n",
        name = m.name,
        desc = m.description,
        on = m.alert.on,
        off = m.alert.off,
        from = record["alert"]["from"].as_str().unwrap_or(""),
        point = point.map(|p| format!(" {}.", p.sentence())).unwrap_or_default(),
        metric = record["val_metric"].as_str().unwrap_or("none: the last iteration is kept"),
    );
    std::fs::write(&path, text).map_err(|e| OutputError::write(&path, e))
}
