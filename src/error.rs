//! The documented exit codes, and the mapping from an error chain to one of them.
//!
//! Each module reports its own `thiserror` enum with the input's context; `main` prints the chain
//! once and exits with the code of the first recognised error in it.

use crate::features::FeatureError;
use crate::lists::ListError;
use crate::model::ModelError;
use crate::npy::NpyError;
use crate::output::OutputError;
use crate::preprocess::PreprocessError;
use crate::rtfm::{CheckpointError, RtfmError};
use crate::source::SourceError;
use crate::synth::SynthError;

/// Exit codes of the `vigil` binary (also listed in README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    /// A bug or an unexpected failure.
    Internal = 1,
    /// Bad command line (clap's own code).
    Usage = 2,
    /// A video that is missing, empty, corrupt, undecodable or too short.
    Video = 3,
    /// A model directory, manifest, ONNX model, runtime library or weights file that is wrong.
    Model = 4,
    /// A feature file (`.npy`) that is missing or of the wrong dtype, rank or width.
    Features = 5,
    /// A PyTorch checkpoint that cannot be imported.
    Checkpoint = 6,
    /// An output (scores, plot, model directory, the daemon's outbox) that cannot be written, or
    /// the daemon's HTTP address that cannot be bound.
    Output = 7,
    /// A ground-truth file that is wrong.
    GroundTruth = 8,
    /// A list file that is missing, empty, or has a bad line.
    List = 9,
    /// A daemon configuration file that cannot be read or is invalid.
    Config = 10,
}

/// A video too short or otherwise unusable once opened (not a decode error as such).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("video {name} has {frames} frames: at least {needed} are needed for one snippet")]
    TooShort { name: String, frames: u64, needed: usize },
    #[error("video {name}: {source}")]
    Preprocess {
        name: String,
        #[source]
        source: PreprocessError,
    },
}

/// Ground-truth errors.
#[derive(Debug, thiserror::Error)]
pub enum GtError {
    #[error("ground truth {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// The exit code for an error chain: the first error in it that this crate knows decides.
pub fn exit_code(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if cause.is::<SourceError>() || cause.is::<InputError>() {
            return Exit::Video;
        }
        if cause.is::<ModelError>() || cause.is::<FeatureError>() {
            return Exit::Model;
        }
        if let Some(e) = cause.downcast_ref::<RtfmError>() {
            return match e {
                RtfmError::Input { .. } => Exit::Features,
                _ => Exit::Model,
            };
        }
        if cause.is::<NpyError>()
            || cause.is::<crate::train::TrainError>()
            || cause.is::<crate::eval::meta::MetaError>()
        {
            return Exit::Features;
        }
        if cause.is::<CheckpointError>() {
            return Exit::Checkpoint;
        }
        if cause.is::<OutputError>()
            || cause.is::<crate::sink::SinkError>()
            || cause.is::<crate::telemetry::TelemetryError>()
        {
            return Exit::Output;
        }
        if cause.is::<GtError>() {
            return Exit::GroundTruth;
        }
        if cause.is::<ListError>() {
            return Exit::List;
        }
        if cause.is::<crate::config::ConfigError>() {
            return Exit::Config;
        }
        if let Some(e) = cause.downcast_ref::<SynthError>() {
            return match e {
                SynthError::Source { .. } | SynthError::SourceTooShort { .. } => Exit::Video,
                _ => Exit::Output,
            };
        }
    }
    Exit::Internal
}
