//! ONNX Runtime extractor: finds and loads the runtime library once per process (the crate is
//! built with `load-dynamic`, so nothing is downloaded at build time), opens one `Session` per
//! [`OnnxExtractor`] and checks the model's real tensor names and shapes against the manifest
//! before any frame is decoded. It knows nothing of video or preprocessing: clips arrive as
//! `[N, C, T, H, W]` arrays.

use super::provider::{self, Provider, ProviderOptions};
use super::{ExtractorSpec, FeatureError, FeatureExtractor};
use ndarray::{s, Array2, ArrayView5, Axis};
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{Outlet, TensorElementType, TensorRef, ValueType};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Environment variable that names the ONNX Runtime shared library explicitly.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// Why the runtime could not be initialised; kept so every later caller gets the same answer
/// (`FeatureError` itself is not `Clone`).
#[derive(Clone)]
enum InitFailure {
    Missing(String),
    Load { path: String, reason: String },
}

impl From<InitFailure> for FeatureError {
    fn from(f: InitFailure) -> Self {
        match f {
            InitFailure::Missing(m) => FeatureError::RuntimeMissing(m),
            InitFailure::Load { path, reason } => FeatureError::RuntimeLoad { path, reason },
        }
    }
}

/// ONNX Runtime allows one environment per process; it lives here for the process lifetime.
static RUNTIME: OnceLock<Result<Environment, InitFailure>> = OnceLock::new();
/// The library file the environment was loaded from (for messages about missing providers).
static RUNTIME_PATH: OnceLock<PathBuf> = OnceLock::new();

/// The ONNX Runtime library this process loaded, once [`init_runtime`] has succeeded.
pub fn runtime_library() -> Option<&'static Path> {
    RUNTIME_PATH.get().map(PathBuf::as_path)
}

/// Loads the ONNX Runtime shared library once per process (ORT_DYLIB_PATH, then known places).
///
/// Known places are the `onnxruntime` Python wheel's `capi/` directory in the site-packages of
/// system Python (`/usr/lib/python3*`, `/usr/local/lib/python3*`), pyenv
/// (`~/.pyenv/versions/*/lib/python3*`), pip `--user` (`~/.local/lib/python3*`) and a `.venv`
/// in the current directory or in any ancestor of the executable (so `target/release/vigil`
/// finds the repository's `.venv`). Later calls return the first call's result.
pub fn init_runtime() -> Result<(), FeatureError> {
    environment().map(|_| ())
}

fn environment() -> Result<&'static Environment, FeatureError> {
    RUNTIME.get_or_init(load_runtime).as_ref().map_err(|f| f.clone().into())
}

fn load_runtime() -> Result<Environment, InitFailure> {
    let build = |path: &Path| -> Result<Environment, InitFailure> {
        let load_err = |reason: String| InitFailure::Load { path: path.display().to_string(), reason };
        let builder = ort::init_from(path).map_err(|e| load_err(e.to_string()))?;
        // Telemetry off: a surveillance appliance should not phone home.
        let env = builder.with_name("vigil").with_telemetry(false).build().map_err(|e| load_err(e.to_string()))?;
        tracing::info!(path = %path.display(), "ONNX Runtime loaded");
        let _ = RUNTIME_PATH.set(path.to_path_buf());
        Ok(env)
    };

    if let Some(path) = std::env::var_os(ORT_DYLIB_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(InitFailure::Load {
                path: path.display().to_string(),
                reason: format!("{ORT_DYLIB_ENV} names a file that does not exist"),
            });
        }
        return build(&path);
    }
    let candidates = candidate_libraries();
    let mut failures = Vec::new();
    for path in &candidates {
        match build(path) {
            Ok(env) => return Ok(env),
            // An older wheel elsewhere must not hide a good one later in the list.
            Err(InitFailure::Load { path, reason }) => failures.push(format!("{path}: {reason}")),
            Err(other) => return Err(other),
        }
    }
    let tried =
        if failures.is_empty() { String::new() } else { format!(" (found but unusable: {})", failures.join("; ")) };
    Err(InitFailure::Missing(format!(
        "set {ORT_DYLIB_ENV} to the path of libonnxruntime.so (>= 1.22), or install it with \
         `python3 -m pip install onnxruntime` (or the repository's setup command, which puts it \
         in ./.venv){tried}"
    )))
}

/// Shared-library files from `onnxruntime` wheels in the known site-packages directories.
fn candidate_libraries() -> Vec<PathBuf> {
    let mut lib_dirs: Vec<PathBuf> = Vec::new(); // directories that hold python3.X/
    let mut venv_roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        venv_roots.push(cwd.join(".venv"));
    }
    if let Ok(exe) = std::env::current_exe() {
        venv_roots.extend(exe.ancestors().skip(1).map(|dir| dir.join(".venv")));
    }
    lib_dirs.extend(venv_roots.iter().map(|v| v.join("lib")));
    lib_dirs.push(PathBuf::from("/usr/local/lib"));
    lib_dirs.push(PathBuf::from("/usr/lib"));
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        lib_dirs.push(home.join(".local/lib"));
        for version in sorted_entries(&home.join(".pyenv/versions")) {
            lib_dirs.push(version.join("lib"));
        }
    }
    let mut found = Vec::new();
    for lib in lib_dirs {
        for python in sorted_entries(&lib) {
            let is_py3 = python.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("python3"));
            if !is_py3 {
                continue;
            }
            for packages in ["site-packages", "dist-packages"] {
                let capi = python.join(packages).join("onnxruntime/capi");
                for file in sorted_entries(&capi) {
                    let is_lib = file.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.starts_with("libonnxruntime.so")
                            || (n.starts_with("libonnxruntime.") && n.ends_with(".dylib"))
                    });
                    if is_lib && !found.contains(&file) {
                        found.push(file);
                    }
                }
            }
        }
    }
    found
}

/// Directory entries in reverse lexical order (newer wheels such as `libonnxruntime.so.1.31.1`
/// before older ones); empty when the directory is absent.
fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => return Vec::new(),
    };
    entries.sort();
    entries.reverse();
    entries
}

/// An ONNX model run by ONNX Runtime on the provider the manifest asks for; one session per
/// instance.
pub struct OnnxExtractor {
    session: Session,
    /// The provider that actually runs the session (never `Auto`).
    provider: Provider,
    /// TensorRT builds its engine on the first run; said once, before it.
    engine_build_pending: bool,
    path: PathBuf,
    input: String,
    output: String,
    /// Expected `[C, T, H, W]` of a clip, -1 where the model accepts any size.
    clip_dims: [i64; 4],
    dim: usize,
    /// Clips per run; when the model's batch dimension is fixed, every run uses exactly that many
    /// (the last chunk is zero-padded and the padding's outputs discarded).
    batch: usize,
    fixed_batch: bool,
}

impl OnnxExtractor {
    /// Loads `spec.file` relative to `model_dir` on the execution provider `spec.provider` asks
    /// for and checks its real input/output names and shapes against `spec`. `threads` is ONNX
    /// Runtime's intra-op thread count (0 lets ONNX Runtime pick one per physical core). A GPU
    /// provider that cannot be used is a [`FeatureError::Model`] naming it, unless
    /// `spec.allow_fallback`.
    pub fn load(spec: &ExtractorSpec, model_dir: &Path, threads: usize) -> Result<Self, FeatureError> {
        let path = model_dir.join(&spec.file);
        let shown = path.display().to_string();
        let model_err = |reason: String| FeatureError::Model { path: shown.clone(), reason };
        check_spec(spec).map_err(&model_err)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(model_err(format!(
                    "file not found (extractor.file = {:?} in the model directory {})",
                    spec.file,
                    model_dir.display()
                )))
            }
            Err(e) => return Err(model_err(format!("cannot read: {e}"))),
        };
        if let Some(expected) = &spec.sha256 {
            let got = sha256_hex(&bytes);
            if !expected.trim().eq_ignore_ascii_case(&got) {
                return Err(model_err(format!(
                    "SHA-256 mismatch: the manifest expects {} but the file has {got} (wrong or corrupted download?)",
                    expected.trim()
                )));
            }
        }
        let env = environment()?;
        let mut builder = Session::builder(env)
            .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::Level3).map_err(Into::into))
            .and_then(|b| b.with_intra_threads(threads).map_err(Into::into))
            .map_err(|e| model_err(format!("cannot configure an ONNX Runtime session: {e}")))?;
        let options = provider_options(spec, model_dir);
        let library =
            runtime_library().map_or_else(|| "the loaded ONNX Runtime".to_string(), |p| p.display().to_string());
        let provider = provider::register(&mut builder, &options, &library).map_err(&model_err)?;
        let session =
            builder.commit_from_memory(&bytes).map_err(|e| model_err(format!("not a loadable ONNX model: {e}")))?;

        let input = find_outlet(session.inputs(), &spec.input, "input").map_err(&model_err)?;
        check_shape(input, "input", &spec.input_shape).map_err(&model_err)?;
        if session.inputs().len() != 1 {
            return Err(model_err(format!(
                "model has {} inputs ({}); the extractor feeds exactly one, `{}`",
                session.inputs().len(),
                names(session.inputs()),
                spec.input
            )));
        }
        let output = find_outlet(session.outputs(), &spec.output, "output").map_err(&model_err)?;
        check_shape(output, "output", &spec.output_shape).map_err(&model_err)?;

        let model_in = tensor_dims(input).unwrap_or_default();
        let model_out = tensor_dims(output).unwrap_or_default();
        // The spec's fixed dims win; a dim the spec leaves open may still be fixed in the model.
        let merged = |spec_dims: &[i64], model: &[i64], i: usize| {
            let s = spec_dims.get(i).copied().unwrap_or(-1);
            if s >= 0 {
                s
            } else {
                model.get(i).copied().unwrap_or(-1)
            }
        };
        let dim = merged(&spec.output_shape, &model_out, 1);
        if dim < 1 {
            return Err(model_err(format!(
                "output `{}` has a dynamic feature dimension; set extractor.output_shape[1] to its size",
                spec.output
            )));
        }
        let batch_dim = merged(&spec.input_shape, &model_in, 0);
        let (batch, fixed_batch) =
            if batch_dim >= 1 { (batch_dim as usize, true) } else { (spec.max_batch.max(1), false) };
        let clip_dims = [1, 2, 3, 4].map(|i| merged(&spec.input_shape, &model_in, i));
        tracing::debug!(model = %shown, threads, batch, dim, provider = %provider, "feature extractor loaded");
        Ok(Self {
            session,
            provider,
            engine_build_pending: provider == Provider::Tensorrt,
            path,
            input: spec.input.clone(),
            output: spec.output.clone(),
            clip_dims,
            dim: dim as usize,
            batch,
            fixed_batch,
        })
    }

    /// The execution provider that actually runs this extractor: `cpu`, `cuda` or `tensorrt`
    /// (after `auto` or a permitted fallback, the one that was chosen).
    pub fn provider(&self) -> &str {
        self.provider.as_str()
    }

    /// The ONNX file this extractor runs.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clips per ONNX Runtime run.
    pub fn batch(&self) -> usize {
        self.batch
    }

    fn run_err(&self, reason: impl std::fmt::Display) -> FeatureError {
        FeatureError::Run(format!("{}: {reason}", self.path.display()))
    }

    /// Runs one chunk of at most `self.batch` clips and copies its features into `out`.
    fn run_chunk(&mut self, chunk: ArrayView5<f32>, mut out: ndarray::ArrayViewMut2<f32>) -> Result<(), FeatureError> {
        let n = chunk.shape()[0];
        let input = if self.fixed_batch && n < self.batch {
            let mut shape = chunk.raw_dim();
            shape[0] = self.batch;
            let mut padded = ndarray::Array5::<f32>::zeros(shape);
            padded.slice_mut(s![..n, .., .., .., ..]).assign(&chunk);
            ndarray::CowArray::from(padded)
        } else {
            chunk.as_standard_layout()
        };
        let tensor = TensorRef::from_array_view(&input).map_err(|e| self.run_err(e))?;
        if self.engine_build_pending {
            self.engine_build_pending = false;
            tracing::info!(model = %self.path.display(), "building TensorRT engine (this can take minutes)");
        }
        let input_name = self.input.clone();
        let output_name = self.output.clone();
        let path = self.path.display().to_string();
        let err = |reason: String| FeatureError::Run(format!("{path}: {reason}"));
        let outputs = self
            .session
            .run(ort::inputs![input_name.as_str() => tensor])
            .map_err(|e| err(format!("ONNX Runtime run failed: {e}")))?;
        let value =
            outputs.get(&output_name).ok_or_else(|| err(format!("the run produced no output `{output_name}`")))?;
        let features = value
            .try_extract_array::<f32>()
            .map_err(|e| err(format!("output `{output_name}` is not an f32 tensor: {e}")))?;
        let expected = [input.shape()[0], self.dim];
        if features.shape() != expected {
            return Err(err(format!(
                "output `{output_name}` has shape {:?}; expected {:?} for a batch of {}",
                features.shape(),
                expected,
                expected[0]
            )));
        }
        let features =
            features.into_dimensionality::<ndarray::Ix2>().map_err(|e| err(format!("output `{output_name}`: {e}")))?;
        out.assign(&features.slice(s![..n, ..]));
        Ok(())
    }
}

impl FeatureExtractor for OnnxExtractor {
    fn dim(&self) -> usize {
        self.dim
    }

    fn extract(&mut self, clips: ArrayView5<f32>) -> Result<Array2<f32>, FeatureError> {
        let shape = clips.shape();
        let mismatch = self.clip_dims.iter().zip(&shape[1..]).any(|(&want, &got)| want >= 0 && want as usize != got);
        if mismatch {
            return Err(self.run_err(format!(
                "clips have shape {:?}; the model expects [N, {}]",
                shape,
                self.clip_dims.map(|d| if d < 0 { "?".to_string() } else { d.to_string() }).join(", ")
            )));
        }
        let n = shape[0];
        let mut out = Array2::<f32>::zeros((n, self.dim));
        let mut start = 0;
        while start < n {
            let end = (start + self.batch).min(n);
            let chunk = clips.slice_axis(Axis(0), (start..end).into());
            let rows = out.slice_mut(s![start..end, ..]);
            self.run_chunk(chunk, rows)?;
            start = end;
        }
        Ok(out)
    }
}

/// The provider settings of `spec`, with the cache directory resolved against `model_dir` and a
/// TensorRT profile for a dynamic batch dimension.
fn provider_options(spec: &ExtractorSpec, model_dir: &Path) -> ProviderOptions {
    let cache_dir = spec
        .cache_dir
        .as_deref()
        .map_or_else(super::provider::default_cache_dir, |d| super::provider::resolve_cache_dir(d, model_dir));
    let dims = spec.input_shape.get(1..5).and_then(|d| <[i64; 4]>::try_from(d).ok());
    let profile = match (spec.input_shape.first(), dims) {
        (Some(&n), Some(d)) if n < 0 && d.iter().all(|&x| x > 0) => {
            Some((spec.input.clone(), d, spec.max_batch.max(1)))
        }
        _ => None,
    };
    ProviderOptions {
        provider: spec.provider,
        allow_fallback: spec.allow_fallback,
        tensorrt_fp16: spec.tensorrt_fp16,
        cache_dir,
        profile,
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Manifest-only checks that the `[N, C, T, H, W]` -> `[N, D]` layout needs.
fn check_spec(spec: &ExtractorSpec) -> Result<(), String> {
    if spec.input_shape.len() != 5 {
        return Err(format!("extractor.input_shape {:?} must have 5 dims [N, C, T, H, W]", spec.input_shape));
    }
    if spec.output_shape.len() != 2 {
        return Err(format!("extractor.output_shape {:?} must have 2 dims [N, D]", spec.output_shape));
    }
    for (key, dims) in [("input_shape", &spec.input_shape), ("output_shape", &spec.output_shape)] {
        if let Some(bad) = dims.iter().find(|d| **d == 0 || **d < -1) {
            return Err(format!("extractor.{key} {dims:?}: {bad} is not a size (use -1 for dynamic)"));
        }
    }
    if spec.max_batch == 0 {
        return Err("extractor.max_batch must be at least 1".into());
    }
    Ok(())
}

fn names(outlets: &[Outlet]) -> String {
    outlets.iter().map(|o| format!("`{}`", o.name())).collect::<Vec<_>>().join(", ")
}

fn find_outlet<'s>(outlets: &'s [Outlet], name: &str, kind: &str) -> Result<&'s Outlet, String> {
    outlets
        .iter()
        .find(|o| o.name() == name)
        .ok_or_else(|| format!("has no {kind} named `{name}` (the model's {kind}s are: {})", names(outlets)))
}

/// The tensor's dims with every symbolic or unknown dim as -1.
fn tensor_dims(outlet: &Outlet) -> Option<Vec<i64>> {
    outlet.dtype().tensor_shape().map(|s| s.iter().map(|&d| if d < 0 { -1 } else { d }).collect())
}

/// A fixed dim in the spec must match a fixed dim in the model; -1 on either side matches.
fn check_shape(outlet: &Outlet, kind: &str, expected: &[i64]) -> Result<(), String> {
    let name = outlet.name();
    match outlet.dtype() {
        ValueType::Tensor { ty: TensorElementType::Float32, .. } => {}
        other => return Err(format!("{kind} `{name}` is {other:?}; expected a float32 tensor")),
    }
    let got = tensor_dims(outlet).unwrap_or_default();
    let bad_dim = if got.len() != expected.len() {
        Some(format!("rank {} != {}", got.len(), expected.len()))
    } else {
        got.iter()
            .zip(expected)
            .enumerate()
            .find(|(_, (g, e))| **g >= 0 && **e >= 0 && g != e)
            .map(|(i, (g, e))| format!("dim {i}: {g} != {e}"))
    };
    match bad_dim {
        None => Ok(()),
        Some(detail) => Err(format!(
            "{kind} `{name}` has shape {got:?}; the manifest expects {expected:?} ({detail}; -1 = any size)"
        )),
    }
}
