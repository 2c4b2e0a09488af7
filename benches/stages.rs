//! One criterion bench per pipeline stage plus one end to end, on real inputs: frames of the
//! sample clip vtest.avi and the shipped default model. Run with `cargo bench --bench stages`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench that cannot set up should stop

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ndarray::Array3;
use std::path::Path;
use vigil::alert::{AlertMachine, Observation};
use vigil::daemon::record::to_rec_frame;
use vigil::features::FeatureExtractor;
use vigil::model::ModelDir;
use vigil::pipeline::{replay, ReplayOptions};
use vigil::preprocess::{Preprocessor, SnippetAssembler};
use vigil::scorer::{ScoreMode, ScorerConfig, StreamScorer};
use vigil::source::{FfmpegSource, FrameSource, OpenCvSource};

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

fn model() -> ModelDir {
    ModelDir::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default")).expect("default model")
}

fn options(m: &ModelDir) -> ReplayOptions {
    ReplayOptions::from_model(m, m.manifest.scorer).unwrap()
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("vtest_frame", |b| {
        let mut src = OpenCvSource::open_file(Path::new(VTEST)).unwrap();
        b.iter(|| match src.next_frame().unwrap() {
            Some(f) => f,
            None => {
                src = OpenCvSource::open_file(Path::new(VTEST)).unwrap();
                src.next_frame().unwrap().unwrap()
            }
        })
    });
    // The daemon's decoder for grey models: FFmpeg to I420, no BGR conversion.
    g.bench_function("vtest_frame_yuv", |b| {
        let mut src = FfmpegSource::open_file(Path::new(VTEST)).unwrap();
        b.iter(|| match src.next_frame().unwrap() {
            Some(f) => f,
            None => {
                src = FfmpegSource::open_file(Path::new(VTEST)).unwrap();
                src.next_frame().unwrap().unwrap()
            }
        })
    });
    g.finish();
}

fn bench_preprocess(c: &mut Criterion) {
    let m = model();
    let recipe = m.extractor_parts().unwrap().1.clone();
    let mut src = OpenCvSource::open_file(Path::new(VTEST)).unwrap();
    let frame = src.next_frame().unwrap().unwrap();
    let pre = Preprocessor::new(recipe);
    let mut g = c.benchmark_group("preprocess");
    g.throughput(Throughput::Elements(1));
    g.bench_function("vtest_frame_to_128x96_gray", |b| b.iter(|| pre.prepare(&frame).unwrap()));
    let yuv = FfmpegSource::open_file(Path::new(VTEST)).unwrap().next_frame().unwrap().unwrap();
    g.bench_function("vtest_i420_frame_to_128x96_gray", |b| b.iter(|| pre.prepare(&yuv).unwrap()));
    g.finish();
    // The daemon's pre-roll: each frame shrunk to the recording size (768x576 -> 384x288 I420).
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("vtest_frame_to_preroll", |b| b.iter(|| to_rec_frame(&frame, 480, Vec::new()).unwrap()));
    g.bench_function("vtest_i420_frame_to_preroll", |b| b.iter(|| to_rec_frame(&yuv, 480, Vec::new()).unwrap()));
    // As the daemon does it: into the buffer of a frame that left the ring.
    g.bench_function("vtest_i420_frame_to_preroll_reused", |b| {
        let mut buf = Vec::new();
        b.iter(|| buf = to_rec_frame(&yuv, 480, std::mem::take(&mut buf)).unwrap().yuv)
    });
    g.finish();
}

fn bench_features(c: &mut Criterion) {
    let m = model();
    let recipe = m.extractor_parts().unwrap().1.clone();
    let mut src = OpenCvSource::open_file(Path::new(VTEST)).unwrap();
    let pre = Preprocessor::new(recipe.clone());
    let mut asm = SnippetAssembler::new(recipe);
    let snippet = loop {
        let f = src.next_frame().unwrap().unwrap();
        if let Some(s) = asm.push(pre.prepare(&f).unwrap()) {
            break s;
        }
    };
    let mut ex = m.load_extractor(1).unwrap();
    let mut g = c.benchmark_group("features");
    g.throughput(Throughput::Elements(1));
    g.bench_function("default_snippet_1_thread", |b| b.iter(|| ex.extract(snippet.clip.view()).unwrap()));
    g.finish();
}

fn bench_scorer(c: &mut Criterion) {
    let m = model();
    let rtfm = m.load_rtfm().unwrap();
    let dim = m.manifest.features.dim;
    let feats = Array3::from_shape_fn((80, 1, dim), |(t, _, d)| ((t * 7 + d * 3) % 11) as f32 * 0.2);
    let mut g = c.benchmark_group("scorer");
    g.throughput(Throughput::Elements(1));
    for window in [16usize, 32, 64] {
        let cfg = ScorerConfig { mode: ScoreMode::Window, window, lookahead: 2 };
        g.bench_function(format!("window_{window}_push_full_ring"), |b| {
            b.iter_batched(
                || {
                    let mut s = StreamScorer::new(&rtfm, cfg, 1, dim);
                    for t in 0..window {
                        s.push(feats.slice(ndarray::s![t, .., ..])).unwrap();
                    }
                    s
                },
                |mut s| s.push(feats.slice(ndarray::s![window, .., ..])).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn bench_alert(c: &mut Criterion) {
    let mut m = AlertMachine::new("bench", Default::default());
    let mut i = 0u64;
    let mut g = c.benchmark_group("alert");
    g.throughput(Throughput::Elements(1));
    g.bench_function("update", |b| {
        b.iter(|| {
            i += 1;
            let score = if (i / 50) % 2 == 0 { 0.1 } else { 0.9 };
            m.update(Observation {
                snippet: i,
                first_frame: i * 16,
                last_frame: i * 16 + 15,
                start_ms: i as f64 * 1600.0,
                end_ms: (i + 1) as f64 * 1600.0,
                score,
            })
        })
    });
    g.finish();
}

fn bench_end_to_end(c: &mut Criterion) {
    let m = model();
    let opts = options(&m);
    let rtfm = m.load_rtfm().unwrap();
    let mut ex = m.load_extractor(1).unwrap();
    let mut g = c.benchmark_group("end_to_end");
    g.sample_size(10);
    g.throughput(Throughput::Elements(795));
    g.bench_function("vtest_replay_frames", |b| {
        b.iter(|| {
            let src = OpenCvSource::open_file(Path::new(VTEST)).unwrap();
            replay(src, &mut ex, &rtfm, &opts, &mut |_| {}, &mut |_| {}).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_decode, bench_preprocess, bench_features, bench_scorer, bench_alert, bench_end_to_end);
criterion_main!(benches);
