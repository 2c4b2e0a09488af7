#![allow(clippy::unwrap_used)]
//! End-to-end tests of `vigil synth`, `vigil features` and `vigil eval`: a small synthetic
//! benchmark is generated once, its test videos turned into feature files, and both lists
//! evaluated against `gt-test.npy`; then every kind of bad input with its exit code.

use serde_json::Value;
use std::path::{Path, PathBuf};

mod common;
use common::{assert_fails, assert_ok, p, root, vigil, VTEST};
use std::sync::OnceLock;
use vigil::eval::metrics;

fn model() -> PathBuf {
    root().join("models/default")
}

/// Feature width of the shipped default model (`[features] dim`).
const DIM: usize = 144;

/// The benchmark (`synth/`) and its test features (`feat/`), made once per test run.
struct Fixture {
    synth: PathBuf,
    feat: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("eval_cmd");
        let _ = std::fs::remove_dir_all(&base);
        let (synth, feat) = (base.join("synth"), base.join("feat"));
        let out = assert_ok(&vigil(&["synth", "--out", p(&synth), "--size", "small", "--seed", "3"]));
        assert!(out.contains("test 8"), "{out}");
        let out = assert_ok(&vigil(&[
            "features",
            "--list",
            p(&synth.join("test.list")),
            "--out",
            p(&feat),
            "--model",
            p(&model()),
            "--jobs",
            "4",
        ]));
        assert!(out.contains("wrote 8 feature files"), "{out}");
        Fixture { synth, feat }
    })
}

fn eval_json(list: &Path, gt: &Path, extra: &[&str]) -> Value {
    let m = model();
    let mut args = vec!["eval", "--list", p(list), "--gt", p(gt), "--model", p(&m), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&assert_ok(&vigil(&args))).unwrap()
}

/// Column `col` of labels.csv (7 = frames, 8 = fps) per test video, in test-list order.
fn test_column(synth: &Path, col: usize) -> Vec<f64> {
    let csv = std::fs::read_to_string(synth.join("labels.csv")).unwrap();
    let list = std::fs::read_to_string(synth.join("test.list")).unwrap();
    list.lines()
        .map(|v| {
            let row = csv.lines().find(|l| l.starts_with(&format!("{v},"))).unwrap();
            row.split(',').nth(col).unwrap().parse().unwrap()
        })
        .collect()
}

/// `frames` per test video from labels.csv, in test-list order.
fn test_frames(synth: &Path) -> Vec<usize> {
    test_column(synth, 7).into_iter().map(|f| f as usize).collect()
}

#[test]
fn features_follow_the_rtfm_layout_and_list_order() {
    let f = fixture();
    let list = std::fs::read_to_string(f.feat.join("test.list")).unwrap();
    let videos = std::fs::read_to_string(f.synth.join("test.list")).unwrap();
    let names: Vec<&str> = list.lines().collect();
    assert_eq!(names.len(), 8);
    for ((npy, video), frames) in names.iter().zip(videos.lines()).zip(test_frames(&f.synth)) {
        let stem = Path::new(video).file_stem().unwrap().to_str().unwrap();
        assert_eq!(*npy, format!("{stem}.npy"), "relative to the list, same order");
        let a = vigil::npy::read_features(&f.feat.join(npy), Some(DIM)).unwrap();
        assert_eq!(a.shape(), &[frames.div_ceil(16), 1, DIM], "{npy}: T = ceil({frames} / 16)");
    }
    // Each feature file has a sidecar naming its video, frame rate and shape.
    let fps = test_column(&f.synth, 8);
    let frames = test_frames(&f.synth);
    for (i, (npy, video)) in names.iter().zip(videos.lines()).enumerate() {
        let meta = vigil::eval::meta::read(&f.feat.join(npy)).unwrap().expect("a .json beside each .npy");
        assert!(meta.source.ends_with(video), "{} vs {video}", meta.source);
        assert_eq!((meta.fps, meta.frames as usize), (fps[i], frames[i]), "{npy}");
        assert_eq!((meta.snippets, meta.crops, meta.dim), (frames[i].div_ceil(16), 1, DIM), "{npy}");
    }
    assert!(fps.contains(&10.0) && fps.contains(&15.0), "both parts' frame rates are covered: {fps:?}");
}

#[test]
fn eval_of_features_matches_metrics_and_the_video_list() {
    let f = fixture();
    let gt_path = f.synth.join("gt-test.npy");
    let plots = f.feat.parent().unwrap().join("plots");
    let j = eval_json(&f.feat.join("test.list"), &gt_path, &["--plot", p(&plots)]);
    for key in ["auc", "pr_auc", "average_precision", "per_video", "ttd", "false_alerts_per_hour", "normal_hours"] {
        assert!(j.get(key).is_some(), "missing {key}: {j}");
    }
    assert!(j["ttd"].get("median_s").is_some() && j["ttd"]["per_video"].is_array());
    let auc = j["auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc), "{auc}");

    // Recompute from the files: gt and the per-video scores, expanded 16x in list order.
    let gt = vigil::npy::read_vector(&gt_path).unwrap().to_vec();
    let per_video = j["per_video"].as_array().unwrap();
    assert_eq!(per_video.len(), 8);
    let scores: Vec<Vec<f32>> = per_video
        .iter()
        .map(|v| v["scores"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap() as f32).collect())
        .collect();
    let frames = metrics::expand_videos(&scores, 16);
    // serde_json's default float parsing may be off by one ulp, hence 1e-12 rather than ==.
    let close = |key: &str, want: f64| {
        let got = j[key].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{key}: {got} vs {want}");
    };
    close("auc", metrics::roc_auc(&gt, &frames).unwrap());
    close("pr_auc", metrics::pr_auc(&gt, &frames).unwrap());
    close("average_precision", metrics::average_precision(&gt, &frames).unwrap());
    for v in per_video {
        for key in ["name", "label", "snippets", "max_score", "auc"] {
            assert!(v.get(key).is_some(), "per_video lacks {key}");
        }
        // Alerts come from the deployed scorer's scores, one per snippet like the offline ones.
        assert_eq!(v["alert_scores"].as_array().unwrap().len(), v["scores"].as_array().unwrap().len());
    }
    assert_eq!(j["alert_scoring"], "window (32 snippets, lookahead 2)", "the shipped model's scorer");
    assert_eq!(per_video[0]["label"], "abnormal");
    assert_eq!(per_video[7]["label"], "normal");
    assert_eq!(j["ttd"]["per_video"].as_array().unwrap().len(), 4, "one entry per abnormal video");
    assert!(j["normal_hours"].as_f64().unwrap() > 0.0);

    let roc = std::fs::read_to_string(plots.join("roc.svg")).unwrap();
    assert!(roc.starts_with("<svg") && roc.contains("AUC"), "roc.svg");
    assert_eq!(std::fs::read_dir(&plots).unwrap().count(), 9, "roc.svg and one plot per video");

    // The same videos scored through the replay pipeline give the same number.
    let jv = eval_json(&f.synth.join("test.list"), &gt_path, &[]);
    let auc_v = jv["auc"].as_f64().unwrap();
    assert!((auc - auc_v).abs() < 1e-6, "features {auc} vs videos {auc_v}");
    // Times too: the feature files' sidecars carry each video's own frame rate.
    let fps_of = |j: &Value| -> Vec<f64> {
        j["per_video"].as_array().unwrap().iter().map(|v| v["fps"].as_f64().unwrap()).collect()
    };
    assert_eq!(fps_of(&j), fps_of(&jv));
    assert_eq!(fps_of(&j), test_column(&f.synth, 8));
    assert!((j["normal_hours"].as_f64().unwrap() - jv["normal_hours"].as_f64().unwrap()).abs() < 1e-12);

    // The text report names both PR numbers.
    let text = assert_ok(&vigil(&[
        "eval",
        "--list",
        p(&f.feat.join("test.list")),
        "--gt",
        p(&gt_path),
        "--model",
        p(&model()),
    ]));
    assert!(text.contains("ROC AUC") && text.contains("PR AUC") && text.contains("average precision"), "{text}");
}

#[test]
fn low_thresholds_give_alerts_and_times_to_detect() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(model()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let m = dir.path().join("model.toml");
    let text = std::fs::read_to_string(&m).unwrap();
    // Whatever thresholds the shipped model has, alerts start at any score above 0.01.
    let edited: String = text
        .lines()
        .map(|l| match l.split_once(" = ") {
            Some(("on", _)) => "on = 0.01".to_string(),
            Some(("off", _)) => "off = 0.005".to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(edited.contains("on = 0.01") && edited.contains("off = 0.005"), "{edited}");
    std::fs::write(&m, edited).unwrap();
    let o = vigil(&[
        "eval",
        "--list",
        p(&f.feat.join("test.list")),
        "--gt",
        p(&f.synth.join("gt-test.npy")),
        "--model",
        p(dir.path()),
        "--json",
        "--fps",
        "10",
    ]);
    let j: Value = serde_json::from_str(&assert_ok(&o)).unwrap();
    assert!(j["ttd"]["median_s"].as_f64().is_some(), "{}", j["ttd"]);
    assert!(j["false_alerts_per_hour"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_lists_features_and_ground_truth_exit_with_their_codes() {
    let f = fixture();
    let gt = f.synth.join("gt-test.npy");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model();
    let eval = |list: &Path, gt: &Path| vigil(&["eval", "--list", p(list), "--gt", p(gt), "--model", p(&m)]);

    // A list naming a missing file: list file and line.
    let missing = d.join("missing.list");
    std::fs::write(&missing, format!("{}\n{}\n", p(&f.feat.join("test_proc_nor_0001.npy")), p(&d.join("nope.npy"))))
        .unwrap();
    assert_fails(&eval(&missing, &gt), 9, &["missing.list:2", "nope.npy", "does not exist"]);
    let vmissing = d.join("vmissing.list");
    std::fs::write(&vmissing, format!("{VTEST}\n{}\n", p(&d.join("gone.avi")))).unwrap();
    assert_fails(
        &vigil(&["features", "--list", p(&vmissing), "--out", p(&d.join("fx")), "--model", p(&m)]),
        9,
        &["vmissing.list:2", "gone.avi"],
    );

    // A corrupt video in a features batch: the video, its list line, exit 3.
    let garbage = d.join("garbage.avi");
    std::fs::write(&garbage, b"not a video at all").unwrap();
    let gl = d.join("garbage.list");
    std::fs::write(&gl, format!("{}\n{}\n", p(&f.synth.join("videos/test_proc_nor_0001.avi")), p(&garbage))).unwrap();
    assert_fails(
        &vigil(&["features", "--list", p(&gl), "--out", p(&d.join("fg")), "--model", p(&m)]),
        3,
        &["garbage.list:2", "garbage.avi"],
    );

    // A feature file of another width: the file and its list line.
    let narrow = d.join("narrow.npy");
    vigil::npy::write_f32(&narrow, &[4, 1, 128], &[0.5; 512]).unwrap();
    let wl = d.join("width.list");
    std::fs::write(&wl, format!("{}\n{}\n", p(&f.feat.join("test_proc_nor_0001.npy")), p(&narrow))).unwrap();
    assert_fails(&eval(&wl, &gt), 5, &["width.list:2", "narrow.npy", &DIM.to_string()]);

    // A gt whose length does not match: the gt file, both lengths, where it stops fitting.
    let full = vigil::npy::read_vector(&gt).unwrap().to_vec();
    let short = d.join("short-gt.npy");
    let n = full.len() - 16;
    std::fs::write(&short, vigil::npy::encode_f64_vector(&full[..n])).unwrap();
    assert_fails(
        &eval(&f.feat.join("test.list"), &short),
        8,
        &[
            "short-gt.npy",
            &format!("has {n} frames"),
            &format!("{} were expected", full.len()),
            "test_proc_nor_0002.npy",
        ],
    );

    // A feature file whose sidecar names an impossible frame rate: the sidecar, the key, the
    // list line, exit 5.
    let copy = d.join("fcopy");
    std::fs::create_dir(&copy).unwrap();
    for e in std::fs::read_dir(&f.feat).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let second = std::fs::read_to_string(copy.join("test.list")).unwrap().lines().nth(1).unwrap().to_string();
    let npy = copy.join(second.split(',').next().unwrap());
    let mut meta = vigil::eval::meta::read(&npy).unwrap().unwrap();
    meta.fps = -1.0;
    vigil::eval::meta::write(&npy, &meta).unwrap();
    let bad_json = npy.with_extension("json");
    assert_fails(
        &eval(&copy.join("test.list"), &gt),
        5,
        &["test.list:2", p(&bad_json), "`fps`", "positive number, got -1"],
    );
    // Without a sidecar a feature file is taken as 30 fps, with a warning; `--fps` overrides all.
    std::fs::remove_file(&bad_json).unwrap();
    let o = vigil(&["eval", "--list", p(&copy.join("test.list")), "--gt", p(&gt), "--model", p(&m), "--json"]);
    let j: Value = serde_json::from_str(&assert_ok(&o)).unwrap();
    assert_eq!(j["per_video"][1]["fps"], 30.0);
    assert_ne!(j["per_video"][0]["fps"], 30.0);
    assert!(common::stderr(&o).contains("1 of 8 feature files have no .json sidecar"), "{}", common::stderr(&o));
    let o = vigil(&[
        "eval",
        "--list",
        p(&copy.join("test.list")),
        "--gt",
        p(&gt),
        "--model",
        p(&m),
        "--json",
        "--fps",
        "12",
    ]);
    let j: Value = serde_json::from_str(&assert_ok(&o)).unwrap();
    assert!(j["per_video"].as_array().unwrap().iter().all(|v| v["fps"] == 12.0));
    // A frame rate that is not above 0 is a usage error (exit 2), naming the flag.
    for bad in ["--fps=0", "--fps=-5", "--fps=nan"] {
        let o = vigil(&["eval", "--list", p(&copy.join("test.list")), "--gt", p(&gt), bad]);
        assert_fails(&o, 2, &["--fps", "expected frames per second above 0"]);
    }

    // A list mixing feature files and videos is refused.
    let mixed = d.join("mixed.list");
    std::fs::write(&mixed, format!("{}\n{VTEST}\n", p(&f.feat.join("test_proc_nor_0001.npy")))).unwrap();
    assert_fails(&eval(&mixed, &gt), 9, &["mixed.list:2", "vtest.avi", "not both"]);

    // A missing synth source video.
    assert_fails(&vigil(&["synth", "--out", p(&d.join("s")), "--source", p(&d.join("no.avi"))]), 3, &["no.avi"]);
}

#[test]
fn features_of_videos_of_different_frame_sizes_in_one_batch() {
    // Each video is processed alone (resized by the recipe), so 768x576 and 160x120 mix fine.
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let small = f.synth.join("videos/test_proc_nor_0001.avi");
    let out = assert_ok(&vigil(&[
        "features",
        VTEST,
        p(&small),
        "--out",
        p(dir.path()),
        "--model",
        p(&model()),
        "--jobs",
        "2",
    ]));
    assert!(out.contains("wrote 2 feature files"), "{out}");
    let list = std::fs::read_to_string(dir.path().join("features.list")).unwrap();
    assert_eq!(list, "vtest.npy\ntest_proc_nor_0001.npy\n");
    let a = vigil::npy::read_features(&dir.path().join("vtest.npy"), Some(DIM)).unwrap();
    assert_eq!(a.shape(), &[795usize.div_ceil(16), 1, DIM]);
}

/// `scripts/auc_split.py` (where the frame AUC is lost) reproduces `vigil eval`'s AUC from its
/// JSON and splits the negatives into normal videos and the rest of the abnormal videos.
#[test]
fn auc_split_script_agrees_with_eval() {
    let f = fixture();
    let gt = f.synth.join("gt-test.npy");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("eval.json");
    let o = vigil(&["eval", "--list", p(&f.feat.join("test.list")), "--gt", p(&gt), "--model", p(&model()), "--json"]);
    std::fs::write(&report, assert_ok(&o)).unwrap();
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .arg(root().join("scripts/auc_split.py"))
        .args([&report, &gt])
        .output()
        .unwrap();
    let text = assert_ok(&out);
    let number = |label: &str| -> f64 {
        let line = text.lines().find(|l| l.contains(label)).unwrap_or_else(|| panic!("no {label:?} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!((number("all frames") - j["auc"].as_f64().unwrap()).abs() < 6e-5, "{text}");
    for label in ["vs normal videos", "vs the rest of the abnormal videos"] {
        assert!((0.0..=1.0).contains(&number(label)), "{text}");
    }
    // A gt of another length is refused with both lengths.
    let short = dir.path().join("short.npy");
    let full = vigil::npy::read_vector(&gt).unwrap().to_vec();
    std::fs::write(&short, vigil::npy::encode_f64_vector(&full[..full.len() - 16])).unwrap();
    let out = std::process::Command::new("python3")
        .arg(root().join("scripts/auc_split.py"))
        .args([&report, &short])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("short.npy"));
}
