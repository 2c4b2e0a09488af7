//! One module per subcommand: wiring only (load, call the library, print). Algorithms live in
//! the library modules so the daemon, benches and tests share them.

pub mod bench;
pub mod eval;
pub mod features;
pub mod import;
pub mod replay;
pub mod run;
pub mod score;
pub mod synth;
pub mod train;

use crate::cli::{ModelArgs, ProviderArgs, ScorerArgs};
use crate::model::{default_model_dir, ModelDir, ModelError};
use crate::scorer::ScorerConfig;
use std::path::PathBuf;

/// Creates a model output directory; an existing non-empty one needs `force`.
pub fn prepare_out_dir(out: &std::path::Path, force: bool) -> Result<(), crate::output::OutputError> {
    use crate::output::OutputError;
    if out.exists() {
        let non_empty = std::fs::read_dir(out).map_err(|e| OutputError::write(out, e))?.next().is_some();
        if non_empty && !force {
            return Err(OutputError::Write {
                path: out.to_path_buf(),
                reason: "directory exists and is not empty (use --force to overwrite)".into(),
            });
        }
    }
    std::fs::create_dir_all(out).map_err(|e| OutputError::write(out, e))
}

/// Loads the model named by `--model`, or the default one.
pub fn load_model(args: &ModelArgs) -> Result<ModelDir, ModelError> {
    let dir: PathBuf = args.model.clone().unwrap_or_else(default_model_dir);
    ModelDir::load(&dir)
}

/// What `replay` and `bench` load before touching a video: the model (with command-line provider
/// and scorer overrides), the pipeline options, the network and one extractor session.
pub struct ReplayParts {
    pub model: ModelDir,
    pub opts: crate::pipeline::ReplayOptions,
    pub rtfm: crate::rtfm::Rtfm,
    pub extractor: crate::features::OnnxExtractor,
}

/// Loads [`ReplayParts`]; `threads` is ONNX Runtime's intra-op thread count.
pub fn load_replay(
    model: &ModelArgs,
    provider: &ProviderArgs,
    scorer: &ScorerArgs,
    threads: usize,
) -> anyhow::Result<ReplayParts> {
    let mut model = load_model(model)?;
    apply_provider(&mut model, provider);
    let scorer_cfg = scorer_config(&model, scorer)?;
    let opts = crate::pipeline::ReplayOptions::from_model(&model, scorer_cfg)?;
    let rtfm = model.load_rtfm()?;
    let extractor = model.load_extractor(threads.max(1))?;
    Ok(ReplayParts { model, opts, rtfm, extractor })
}

/// Applies `--provider` / `--allow-fallback` to the model's `[extractor]` (no-op for score-only
/// models, whose missing extractor is reported where it is needed).
pub fn apply_provider(model: &mut ModelDir, args: &ProviderArgs) {
    if let Some(ex) = model.manifest.extractor.as_mut() {
        if let Some(p) = args.provider {
            ex.provider = p;
        }
        ex.allow_fallback |= args.allow_fallback;
    }
}

/// The manifest's scorer settings with command-line overrides applied and checked.
pub fn scorer_config(model: &ModelDir, args: &ScorerArgs) -> anyhow::Result<ScorerConfig> {
    let mut cfg = model.manifest.scorer;
    if let Some(m) = args.mode {
        cfg.mode = m.into();
    }
    if let Some(w) = args.window {
        cfg.window = w;
    }
    if let Some(l) = args.lookahead {
        cfg.lookahead = l;
    }
    cfg.validate().map_err(|(k, r)| anyhow::anyhow!("--{k}: {r}"))?;
    Ok(cfg)
}
