//! The command line: subcommands and their flags (clap derive). Defaults that belong to a model
//! (scorer window, alert thresholds) live in its manifest; flags here only override them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "vigil", version, about = "Real-time video anomaly detection with RTFM")]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `vigil=debug`. Overrides RUST_LOG.
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Offline,
    Window,
}

impl From<ModeArg> for crate::scorer::ScoreMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Offline => crate::scorer::ScoreMode::Offline,
            ModeArg::Window => crate::scorer::ScoreMode::Window,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay video files: scores, alert events (JSON lines on stdout), optional score file and plot.
    Replay(ReplayArgs),
    /// Score RTFM feature files ([T, crops, D] .npy) without any video.
    Score(ScoreArgs),
    /// Import a reference PyTorch RTFM checkpoint into a vigil model directory.
    Import(ImportArgs),
    /// Measure decode-only and whole-pipeline throughput and per-stage latency on a video.
    Bench(BenchArgs),
    /// Generate the deterministic synthetic benchmark (videos, lists, ground truth).
    Synth(SynthArgs),
    /// Extract RTFM feature files ([T, crops, D] .npy) from videos, several in parallel.
    Features(FeaturesArgs),
    /// Frame-level evaluation (ROC AUC, PR AUC, AP, time to detect, false alerts) of a list.
    Eval(EvalArgs),
    /// Train an RTFM model from feature files labelled normal/abnormal per video.
    Train(TrainArgs),
    /// Run the edge daemon: live cameras, alerts to sinks, clips, /metrics.
    Run(RunArgs),
    /// Check a daemon configuration file (and the model it names) without running anything.
    CheckConfig(CheckConfigArgs),
    /// Run the daemon on N copies of a video played as real-time cameras; report drops, latency
    /// and memory.
    BenchCameras(BenchCamerasArgs),
}

#[derive(Debug, Args)]
pub struct BenchCamerasArgs {
    /// Video each camera plays in a loop at its own frame rate.
    #[arg(value_name = "VIDEO")]
    pub video: PathBuf,
    /// Number of cameras.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub cameras: usize,
    /// How long to run ("60s", "10m").
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: std::time::Duration,
    /// Feature workers (one ONNX Runtime session each).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub workers: usize,
    /// Most snippets per inference.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub max_batch: usize,
    /// Do not keep pre-roll rings or record clips.
    #[arg(long)]
    pub no_recording: bool,
    /// Each camera's `decoder` key: "auto" (FFmpeg to YUV for a grey model), "ffmpeg" or
    /// "opencv" (BGR, the decoder before 2026-11-28).
    #[arg(long, default_value = "auto", value_parser = ["auto", "ffmpeg", "opencv"], value_name = "DECODER")]
    pub decoder: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The daemon configuration (TOML; see config/vigil.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Stop on its own after this long ("90s", "10m"), exactly as on SIGTERM.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The daemon configuration to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("'{s}': {e} (expected e.g. 90s, 10m, 1h 30m)"))
}

/// Flags shared by commands that load a model.
#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    /// Model directory (holds model.toml). Default: $VIGIL_MODEL, else models/default.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
}

/// Execution-provider overrides of the manifest's `[extractor]` (replay, bench, features).
#[derive(Debug, Args, Clone, Default)]
pub struct ProviderArgs {
    /// ONNX Runtime execution provider: cpu, cuda, tensorrt or auto (TensorRT, then CUDA, then
    /// CPU). Default: the manifest's `extractor.provider`, else cpu.
    #[arg(long, value_name = "NAME", value_parser = parse_provider)]
    pub provider: Option<crate::features::Provider>,
    /// Run on CPU (with a warning) when the requested GPU provider cannot be used, instead of
    /// refusing to start.
    #[arg(long)]
    pub allow_fallback: bool,
}

fn parse_provider(s: &str) -> Result<crate::features::Provider, String> {
    s.parse()
}

/// Scorer overrides.
#[derive(Debug, Args, Clone)]
pub struct ScorerArgs {
    /// Scoring mode: offline (whole video, the reference numbers) or window (streaming ring buffer).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Window size in snippets (window mode).
    #[arg(long, value_name = "N")]
    pub window: Option<usize>,
    /// Lookahead in snippets (window mode).
    #[arg(long, value_name = "N")]
    pub lookahead: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Video files to replay, in order.
    #[arg(required = true, value_name = "VIDEO")]
    pub videos: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub scorer: ScorerArgs,
    #[command(flatten)]
    pub provider: ProviderArgs,
    /// Write every snippet's score and magnitude (.jsonl or .csv). With several videos, `{stem}`
    /// in the path is replaced by each video's name; otherwise all go to one file.
    #[arg(long, value_name = "FILE")]
    pub scores: Option<PathBuf>,
    /// Draw score against time with alert spans (.svg or .png). `{stem}` as for --scores; with
    /// several videos and no `{stem}`, the video name is inserted before the extension.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Frame-level ground truth (.npy, RTFM layout: one value per frame, videos concatenated in
    /// order, each padded to T*16 frames) drawn on the plot.
    #[arg(long, value_name = "FILE")]
    pub gt: Option<PathBuf>,
    /// ONNX Runtime intra-op threads for the feature extractor.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Never show the progress bar (it shows only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Which decoder reads the videos: "opencv" (BGR, as `vigil features` and `vigil eval` read
    /// them) or "ffmpeg" (YUV, as `vigil run` reads files and streams for a grey model; grey
    /// models only).
    #[arg(long, value_enum, default_value_t = ReplayDecoder::Opencv)]
    pub decoder: ReplayDecoder,
}

/// `vigil replay --decoder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayDecoder {
    Opencv,
    Ffmpeg,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Feature files ([T, crops, D] or [T, D], float32 or float64).
    #[arg(required = true, value_name = "FEATURES.npy")]
    pub features: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print, per file, one JSON object with the arrays `scores` and `magnitudes`.
    #[arg(long)]
    pub json: bool,
    /// Scoring mode (default offline: the whole file at once, as the reference evaluates).
    #[arg(long, value_enum, default_value_t = ModeArg::Offline)]
    pub mode: ModeArg,
    /// Window size in snippets (window mode; default from the manifest).
    #[arg(long, value_name = "N")]
    pub window: Option<usize>,
    /// Lookahead in snippets (window mode; default from the manifest).
    #[arg(long, value_name = "N")]
    pub lookahead: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A `torch.save(state_dict)` file of the reference RTFM code (zip or legacy format).
    #[arg(value_name = "CHECKPOINT")]
    pub checkpoint: PathBuf,
    /// Model directory to create (must not exist, or be empty, unless --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Crops per snippet of the features this model will score (reference: 10).
    #[arg(long, default_value_t = 10)]
    pub crops: usize,
    /// Copy the feature extractor and preprocessing recipe from this model directory, so the
    /// imported model can replay videos (its feature width must match the checkpoint's).
    #[arg(long, value_name = "DIR")]
    pub extractor_from: Option<PathBuf>,
    /// Overwrite files in an existing output directory.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Video to measure on.
    #[arg(value_name = "VIDEO")]
    pub video: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub scorer: ScorerArgs,
    #[command(flatten)]
    pub provider: ProviderArgs,
    /// Print one JSON object: decode_fps, pipeline_fps, stages.
    #[arg(long)]
    pub json: bool,
    /// ONNX Runtime intra-op threads for the feature extractor.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Repeat the pipeline run this many times and keep the best (the first warms caches).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub runs: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SynthSizeArg {
    Small,
    Full,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output directory (created if missing; files of the same names are overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Seed: the same seed gives the same benchmark.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// small: 26 short videos (a CI fixture); full: 340 videos (the benchmark).
    #[arg(long, value_enum, default_value_t = SynthSizeArg::Small)]
    pub size: SynthSizeArg,
    /// Real footage to cut clips from.
    #[arg(long, value_name = "VIDEO", default_value = "/usr/share/doc/opencv-doc/examples/data/vtest.avi")]
    pub source: PathBuf,
}

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Video files (or use --list).
    #[arg(value_name = "VIDEO", required_unless_present = "list", conflicts_with = "list")]
    pub videos: Vec<PathBuf>,
    /// A list file of videos (one per line, optional label column).
    #[arg(long, value_name = "FILE")]
    pub list: Option<PathBuf>,
    /// Output directory: one `<video stem>.npy` per video and a list file of them.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub provider: ProviderArgs,
    /// Videos processed at once, each by its own extractor (one intra-op thread). Default: cores.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Rewrite a path prefix in the list (`FROM=TO`); repeatable.
    #[arg(long, value_name = "FROM=TO")]
    pub remap: Vec<crate::lists::Remap>,
    /// Never show the progress bar (it shows only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A list of videos or of feature files (.npy), not both, in ground-truth order.
    #[arg(long, value_name = "FILE")]
    pub list: PathBuf,
    /// Frame-level ground truth (.npy, RTFM layout: videos concatenated in list order, each
    /// padded to T*16 frames).
    #[arg(long, value_name = "FILE")]
    pub gt: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Write roc.svg and one score-versus-ground-truth plot per video into this directory.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Frame rate of feature-list entries, for time to detect and alerts per hour only
    /// (ShanghaiTech 24, UCF-Crime 30). Default: each feature file's own, from the `<stem>.json`
    /// that `vigil features` writes beside it, else 30. Videos always use their own.
    #[arg(long, value_name = "FPS", value_parser = positive_fps)]
    pub fps: Option<f64>,
    /// Rewrite a path prefix in the list (`FROM=TO`); repeatable.
    #[arg(long, value_name = "FROM=TO")]
    pub remap: Vec<crate::lists::Remap>,
    /// ONNX Runtime intra-op threads for the feature extractor (video lists).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Never show the progress bar (it shows only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LossArg {
    /// The reference code: squared magnitude loss, L2 sparsity.
    Reference,
    /// The paper: hinge magnitude loss, L1 sparsity.
    Paper,
}

/// How `vigil train` handles videos shorter than its 32 segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShortVideosArg {
    /// The reference: resample to 32 segments, repeating snippets.
    Stretch,
    /// Zero-pad to 32 and mask the padding, so training sees each video at its own length.
    Pad,
}

impl From<ShortVideosArg> for crate::train::data::ShortVideos {
    fn from(a: ShortVideosArg) -> Self {
        match a {
            ShortVideosArg::Stretch => Self::Stretch,
            ShortVideosArg::Pad => Self::Pad,
        }
    }
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training list of feature files ([T, crops, D] .npy), labelled by a `,0`/`,1` column,
    /// by --abnormal, or by names (`normal` in the name means normal).
    #[arg(long = "train-list", value_name = "FILE")]
    pub list: PathBuf,
    /// The first N lines of the training list are abnormal, the rest normal (RTFM lists).
    #[arg(long, value_name = "N")]
    pub abnormal: Option<usize>,
    /// Rewrite a path prefix in the lists (FROM=TO), e.g. for Windows paths; repeatable.
    #[arg(long, value_name = "FROM=TO")]
    pub remap: Vec<crate::lists::Remap>,
    /// Base model: widths, extractor and preprocessing are taken from it (features.dim must
    /// match the feature files). Default: $VIGIL_MODEL, else models/default.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Model directory to write (must not exist, or be empty, unless --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Overwrite files in an existing output directory.
    #[arg(long)]
    pub force: bool,
    /// Training iterations (the reference runs 15000 on I3D features; the best validation
    /// checkpoint is kept, so more iterations cost time, not quality).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub iterations: usize,
    /// Videos per class per step (default min(32, normal videos, abnormal videos)).
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Seed of the initial weights, batches and dropout masks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Adam L2 weight decay, added to the gradient (coupled, as torch.optim.Adam).
    #[arg(long, default_value_t = 5e-3)]
    pub weight_decay: f64,
    /// Objective: the reference code's or the paper's.
    #[arg(long, value_enum, default_value_t = LossArg::Reference)]
    pub loss: LossArg,
    /// Feature-magnitude margin m. Default: 100 for 2048-d features (the reference, tuned to
    /// I3D norms); otherwise 3x the mean snippet feature norm of the training set.
    #[arg(long, value_name = "M")]
    pub margin: Option<f32>,
    /// Weight of the magnitude term.
    #[arg(long, default_value_t = 1e-4, value_parser = loss_weight)]
    pub alpha: f32,
    /// Weight of the sparsity term on the abnormal videos' snippet scores (reference 8e-3).
    /// Larger values press down the scores of the parts of an abnormal video that are not
    /// among its top-k.
    #[arg(long, default_value_t = 8e-3, value_parser = loss_weight)]
    pub sparsity: f32,
    /// Weight of the temporal smoothness term on the abnormal videos' scores (reference 8e-4).
    #[arg(long, default_value_t = 8e-4, value_parser = loss_weight)]
    pub smoothness: f32,
    /// Validation list (labelled like the training list) for model selection and thresholds.
    #[arg(long, value_name = "FILE")]
    pub val_list: Option<PathBuf>,
    /// The first N lines of the validation list are abnormal.
    #[arg(long, value_name = "N")]
    pub val_abnormal: Option<usize>,
    /// Frame-level ground truth of the validation list (.npy, RTFM layout): selects by
    /// frame-level ROC AUC instead of the video-level AUC of each video's maximum score.
    #[arg(long, value_name = "FILE", requires = "val_list")]
    pub val_gt: Option<PathBuf>,
    /// Evaluate on the validation list and log every N iterations.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub eval_every: usize,
    /// Keep an exponential moving average of the weights with this decay (e.g. 0.99) and
    /// validate, select and save the average instead of the raw weights (not in the reference
    /// code; off by default).
    #[arg(long, value_name = "DECAY")]
    pub ema: Option<f64>,
    /// Videos shorter than 32 snippets: `stretch` resamples them to 32 segments as the
    /// reference does (each snippet repeated, so the temporal convolutions and the non-local
    /// block train on a stretched timeline, unlike the one they score); `pad` zero-pads them and
    /// masks the padding (BatchNorm statistics, non-local average, top-k, sparsity and
    /// smoothness see each video's own snippets only; top-k takes clamp(3 * T / 32, 1, 3)).
    /// Not in the reference code.
    #[arg(long, value_enum, default_value_t = ShortVideosArg::Stretch)]
    pub short_videos: ShortVideosArg,
    /// Never show the progress bar (it shows only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// A loss term's weight: a finite number >= 0.
/// A frame rate: a finite number above 0 (refused by the command line, exit 2, otherwise).
fn positive_fps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
        Ok(_) => Err(format!("expected frames per second above 0, got {s}")),
        Err(e) => Err(format!("expected frames per second above 0: {e}")),
    }
}

fn loss_weight(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(w) if w.is_finite() && w >= 0.0 => Ok(w),
        Ok(_) => Err(format!("expected a finite weight >= 0, got {s}")),
        Err(e) => Err(format!("expected a finite weight >= 0: {e}")),
    }
}
