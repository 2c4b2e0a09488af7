//! vigil: real-time video anomaly detection with RTFM.
//!
//! Layout (only `source` and the daemon's recorder know OpenCV, only `features` knows ONNX
//! Runtime, only `pipeline` and `daemon` know threads; `scorer` and `alert` are pure so every
//! front end shares them):
//!
//! - [`cli`]: subcommands and flags; [`cmd`]: one file per subcommand, wiring only.
//! - [`model`]: the model directory manifest (`model.toml`), validated at load.
//! - [`source`]: frame sources (OpenCV files and streams) producing owned frames.
//! - [`preprocess`]: pure frame -> clip tensor recipes (resize, crop, normalise, snippets).
//! - [`features`]: the feature extractor trait and its ONNX Runtime implementation.
//! - [`rtfm`]: the RTFM network (candle), its weights and the PyTorch checkpoint importer.
//! - [`scorer`]: offline and ring-buffer window scoring of snippet features.
//! - [`alert`]: the alert hysteresis / cooldown state machine and its events.
//! - [`pipeline`]: the threaded replay pipeline with bounded channels.
//! - [`npy`]: NumPy `.npy` reading and writing for feature files.
//! - [`output`]: score files (JSONL / CSV) and plots.
//! - [`eval`]: evaluation metrics (ROC AUC, PR AUC, AP) and ground truth.
//! - [`lists`]: list files (RTFM layout), labels and path remaps.
//! - [`synth`]: the deterministic synthetic anomaly benchmark generator.
//! - [`stats`]: latency percentiles for `bench`.
//! - [`train`]: RTFM training from labelled feature lists (`vigil train`).
//! - [`error`]: the documented exit codes.
//! - [`config`]: the daemon configuration (`vigil run --config`), validated at load.
//! - [`sink`]: alert sinks (JSON lines, MQTT, webhook) with durable on-disk outboxes.
//! - [`telemetry`]: every metric, Prometheus rendering and the `/metrics` HTTP endpoint.
//! - [`daemon`]: `vigil run`: capture, camera, feature-pool, recorder and sink threads.

pub mod alert;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod daemon;
pub mod error;
pub mod eval;
pub mod features;
pub mod lists;
pub mod model;
pub mod npy;
pub mod output;
pub mod pipeline;
pub mod preprocess;
pub mod rtfm;
pub mod scorer;
pub mod sink;
pub mod source;
pub mod stats;
pub mod synth;
pub mod telemetry;
pub mod train;
