//! `vigil run` and `vigil check-config`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::cli::{BenchCamerasArgs, CheckConfigArgs, RunArgs};
use crate::config::Config;
use crate::daemon::{self, RunOptions};
use crate::model::ModelDir;
use crate::source::FrameSource;

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(&args.config)?;
    let model = ModelDir::load(&daemon::model_dir(&cfg))?;
    cfg.apply_model_alert(model.manifest.alert, &args.config)?;
    cfg.check_decoders(grey_model(&model)?, &args.config)?;
    let stop = Arc::new(AtomicBool::new(false));
    daemon::install_signals(Arc::clone(&stop))?;
    let summary = daemon::run(cfg, RunOptions { duration: args.duration, stop: Some(stop), on_ready: None })?;
    for (id, s) in &summary.cameras {
        tracing::info!(
            camera = %id,
            snippets = s.snippets,
            alerts = s.alerts,
            suppressed = s.suppressed,
            clips = s.clips.len(),
            "camera stopped"
        );
    }
    if summary.undelivered > 0 {
        tracing::warn!(
            "{} events are still in the outboxes; they are delivered on the next start",
            summary.undelivered
        );
    }
    tracing::info!("vigil stopped");
    Ok(())
}

/// Whether the model's extractor reads grey frames (and so can take the YUV decoder's).
fn grey_model(model: &ModelDir) -> anyhow::Result<bool> {
    Ok(model.extractor_parts()?.1.color == crate::preprocess::ColorOrder::Gray)
}

pub fn check(args: &CheckConfigArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(&args.file)?;
    let model = ModelDir::load(&daemon::model_dir(&cfg))?;
    model.extractor_parts()?;
    cfg.apply_model_alert(model.manifest.alert, &args.file)?;
    cfg.check_decoders(grey_model(&model)?, &args.file)?;
    let enabled = cfg.enabled_cameras().count();
    println!(
        "{}: OK: {} cameras ({} enabled), model {} ({}), sinks [{}], recording {}, http {}",
        args.file.display(),
        cfg.cameras.len(),
        enabled,
        model.dir.display(),
        model.manifest.name,
        crate::sink::SinkSet::names(&cfg.sinks).join(", "),
        if cfg.recording.enabled { cfg.recording.dir.display().to_string() } else { "off".into() },
        cfg.http.listen
    );
    for c in &cfg.cameras {
        println!("  {}: {}{}", c.id, c.source.redacted(), if c.enabled { "" } else { " (disabled)" });
    }
    Ok(())
}

/// `vigil bench-cameras`: the daemon itself on N real-time copies of one video.
pub fn bench_cameras(args: &BenchCamerasArgs) -> anyhow::Result<()> {
    use crate::stats::Samples;
    if args.cameras == 0 {
        anyhow::bail!("--cameras must be at least 1");
    }
    let model = args.model.model.clone().unwrap_or_else(crate::model::default_model_dir);
    let rec_dir = std::env::temp_dir().join(format!("vigil-bench-cameras-{}", std::process::id()));
    let quote = |p: &std::path::Path| toml::Value::String(p.display().to_string()).to_string();
    let mut text = format!("model = {}\n", quote(&model));
    for i in 0..args.cameras {
        text.push_str(&format!(
            "[[cameras]]\nid = \"cam{i:03}\"\nsource = {}\npace = \"realtime\"\nloop = true\ndecoder = \"{}\"\n",
            quote(&args.video),
            args.decoder
        ));
    }
    text.push_str(&format!(
        "[workers]\ncount = {}\nmax_batch = {}\n[recording]\nenabled = {}\ndir = {}\n[http]\nlisten = \"127.0.0.1:0\"\n",
        args.workers,
        args.max_batch,
        !args.no_recording,
        quote(&rec_dir)
    ));
    let mut cfg = Config::from_str(&text, "<bench-cameras>")?;
    let m = ModelDir::load(&daemon::model_dir(&cfg))?;
    cfg.apply_model_alert(m.manifest.alert, std::path::Path::new("<bench-cameras>"))?;
    // When the daemon turned ready (model loaded and run once; cameras start from here) and its
    // RSS then.
    let ready = Arc::new(std::sync::OnceLock::<(std::time::Instant, f64)>::new());
    let r = Arc::clone(&ready);
    let on_ready: Arc<dyn Fn(std::net::SocketAddr) + Send + Sync> = Arc::new(move |_| {
        let _ = r.set((std::time::Instant::now(), super::bench::rss_mb().unwrap_or(0.0)));
    });
    // RSS a quarter of the way in and at the end, for growth.
    let quarter = args.duration / 4;
    let sampler = std::thread::spawn(move || {
        std::thread::sleep(quarter);
        super::bench::rss_mb().unwrap_or(0.0)
    });
    let started = std::time::Instant::now();
    let summary = daemon::run(cfg, RunOptions { duration: Some(args.duration), stop: None, on_ready: Some(on_ready) })?;
    let wall = started.elapsed().as_secs_f64();
    // The cameras ran from readiness to the stop: model loading and warm-up are not camera time.
    let camera_s = ready.get().map_or(wall, |(t, _)| t.elapsed().as_secs_f64());
    let end_rss = super::bench::rss_mb().unwrap_or(0.0);
    let quarter_rss = sampler.join().unwrap_or(0.0);
    let _ = std::fs::remove_dir_all(&rec_dir);
    let mut lat = Samples::default();
    let (mut fin, mut dropped, mut processed) = (0u64, 0u64, 0u64);
    for (_, s) in &summary.cameras {
        lat.extend(&s.score_latency);
        fin += s.frames_in;
        dropped += s.frames_dropped;
        processed += s.frames_processed;
    }
    let ready = ready.get().map_or(0.0, |&(_, rss)| rss);
    // A file paced in real time that decodes too slowly falls behind instead of dropping: the
    // share of the frames a real camera would have sent since the daemon turned ready that were
    // read says whether it kept up (each camera still opens its file after that).
    let fps = crate::source::OpenCvSource::open_file(&args.video).map(|s| s.info().fps).unwrap_or(0.0);
    let expected = fps * camera_s * args.cameras as f64;
    let kept_up = if expected > 0.0 { fin as f64 / expected } else { 0.0 };
    let n = args.cameras as f64;
    let report = serde_json::json!({
        "video": args.video.display().to_string(),
        "cameras": args.cameras,
        "duration_s": wall,
        "cameras_running_s": camera_s,
        "workers": args.workers,
        "decoder": args.decoder,
        "recording": !args.no_recording,
        "frames_in": fin,
        "frames_processed": processed,
        "frames_dropped": dropped,
        "frames_in_per_s": fin as f64 / wall,
        "video_fps": fps,
        "realtime_ratio": kept_up,
        "score_latency_ms": { "count": lat.len(), "p50": lat.percentile_ms(50.0), "p99": lat.percentile_ms(99.0), "max": lat.percentile_ms(100.0) },
        "rss_mb": { "ready": ready, "quarter": quarter_rss, "end": end_rss, "peak": super::bench::peak_rss_mb().unwrap_or(0.0) },
        "rss_per_camera_mb": (end_rss - ready) / n,
        "rss_growth_after_quarter_pct": if quarter_rss > 0.0 { (end_rss - quarter_rss) / quarter_rss * 100.0 } else { 0.0 },
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{} cameras x {} for {:.0} s ({} worker(s), recording {}):\n  frames in {} ({:.0}/s, {:.1}% of real time), processed {}, dropped {}\n  \
             capture-to-score latency beyond snippet+lookahead: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} snippets)\n  \
             RSS: ready {:.0} MB, at 1/4 {:.0} MB, end {:.0} MB, peak {:.0} MB; per camera {:.1} MB; growth after 1/4 {:+.1}%",
            args.cameras,
            args.video.display(),
            wall,
            args.workers,
            if args.no_recording { "off" } else { "on" },
            fin,
            fin as f64 / wall,
            kept_up * 100.0,
            processed,
            dropped,
            lat.percentile_ms(50.0),
            lat.percentile_ms(99.0),
            lat.percentile_ms(100.0),
            lat.len(),
            ready,
            quarter_rss,
            end_rss,
            super::bench::peak_rss_mb().unwrap_or(0.0),
            (end_rss - ready) / n,
            report["rss_growth_after_quarter_pct"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}
