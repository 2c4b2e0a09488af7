//! The model directory: `model.toml` (the manifest) plus the files it names. Parsing is strict
//! (unknown keys rejected) and every cross-field rule is checked here, once, at load, so the rest
//! of the engine can trust a `ModelDir`. ONNX shapes and weight shapes are checked by the loaders
//! in `features` and `rtfm`, which this module calls.

use crate::alert::AlertPolicy;
use crate::features::{ExtractorSpec, OnnxExtractor};
use crate::preprocess::Recipe;
use crate::rtfm::{Rtfm, RtfmWidths};
use crate::scorer::ScorerConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The manifest's file name inside a model directory.
pub const MANIFEST: &str = "model.toml";

/// Errors of a model directory; each names the file and, where it applies, the key.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model directory {0} does not exist")]
    MissingDir(PathBuf),
    #[error("model directory {dir} has no {MANIFEST}")]
    MissingManifest { dir: PathBuf },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: key `{key}`: {reason}")]
    Invalid { path: PathBuf, key: String, reason: String },
    #[error("model {path} has no feature extractor ([extractor] and [preprocess]); it can only score feature files")]
    NoExtractor { path: PathBuf },
}

/// `[features]`: the width and crop count of the feature vectors the scorer consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesSection {
    pub dim: usize,
    pub crops: usize,
}

/// `[rtfm]`: the weights file and the network widths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtfmSection {
    /// safetensors file, relative to the model directory.
    pub weights: PathBuf,
    /// Whether the weights were trained (false: the scores mean nothing yet).
    #[serde(default)]
    pub trained: bool,
    pub feature_dim: usize,
    pub temporal_width: usize,
    pub nonlocal_width: usize,
    pub head: [usize; 2],
}

impl RtfmSection {
    pub fn widths(&self) -> RtfmWidths {
        RtfmWidths {
            feature_dim: self.feature_dim,
            temporal_width: self.temporal_width,
            nonlocal_width: self.nonlocal_width,
            head: self.head,
        }
    }
}

/// The whole `model.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The ONNX feature extractor; absent for score-only models (e.g. imported checkpoints).
    #[serde(default)]
    pub extractor: Option<ExtractorSpec>,
    /// The preprocessing recipe; present exactly when `extractor` is.
    #[serde(default)]
    pub preprocess: Option<Recipe>,
    pub features: FeaturesSection,
    pub rtfm: RtfmSection,
    #[serde(default)]
    pub scorer: ScorerConfig,
    #[serde(default)]
    pub alert: AlertPolicy,
}

/// A loaded and validated model directory.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl ModelDir {
    /// Reads and validates `dir/model.toml` (files named by it must exist).
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        if !dir.is_dir() {
            return Err(ModelError::MissingDir(dir.to_path_buf()));
        }
        let path = dir.join(MANIFEST);
        if !path.is_file() {
            return Err(ModelError::MissingManifest { dir: dir.to_path_buf() });
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ModelError::Read { path: path.clone(), reason: e.to_string() })?;
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| ModelError::Parse { path: path.clone(), reason: e.to_string() })?;
        let model = ModelDir { dir: dir.to_path_buf(), manifest };
        model.validate()?;
        Ok(model)
    }

    /// Path of the manifest.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST)
    }

    fn invalid(&self, key: &str, reason: impl Into<String>) -> ModelError {
        ModelError::Invalid { path: self.manifest_path(), key: key.into(), reason: reason.into() }
    }

    fn validate(&self) -> Result<(), ModelError> {
        let m = &self.manifest;
        if m.name.trim().is_empty() {
            return Err(self.invalid("name", "must not be empty"));
        }
        let widths = m.rtfm.widths();
        widths.validate().map_err(|r| self.invalid("rtfm", r))?;
        if m.features.dim != m.rtfm.feature_dim {
            return Err(self.invalid(
                "features.dim",
                format!("is {} but rtfm.feature_dim is {}", m.features.dim, m.rtfm.feature_dim),
            ));
        }
        if m.features.crops == 0 {
            return Err(self.invalid("features.crops", "must be at least 1"));
        }
        if !self.dir.join(&m.rtfm.weights).is_file() {
            return Err(self
                .invalid("rtfm.weights", format!("file {} does not exist", self.dir.join(&m.rtfm.weights).display())));
        }
        m.scorer.validate().map_err(|(k, r)| self.invalid(&format!("scorer.{k}"), r))?;
        m.alert.validate().map_err(|(k, r)| self.invalid(&format!("alert.{k}"), r))?;
        match (&m.extractor, &m.preprocess) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(self.invalid("preprocess", "an [extractor] needs a [preprocess] recipe")),
            (None, Some(_)) => Err(self.invalid("extractor", "a [preprocess] recipe needs an [extractor]")),
            (Some(ex), Some(recipe)) => self.validate_extractor(ex, recipe),
        }
    }

    fn validate_extractor(&self, ex: &ExtractorSpec, recipe: &Recipe) -> Result<(), ModelError> {
        let m = &self.manifest;
        recipe.validate().map_err(|r| self.invalid("preprocess", r))?;
        if !self.dir.join(&ex.file).is_file() {
            return Err(
                self.invalid("extractor.file", format!("file {} does not exist", self.dir.join(&ex.file).display()))
            );
        }
        if ex.max_batch == 0 {
            return Err(self.invalid("extractor.max_batch", "must be at least 1"));
        }
        if recipe.crops() != m.features.crops {
            return Err(self.invalid(
                "features.crops",
                format!("is {} but the preprocess crop mode gives {} crops", m.features.crops, recipe.crops()),
            ));
        }
        let expect_in = [
            -1,
            recipe.channels() as i64,
            recipe.snippet_frames as i64,
            recipe.crop_height as i64,
            recipe.crop_width as i64,
        ];
        if ex.input_shape.len() != 5 {
            return Err(self.invalid(
                "extractor.input_shape",
                format!("must have 5 dimensions [N, C, T, H, W], got {:?}", ex.input_shape),
            ));
        }
        for (i, (&got, &want)) in ex.input_shape.iter().zip(expect_in.iter()).enumerate().skip(1) {
            if got != -1 && got != want {
                return Err(self.invalid(
                    "extractor.input_shape",
                    format!(
                        "dimension {i} is {got} but the preprocess recipe gives {want} (expected [N, {}, {}, {}, {}])",
                        expect_in[1], expect_in[2], expect_in[3], expect_in[4]
                    ),
                ));
            }
        }
        match ex.output_shape.as_slice() {
            [_, d] if *d == m.features.dim as i64 => Ok(()),
            other => Err(self.invalid(
                "extractor.output_shape",
                format!("is {other:?}; expected [N, {}] (features.dim)", m.features.dim),
            )),
        }
    }

    /// The extractor spec and recipe, or an error for a score-only model.
    pub fn extractor_parts(&self) -> Result<(&ExtractorSpec, &Recipe), ModelError> {
        match (&self.manifest.extractor, &self.manifest.preprocess) {
            (Some(ex), Some(r)) => Ok((ex, r)),
            _ => Err(ModelError::NoExtractor { path: self.manifest_path() }),
        }
    }

    /// Loads the RTFM weights (shapes checked against the manifest widths).
    pub fn load_rtfm(&self) -> anyhow::Result<Rtfm> {
        let path = self.dir.join(&self.manifest.rtfm.weights);
        Ok(Rtfm::load(&path, &self.manifest.rtfm.widths())?)
    }

    /// Loads the ONNX extractor with `threads` intra-op threads.
    pub fn load_extractor(&self, threads: usize) -> anyhow::Result<OnnxExtractor> {
        let (spec, _) = self.extractor_parts()?;
        crate::features::init_runtime()?;
        Ok(OnnxExtractor::load(spec, &self.dir, threads)?)
    }
}

/// Where `--model` points when not given: `$VIGIL_MODEL`, else `models/default` under the current
/// directory, else under an ancestor of the executable (a `target/release/vigil` in a checkout).
pub fn default_model_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("VIGIL_MODEL") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from("models/default");
    if local.join(MANIFEST).is_file() {
        return local;
    }
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1) {
            let cand = anc.join("models/default");
            if cand.join(MANIFEST).is_file() {
                return cand;
            }
        }
    }
    local
}
