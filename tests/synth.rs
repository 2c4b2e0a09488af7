//! Integration tests of the synthetic benchmark generator (Small size, real OpenCV round trip).

// Helpers outside #[test] functions panic on malformed output by design.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use vigil::synth::{decode_digest, generate, SynthOptions, SynthSize};

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

fn make(dir: &Path, seed: u64) -> vigil::synth::SynthSummary {
    let opts =
        SynthOptions { out: dir.to_path_buf(), seed, size: SynthSize::Small, source_video: PathBuf::from(VTEST) };
    let mut calls = 0;
    let s = generate(&opts, &mut |done, total| {
        calls += 1;
        assert!(done <= total);
    })
    .expect("small generation succeeds");
    assert!(calls > 0);
    s
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

struct Row {
    video: String,
    split: String,
    label: u8,
    kind: String,
    start: usize,
    end: usize,
    frames: usize,
}

fn rows(dir: &Path) -> Vec<Row> {
    let text = String::from_utf8(read(&dir.join("labels.csv"))).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "video,split,label,part,event_kind,event_start_frame,event_end_frame,frames,fps,width,height"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 11, "{l}");
            Row {
                video: f[0].into(),
                split: f[1].into(),
                label: f[2].parse().unwrap(),
                kind: f[4].into(),
                start: f[5].parse().unwrap_or(0),
                end: f[6].parse().unwrap_or(0),
                frames: f[7].parse().unwrap(),
            }
        })
        .collect()
}

fn npy_f64(path: &Path) -> Vec<f64> {
    let b = read(path);
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    assert_eq!((10 + hl) % 64, 0, "header 64-byte aligned");
    let header = std::str::from_utf8(&b[10..10 + hl]).unwrap();
    assert!(header.contains("'descr': '<f8'"), "{header}");
    b[10 + hl..].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn small_benchmark_is_complete_consistent_and_deterministic() {
    if !Path::new(VTEST).exists() {
        eprintln!("skipping: {VTEST} not installed");
        return;
    }
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let sa = make(a.path(), 42);
    eprintln!("small generation: {:.1} s, {sa:?}", t.elapsed().as_secs_f64());
    let sb = make(b.path(), 42);
    assert_eq!(sa.frames, sb.frames);

    // Same seed: identical text/npy files and identical decoded frames.
    let rs = rows(a.path());
    let mut names = vec![
        "train.list".to_string(),
        "val.list".into(),
        "test.list".into(),
        "labels.csv".into(),
        "gt-test.npy".into(),
    ];
    for r in rs.iter().filter(|r| r.split == "test") {
        let stem = Path::new(&r.video).file_stem().unwrap().to_string_lossy().to_string();
        names.push(format!("gt/{stem}.json"));
    }
    for n in &names {
        assert_eq!(read(&a.path().join(n)), read(&b.path().join(n)), "{n} differs between runs");
    }
    for r in rs.iter().take(3).chain(rs.iter().rev().take(3)) {
        let da = decode_digest(&a.path().join(&r.video)).unwrap();
        let db = decode_digest(&b.path().join(&r.video)).unwrap();
        assert_eq!(da, db, "{} decodes differently between runs", r.video);
    }

    // Another seed: different benchmark.
    make(c.path(), 43);
    assert_ne!(read(&a.path().join("labels.csv")), read(&c.path().join("labels.csv")));

    // Lists: abnormal first, and exactly the split's videos.
    for split in ["train", "val", "test"] {
        let text = String::from_utf8(read(&a.path().join(format!("{split}.list")))).unwrap();
        let listed: Vec<&str> = text.lines().collect();
        let labels: Vec<u8> = listed.iter().map(|v| rs.iter().find(|r| r.video == *v).unwrap().label).collect();
        assert!(!labels.is_empty());
        assert!(labels.windows(2).all(|w| w[0] >= w[1]), "{split}.list puts abnormal first: {labels:?}");
        assert!(labels.contains(&1) && labels.contains(&0));
        assert_eq!(listed.len(), rs.iter().filter(|r| r.split == split).count());
    }

    // gt-test.npy: padded per video to whole snippets, ones exactly over event frames.
    let gt = npy_f64(&a.path().join("gt-test.npy"));
    let test_list = String::from_utf8(read(&a.path().join("test.list"))).unwrap();
    let mut at = 0;
    for v in test_list.lines() {
        let r = rs.iter().find(|r| r.video == v).unwrap();
        let padded = r.frames.div_ceil(16) * 16;
        let seg = &gt[at..at + padded];
        for (i, &g) in seg.iter().enumerate() {
            let f = i.min(r.frames - 1);
            let want = if r.label == 1 && f >= r.start && f < r.end { 1.0 } else { 0.0 };
            assert_eq!(g, want, "{v} frame {i}");
        }
        if r.label == 1 {
            assert!(r.start > 0 && r.end > r.start && r.end <= r.frames);
        }
        at += padded;
    }
    assert_eq!(at, gt.len(), "gt-test.npy length is the sum of padded test lengths");

    // Every video decodes to its labelled frame count and size; every kind appears.
    for r in &rs {
        let (n, w, h, _) = decode_digest(&a.path().join(&r.video)).unwrap();
        assert_eq!(n, r.frames, "{}", r.video);
        assert_eq!((w, h), (160, 120), "{}", r.video);
        // FFmpeg's decoder, as strict as any player: not one damaged JPEG (OpenCV 4.6's own
        // MJPEG writer truncated some frames, which FFmpeg reports as `[mjpeg] error`).
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(a.path().join(&r.video))
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.trim().is_empty(), "{}: {stderr}", r.video);
    }
    let kinds: BTreeSet<&str> = rs.iter().filter(|r| r.label == 1).map(|r| r.kind.as_str()).collect();
    for k in vigil::synth::EventKind::ALL {
        assert!(kinds.contains(k.name()), "kind {} missing", k.name());
    }
    assert!(a.path().join("README.md").exists());
}

#[test]
fn missing_source_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        out: dir.path().to_path_buf(),
        seed: 1,
        size: SynthSize::Small,
        source_video: dir.path().join("nope.avi"),
    };
    let err = generate(&opts, &mut |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("nope.avi"), "{err}");
}

/// Writes a benchmark where `VIGIL_SYNTH_OUT` says, at `VIGIL_SYNTH_SIZE` (small|full), for
/// inspection and timing: `VIGIL_SYNTH_OUT=/tmp/b VIGIL_SYNTH_SIZE=full cargo test --release
/// --test synth generate_to_env_dir -- --ignored --nocapture`.
#[test]
#[ignore]
fn generate_to_env_dir() {
    let Ok(out) = std::env::var("VIGIL_SYNTH_OUT") else {
        return;
    };
    let size = match std::env::var("VIGIL_SYNTH_SIZE").as_deref() {
        Ok("full") => SynthSize::Full,
        _ => SynthSize::Small,
    };
    let opts = SynthOptions { out: out.into(), seed: 1, size, source_video: PathBuf::from(VTEST) };
    let t = std::time::Instant::now();
    let s = generate(&opts, &mut |d, n| {
        if d % 20 == 0 || d == n {
            eprintln!("{d}/{n} {:.1}s", t.elapsed().as_secs_f64())
        }
    })
    .unwrap();
    eprintln!("{:.1} s: {s:?}", t.elapsed().as_secs_f64());
}
