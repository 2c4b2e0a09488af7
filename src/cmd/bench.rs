//! `vigil bench`: decode-only throughput (OpenCV alone), whole-pipeline throughput, and per-stage
//! latency percentiles, measured on one video in one run so the figures are comparable.

use crate::cli::BenchArgs;
use crate::pipeline::{replay, ReplayResult};
use crate::source::{decode_only, decode_only_yuv, OpenCvSource};
use crate::stats::StageSummary;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
struct Report {
    video: String,
    model: String,
    frames: u64,
    snippets: usize,
    decode_fps: f64,
    /// Frames/s of FFmpeg's own decoder to I420, copied out (the daemon's decoder for grey
    /// models; no BGR conversion): the floor the daemon's capture works against.
    decode_yuv_fps: f64,
    pipeline_fps: f64,
    pipeline_over_decode: f64,
    threads: usize,
    /// The execution provider that ran the features stage (after `auto` or a fallback).
    provider: String,
    scorer: crate::scorer::ScorerConfig,
    peak_rss_mb: Option<f64>,
    stages: BTreeMap<&'static str, StageSummary>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let super::ReplayParts { model, opts, rtfm, mut extractor } =
        super::load_replay(&args.model, &args.provider, &args.scorer, args.threads)?;

    // Warm the file cache and the decoder once, then measure decode alone.
    let _ = decode_only(&args.video)?;
    let (frames, secs) = decode_only(&args.video)?;
    let decode_fps = frames as f64 / secs.max(1e-9);
    let (frames_yuv, secs_yuv) = decode_only_yuv(&args.video)?;
    let decode_yuv_fps = frames_yuv as f64 / secs_yuv.max(1e-9);

    let mut best: Option<ReplayResult> = None;
    for _ in 0..args.runs.max(1) {
        let source = OpenCvSource::open_file(&args.video)?;
        let r = replay(source, &mut extractor, &rtfm, &opts, &mut |_| {}, &mut |_| {})?;
        if best.as_ref().is_none_or(|b| r.wall < b.wall) {
            best = Some(r);
        }
    }
    let Some(r) = best else { anyhow::bail!("no pipeline run was made") };
    let pipeline_fps = r.frames as f64 / r.wall.as_secs_f64().max(1e-9);
    let mut stages = BTreeMap::new();
    stages.insert("decode", r.times.decode.summary("frame"));
    stages.insert("preprocess", r.times.preprocess.summary("frame"));
    stages.insert("features", r.times.features.summary("snippet"));
    stages.insert("scorer", r.times.scorer.summary("snippet"));
    stages.insert("alert", r.times.alert.summary("snippet"));
    let report = Report {
        video: args.video.display().to_string(),
        model: model.manifest.name.clone(),
        frames: r.frames,
        snippets: r.records.len(),
        decode_fps,
        decode_yuv_fps,
        pipeline_fps,
        pipeline_over_decode: pipeline_fps / decode_fps.max(1e-9),
        threads: args.threads.max(1),
        provider: extractor.provider().to_string(),
        scorer: opts.scorer,
        peak_rss_mb: peak_rss_mb(),
        stages,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("video            {}", report.video);
        println!("model            {}", report.model);
        println!("frames           {} ({} snippets)", report.frames, report.snippets);
        println!("provider         {} (features stage)", report.provider);
        println!("decode-only      {:.0} frames/s (OpenCV, BGR)", report.decode_fps);
        println!("decode-only YUV  {:.0} frames/s (FFmpeg, I420: the daemon's decoder)", report.decode_yuv_fps);
        println!("whole pipeline   {:.0} frames/s ({:.2} x decode)", report.pipeline_fps, report.pipeline_over_decode);
        if let Some(m) = report.peak_rss_mb {
            println!("peak RSS         {m:.0} MB");
        }
        println!("{:<12} {:>8} {:>9} {:>9} {:>9} {:>9}", "stage", "count", "p50 ms", "p95 ms", "p99 ms", "mean ms");
        for (name, s) in &report.stages {
            println!(
                "{:<12} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>9.3}   per {}",
                name, s.count, s.p50_ms, s.p95_ms, s.p99_ms, s.mean_ms, s.unit
            );
        }
    }
    Ok(())
}

/// Peak resident set size of this process (Linux `VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    status_kb("VmHWM:").map(|kb| kb / 1024.0)
}

/// Current resident set size of this process (Linux `VmRSS`), in MB.
pub fn rss_mb() -> Option<f64> {
    status_kb("VmRSS:").map(|kb| kb / 1024.0)
}

fn status_kb(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
