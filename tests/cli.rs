//! End-to-end tests of the `vigil` binary: real video files decoded by OpenCV, the shipped ONNX
//! model run by the real ONNX Runtime, and every kind of bad input with its exit code.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should fail the test loudly

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

mod common;
use common::{assert_fails, p, root, stderr, vigil, vtest};
use vigil::npy::{encode, encode_f64_vector};

/// Feature width of the shipped default model (`[features] dim`).
const DIM: usize = 144;

fn default_model() -> PathBuf {
    root().join("models/default")
}

/// A copy of the default model in a temp dir, with its manifest edited by `edit`.
fn model_with(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(default_model()).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let m = dir.path().join("model.toml");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, edit(&text)).unwrap();
    dir
}

#[test]
fn replay_vtest_writes_scores_plot_and_valid_events() {
    let out = tempfile::tempdir().unwrap();
    let scores = out.path().join("s.jsonl");
    let csv = out.path().join("s.csv");
    let svg = out.path().join("p.svg");
    let o = vigil(&["replay", vtest(), "--scores", p(&scores), "--plot", p(&svg)]);
    assert!(o.status.success(), "{}", stderr(&o));
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("each stdout line is a JSON event");
        assert!(v["event"] == "start" || v["event"] == "end");
        assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()));
    }
    let lines: Vec<Value> =
        std::fs::read_to_string(&scores).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // 795 frames -> ceil(795 / 16) = 50 snippets, the last loop-padded.
    assert_eq!(lines.len(), 50);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["snippet"], i as u64);
        assert_eq!(l["frame_start"], (i * 16) as u64);
        let s = l["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&s));
        assert!(l["magnitude"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(lines[49]["frame_end"], 794);
    // 10 fps: snippet 1 starts at 1.6 s.
    assert!((lines[1]["time_start_s"].as_f64().unwrap() - 1.6).abs() < 0.11);
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.contains("<svg") && svg_text.contains("polyline"));

    // The same replay in offline mode to CSV.
    let o = vigil(&["replay", vtest(), "--mode", "offline", "--scores", p(&csv)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 51);
    assert!(text.starts_with("source,snippet,"));
}

/// Scores of a `vigil replay --scores` JSON-lines file.
fn score_list(path: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["score"].as_f64().unwrap())
        .collect()
}

#[test]
fn replay_through_the_daemons_yuv_decoder_scores_as_the_bgr_decoder_does() {
    // `vigil run` decodes files and streams with FFmpeg to YUV for a grey model; replay can read
    // video the same way. The default model's scores on vtest.avi agree to under 0.01 (measured
    // 2026-11-28: largest difference 0.0016, mean 0.0004).
    let out = tempfile::tempdir().unwrap();
    let (a, b) = (out.path().join("a.jsonl"), out.path().join("b.jsonl"));
    let o = vigil(&["replay", vtest(), "--scores", p(&a)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = vigil(&["replay", vtest(), "--decoder", "ffmpeg", "--scores", p(&b)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (score_list(&a), score_list(&b));
    assert_eq!((a.len(), b.len()), (50, 50));
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(worst < 0.01, "scores differ by up to {worst}");
    assert_fails(&vigil(&["replay", "/nonexistent/c.avi", "--decoder", "ffmpeg"]), 3, &["/nonexistent/c.avi"]);
    assert_fails(&vigil(&["replay", vtest(), "--decoder", "gpu"]), 2, &["--decoder"]);
}

#[test]
fn replay_missing_empty_truncated_and_garbage_videos() {
    let dir = tempfile::tempdir().unwrap();
    let o = vigil(&["replay", "/nonexistent/clip.avi"]);
    assert_fails(&o, 3, &["/nonexistent/clip.avi", "does not exist"]);

    let empty = dir.path().join("empty.avi");
    std::fs::write(&empty, b"").unwrap();
    assert_fails(&vigil(&["replay", p(&empty)]), 3, &["empty.avi", "empty"]);

    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(&garbage, vec![0x5au8; 100_000]).unwrap();
    assert_fails(&vigil(&["replay", p(&garbage)]), 3, &["garbage.mp4"]);

    let truncated = dir.path().join("truncated.avi");
    let bytes = std::fs::read(vtest()).unwrap();
    std::fs::write(&truncated, &bytes[..20_000]).unwrap();
    assert_fails(&vigil(&["replay", p(&truncated)]), 3, &["truncated.avi"]);
}

#[test]
fn replay_video_shorter_than_one_snippet() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.avi");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i", vtest(), "-frames:v", "10", "-c:v", "mjpeg", p(&short)])
        .status()
        .expect("ffmpeg is installed (scripts/setup.sh)");
    assert!(st.success());
    assert_fails(&vigil(&["replay", p(&short)]), 3, &["short.avi", "10 frames", "16"]);
}

#[test]
fn replay_ground_truth_length_checked() {
    let dir = tempfile::tempdir().unwrap();
    let gt = dir.path().join("gt.npy");
    std::fs::write(&gt, encode_f64_vector(&[0.0; 100])).unwrap();
    let o = vigil(&["replay", vtest(), "--gt", p(&gt), "--plot", p(&dir.path().join("x.svg"))]);
    assert_fails(&o, 8, &["gt.npy", "800"]);
    // The right length works and draws the ground truth.
    let mut labels = vec![0.0; 800];
    labels[400..560].iter_mut().for_each(|v| *v = 1.0);
    std::fs::write(&gt, encode_f64_vector(&labels)).unwrap();
    let svg = dir.path().join("ok.svg");
    let o = vigil(&["replay", vtest(), "--gt", p(&gt), "--plot", p(&svg)]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn unwritable_outputs_exit_7() {
    let o = vigil(&["replay", vtest(), "--scores", "/nonexistent/dir/s.jsonl"]);
    assert_fails(&o, 7, &["/nonexistent/dir/s.jsonl"]);
    let o = vigil(&["replay", vtest(), "--scores", "/tmp/s.txt"]);
    assert_fails(&o, 7, &["s.txt", ".jsonl or .csv"]);
}

#[test]
fn bad_model_directories_exit_4() {
    let o = vigil(&["replay", vtest(), "--model", "/nonexistent/model"]);
    assert_fails(&o, 4, &["/nonexistent/model", "does not exist"]);

    let m = model_with(|t| t.replace("snippet_frames = 16\n", ""));
    assert_fails(&vigil(&["replay", vtest(), "--model", p(m.path())]), 4, &["model.toml", "snippet_frames"]);

    let m = model_with(|t| t.replace(&format!("dim = {DIM}"), "dim = \"wide\""));
    assert_fails(&vigil(&["replay", vtest(), "--model", p(m.path())]), 4, &["model.toml", "dim"]);

    let m = model_with(|t| t.replace("[scorer]", "[scorer]\nwindo = 3"));
    assert_fails(&vigil(&["replay", vtest(), "--model", p(m.path())]), 4, &["model.toml", "windo"]);

    // Off above on, whatever thresholds the shipped model was trained with.
    let m = model_with(|t| {
        t.lines()
            .map(|l| match l {
                l if l.starts_with("on = ") => "on = 0.5",
                l if l.starts_with("off = ") => "off = 0.9",
                l => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    assert_fails(&vigil(&["replay", vtest(), "--model", p(m.path())]), 4, &["alert.off"]);

    // The manifest says 16 frames per snippet but the ONNX model's real input says so too: make
    // the manifest disagree with the ONNX file and the loader must notice.
    let m = model_with(|t| {
        t.replace("input_shape = [-1, 1, 16, 96, 128]", "input_shape = [-1, 1, 8, 96, 128]")
            .replace("snippet_frames = 16", "snippet_frames = 8")
    });
    assert_fails(&vigil(&["replay", vtest(), "--model", p(m.path())]), 4, &["extractor.onnx", "8"]);

    let m = model_with(|t| t.to_string());
    std::fs::write(m.path().join("extractor.onnx"), b"this is not an onnx model").unwrap();
    let m2 = model_with(|t| t.replace("sha256 = ", "# sha256 = "));
    std::fs::write(m2.path().join("extractor.onnx"), b"this is not an onnx model").unwrap();
    assert_fails(&vigil(&["replay", vtest(), "--model", p(m.path())]), 4, &["extractor.onnx"]);
    assert_fails(&vigil(&["replay", vtest(), "--model", p(m2.path())]), 4, &["extractor.onnx"]);

    let m = model_with(|t| t.to_string());
    std::fs::write(m.path().join("rtfm.safetensors"), b"nope").unwrap();
    assert_fails(&vigil(&["replay", vtest(), "--model", p(m.path())]), 4, &["rtfm.safetensors"]);
}

#[test]
fn score_feature_files_json() {
    let dir = tempfile::tempdir().unwrap();
    let f32s: Vec<u8> = (0..(7 * DIM)).flat_map(|i| ((i % 13) as f32 * 0.1).to_le_bytes()).collect();
    let a = dir.path().join("a.npy");
    std::fs::write(&a, encode("<f4", &[7, 1, DIM], &f32s)).unwrap();
    let f64s: Vec<u8> = (0..(2 * DIM)).flat_map(|i| ((i % 5) as f64 * 0.2).to_le_bytes()).collect();
    let b = dir.path().join("b.npy");
    std::fs::write(&b, encode("<f8", &[2, DIM], &f64s)).unwrap();
    let o = vigil(&["score", p(&a), p(&b), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["scores"].as_array().unwrap().len(), 7);
    assert_eq!(rows[0]["magnitudes"].as_array().unwrap().len(), 7);
    assert_eq!(rows[1]["scores"].as_array().unwrap().len(), 2, "T = 2 works");
    // Window mode with a window covering the file gives the offline numbers.
    let o = vigil(&["score", p(&a), "--json", "--mode", "window", "--window", "8", "--lookahead", "7"]);
    let w: Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(w["scores"], rows[0]["scores"]);
}

#[test]
fn score_bad_feature_files_exit_5() {
    let dir = tempfile::tempdir().unwrap();
    assert_fails(&vigil(&["score", "/nonexistent/f.npy"]), 5, &["/nonexistent/f.npy"]);
    let obj = dir.path().join("obj.npy");
    std::fs::write(&obj, encode("|O", &[3], &[0u8; 24])).unwrap();
    assert_fails(&vigil(&["score", p(&obj)]), 5, &["obj.npy", "object"]);
    let ints = dir.path().join("ints.npy");
    std::fs::write(&ints, encode("<i4", &[2, 1, DIM], &vec![0u8; 2 * DIM * 4])).unwrap();
    assert_fails(&vigil(&["score", p(&ints)]), 5, &["ints.npy", "float32"]);
    let wide = dir.path().join("wide.npy");
    std::fs::write(&wide, encode("<f4", &[2, 1, 2048], &vec![0u8; 2 * 2048 * 4])).unwrap();
    assert_fails(&vigil(&["score", p(&wide)]), 5, &["wide.npy", &DIM.to_string()]);
    let rank = dir.path().join("rank.npy");
    std::fs::write(&rank, encode("<f4", &[2, 1, 1, DIM], &vec![0u8; 2 * DIM * 4])).unwrap();
    assert_fails(&vigil(&["score", p(&rank)]), 5, &["rank.npy", &format!("[T, crops, {DIM}]")]);
    let trunc = dir.path().join("trunc.npy");
    std::fs::write(&trunc, encode("<f4", &[9, 1, DIM], &[0u8; 100])).unwrap();
    assert_fails(&vigil(&["score", p(&trunc)]), 5, &["trunc.npy", "truncated"]);
}

#[test]
fn bench_reports_json() {
    let o = vigil(&["bench", vtest(), "--json", "--runs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["decode_fps"].as_f64().unwrap() > 0.0);
    assert!(v["pipeline_fps"].as_f64().unwrap() > 0.0);
    for stage in ["decode", "preprocess", "features", "scorer", "alert"] {
        let s = &v["stages"][stage];
        assert!(s["count"].as_u64().unwrap() > 0, "{stage}");
        assert!(s["p50_ms"].as_f64().unwrap() <= s["p99_ms"].as_f64().unwrap());
    }
    assert_eq!(v["frames"], 795);
}

#[test]
fn usage_errors_exit_2() {
    let o = vigil(&["replay"]);
    assert_eq!(o.status.code(), Some(2));
    let o = vigil(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

fn checkpoint(name: &str) -> String {
    root().join("tests/fixtures/checkpoints").join(name).to_string_lossy().into_owned()
}

#[test]
fn import_then_score_reproduces_the_reference() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(checkpoint("expected_small.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The formula's features for T = 7, one crop, D = 64 (tests/fixtures/parity/FORMULA.md).
    let feats: Vec<u8> = (0..7usize)
        .flat_map(|t| {
            (0..64usize).map(move |d| {
                let (t, c, d) = (t as f64, 0.0f64, d as f64);
                (2.0 * (0.9 * t + 1.7 * c + 0.23 * d + 0.001 * t * d).sin().abs()) as f32
            })
        })
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f = dir.path().join("f.npy");
    std::fs::write(&f, encode("<f4", &[7, 1, 64], &feats)).unwrap();
    for (i, ckpt) in
        ["small_zip.pt", "small_legacy.pt", "small_module_prefix.pt", "small_float64.pt"].iter().enumerate()
    {
        let out = dir.path().join(format!("m{i}"));
        let o = vigil(&["import", &checkpoint(ckpt), "--out", p(&out), "--crops", "1"]);
        assert!(o.status.success(), "{ckpt}: {}", stderr(&o));
        let o = vigil(&["score", p(&f), "--model", p(&out), "--json"]);
        assert!(o.status.success(), "{ckpt}: {}", stderr(&o));
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        for key in ["scores", "magnitudes"] {
            let want = expected[key].as_array().unwrap();
            let have = got[key].as_array().unwrap();
            assert_eq!(want.len(), have.len());
            for (w, h) in want.iter().zip(have) {
                let (w, h) = (w.as_f64().unwrap(), h.as_f64().unwrap());
                let tol = if key == "scores" { 1e-4 } else { 1e-4 * w.abs() };
                assert!((w - h).abs() <= tol, "{ckpt} {key}: {h} vs reference {w}");
            }
        }
    }
    // An existing non-empty output directory is refused without --force.
    let o = vigil(&["import", &checkpoint("small_zip.pt"), "--out", p(&dir.path().join("m0"))]);
    assert_fails(&o, 7, &["m0", "--force"]);
}

#[test]
fn import_bad_checkpoints_exit_6() {
    let dir = tempfile::tempdir().unwrap();
    let out = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    assert_fails(
        &vigil(&["import", &checkpoint("small_missing.pt"), "--out", &out("a")]),
        6,
        &["small_missing.pt", "fc3.bias"],
    );
    assert_fails(
        &vigil(&["import", &checkpoint("small_extra.pt"), "--out", &out("b")]),
        6,
        &["small_extra.pt", "extra.weight"],
    );
    assert_fails(
        &vigil(&["import", &checkpoint("small_badshape.pt"), "--out", &out("c")]),
        6,
        &["small_badshape.pt", "fc2.weight"],
    );
    assert_fails(&vigil(&["import", "/nonexistent/x.pt", "--out", &out("d")]), 6, &["/nonexistent/x.pt"]);
    let junk = dir.path().join("junk.pt");
    std::fs::write(&junk, b"definitely not a checkpoint").unwrap();
    assert_fails(&vigil(&["import", p(&junk), "--out", &out("e")]), 6, &["junk.pt"]);
}

/// `bench-cameras` runs the daemon on copies of a clip paced like cameras: frames arrive at the
/// clip's own rate (10 fps), not as fast as they decode, every camera is scored, and the report
/// holds the figures the README's tables quote, timed from the daemon's readiness.
#[test]
fn bench_cameras_paces_copies_of_a_clip_like_cameras_and_reports_them() {
    let o = vigil(&["--log", "warn", "bench-cameras", vtest(), "--cameras", "2", "--duration", "7s", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert_eq!(r["cameras"], 2);
    let running = r["cameras_running_s"].as_f64().unwrap();
    assert!(running > 6.0 && running <= r["duration_s"].as_f64().unwrap(), "{r}");
    // Paced: each camera reads at most one frame per 100 ms from its start (decoding alone
    // would read vtest.avi's 795 frames in well under a second), and keeps up loosely.
    let fin = r["frames_in"].as_f64().unwrap();
    assert!(fin <= 2.0 * (10.0 * running + 1.0), "read faster than real time: {r}");
    assert!(fin >= 2.0 * 10.0 * (running - 2.0), "fell far behind real time: {r}");
    let dropped = r["frames_dropped"].as_f64().unwrap();
    assert!(r["frames_processed"].as_f64().unwrap() + dropped <= fin, "{r}");
    // 7 s of 10 fps is 4 snippets a camera; a snippet is scored once 2 more (the lookahead) arrived.
    assert!(r["score_latency_ms"]["count"].as_u64().unwrap() >= 2, "{r}");
    for key in ["ready", "quarter", "end", "peak"] {
        assert!(r["rss_mb"][key].as_f64().unwrap() > 0.0, "rss_mb.{key}: {r}");
    }
}
