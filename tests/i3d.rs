//! Execution-provider selection and the ResNet-50 I3D export (`models/i3d/make_i3d.py`).
//!
//! This machine's ONNX Runtime may be the CPU-only build: then `cuda` must fail loudly (exit 4,
//! naming CUDA) unless a fallback is allowed, and `auto` must pick `cpu`. Tests that really run
//! CUDA or TensorRT are `#[ignore]`d with the reason; on a GPU machine run them with
//! `cargo test --test i3d -- --ignored` after `source .venv-gpu/vigil-gpu-env.sh`.
//!
//! The I3D model directories (~210 MB each, never committed) are generated once into
//! `target/tmp/i3d-<hash of make_i3d.py>/` and reused by later runs.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should fail the test loudly

use ndarray::Array5;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{p, root, stderr, vigil, vtest, VTEST};
use std::sync::Mutex;
use vigil::features::FeatureExtractor;
use vigil::model::ModelDir;

/// A `frames`-frame 320x240 cut of vtest.avi (the I3D tests keep to one snippet).
fn short_clip(dir: &Path, frames: u32) -> PathBuf {
    let out = dir.join(format!("vtest{frames}.avi"));
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i", vtest(), "-frames:v", &frames.to_string(), "-vf", "scale=320:240"])
        .args(["-c:v", "mjpeg", "-q:v", "3", p(&out)])
        .status()
        .expect("ffmpeg is installed (scripts/setup.sh)");
    assert!(st.success(), "ffmpeg failed to cut {VTEST}");
    out
}

/// A copy of `models/default` whose `[extractor]` gets `extra` lines appended.
fn default_model_with(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("models/default")).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let m = dir.path().join("model.toml");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, text.replace("max_batch = 8\n", &format!("max_batch = 8\n{extra}\n"))).unwrap();
    dir
}

fn bench_json(args: &[&str]) -> Value {
    let clip_dir = tempfile::tempdir().unwrap();
    let clip = short_clip(clip_dir.path(), 32);
    let mut all = vec!["bench", p(&clip), "--runs", "1", "--json"];
    all.extend_from_slice(args);
    let o = vigil(&all);
    assert!(o.status.success(), "bench failed:\n{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn gpu_present() -> bool {
    Path::new("/dev/nvidia0").exists()
        || Command::new("nvidia-smi").arg("-L").output().is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

/// Whether the loaded ONNX Runtime (ORT_DYLIB_PATH) has the CUDA provider.
fn runtime_has_cuda() -> bool {
    std::env::var("ORT_DYLIB_PATH")
        .ok()
        .and_then(|lib| Path::new(&lib).parent().map(|d| d.join("libonnxruntime_providers_cuda.so").is_file()))
        == Some(true)
}

// ---------------------------------------------------------------- provider selection

#[test]
fn provider_cuda_without_fallback_fails_with_model_exit_code_naming_cuda() {
    if runtime_has_cuda() && gpu_present() {
        eprintln!("SKIPPED: this machine has a working CUDA ONNX Runtime; the refusal cannot be provoked here");
        return;
    }
    let clip_dir = tempfile::tempdir().unwrap();
    let clip = short_clip(clip_dir.path(), 16);
    // From the command line ...
    let o = vigil(&["bench", p(&clip), "--model", "models/default", "--runs", "1", "--provider", "cuda"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "exit 4 (model); stderr:\n{err}");
    for needle in ["CUDA execution provider", "setup-gpu.sh", "--allow-fallback"] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    // ... and from the manifest.
    let model = default_model_with("provider = \"cuda\"");
    let out = tempfile::tempdir().unwrap();
    let o = vigil(&["features", p(&clip), "--out", p(out.path()), "--model", p(model.path())]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "exit 4 (model); stderr:\n{err}");
    assert!(err.contains("CUDA execution provider not available"), "{err}");
}

#[test]
fn provider_tensorrt_without_fallback_fails_naming_tensorrt() {
    if runtime_has_cuda() && gpu_present() {
        eprintln!("SKIPPED: this machine has a GPU ONNX Runtime; the refusal cannot be provoked here");
        return;
    }
    let clip_dir = tempfile::tempdir().unwrap();
    let clip = short_clip(clip_dir.path(), 16);
    let o = vigil(&["replay", p(&clip), "--model", "models/default", "--provider", "tensorrt", "--no-progress"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "exit 4 (model); stderr:\n{err}");
    assert!(err.contains("TensorRT execution provider"), "{err}");
}

#[test]
fn provider_cuda_with_fallback_runs_on_cpu_and_bench_reports_cpu() {
    if runtime_has_cuda() && gpu_present() {
        eprintln!("SKIPPED: this machine has a working CUDA ONNX Runtime; no fallback happens here");
        return;
    }
    let v = bench_json(&["--model", "models/default", "--provider", "cuda", "--allow-fallback"]);
    assert_eq!(v["provider"], "cpu", "{v}");
    // The manifest's allow_fallback does the same.
    let model = default_model_with("provider = \"cuda\"\nallow_fallback = true");
    let v = bench_json(&["--model", p(model.path())]);
    assert_eq!(v["provider"], "cpu", "{v}");
}

#[test]
fn provider_fallback_is_logged_as_a_warning() {
    if runtime_has_cuda() && gpu_present() {
        eprintln!("SKIPPED: this machine has a working CUDA ONNX Runtime; no fallback happens here");
        return;
    }
    let clip_dir = tempfile::tempdir().unwrap();
    let clip = short_clip(clip_dir.path(), 16);
    let args = ["--log", "warn", "bench", p(&clip), "--model", "models/default", "--runs", "1"];
    let o = vigil(&[&args[..], &["--provider", "cuda", "--allow-fallback"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("WARN") && err.contains("falling back to CPU") && err.contains("CUDA"), "{err}");
}

#[test]
fn provider_auto_picks_cpu_without_a_gpu_runtime_and_says_so() {
    if runtime_has_cuda() && gpu_present() {
        eprintln!("SKIPPED: this machine has a GPU ONNX Runtime; auto picks a GPU provider here");
        return;
    }
    let v = bench_json(&["--model", "models/default", "--provider", "auto"]);
    assert_eq!(v["provider"], "cpu", "{v}");
    let clip_dir = tempfile::tempdir().unwrap();
    let clip = short_clip(clip_dir.path(), 16);
    let o =
        vigil(&["--log", "info", "bench", p(&clip), "--model", "models/default", "--runs", "1", "--provider", "auto"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("execution provider chosen (auto)") && !err.contains("WARN"), "{err}");
    // The text report names the provider too.
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("provider         cpu"), "{out}");
}

#[test]
fn provider_default_is_cpu_and_bad_names_are_rejected() {
    let v = bench_json(&["--model", "models/default"]);
    assert_eq!(v["provider"], "cpu", "{v}");
    let o = vigil(&["bench", vtest(), "--model", "models/default", "--provider", "opencl"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let model = default_model_with("provider = \"opencl\"");
    let o = vigil(&["bench", vtest(), "--model", p(model.path())]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("provider") && err.contains("opencl"), "{err}");
    let model = default_model_with("tensorrt_fp16 = true\ncache_dir = \"trt-cache\"\nprovder = \"cpu\"");
    let o = vigil(&["bench", vtest(), "--model", p(model.path())]);
    assert_eq!(o.status.code(), Some(4), "unknown keys stay rejected: {}", stderr(&o));
}

#[test]
#[ignore = "needs an NVIDIA GPU and onnxruntime-gpu (scripts/setup-gpu.sh; source .venv-gpu/vigil-gpu-env.sh)"]
fn gpu_cuda_runs_the_i3d_extractor() {
    if !gpu_present() || !runtime_has_cuda() {
        eprintln!("SKIPPED: no NVIDIA GPU or no onnxruntime-gpu library in ORT_DYLIB_PATH (scripts/setup-gpu.sh)");
        return;
    }
    let (center, _) = i3d_models();
    let v = bench_json(&["--model", p(&center), "--provider", "cuda"]);
    assert_eq!(v["provider"], "cuda", "{v}");
}

#[test]
#[ignore = "needs an NVIDIA GPU with TensorRT 10 (scripts/setup-gpu.sh --tensorrt); builds an engine (minutes)"]
fn gpu_tensorrt_runs_the_i3d_extractor_and_caches_its_engine() {
    if !gpu_present() || !runtime_has_cuda() {
        eprintln!("SKIPPED: no NVIDIA GPU or no onnxruntime-gpu library in ORT_DYLIB_PATH (scripts/setup-gpu.sh)");
        return;
    }
    let (center, _) = i3d_models();
    let cache = tempfile::tempdir().unwrap();
    let model = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&center).unwrap() {
        let e = e.unwrap();
        std::fs::hard_link(e.path(), model.path().join(e.file_name()))
            .or_else(|_| std::fs::copy(e.path(), model.path().join(e.file_name())).map(|_| ()))
            .unwrap();
    }
    let m = model.path().join("model.toml");
    let text = std::fs::read_to_string(&m).unwrap();
    let extra = format!("max_batch = 4\ncache_dir = {:?}\n", p(cache.path()));
    std::fs::write(&m, text.replace("max_batch = 4\n", &extra)).unwrap();
    let v = bench_json(&["--model", p(model.path()), "--provider", "tensorrt"]);
    assert_eq!(v["provider"], "tensorrt", "{v}");
    assert!(std::fs::read_dir(cache.path()).unwrap().next().is_some(), "TensorRT wrote no engine cache");
}

// ---------------------------------------------------------------- the I3D export

static GENERATE: Mutex<()> = Mutex::new(());

/// `(centre-crop, ten-crop)` I3D model directories, generated once per version of the script.
fn i3d_models() -> (PathBuf, PathBuf) {
    let _guard = GENERATE.lock().unwrap_or_else(|e| e.into_inner());
    let script = root().join("models/i3d/make_i3d.py");
    let hash = vigil::features::sha256_hex(&std::fs::read(&script).unwrap());
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("i3d-{}", &hash[..16]));
    let dirs = (base.join("center"), base.join("ten"));
    for (dir, crop) in [(&dirs.0, "center"), (&dirs.1, "ten")] {
        if dir.join("model.toml").is_file() {
            continue;
        }
        let tmp = base.join(format!("{crop}.partial"));
        let _ = std::fs::remove_dir_all(&tmp);
        let o = Command::new("python3")
            .arg(&script)
            .args(["--out", p(&tmp), "--crop", crop])
            .output()
            .expect("python3 runs (scripts/setup.sh installs numpy, onnx, safetensors)");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "make_i3d.py failed:\n{out}\n{}", stderr(&o));
        eprintln!("{out}");
        assert!(out.contains("layer4    [2048, 2, 7, 7]"), "{out}");
        // RTFM.md: about 32.8 GFLOPs per crop per snippet.
        assert!(out.contains("= 32.8 GFLOP"), "{out}");
        std::fs::rename(&tmp, dir).unwrap();
    }
    dirs
}

#[test]
fn i3d_export_has_the_documented_shapes() {
    let (center, ten) = i3d_models();
    let model = ModelDir::load(&center).unwrap();
    let m = &model.manifest;
    assert_eq!((m.features.dim, m.features.crops), (2048, 1));
    assert!(!m.rtfm.trained);
    assert_eq!(
        (m.rtfm.feature_dim, m.rtfm.temporal_width, m.rtfm.nonlocal_width, m.rtfm.head),
        (2048, 512, 256, [512, 128])
    );
    let ten = ModelDir::load(&ten).unwrap();
    assert_eq!(ten.manifest.features.crops, 10);
    let recipe = ten.manifest.preprocess.as_ref().unwrap();
    assert_eq!((recipe.mean.as_slice(), recipe.std.as_slice()), ([114.75f32].as_slice(), [57.375f32].as_slice()));

    let mut ex = model.load_extractor(2).unwrap();
    assert_eq!(ex.provider(), "cpu");
    assert_eq!(ex.dim(), 2048);
    for n in [1, 2] {
        let clips = Array5::<f32>::from_shape_fn((n, 3, 16, 224, 224), |(b, c, t, h, w)| {
            ((b * 7 + c * 3 + t + h / 8 + w / 16) % 11) as f32 / 11.0 - 0.5
        });
        let f = ex.extract(clips.view()).unwrap();
        assert_eq!(f.shape(), &[n, 2048]);
        assert!(f.iter().all(|x| x.is_finite()), "features are finite");
    }
    // Checked by the loader against the real ONNX graph, too.
    model.load_rtfm().unwrap();
}

#[test]
fn i3d_ten_crop_features_of_one_snippet_are_scored() {
    let (_, ten) = i3d_models();
    let dir = tempfile::tempdir().unwrap();
    let clip = short_clip(dir.path(), 16);
    let out = dir.path().join("feat");
    let o = vigil(&["features", p(&clip), "--out", p(&out), "--model", p(&ten), "--no-progress"]);
    assert!(o.status.success(), "features failed:\n{}", stderr(&o));
    let npy = out.join("vtest16.npy");
    let arr = vigil::npy::read(&npy).unwrap();
    assert_eq!(arr.shape, vec![1, 10, 2048], "[T, crops, D]");
    let o = vigil(&["score", p(&npy), "--model", p(&ten), "--json"]);
    assert!(o.status.success(), "score failed:\n{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let scores = v["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 1, "{v}");
    assert!(scores[0].as_f64().unwrap().is_finite());
}
