//! Integration tests for the media path: OpenCV decoding (`source`), preprocessing into snippets
//! and the ONNX Runtime extractor on the tiny committed models in `tests/fixtures/onnx/` (made by
//! `scripts/make_test_onnx.py`). Tests that need ffmpeg or OpenCV's sample clip fail with a clear
//! message when those are missing instead of skipping: CI installs them.
//!
//! Throughput figures: `cargo test --release --test media -- --ignored --nocapture throughput`.

use ndarray::{Array2, Array5};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use vigil::features::{init_runtime, sha256_hex, ExtractorSpec, FeatureError, FeatureExtractor, OnnxExtractor};
use vigil::preprocess::{ColorOrder, CropMode, Interpolation, Preprocessor, Recipe, Resize, Snippet, SnippetAssembler};
use vigil::source::{
    decode_only, decode_only_yuv, FfmpegSource, Frame, FrameSource, OpenCvSource, PixelFormat, SourceError,
};

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

fn vtest() -> PathBuf {
    let p = PathBuf::from(VTEST);
    assert!(p.is_file(), "{VTEST} is missing: install the `opencv-doc` package (CI does)");
    p
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

/// Writes an ffmpeg `testsrc` video of `frames` frames at `size` (e.g. "320x240") and 25 fps.
fn ffmpeg_video(dir: &Path, name: &str, frames: u32, size: &str) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate=25"))
        .args(["-frames:v", &frames.to_string(), "-c:v", "mpeg4", "-q:v", "2", "-pix_fmt", "yuv420p"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}): install ffmpeg to run this test (CI does)"));
    assert!(status.success(), "ffmpeg failed to write {}", out.display());
    out
}

fn gray_recipe() -> Recipe {
    Recipe {
        snippet_frames: 16,
        frame_stride: 1,
        color: ColorOrder::Gray,
        interpolation: Interpolation::Area,
        resize: Resize::Exact { width: 128, height: 96 },
        crop: CropMode::None,
        crop_width: 128,
        crop_height: 96,
        mean: vec![0.0],
        std: vec![1.0],
    }
}

fn i3d_recipe() -> Recipe {
    Recipe {
        snippet_frames: 16,
        frame_stride: 1,
        color: ColorOrder::Rgb,
        interpolation: Interpolation::Bilinear,
        resize: Resize::ShorterSide { size: 256 },
        crop: CropMode::Ten,
        crop_width: 224,
        crop_height: 224,
        mean: vec![114.75],
        std: vec![57.375],
    }
}

/// Decodes `path` and cuts it into snippets with `recipe`.
fn snippets_of(path: &Path, recipe: Recipe) -> Vec<Snippet> {
    let mut src = OpenCvSource::open_file(path).expect("test video opens");
    let pre = Preprocessor::try_new(recipe.clone()).expect("test recipe is valid");
    let mut asm = SnippetAssembler::new(recipe);
    let mut out = Vec::new();
    while let Some(frame) = src.next_frame().expect("test video decodes") {
        if asm.keeps(frame.index) {
            out.extend(asm.push(pre.prepare(&frame).expect("frame fits the recipe")));
        }
    }
    out.extend(asm.finish());
    out
}

// ---------------------------------------------------------------- source

/// Reads `src` to its first error: (frames before it, the error). A truncated file must not end
/// silently.
fn frames_until_error(src: &mut dyn FrameSource) -> (u64, SourceError) {
    let mut frames = 0;
    loop {
        match src.next_frame() {
            Ok(Some(_)) => frames += 1,
            Ok(None) => panic!("a truncated file must not end silently"),
            Err(e) => return (frames, e),
        }
    }
}

/// Writes `frames` frames of ffmpeg's `testsrc` at `size` with `codec` and `pix_fmt` into `name`.
fn ffmpeg_coded(dir: &Path, name: &str, frames: u32, size: &str, codec: &str, pix_fmt: &str) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate=25"))
        .args(["-frames:v", &frames.to_string(), "-c:v", codec, "-q:v", "3", "-pix_fmt", pix_fmt])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}): install ffmpeg to run this test (CI does)"));
    assert!(status.success(), "ffmpeg failed to write {}", out.display());
    out
}

/// Prepares every frame of both decoders of `path` with a grey recipe (grey levels 0-255, no
/// normalisation) and returns (frames, the share of values within 3 grey levels of each other,
/// the mean absolute difference in grey levels).
fn grey_difference(path: &Path, resize: Resize, crop: (u32, u32)) -> (u64, f64, f32) {
    let recipe = Recipe { resize, crop_width: crop.0, crop_height: crop.1, ..gray_recipe() };
    let pre = Preprocessor::try_new(recipe).expect("grey recipe");
    let mut bgr = OpenCvSource::open_file(path).expect("OpenCV opens the video");
    let mut yuv = FfmpegSource::open_file(path).expect("FFmpeg opens the video");
    assert_eq!(bgr.info().width, yuv.info().width);
    assert_eq!(bgr.info().height, yuv.info().height);
    assert!((bgr.info().fps - yuv.info().fps).abs() < 1e-6);
    let (mut frames, mut close, mut sum, mut n) = (0u64, 0usize, 0f64, 0usize);
    loop {
        let (a, b): (Option<Frame>, Option<Frame>) =
            (bgr.next_frame().expect("OpenCV decodes"), yuv.next_frame().expect("FFmpeg decodes"));
        let (Some(a), Some(b)) = (a, b) else {
            assert!(
                bgr.next_frame().expect("OpenCV decodes").is_none()
                    && yuv.next_frame().expect("FFmpeg decodes").is_none(),
                "frame counts differ"
            );
            break;
        };
        assert_eq!(a.format, PixelFormat::Bgr);
        assert!(matches!(b.format, PixelFormat::I420 { .. }));
        assert_eq!(a.index, b.index);
        assert!((a.pts_ms - b.pts_ms).abs() < 1.0, "frame {}: pts {} vs {}", a.index, a.pts_ms, b.pts_ms);
        let (pa, pb) = (pre.prepare(&a).expect("BGR frame prepares"), pre.prepare(&b).expect("I420 frame prepares"));
        for (x, y) in pa.data.iter().zip(&pb.data) {
            let d = (x - y).abs();
            close += usize::from(d <= 3.0);
            sum += f64::from(d);
            n += 1;
        }
        frames += 1;
    }
    (frames, close as f64 / n.max(1) as f64, (sum / n.max(1) as f64) as f32)
}

#[test]
fn the_yuv_decoder_gives_the_grey_the_bgr_decoder_gives() {
    // vtest.avi (MPEG-4, TV-range 4:2:0) at the default model's 128x96: the same frames and
    // timestamps, and nearly the same grey. Two differences remain: OpenCV's BGR comes out
    // ~1.3 levels darker than BT.601's 255 / 219 * (Y - 16) (swscale's fixed-point converter
    // and rounding per channel), and saturated colours clip in BGR, which luma alone cannot know.
    // The default model's scores differ by under 0.01 (`tests/cli.rs`).
    let (frames, close, mean) = grey_difference(&vtest(), Resize::Exact { width: 128, height: 96 }, (128, 96));
    assert_eq!(frames, 795);
    assert!(close > 0.99 && mean < 1.6, "{close} of the grey values within 3 levels, mean difference {mean}");
    let (frames_yuv, _) = decode_only_yuv(&vtest()).unwrap();
    assert_eq!(frames_yuv, 795);
}

#[test]
fn the_yuv_decoder_converts_other_layouts_and_full_range() {
    let dir = tempfile::tempdir().unwrap();
    // MJPEG 4:2:2, full range: converted to 4:2:0 by swscale, luma kept full range. Odd sizes:
    // 4:2:0 chroma planes are ceil(w / 2) x ceil(h / 2).
    for (name, size, pix_fmt) in [("j422.avi", "320x240", "yuvj422p"), ("odd.avi", "321x241", "yuvj420p")] {
        let p = ffmpeg_coded(dir.path(), name, 12, size, "mjpeg", pix_fmt);
        let mut src = FfmpegSource::open_file(&p).unwrap();
        let f = src.next_frame().unwrap().unwrap();
        assert_eq!(f.format, PixelFormat::I420 { full_range: true }, "{name}");
        assert_eq!(f.data.len(), f.format.frame_len(f.width, f.height));
        let (w, h) = (f.width, f.height);
        let (frames, close, mean) = grey_difference(&p, Resize::None, (w, h));
        assert_eq!(frames, 12, "{name}");
        // Whole pixels (no averaging); testsrc's saturated colour bars clip in BGR.
        assert!(
            close > 0.95 && mean < 0.8,
            "{name}: {close} of the grey values within 3 levels, mean difference {mean}"
        );
    }
}

#[test]
fn the_yuv_decoder_skips_and_counts_damaged_packets() {
    let dir = tempfile::tempdir().unwrap();
    let p = ffmpeg_coded(dir.path(), "clean.avi", 12, "160x120", "mjpeg", "yuvj420p");
    // Zero the 5th and 9th pictures (from their JPEG start marker FF D8 FF to the next
    // picture's 8-byte AVI chunk header): the demuxer still delivers their packets, and the
    // decoder refuses them ("no JPEG data found").
    let mut bytes = std::fs::read(&p).unwrap();
    let starts: Vec<usize> =
        bytes.windows(3).enumerate().filter(|(_, w)| *w == [0xFF, 0xD8, 0xFF]).map(|(i, _)| i).collect();
    assert_eq!(starts.len(), 12, "one JPEG per frame");
    for k in [4, 8] {
        bytes[starts[k]..starts[k + 1] - 8].fill(0);
    }
    let damaged = dir.path().join("damaged.avi");
    std::fs::write(&damaged, &bytes).unwrap();
    let mut src = FfmpegSource::open_file(&damaged).unwrap();
    let mut frames = 0;
    while let Some(f) = src.next_frame().unwrap() {
        assert_eq!((f.width, f.height), (160, 120));
        frames += 1;
    }
    assert_eq!((frames, src.damaged_packets()), (10, 2), "the damaged pictures are skipped and counted");
    let mut clean = FfmpegSource::open_file(&p).unwrap();
    while clean.next_frame().unwrap().is_some() {}
    assert_eq!(clean.damaged_packets(), 0);
    // OpenCV's capture does not tell.
    assert_eq!(OpenCvSource::open_file(&p).unwrap().damaged_packets(), 0);
}

#[test]
fn the_yuv_decoder_reports_truncation_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("truncated.avi");
    let bytes = std::fs::read(vtest()).unwrap();
    std::fs::write(&p, &bytes[..200 * 1024]).unwrap();
    let mut src = FfmpegSource::open_file(&p).unwrap();
    let (frames, err) = frames_until_error(&mut src);
    assert!(matches!(err, SourceError::Truncated { expected: 795, .. }), "{err}");
    assert!(frames > 0 && frames < 100, "{frames} frames");
    assert!(src.next_frame().unwrap().is_none(), "the error is reported once");
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(FfmpegSource::open_file(&empty), Err(SourceError::Empty(_))));
    assert!(matches!(decode_only_yuv(Path::new("/nonexistent/a.avi")), Err(SourceError::Missing(_))));
}

#[test]
fn decodes_every_frame_of_vtest() {
    let mut src = OpenCvSource::open_file(&vtest()).unwrap();
    let info = src.info().clone();
    assert_eq!((info.width, info.height), (768, 576));
    assert!((info.fps - 10.0).abs() < 1e-6, "fps {}", info.fps);
    assert_eq!(info.frame_count, Some(795));
    assert_eq!(info.name, VTEST);
    let mut n = 0u64;
    let mut last_pts = -1.0;
    while let Some(f) = src.next_frame().unwrap() {
        assert_eq!(f.index, n);
        assert_eq!((f.width, f.height, f.data.len()), (768, 576, 768 * 576 * 3));
        assert!(f.pts_ms > last_pts, "pts must increase: {} after {last_pts}", f.pts_ms);
        last_pts = f.pts_ms;
        n += 1;
    }
    assert_eq!(n, 795);
    assert!((last_pts - 794.0 * 100.0).abs() < 1.0, "last pts {last_pts}");
    assert!(src.next_frame().unwrap().is_none(), "end of file stays at the end");
}

#[test]
fn decode_only_counts_vtest_frames() {
    let (frames, secs) = decode_only(&vtest()).unwrap();
    assert_eq!(frames, 795);
    assert!(secs > 0.0);
}

#[test]
fn missing_video_is_reported_as_missing() {
    let err = OpenCvSource::open_file(Path::new("/nonexistent/clip.mp4")).err().unwrap();
    assert!(matches!(err, SourceError::Missing(ref p) if p == Path::new("/nonexistent/clip.mp4")), "{err}");
    assert!(matches!(decode_only(Path::new("/nonexistent/clip.mp4")), Err(SourceError::Missing(_))));
}

#[test]
fn empty_video_is_reported_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.mp4");
    std::fs::write(&p, b"").unwrap();
    let err = OpenCvSource::open_file(&p).err().unwrap();
    assert!(matches!(err, SourceError::Empty(_)), "{err}");
    assert!(err.to_string().contains("empty.mp4"));
}

#[test]
fn truncated_video_is_reported_after_its_decodable_frames() {
    // The first 20 KB of vtest.avi hold the header (795 frames announced) and one damaged key
    // frame, which FFmpeg conceals and returns; the cut is reported once that frame is out.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("truncated.avi");
    let bytes = std::fs::read(vtest()).unwrap();
    std::fs::write(&p, &bytes[..20 * 1024]).unwrap();
    let mut src = OpenCvSource::open_file(&p).unwrap();
    let (frames, err) = frames_until_error(&mut src);
    assert!(matches!(err, SourceError::Truncated { decoded: 1, expected: 795, .. }), "{err}");
    assert_eq!(frames, 1);
    assert!(err.to_string().contains("truncated.avi"), "{err}");
    assert!(src.next_frame().unwrap().is_none(), "the error is reported once");
}

#[test]
fn video_with_a_header_and_no_frame_data_has_no_frames() {
    // Cut inside the AVI header: FFmpeg opens nothing decodable.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("header_only.avi");
    let bytes = std::fs::read(vtest()).unwrap();
    std::fs::write(&p, &bytes[..4 * 1024]).unwrap();
    let err = OpenCvSource::open_file(&p).err().unwrap();
    assert!(matches!(err, SourceError::NoFrames { .. } | SourceError::Open { .. }), "{err}");
    assert!(err.to_string().contains("header_only.avi"), "{err}");
}

#[test]
fn garbage_video_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("garbage.mp4");
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&p, garbage).unwrap();
    let err = OpenCvSource::open_file(&p).err().unwrap();
    assert!(matches!(err, SourceError::Open { .. } | SourceError::NoFrames { .. }), "{err}");
    assert!(err.to_string().contains("garbage.mp4"), "{err}");
}

#[test]
fn directory_is_not_a_video() {
    let dir = tempfile::tempdir().unwrap();
    let err = OpenCvSource::open_file(dir.path()).err().unwrap();
    assert!(matches!(err, SourceError::Open { .. }), "{err}");
}

#[test]
fn url_errors_name_the_camera_not_the_url() {
    let err = OpenCvSource::open_url("rtsp://admin:s3cret@127.0.0.1:9/none", "cam-7").err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("cam-7"), "{msg}");
    assert!(!msg.contains("s3cret"), "credentials leaked: {msg}");
}

#[test]
fn ten_frame_video_yields_one_loop_padded_snippet() {
    let dir = tempfile::tempdir().unwrap();
    let video = ffmpeg_video(dir.path(), "short.avi", 10, "320x240");
    let info = OpenCvSource::open_file(&video).unwrap().info().clone();
    assert_eq!((info.width, info.height), (320, 240));
    let snippets = snippets_of(&video, gray_recipe());
    assert_eq!(snippets.len(), 1);
    let s = &snippets[0];
    assert_eq!((s.index, s.first_frame, s.last_frame, s.real_frames), (0, 0, 9, 10));
    assert_eq!(s.clip.shape(), &[1, 1, 16, 96, 128]);
    assert!((s.end_ms - 9.0 * 40.0).abs() < 1.0, "end {}", s.end_ms);
    for t in 10..16 {
        let padded = s.clip.slice(ndarray::s![.., .., t, .., ..]);
        let source = s.clip.slice(ndarray::s![.., .., t - 10, .., ..]);
        assert_eq!(padded, source, "frame slot {t} must repeat frame {}", t - 10);
    }
    // testsrc changes from frame to frame, so padding really repeated earlier frames.
    assert_ne!(s.clip.slice(ndarray::s![.., .., 0, .., ..]), s.clip.slice(ndarray::s![.., .., 1, .., ..]));
}

// ---------------------------------------------------------------- features

fn mean_pool_spec() -> ExtractorSpec {
    ExtractorSpec {
        file: "mean_pool.onnx".into(),
        sha256: None,
        input: "clip".into(),
        output: "features".into(),
        input_shape: vec![-1, 1, 16, 96, 128],
        output_shape: vec![-1, 256],
        max_batch: 2,
        ..Default::default()
    }
}

fn model_err(r: Result<OnnxExtractor, FeatureError>) -> String {
    match r {
        Err(e @ FeatureError::Model { .. }) => e.to_string(),
        Err(e) => panic!("expected a Model error, got {e}"),
        Ok(_) => panic!("expected a Model error, the model loaded"),
    }
}

#[test]
fn runtime_is_found() {
    init_runtime().unwrap();
    init_runtime().unwrap();
}

#[test]
fn mean_pool_features_match_hand_computed_block_means() {
    let mut ex = OnnxExtractor::load(&mean_pool_spec(), &fixtures(), 1).unwrap();
    assert_eq!(ex.dim(), 256);
    // 3 clips with max_batch 2: two runs, the second with one clip.
    let clips =
        Array5::from_shape_fn((3, 1, 16, 96, 128), |(n, _, t, y, x)| (n * 1000 + t * 7 + y * 3 + x) as f32 / 100.0);
    let feats = ex.extract(clips.view()).unwrap();
    assert_eq!(feats.shape(), &[3, 256]);
    let mut want = Array2::<f32>::zeros((3, 256));
    for n in 0..3 {
        for gy in 0..16 {
            for gx in 0..16 {
                let block = clips.slice(ndarray::s![n, 0, .., gy * 6..gy * 6 + 6, gx * 8..gx * 8 + 8]);
                want[[n, gy * 16 + gx]] = block.mean().unwrap();
            }
        }
    }
    for (g, w) in feats.iter().zip(want.iter()) {
        assert!((g - w).abs() < 1e-3, "got {g}, want {w}");
    }
    // Hand check of one value: clip 1, cell (0, 0): mean over t, y < 6, x < 8 of
    // (1000 + 7t + 3y + x) / 100 = (1000 + 7 * 7.5 + 3 * 2.5 + 3.5) / 100.
    assert!((feats[[1, 0]] - 10.635).abs() < 1e-3, "{}", feats[[1, 0]]);
    let empty = ex.extract(Array5::zeros((0, 1, 16, 96, 128)).view()).unwrap();
    assert_eq!(empty.shape(), &[0, 256]);
}

#[test]
fn clips_of_the_wrong_shape_are_refused() {
    let mut ex = OnnxExtractor::load(&mean_pool_spec(), &fixtures(), 1).unwrap();
    let err = ex.extract(Array5::zeros((1, 1, 8, 96, 128)).view()).unwrap_err();
    assert!(matches!(err, FeatureError::Run(_)), "{err}");
    assert!(err.to_string().contains("mean_pool.onnx"), "{err}");
}

#[test]
fn model_shape_mismatch_names_file_tensor_and_dims() {
    let spec = ExtractorSpec { file: "wrong_shape.onnx".into(), ..mean_pool_spec() };
    let msg = model_err(OnnxExtractor::load(&spec, &fixtures(), 1));
    for needle in ["wrong_shape.onnx", "`clip`", "[-1, 1, 8, 96, 128]", "[-1, 1, 16, 96, 128]", "dim 2: 8 != 16"] {
        assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
    }
}

#[test]
fn fixed_spec_dims_accept_dynamic_model_dims() {
    // The model's batch is dynamic; a spec that fixes it to 4 still loads.
    let spec = ExtractorSpec { input_shape: vec![4, 1, 16, 96, 128], output_shape: vec![4, 256], ..mean_pool_spec() };
    let mut ex = OnnxExtractor::load(&spec, &fixtures(), 1).unwrap();
    assert_eq!(ex.batch(), 4);
    // 5 clips with a fixed batch of 4: the second run is padded, its padding discarded.
    let clips = Array5::from_elem((5, 1, 16, 96, 128), 2.5f32);
    let feats = ex.extract(clips.view()).unwrap();
    assert_eq!(feats.shape(), &[5, 256]);
    assert!(feats.iter().all(|v| (v - 2.5).abs() < 1e-5));
}

#[test]
fn wrong_tensor_names_list_the_real_ones() {
    let spec = ExtractorSpec { input: "video".into(), ..mean_pool_spec() };
    let msg = model_err(OnnxExtractor::load(&spec, &fixtures(), 1));
    assert!(msg.contains("`video`") && msg.contains("`clip`"), "{msg}");
    let spec = ExtractorSpec { output: "logits".into(), ..mean_pool_spec() };
    let msg = model_err(OnnxExtractor::load(&spec, &fixtures(), 1));
    assert!(msg.contains("`logits`") && msg.contains("`features`"), "{msg}");
}

#[test]
fn corrupt_and_non_onnx_files_are_model_errors() {
    let spec = ExtractorSpec { file: "corrupt.onnx".into(), ..mean_pool_spec() };
    let msg = model_err(OnnxExtractor::load(&spec, &fixtures(), 1));
    assert!(msg.contains("corrupt.onnx"), "{msg}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.onnx"), "these are my notes, not a model\n").unwrap();
    let spec = ExtractorSpec { file: "notes.onnx".into(), ..mean_pool_spec() };
    let msg = model_err(OnnxExtractor::load(&spec, dir.path(), 1));
    assert!(msg.contains("notes.onnx"), "{msg}");
}

#[test]
fn missing_model_file_is_named() {
    let spec = ExtractorSpec { file: "nope.onnx".into(), ..mean_pool_spec() };
    let msg = model_err(OnnxExtractor::load(&spec, &fixtures(), 1));
    assert!(msg.contains("nope.onnx") && msg.contains("not found"), "{msg}");
}

#[test]
fn sha256_is_checked() {
    let bytes = std::fs::read(fixtures().join("mean_pool.onnx")).unwrap();
    let real = sha256_hex(&bytes);
    let good = ExtractorSpec { sha256: Some(real.to_uppercase()), ..mean_pool_spec() };
    OnnxExtractor::load(&good, &fixtures(), 1).unwrap();
    let wrong = "0".repeat(64);
    let bad = ExtractorSpec { sha256: Some(wrong.clone()), ..mean_pool_spec() };
    let msg = model_err(OnnxExtractor::load(&bad, &fixtures(), 1));
    assert!(msg.contains(&wrong) && msg.contains(&real), "both hashes expected in: {msg}");
}

/// W[c, j] of `i3d_like.onnx` (see scripts/make_test_onnx.py).
fn i3d_like_weight(c: usize, j: usize) -> f32 {
    ((3 * j + c) % 17) as f32 / 8.0 - 1.0
}

#[test]
fn i3d_recipe_end_to_end_gives_ten_crop_features() {
    let dir = tempfile::tempdir().unwrap();
    let video = ffmpeg_video(dir.path(), "i3d.avi", 20, "320x240");
    let snippets = snippets_of(&video, i3d_recipe());
    assert_eq!(snippets.len(), 2, "20 frames = one full snippet + one padded");
    assert_eq!((snippets[1].real_frames, snippets[1].first_frame, snippets[1].last_frame), (4, 16, 19));
    let spec = ExtractorSpec {
        file: "i3d_like.onnx".into(),
        sha256: None,
        input: "clip".into(),
        output: "features".into(),
        input_shape: vec![-1, 3, 16, 224, 224],
        output_shape: vec![-1, 2048],
        max_batch: 4,
        ..Default::default()
    };
    let mut ex = OnnxExtractor::load(&spec, &fixtures(), 2).unwrap();
    for s in &snippets {
        assert_eq!(s.clip.shape(), &[10, 3, 16, 224, 224]);
        let feats = ex.extract(s.clip.view()).unwrap();
        assert_eq!(feats.shape(), &[10, 2048]);
        for crop in [0, 4, 9] {
            let means: Vec<f64> = (0..3)
                .map(|c| {
                    let v = s.clip.slice(ndarray::s![crop, c, .., .., ..]);
                    v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len() as f64
                })
                .collect();
            for j in [0, 1, 777, 2047] {
                let want: f64 = (0..3).map(|c| means[c] * f64::from(i3d_like_weight(c, j))).sum();
                let got = f64::from(feats[[crop, j]]);
                assert!((got - want).abs() < 1e-3, "snippet {} crop {crop} feature {j}: {got} vs {want}", s.index);
            }
        }
        // Flipped crops hold the same pixels, so their channel means (and features) match.
        for k in 0..5 {
            for j in [3, 1000] {
                assert!((feats[[k, j]] - feats[[k + 5, j]]).abs() < 1e-4);
            }
        }
    }
}

// ---------------------------------------------------------------- throughput (ignored)

#[test]
#[ignore = "throughput report; run in release with --ignored --nocapture"]
fn throughput() {
    let path = vtest();
    let (frames, secs) = decode_only(&path).unwrap();
    println!("decode_only (OpenCV grab+retrieve):  {frames} frames, {:.0} fps", frames as f64 / secs);

    // Frames are dropped as they come (as the pipeline does once a frame is prepared), keeping
    // the first 100 for the preprocessing figures below.
    let mut src = OpenCvSource::open_file(&path).unwrap();
    let mut decoded = Vec::new();
    let mut n = 0u64;
    let start = Instant::now();
    while let Some(f) = src.next_frame().unwrap() {
        n += 1;
        if decoded.len() < 100 {
            decoded.push(f);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("OpenCvSource::next_frame (owned copy): {n} frames, {:.0} fps", n as f64 / secs);
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Threads:")).map(str::to_string));
    println!("process threads with one capture open: {threads:?}");
    drop(src);

    for (name, recipe) in [("default gray 128x96 area", gray_recipe()), ("I3D ten-crop 224", i3d_recipe())] {
        let pre = Preprocessor::try_new(recipe).unwrap();
        let start = Instant::now();
        let mut sink = 0.0f32;
        for f in &decoded {
            sink += pre.prepare(f).unwrap().data[0];
        }
        let secs = start.elapsed().as_secs_f64();
        println!("prepare {name} (768x576 BGR, 1 thread): {:.0} fps ({sink})", decoded.len() as f64 / secs);
    }
}
