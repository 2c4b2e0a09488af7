//! `vigil run` and `vigil check-config`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::cli::{CheckConfigArgs, RunArgs};
use crate::config::Config;
use crate::daemon::{self, RunOptions};
use crate::model::ModelDir;

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let cfg = Config::load(&args.config)?;
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

pub fn check(args: &CheckConfigArgs) -> anyhow::Result<()> {
    let cfg = Config::load(&args.file)?;
    let model = ModelDir::load(&daemon::model_dir(&cfg))?;
    model.extractor_parts()?;
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
