//! `vigil replay`: video files in; alert events on stdout, optional score files and plots.

use crate::alert::spans;
use crate::cli::{ReplayArgs, ReplayDecoder};
use crate::error::GtError;
use crate::output::{per_video_path, plot_scores, write_scores, PlotInput, ScoreRecord};
use crate::pipeline::{replay, ReplayOptions, ReplayResult};
use crate::source::{FfmpegSource, FrameSource, OpenCvSource};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::Path;

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let super::ReplayParts { model, opts, rtfm, mut extractor } =
        super::load_replay(&args.model, &args.provider, &args.scorer, args.threads)?;
    if !model.manifest.rtfm.trained {
        tracing::warn!(model = %model.dir.display(), "the model's RTFM weights are untrained: scores and alerts are not meaningful");
    }
    // Read the ground truth first so a bad file fails before minutes of decoding.
    let gt = match &args.gt {
        Some(p) => Some(crate::npy::read_vector(p)?),
        None => None,
    };
    if args.decoder == ReplayDecoder::Ffmpeg && opts.recipe.color != crate::preprocess::ColorOrder::Gray {
        anyhow::bail!(
            "--decoder ffmpeg gives YUV frames, which only a grey model reads; model {} wants {:?} (use --decoder opencv)",
            model.dir.display(),
            opts.recipe.color
        );
    }
    let show_progress = !args.no_progress && std::io::stderr().is_terminal();
    let mut results: Vec<ReplayResult> = Vec::new();
    for video in &args.videos {
        let source: Box<dyn FrameSource> = match args.decoder {
            ReplayDecoder::Opencv => Box::new(OpenCvSource::open_file(video)?),
            ReplayDecoder::Ffmpeg => Box::new(FfmpegSource::open_file(video)?),
        };
        let bar = progress_bar(show_progress, source_frames(source.as_ref()), video);
        let stdout = std::io::stdout();
        let mut emit = |e: &crate::alert::AlertEvent| {
            let mut out = stdout.lock();
            // A closed stdout (e.g. piped into `head`) must not abort the replay.
            if serde_json::to_writer(&mut out, e).is_ok() {
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
        };
        let mut tick = |frames: u64| bar.set_position(frames);
        let res = replay(source, &mut extractor, &rtfm, &opts, &mut emit, &mut tick)?;
        bar.finish_and_clear();
        tracing::info!(
            video = %video.display(),
            frames = res.frames,
            snippets = res.records.len(),
            alerts = res.events.iter().filter(|e| e.event == crate::alert::EventKind::Start).count(),
            fps = res.frames as f64 / res.wall.as_secs_f64().max(1e-9),
            "replayed"
        );
        results.push(res);
    }

    let gt_spans = match (&gt, &args.gt) {
        (Some(v), Some(path)) => Some(split_ground_truth(path, v.as_slice().unwrap_or(&[]), &results, &opts)?),
        _ => None,
    };
    let many = args.videos.len() > 1;
    if let Some(template) = &args.scores {
        if many && !template.to_string_lossy().contains("{stem}") {
            let all: Vec<ScoreRecord> = results.iter().flat_map(|r| r.records.iter().cloned()).collect();
            write_scores(template, &all)?;
        } else {
            for (video, r) in args.videos.iter().zip(&results) {
                write_scores(&per_video_path(template, video, many), &r.records)?;
            }
        }
    }
    if let Some(template) = &args.plot {
        for (i, (video, r)) in args.videos.iter().zip(&results).enumerate() {
            let input = PlotInput {
                title: format!("{} ({})", video.display(), model.manifest.name),
                snippets: r.records.iter().map(|s| (s.time_start_s, s.time_end_s, s.score)).collect(),
                alerts: spans(&r.events),
                ground_truth: gt_spans.as_ref().and_then(|g| g.get(i).cloned()).unwrap_or_default(),
                thresholds: Some((opts.policy.on, opts.policy.off)),
            };
            plot_scores(&per_video_path(template, video, many), &input)?;
        }
    }
    Ok(())
}

fn source_frames(s: &dyn FrameSource) -> Option<u64> {
    s.info().frame_count
}

fn progress_bar(show: bool, frames: Option<u64>, video: &Path) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(frames, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} frames {per_sec} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(video.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    bar
}

/// Splits an RTFM-layout frame-level ground truth (videos concatenated, each padded to
/// T * snippet_frames) into per-video anomalous time spans.
fn split_ground_truth(
    path: &Path,
    gt: &[f64],
    results: &[ReplayResult],
    opts: &ReplayOptions,
) -> Result<Vec<Vec<(f64, f64)>>, GtError> {
    let per_snippet = opts.recipe.snippet_frames * opts.recipe.frame_stride.max(1);
    let expected: usize = results.iter().map(|r| r.records.len() * per_snippet).sum();
    if gt.len() != expected {
        return Err(GtError::Invalid {
            path: path.display().to_string(),
            reason: format!(
                "has {} frames; the videos have {} snippets in all, so {} frames were expected ({} per snippet)",
                gt.len(),
                expected / per_snippet,
                expected,
                per_snippet
            ),
        });
    }
    let mut out = Vec::new();
    let mut offset = 0;
    for r in results {
        let n = r.records.len() * per_snippet;
        out.push(crate::eval::gt::frame_spans(&gt[offset..offset + n], r.info.frame_rate()));
        offset += n;
    }
    Ok(out)
}
