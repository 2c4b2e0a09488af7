//! Deterministic synthetic anomaly benchmark (the library side of `vigil synth`): MJPG videos cut
//! from a real clip or drawn from scratch, some with an injected event, plus RTFM-style lists,
//! per-frame ground truth and a `gt-test.npy`. Everything follows from the seed; this module owns
//! its own drawing and touches OpenCV only in [`video`], and no other module of the crate.
//!
//! Layout: [`plan`] decides every video and its event window up front (so labels are exact by
//! construction); [`real`] and [`procedural`] render frames; [`files`] writes lists and truth.

pub mod actors;
pub mod avi;
pub mod effects;
pub mod figure;
pub mod files;
pub mod plan;
pub mod procedural;
pub mod raster;
pub mod real;
pub mod rng;
pub mod video;

pub use plan::{EventKind, Part, Split, VideoSpec};
pub use video::decode_digest;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// How big a benchmark to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthSize {
    /// 26 videos of 96..160 frames at 160x120: a CI fixture (seconds to generate).
    Small,
    /// 340 videos of 96..240 frames at 320x240: the benchmark (~57k frames, ~0.8 GB of MJPG).
    Full,
}

/// What to generate and where.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Output directory; created if missing. Existing files of the same names are overwritten.
    pub out: PathBuf,
    pub seed: u64,
    pub size: SynthSize,
    /// The real footage (OpenCV's `vtest.avi`: a fixed camera over a plaza).
    pub source_video: PathBuf,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    pub out: PathBuf,
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub abnormal: usize,
    pub frames: usize,
    /// Bytes of all written videos.
    pub video_bytes: u64,
    /// Abnormal videos per event kind name, in [`EventKind::ALL`] order.
    pub kinds: Vec<(String, usize)>,
}

/// Errors of generation; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("cannot read source video {path}: {reason}")]
    Source { path: PathBuf, reason: String },
    #[error("source video {path} has {frames} frames; at least {needed} are needed")]
    SourceTooShort { path: PathBuf, frames: usize, needed: usize },
    #[error("cannot create video {path}: {reason}")]
    Writer { path: PathBuf, reason: String },
    #[error("cannot write frame {frame} of {path}: {reason}")]
    Write { path: PathBuf, frame: usize, reason: String },
    #[error("{path} has {written} frames written, {expected} planned")]
    FrameCount { path: PathBuf, written: usize, expected: usize },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a render worker panicked while writing {0}")]
    Worker(String),
}

/// Generates the benchmark into `opts.out`, calling `progress(done, total)` after each video.
pub fn generate(opts: &SynthOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<SynthSummary, SynthError> {
    let started = Instant::now();
    let shape = plan::Shape::of(opts.size);
    let videos_dir = opts.out.join("videos");
    std::fs::create_dir_all(&videos_dir).map_err(|source| SynthError::Io { path: videos_dir.clone(), source })?;

    // Work at twice the output size (below the source's 768x576 for `full`): crops down to 45 %
    // of the frame then upsample only mildly (1.1x).
    let (ww, wh) = (shape.width * 2, shape.height * 2);
    let (frames, fps) = video::read_resized(&opts.source_video, ww, wh, usize::MAX)?;
    let needed = 2 * shape.frames.0 + 64;
    if frames.len() < needed {
        return Err(SynthError::SourceTooShort { path: opts.source_video.clone(), frames: frames.len(), needed });
    }
    let source = real::Source::new(frames, fps);
    let specs = plan::catalogue(opts.seed, opts.size, source.fps, source.frames.len());
    tracing::info!(videos = specs.len(), seed = opts.seed, out = %opts.out.display(), "synth: generating");

    // Videos are independent and seeded individually, so rendering them on several threads
    // changes nothing in the output; the progress callback stays on this thread.
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(specs.len()).max(1);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Result<u64, SynthError>)>();
    let mut results: Vec<Option<Result<u64, SynthError>>> = (0..specs.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        for w in 0..workers {
            let tx = tx.clone();
            let (specs, source, next, dir) = (&specs, &source, &next, &videos_dir);
            let _ = std::thread::Builder::new().name(format!("synth-{w}")).spawn_scoped(scope, move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(spec) = specs.get(i) else { break };
                let r = render_one(spec, source, dir);
                if tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut done = 0;
        for (i, r) in rx {
            let failed = r.is_err();
            results[i] = Some(r);
            done += 1;
            progress(done, specs.len());
            if failed {
                // Stop handing out work; the first error is reported below.
                next.store(usize::MAX / 2, Ordering::Relaxed);
            }
        }
    });
    let mut video_bytes = 0;
    for (spec, r) in specs.iter().zip(results) {
        match r {
            Some(Ok(bytes)) => video_bytes += bytes,
            Some(Err(e)) => return Err(e),
            None => return Err(SynthError::Worker(spec.name.clone())),
        }
    }
    files::write_all(&opts.out, &specs, opts)?;

    let count = |s: Split| specs.iter().filter(|v| v.split == s).count();
    let kinds = EventKind::ALL
        .iter()
        .map(|k| (k.name().to_string(), specs.iter().filter(|v| v.event.map(|e| e.kind) == Some(*k)).count()))
        .collect();
    let summary = SynthSummary {
        out: opts.out.clone(),
        train: count(Split::Train),
        val: count(Split::Val),
        test: count(Split::Test),
        abnormal: specs.iter().filter(|v| v.abnormal()).count(),
        frames: specs.iter().map(|v| v.frames).sum(),
        video_bytes,
        kinds,
    };
    tracing::info!(
        videos = specs.len(),
        frames = summary.frames,
        bytes = video_bytes,
        secs = started.elapsed().as_secs_f64(),
        "synth: done"
    );
    Ok(summary)
}

/// Renders and writes one video; returns its size in bytes.
fn render_one(spec: &VideoSpec, source: &real::Source, dir: &std::path::Path) -> Result<u64, SynthError> {
    let path = dir.join(format!("{}.avi", spec.name));
    let mut out = video::VideoOut::create(&path, spec.fps, spec.width, spec.height)?;
    let mut emit = |img: &raster::Image| out.write(img);
    match spec.part {
        Part::Real => real::render(spec, source, &mut emit)?,
        Part::Procedural => procedural::render(spec, &mut emit)?,
    }
    let written = out.finish()?;
    if written != spec.frames {
        return Err(SynthError::FrameCount { path, written, expected: spec.frames });
    }
    let bytes = std::fs::metadata(&path).map_err(|source| SynthError::Io { path: path.clone(), source })?.len();
    Ok(bytes)
}
