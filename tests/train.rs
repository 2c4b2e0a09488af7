//! `vigil train` end to end on synthetic features: it learns (frame-level AUC on held-out videos),
//! it is deterministic for a seed, and bad inputs fail with their documented exit codes.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should fail the test loudly

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{p as s, vigil};
use vigil::eval::metrics::{expand_videos, roc_auc};
use vigil::model::{FeaturesSection, Manifest, ModelDir, RtfmSection};
use vigil::rtfm::{Rtfm, RtfmWidths};
use vigil::train::rng::Rng;

const D: usize = 16;
const WIDTHS: RtfmWidths = RtfmWidths { feature_dim: D, temporal_width: 4, nonlocal_width: 4, head: [16, 8] };

/// A score-only base model at the tiny widths (no extractor).
fn base_model(dir: &Path) -> PathBuf {
    let base = dir.join("base");
    std::fs::create_dir_all(&base).unwrap();
    Rtfm::new_random(&WIDTHS, 0).unwrap().save(&base.join("rtfm.safetensors")).unwrap();
    let m = Manifest {
        name: "tiny".into(),
        description: String::new(),
        extractor: None,
        preprocess: None,
        features: FeaturesSection { dim: D, crops: 1 },
        rtfm: RtfmSection {
            weights: "rtfm.safetensors".into(),
            trained: false,
            feature_dim: D,
            temporal_width: 4,
            nonlocal_width: 4,
            head: [16, 8],
        },
        scorer: Default::default(),
        alert: Default::default(),
    };
    std::fs::write(base.join("model.toml"), toml::to_string(&m).unwrap()).unwrap();
    base
}

/// One synthetic video `[T, 1, D]`: background noise everywhere; abnormal videos have a burst
/// of 4..10 snippets of much larger magnitude. The burst's sign is random per value, so its mean
/// is that of the background: a random (untrained) network, which is close to a random linear
/// projection, cannot tell it apart, while a feature-magnitude learner can. Returns the
/// per-snippet truth too.
fn video(rng: &mut Rng, abnormal: bool) -> (Vec<f32>, usize, Vec<bool>) {
    let t = 24 + rng.below(40);
    let mut truth = vec![false; t];
    if abnormal {
        let len = 4 + rng.below(7);
        let start = rng.below(t - len);
        truth[start..start + len].iter_mut().for_each(|x| *x = true);
    }
    let mut data = Vec::with_capacity(t * D);
    for &hot in &truth {
        for k in 0..D {
            let base = 0.5 * rng.next_f32();
            let burst = if hot && k < D / 2 {
                let m = 1.5 + rng.next_f32();
                if rng.below(2) == 0 {
                    m
                } else {
                    -m
                }
            } else {
                0.0
            };
            data.push(base + burst);
        }
    }
    (data, t, truth)
}

/// Writes `n` abnormal then `n` normal videos and a labelled list; returns the list path and
/// each video's snippet truth.
fn write_set(dir: &Path, name: &str, n: usize, seed: u64) -> (PathBuf, Vec<Vec<bool>>) {
    let mut rng = Rng::new(seed);
    let mut lines = String::new();
    let mut truths = Vec::new();
    for i in 0..2 * n {
        let abnormal = i < n;
        let (data, t, truth) = video(&mut rng, abnormal);
        let file = dir.join(format!("{name}_{i:03}.npy"));
        vigil::npy::write_f32(&file, &[t, 1, D], &data).unwrap();
        lines.push_str(&format!("{},{}\n", file.display(), u8::from(abnormal)));
        truths.push(truth);
    }
    let list = dir.join(format!("{name}.list"));
    std::fs::write(&list, lines).unwrap();
    (list, truths)
}

fn write_gt(path: &Path, truths: &[Vec<bool>]) {
    let frames: Vec<f32> =
        truths.iter().flat_map(|t| t.iter().flat_map(|&x| std::iter::repeat_n(f32::from(u8::from(x)), 16))).collect();
    vigil::npy::write_f32(path, &[frames.len()], &frames).unwrap();
}

/// Frame-level AUC of a network on a held-out list.
fn frame_auc(net: &Rtfm, list: &Path, truths: &[Vec<bool>]) -> f64 {
    let entries = vigil::lists::read_list(list, &[]).unwrap();
    let scores: Vec<Vec<f32>> = entries
        .iter()
        .map(|e| {
            let f = vigil::npy::read_features(&e.path, Some(D)).unwrap();
            net.score(f.view()).unwrap().scores
        })
        .collect();
    let labels: Vec<f64> =
        truths.iter().flat_map(|t| t.iter().flat_map(|&x| std::iter::repeat_n(f64::from(u8::from(x)), 16))).collect();
    roc_auc(&labels, &expand_videos(&scores, 16)).unwrap()
}

fn train(list: &Path, base: &Path, out: &Path, seed: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--train-list",
        s(list),
        "--model",
        s(base),
        "--out",
        s(out),
        "--seed",
        seed,
        "--batch",
        "8",
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    vigil(&args)
}

#[test]
fn learns_synthetic_bursts_and_writes_a_complete_model() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_model(dir.path());
    let (train_list, _) = write_set(dir.path(), "train", 16, 1);
    let (val_list, val_truth) = write_set(dir.path(), "val", 4, 2);
    let (test_list, test_truth) = write_set(dir.path(), "test", 8, 3);
    let gt = dir.path().join("val_gt.npy");
    write_gt(&gt, &val_truth);
    let out = dir.path().join("trained");
    let o = train(
        &train_list,
        &base,
        &out,
        "5",
        &["--iterations", "150", "--eval-every", "50", "--val-list", s(&val_list), "--val-gt", s(&gt)],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let untrained = frame_auc(&Rtfm::new_random(&WIDTHS, 5).unwrap(), &test_list, &test_truth);
    let model = ModelDir::load(&out).unwrap();
    let trained = frame_auc(&model.load_rtfm().unwrap(), &test_list, &test_truth);
    eprintln!("frame-level AUC on held-out videos: trained {trained:.4}, untrained {untrained:.4}");
    assert!(trained >= 0.9, "trained AUC {trained} (untrained {untrained})");
    assert!(untrained < 0.9, "untrained AUC {untrained} is already high");

    let m = &model.manifest;
    assert!(m.rtfm.trained);
    assert_eq!(m.rtfm.widths(), WIDTHS);
    assert!(m.alert.validate().is_ok());
    assert_ne!((m.alert.on, m.alert.off), (0.6, 0.4), "thresholds come from validation");
    let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["iteration"], 150);
    for key in ["total", "classification", "magnitude", "sparsity", "smoothness"] {
        assert!(lines[0]["loss"][key].is_number(), "{key}: {}", lines[0]);
    }
    assert!(lines[0]["val_metric"].is_number());
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("training.json")).unwrap()).unwrap();
    assert_eq!(rec["seed"], 5);
    assert_eq!(rec["iterations"], 150);
    assert_eq!(rec["val_metric"], "frame_auc");
    assert!(rec["best_val_metric"].as_f64().unwrap() > 0.5);
    assert!(rec["seconds"].as_f64().unwrap() > 0.0);
    // Where `on` leaves the validation videos: 4 normal, 4 abnormal; `on` sits above every
    // normal video's maximum, and the card says so.
    let point = &rec["alert"]["validation"];
    assert_eq!(point["normal_videos"], 4, "{point}");
    assert_eq!(point["abnormal_videos"], 4, "{point}");
    assert_eq!(point["normal_videos_reaching_on"], 0, "{point}");
    let maxima = point["highest_normal_video_maxima"].as_array().unwrap();
    assert_eq!(maxima.len(), 3);
    assert!(maxima.iter().all(|x| x.as_f64().unwrap() < f64::from(m.alert.on)), "{point}");
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.contains("is reached by 0 of 4 normal and"), "{card}");
}

#[test]
fn same_seed_same_weights_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_model(dir.path());
    let (list, _) = write_set(dir.path(), "train", 6, 9);
    let (val, _) = write_set(dir.path(), "val", 2, 10);
    let run = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        let o = train(&list, &base, &out, seed, &["--iterations", "12", "--eval-every", "4", "--val-list", s(&val)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(out.join("rtfm.safetensors")).unwrap()
    };
    let a = run("a", "3");
    let b = run("b", "3");
    let c = run("c", "4");
    assert!(a == b, "same seed gave different weights");
    assert!(a != c, "another seed gave the same weights");
}

#[test]
fn bad_inputs_fail_with_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_model(dir.path());
    let (good, _) = write_set(dir.path(), "ok", 2, 1);
    let text = std::fs::read_to_string(&good).unwrap();
    let out = dir.path().join("out");
    let check = |o: &Output, code: i32, needles: &[&str]| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        for n in needles {
            assert!(err.contains(n), "missing '{n}' in: {err}");
        }
    };

    // A missing feature file on line 2.
    let missing = dir.path().join("missing.list");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[1] = format!("{},1", dir.path().join("nope.npy").display());
    std::fs::write(&missing, lines.join("\n")).unwrap();
    let o = train(&missing, &base, &out, "0", &["--iterations", "1"]);
    check(&o, 5, &["missing.list:2", "nope.npy"]);

    // A feature file of another width on line 3.
    let wide = dir.path().join("wide.npy");
    vigil::npy::write_f32(&wide, &[5, 1, 8], &[0.5; 40]).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[2] = format!("{},0", wide.display());
    let wide_list = dir.path().join("wide.list");
    std::fs::write(&wide_list, lines.join("\n")).unwrap();
    let o = train(&wide_list, &base, &out, "0", &["--iterations", "1"]);
    check(&o, 5, &["wide.list:3", "wide.npy", "16"]);

    // No normal videos, then no abnormal videos.
    let abn_only = dir.path().join("abn.list");
    std::fs::write(&abn_only, text.lines().take(2).collect::<Vec<_>>().join("\n")).unwrap();
    let o = train(&abn_only, &base, &out, "0", &["--iterations", "1"]);
    check(&o, 9, &["abn.list", "no normal videos"]);
    let nor_only = dir.path().join("nor.list");
    std::fs::write(&nor_only, text.lines().skip(2).collect::<Vec<_>>().join("\n")).unwrap();
    let o = train(&nor_only, &base, &out, "0", &["--iterations", "1"]);
    check(&o, 9, &["nor.list", "no abnormal videos"]);

    // A validation gt whose length does not match the validation videos.
    let gt = dir.path().join("short_gt.npy");
    vigil::npy::write_f32(&gt, &[10], &[0.0; 10]).unwrap();
    let o = train(&good, &base, &out, "0", &["--iterations", "1", "--val-list", s(&good), "--val-gt", s(&gt)]);
    check(&o, 8, &["short_gt.npy", "frames"]);
    assert!(!out.exists(), "no output directory on failure");
}

#[test]
fn paper_loss_trains_without_validation() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_model(dir.path());
    let (list, _) = write_set(dir.path(), "train", 3, 4);
    let out = dir.path().join("paper");
    let weights = ["--sparsity", "0.02", "--smoothness", "0"];
    let flags =
        [&["--iterations", "6", "--eval-every", "3", "--loss", "paper", "--margin", "5"][..], &weights].concat();
    let o = train(&list, &base, &out, "1", &flags);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = ModelDir::load(&out).unwrap();
    assert!(m.manifest.rtfm.trained);
    // Without validation the base model's thresholds are kept and the last weights saved.
    assert_eq!((m.manifest.alert.on, m.manifest.alert.off), (0.6, 0.4));
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("training.json")).unwrap()).unwrap();
    assert_eq!(rec["selected_iteration"], 6);
    assert_eq!(rec["options"]["loss"]["kind"], "paper");
    assert_eq!(rec["options"]["loss"]["margin"], 5.0);
    assert_eq!(rec["options"]["loss"]["smoothness"], 0.0);
    assert!((rec["options"]["loss"]["sparsity"].as_f64().unwrap() - 0.02).abs() < 1e-7, "{}", rec["options"]);
    // A weight that is not a finite number >= 0 is refused before training, naming the flag.
    for bad in ["--sparsity=-1", "--smoothness=nan"] {
        let o = train(&list, &base, &dir.path().join("bad"), "1", &["--iterations", "2", bad]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        let flag = bad.split('=').next().unwrap();
        assert!(err.contains(flag) && err.contains("expected a finite weight >= 0"), "{bad}: {err}");
    }
}

/// Frame-level ROC AUC that `vigil eval` reports for `model` on a feature list.
fn eval_auc(list: &Path, gt: &Path, model: &Path) -> f64 {
    let o = vigil(&["eval", "--list", s(list), "--gt", s(gt), "--model", s(model), "--json", "--no-progress"]);
    assert!(o.status.success(), "eval failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["auc"].as_f64().unwrap()
}

/// The whole loop on the `small` benchmark, as a user runs it: `vigil synth`, `vigil features`
/// with the shipped extractor, `vigil train` from the shipped model's widths, `vigil eval` on
/// the held-out test videos. The trained network must beat chance clearly; the same network
/// with random weights must not.
#[test]
fn small_benchmark_loop_learns_from_video_labels() {
    let vtest = common::vtest();
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let bench = dir.path().join("bench");
    common::assert_ok(&vigil(&["synth", "--out", s(&bench), "--size", "small", "--seed", "1", "--source", vtest]));
    let feats = dir.path().join("feats");
    for split in ["train", "test"] {
        let list = bench.join(format!("{split}.list"));
        common::assert_ok(&vigil(&["features", "--list", s(&list), "--out", s(&feats), "--no-progress"]));
    }
    eprintln!("synth + features: {:.1} s", t.elapsed().as_secs_f64());

    let videos = std::fs::read_to_string(bench.join("train.list")).unwrap();
    let abnormal = videos.lines().filter(|l| l.contains("_abn_")).count().to_string();
    let train_list = feats.join("train.list");
    // 200 iterations, seed 0, plus `extra` options.
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec!["train", "--train-list", s(&train_list), "--abnormal", &abnormal, "--out", s(out)];
        args.extend(["--iterations", "200", "--seed", "0", "--no-progress"]);
        args.extend_from_slice(extra);
        let o = vigil(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let trained = dir.path().join("trained");
    train(&trained, &[]);
    eprintln!("+ train: {:.1} s", t.elapsed().as_secs_f64());

    // The untrained control: the trained model directory with random RTFM weights.
    let untrained = dir.path().join("untrained");
    std::fs::create_dir_all(&untrained).unwrap();
    for f in ["extractor.onnx", "model.toml"] {
        std::fs::copy(trained.join(f), untrained.join(f)).unwrap();
    }
    let manifest = ModelDir::load(&trained).unwrap().manifest;
    Rtfm::new_random(&manifest.rtfm.widths(), 0).unwrap().save(&untrained.join("rtfm.safetensors")).unwrap();

    let gt = bench.join("gt-test.npy");
    let test = feats.join("test.list");
    let (auc_trained, auc_untrained) = (eval_auc(&test, &gt, &trained), eval_auc(&test, &gt, &untrained));
    eprintln!(
        "small test split: ROC AUC trained {auc_trained:.4}, untrained {auc_untrained:.4} ({:.1} s in all)",
        t.elapsed().as_secs_f64()
    );
    assert!(auc_trained >= 0.8, "trained ROC AUC {auc_trained} (untrained {auc_untrained})");
    assert!(auc_untrained < 0.8, "untrained ROC AUC {auc_untrained} is already high");

    // The same run with the short videos (all of them: 6-10 snippets) zero-padded and masked
    // instead of stretched to 32 segments: it must learn as well, and record the choice.
    let padded = dir.path().join("padded");
    train(&padded, &["--short-videos", "pad"]);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(padded.join("training.json")).unwrap()).unwrap();
    assert_eq!(record["options"]["short_videos"], "pad", "{record}");
    let auc_padded = eval_auc(&test, &gt, &padded);
    eprintln!("small test split, --short-videos pad: ROC AUC {auc_padded:.4}");
    assert!(auc_padded >= 0.8, "padded training ROC AUC {auc_padded}");
    assert_ne!(
        std::fs::read(padded.join("rtfm.safetensors")).unwrap(),
        std::fs::read(trained.join("rtfm.safetensors")).unwrap(),
        "padding changed nothing"
    );
}
