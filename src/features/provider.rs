//! Execution-provider selection: which ONNX Runtime backend (CPU, CUDA, TensorRT) runs the
//! extractor, and what happens when the requested one cannot be used. A GPU provider that is
//! asked for explicitly and cannot be registered is an error naming the provider and the library
//! that lacks it, unless the user allowed a fallback to CPU (then a WARN); `auto` walks its own
//! chain (TensorRT, CUDA, CPU) quietly and says at INFO which one it took. Registration always
//! goes through `ExecutionProvider::register`, which returns the failure, never through ort's
//! default list registration, which only logs it. Knows nothing of models or video.

use ort::ep::{ExecutionProvider, TensorRT, CUDA};
use ort::session::builder::SessionBuilder;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The provider a manifest or the command line asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// ONNX Runtime's default CPU provider.
    #[default]
    Cpu,
    /// NVIDIA CUDA (needs the `onnxruntime-gpu` library and CUDA 12 / cuDNN 9).
    Cuda,
    /// NVIDIA TensorRT (builds an engine on first use; falls back to CUDA, then CPU, for nodes it
    /// cannot take, inside ONNX Runtime).
    Tensorrt,
    /// TensorRT, else CUDA, else CPU; the choice is logged at INFO.
    Auto,
}

impl Provider {
    /// The name used in manifests, on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::Tensorrt => "tensorrt",
            Provider::Auto => "auto",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Provider::Cpu),
            "cuda" => Ok(Provider::Cuda),
            "tensorrt" | "trt" => Ok(Provider::Tensorrt),
            "auto" => Ok(Provider::Auto),
            other => Err(format!("unknown execution provider `{other}` (expected cpu, cuda, tensorrt or auto)")),
        }
    }
}

/// Everything that decides how a session is placed, resolved from the manifest and the flags.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderOptions {
    pub provider: Provider,
    /// Run on CPU (with a WARN) when an explicitly requested GPU provider cannot be used.
    pub allow_fallback: bool,
    /// TensorRT builds FP16 kernels where it can.
    pub tensorrt_fp16: bool,
    /// Where TensorRT engines and timing caches are kept between runs.
    pub cache_dir: PathBuf,
    /// `(input name, [C, T, H, W], largest batch)` for TensorRT's optimisation profile when the
    /// batch dimension is dynamic; `None` leaves the profile to TensorRT.
    pub profile: Option<(String, [i64; 4], usize)>,
}

/// The default TensorRT cache: `$XDG_CACHE_HOME/vigil/tensorrt`, else `~/.cache/vigil/tensorrt`,
/// else `.vigil-cache/tensorrt` in the current directory.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("vigil/tensorrt");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache/vigil/tensorrt"),
        None => PathBuf::from(".vigil-cache/tensorrt"),
    }
}

/// Expands a leading `~/`; a relative path is taken relative to `base` (the model directory).
pub fn resolve_cache_dir(dir: &Path, base: &Path) -> PathBuf {
    if let Ok(rest) = dir.strip_prefix("~") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        base.join(dir)
    }
}

/// Why a GPU provider could not be registered.
fn unavailable(name: &str, ep_name: &str, library: &str) -> String {
    format!(
        "{name} execution provider not available in {library}: this ONNX Runtime build has no {ep_name}; install \
         onnxruntime-gpu (scripts/setup-gpu.sh) and point ORT_DYLIB_PATH at its library"
    )
}

/// Registers one GPU provider or says why not (availability first, then the registration's own
/// error, e.g. a missing libcudart or libnvinfer).
fn try_register(
    builder: &mut SessionBuilder,
    which: Provider,
    opts: &ProviderOptions,
    library: &str,
) -> Result<(), String> {
    match which {
        Provider::Cuda => {
            let ep = CUDA::default();
            if !CUDA::is_available().map_err(|e| format!("cannot list ONNX Runtime providers: {e}"))? {
                return Err(unavailable("CUDA", CUDA::NAME, library));
            }
            ep.register(builder).map_err(|e| format!("CUDA execution provider failed to register ({library}): {e}"))
        }
        Provider::Tensorrt => {
            if !TensorRT::is_available().map_err(|e| format!("cannot list ONNX Runtime providers: {e}"))? {
                return Err(unavailable("TensorRT", TensorRT::NAME, library));
            }
            std::fs::create_dir_all(&opts.cache_dir)
                .map_err(|e| format!("TensorRT cache directory {}: {e}", opts.cache_dir.display()))?;
            let cache = opts.cache_dir.display().to_string();
            let mut ep = TensorRT::default()
                .with_fp16(opts.tensorrt_fp16)
                .with_engine_cache(true)
                .with_engine_cache_path(&cache)
                .with_timing_cache(true)
                .with_timing_cache_path(&cache);
            if let Some((input, [c, t, h, w], max_batch)) = &opts.profile {
                let shape = |n: usize| format!("{input}:{n}x{c}x{t}x{h}x{w}");
                ep = ep
                    .with_profile_min_shapes(shape(1))
                    .with_profile_opt_shapes(shape(*max_batch))
                    .with_profile_max_shapes(shape(*max_batch));
            }
            ep.register(builder)
                .map_err(|e| format!("TensorRT execution provider failed to register ({library}): {e}"))?;
            // TensorRT hands nodes it cannot take to the next provider; CUDA keeps them on the GPU.
            if CUDA::is_available().unwrap_or(false) {
                if let Err(e) = CUDA::default().register(builder) {
                    tracing::warn!(error = %e, "CUDA could not be registered behind TensorRT; unsupported nodes run on CPU");
                }
            }
            Ok(())
        }
        Provider::Cpu | Provider::Auto => Ok(()),
    }
}

/// Registers the requested provider on `builder` and returns the one that will run (`cpu`,
/// `cuda` or `tensorrt`). `library` is the ONNX Runtime file, for messages. An error means an
/// explicitly requested provider is unusable and no fallback was allowed.
pub fn register(builder: &mut SessionBuilder, opts: &ProviderOptions, library: &str) -> Result<Provider, String> {
    match opts.provider {
        Provider::Cpu => Ok(Provider::Cpu),
        Provider::Auto => {
            for candidate in [Provider::Tensorrt, Provider::Cuda] {
                match try_register(builder, candidate, opts, library) {
                    Ok(()) => {
                        tracing::info!(provider = %candidate, "execution provider chosen (auto)");
                        return Ok(candidate);
                    }
                    Err(reason) => tracing::debug!(provider = %candidate, %reason, "auto: provider skipped"),
                }
            }
            tracing::info!(provider = "cpu", library, "execution provider chosen (auto): no GPU provider available");
            Ok(Provider::Cpu)
        }
        wanted => match try_register(builder, wanted, opts, library) {
            Ok(()) => {
                tracing::info!(provider = %wanted, "execution provider registered");
                Ok(wanted)
            }
            Err(reason) if opts.allow_fallback => {
                tracing::warn!(provider = %wanted, %reason, "falling back to CPU (allow_fallback)");
                Ok(Provider::Cpu)
            }
            Err(reason) => Err(format!(
                "{reason} (set extractor.allow_fallback = true or pass --allow-fallback to run on CPU instead)"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_round_trip() {
        for p in [Provider::Cpu, Provider::Cuda, Provider::Tensorrt, Provider::Auto] {
            assert_eq!(p.as_str().parse::<Provider>(), Ok(p));
        }
        assert!("opencl".parse::<Provider>().is_err());
    }

    #[test]
    fn cache_dir_resolution() {
        let base = Path::new("/models/i3d");
        assert_eq!(resolve_cache_dir(Path::new("/abs/c"), base), PathBuf::from("/abs/c"));
        assert_eq!(resolve_cache_dir(Path::new("trt"), base), PathBuf::from("/models/i3d/trt"));
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(resolve_cache_dir(Path::new("~/x"), base), PathBuf::from(home).join("x"));
        }
        assert!(default_cache_dir().ends_with("vigil/tensorrt"));
    }
}
