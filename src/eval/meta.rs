//! The metadata sidecar of a feature file: `vigil features` writes `<stem>.json` beside each
//! `<stem>.npy`, saying which video the features came from, at what frame rate, and with which
//! extractor. `vigil eval` on a feature list takes each video's frame rate from it, so time to
//! detect and false alerts per hour are in the video's own seconds (`--fps` overrides; files
//! without a sidecar, such as published I3D features, fall back to `--fps`'s default).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a feature file's sidecar holds. Unknown keys are ignored, so later versions can add some.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureMeta {
    /// The video the features were extracted from, as the list named it.
    pub source: String,
    /// The video's frame rate (frames per second, > 0).
    pub fps: f64,
    /// Frames decoded from the video.
    pub frames: u64,
    /// Snippets (`T`), crops and feature width of the `.npy` file.
    pub snippets: usize,
    pub crops: usize,
    pub dim: usize,
    /// The model whose extractor produced them (its manifest name).
    pub model: String,
}

/// A sidecar that exists but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("feature metadata {path}: {reason}")]
pub struct MetaError {
    pub path: PathBuf,
    pub reason: String,
}

/// `<stem>.json` beside `<stem>.npy`.
pub fn sidecar_path(npy: &Path) -> PathBuf {
    npy.with_extension("json")
}

/// Writes the sidecar of `npy`.
pub fn write(npy: &Path, meta: &FeatureMeta) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(meta).map_err(std::io::Error::other)?;
    std::fs::write(sidecar_path(npy), text + "\n")
}

/// Reads the sidecar of `npy`: `None` when there is none; an error when it is unreadable, not
/// JSON of this shape, or names a frame rate that is not a positive number.
pub fn read(npy: &Path) -> Result<Option<FeatureMeta>, MetaError> {
    let path = sidecar_path(npy);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(MetaError { path, reason: e.to_string() }),
    };
    let meta: FeatureMeta =
        serde_json::from_str(&text).map_err(|e| MetaError { path: path.clone(), reason: e.to_string() })?;
    if !(meta.fps.is_finite() && meta.fps > 0.0) {
        return Err(MetaError { path, reason: format!("key `fps`: expected a positive number, got {}", meta.fps) });
    }
    Ok(Some(meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(fps: f64) -> FeatureMeta {
        FeatureMeta {
            source: "videos/a.avi".into(),
            fps,
            frames: 96,
            snippets: 6,
            crops: 1,
            dim: 144,
            model: "default".into(),
        }
    }

    #[test]
    fn round_trip_absent_and_bad_sidecars() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("a.npy");
        assert_eq!(read(&npy).unwrap(), None, "no sidecar");
        write(&npy, &meta(12.5)).unwrap();
        assert_eq!(sidecar_path(&npy), dir.path().join("a.json"));
        assert_eq!(read(&npy).unwrap(), Some(meta(12.5)));

        std::fs::write(sidecar_path(&npy), serde_json::to_string(&meta(0.0)).unwrap()).unwrap();
        let e = read(&npy).unwrap_err().to_string();
        assert!(e.contains("a.json") && e.contains("`fps`") && e.contains("positive"), "{e}");

        std::fs::write(sidecar_path(&npy), r#"{"source": "a.avi"}"#).unwrap();
        let e = read(&npy).unwrap_err().to_string();
        assert!(e.contains("a.json") && e.contains("missing field"), "{e}");
    }
}
