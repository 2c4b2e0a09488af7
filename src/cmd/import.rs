//! `vigil import`: a reference PyTorch checkpoint in, a vigil model directory out.

use crate::cli::ImportArgs;
use crate::features::FeatureExtractor as _;
use crate::model::{FeaturesSection, Manifest, ModelDir, RtfmSection, MANIFEST};
use crate::output::OutputError;
use crate::rtfm::{import_checkpoint, Rtfm};

const WEIGHTS: &str = "rtfm.safetensors";

pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let ckpt = import_checkpoint(&args.checkpoint)?;
    let widths = ckpt.widths;
    let rtfm = Rtfm::from_tensors(&widths, ckpt.tensors)?;
    let out = &args.out;
    super::prepare_out_dir(out, args.force)?;

    let mut manifest = Manifest {
        name: args
            .checkpoint
            .file_stem()
            .map(|s| format!("rtfm-{}", s.to_string_lossy()))
            .unwrap_or_else(|| "rtfm-imported".into()),
        description: format!("Imported from {} by vigil import", args.checkpoint.display()),
        extractor: None,
        preprocess: None,
        features: FeaturesSection { dim: widths.feature_dim, crops: args.crops.max(1) },
        rtfm: RtfmSection {
            weights: WEIGHTS.into(),
            trained: true,
            feature_dim: widths.feature_dim,
            temporal_width: widths.temporal_width,
            nonlocal_width: widths.nonlocal_width,
            head: widths.head,
        },
        scorer: Default::default(),
        alert: Default::default(),
    };
    if let Some(src) = &args.extractor_from {
        let donor = ModelDir::load(src)?;
        let (spec, recipe) = donor.extractor_parts()?;
        if donor.manifest.features.dim != widths.feature_dim {
            anyhow::bail!(
                "--extractor-from {}: its features are {}-d but the checkpoint expects {}-d",
                src.display(),
                donor.manifest.features.dim,
                widths.feature_dim
            );
        }
        let file = spec.file.file_name().map(|f| f.to_owned()).unwrap_or_default();
        std::fs::copy(donor.dir.join(&spec.file), out.join(&file))
            .map_err(|e| OutputError::write(&out.join(&file), e))?;
        let mut spec = spec.clone();
        spec.file = file.into();
        manifest.extractor = Some(spec);
        manifest.preprocess = Some(recipe.clone());
        manifest.features.crops = donor.manifest.features.crops;
    }
    let weights_path = out.join(WEIGHTS);
    rtfm.save(&weights_path).map_err(|e| OutputError::write(&weights_path, e))?;
    let text = toml::to_string_pretty(&manifest)?;
    let manifest_path = out.join(MANIFEST);
    std::fs::write(&manifest_path, format!("# vigil model manifest, written by `vigil import`\n{text}"))
        .map_err(|e| OutputError::write(&manifest_path, e))?;
    // Prove the directory loads the way `score` and `replay` will load it.
    let check = ModelDir::load(out)?;
    check.load_rtfm()?;
    if check.manifest.extractor.is_some() {
        let ex = check.load_extractor(1)?;
        let _ = ex.dim();
    }
    tracing::info!(out = %out.display(), feature_dim = widths.feature_dim, "imported checkpoint");
    eprintln!("wrote {}", out.display());
    Ok(())
}
